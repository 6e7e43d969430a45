// FHIRPath (N1, as FHIR R4 uses it): expressions are parsed once into an
// immutable tree and evaluated over parsed JSON resources, typed by the
// StructureDefinitions. Search indexing and invariants build on this.
#pragma once

#include <rapidjson/fwd.h>

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fhir/result.hpp"

namespace eds::fhir {

class Definitions;
class Resource;
struct TypeInfo;
struct ElementInfo;
using JsonValue = rapidjson::Value;  // as in fhir/json_internal.hpp

namespace fhirpath {

inline constexpr std::size_t kNoPosition = static_cast<std::size_t>(-1);

// A parse or evaluation error. `position` is the offset in the expression
// text where the offending part starts (kNoPosition when unknown).
struct Error {
  std::string message;
  std::size_t position = kNoPosition;
};

// A value or an Error.
template <class T>
using Result = fhir::Result<T, Error>;

struct Node;  // the syntax tree; defined in fhir/fhirpath/ast.hpp

// A parsed expression: immutable, cheap to copy, safe to evaluate from many
// threads at once.
class Expression {
 public:
  // Parses `text`. Errors carry the position of the offending token: syntax
  // errors, unterminated strings and comments, malformed literals, unknown
  // functions, wrong argument counts, invalid regular expression literals.
  static Result<Expression> Parse(std::string_view text);

  const std::string& text() const { return *text_; }
  const Node& root() const { return *root_; }
  const std::shared_ptr<const Node>& shared_root() const { return root_; }

 private:
  Expression(std::shared_ptr<const std::string> text, std::shared_ptr<const Node> root)
      : text_(std::move(text)), root_(std::move(root)) {}
  std::shared_ptr<const std::string> text_;
  std::shared_ptr<const Node> root_;
};

// What an item holds, as a FHIRPath System type (kObject: a complex value or
// a resource; kType: the result of type()).
enum class ValueKind : std::uint8_t {
  kObject, kBoolean, kInteger, kDecimal, kString, kDate, kDateTime, kTime, kQuantity, kType,
};

// One item of a result: either a node of the resource tree (typed by the
// definitions) or a value the expression computed. Items point into the
// resource and into storage the Collection owns; they are valid while both
// live.
struct Item {
  ValueKind kind = ValueKind::kObject;
  // Primitives from the resource: false when the element has only an id or
  // extensions (`_given` without `given`).
  bool has_value = true;
  bool boolean = false;       // kBoolean: the value; kQuantity: the unit is a calendar keyword
  std::int64_t integer = 0;   // kInteger
  std::string_view text;      // lexical value of primitives (dates without '@'); kQuantity: the number; kType: name
  std::string_view unit;      // kQuantity: the unit; kType: the namespace
  const JsonValue* node = nullptr;       // the JSON value in the resource; nullptr for computed values
  const JsonValue* extension = nullptr;  // a primitive's `_name` object (id, extension)
  const TypeInfo* type = nullptr;        // FHIR type; nullptr for System values
  const std::vector<ElementInfo>* scope = nullptr;  // inline children (BackboneElement)
  const JsonValue* resource = nullptr;   // the resource the node belongs to

  // "HumanName", "Reference", "dateTime", "Patient", "BackboneElement" for
  // items with a FHIR type; "Boolean", "Integer", "Decimal", "String",
  // "Date", "DateTime", "Time", "Quantity" for System values.
  std::string_view TypeName() const;
  bool IsSystem() const { return type == nullptr; }
  // A resource reached through a reference that is not in the document
  // (resolve() of "Patient/123"): its type is known, its content is not.
  bool IsReferenceTarget() const { return type != nullptr && node == nullptr && extension == nullptr; }
  // The value as text: primitives their lexical form, quantities "5.4 'mg'"
  // (calendar units unquoted: "1 week"); "" for objects.
  std::string ToText() const;
};

// The result of an evaluation: an ordered collection of items.
class Collection {
 public:
  Collection() = default;

  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const Item& operator[](std::size_t i) const { return items_[i]; }
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  std::vector<Item>::const_iterator end() const { return items_.end(); }
  const std::vector<Item>& items() const { return items_; }

 private:
  friend class Engine;
  std::vector<Item> items_;
  std::shared_ptr<const void> storage_;  // computed strings and the expression the items point into
};

struct EvalOptions {
  // Semantic errors instead of empty results: element names the type does
  // not have, a leading type name that is not the context's type, non-Boolean
  // criteria.
  bool strict = false;
  // Functions that need an ordered input (first, skip, [n], ...) fail on
  // the output of children() and descendants().
  bool check_ordered_functions = false;
  // Extra %variables, as strings (%ucum, %sct, %loinc, %resource, %context,
  // %rootResource, %`vs-*` and %`ext-*` are built in).
  std::vector<std::pair<std::string, std::string>> variables;
  // Receives trace(name) output; nullptr drops it.
  std::function<void(std::string_view name, const std::vector<Item>& items)> trace;
  // Clock for now(), today() and timeOfDay(), in milliseconds since the
  // epoch (UTC); 0 reads the system clock once per evaluation.
  std::int64_t now_ms = 0;
};

// Evaluates expressions over resources with the types of one Definitions.
// Const and thread-safe.
class Engine {
 public:
  // `definitions` must not be null; the engine keeps them alive.
  explicit Engine(std::shared_ptr<const Definitions> definitions);
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;

  // Evaluates `expression` with `resource` as the context ($this, %context,
  // %resource, %rootResource). Errors (never exceptions): evaluation errors of
  // FHIRPath (a collection where a single item is needed, operands of the
  // wrong type, unknown types or variables, strict-mode violations).
  Result<Collection> Evaluate(const Expression& expression, const Resource& resource,
                              const EvalOptions& options = {}) const;
  // As above over a resource as a JSON object.
  Result<Collection> Evaluate(const Expression& expression, const JsonValue& resource,
                              const EvalOptions& options = {}) const;
  // Evaluates with `context` (an item of an earlier result, still alive) as
  // $this, inside `resource` (%resource): composite search components,
  // relative to the node their composite selected.
  Result<Collection> EvaluateOn(const Expression& expression, const Item& context, const JsonValue& resource,
                                const EvalOptions& options = {}) const;
  // Evaluates with $this = the JSON node `value` of FHIR type `type` (its
  // `_name` object `extension` for primitives; `scope` the inline children of
  // a BackboneElement, else nullptr), inside `resource` (%resource): element
  // invariants, on the nodes a validator walks.
  Result<Collection> EvaluateOnNode(const Expression& expression, const JsonValue* value,
                                    const JsonValue* extension, const TypeInfo* type,
                                    const std::vector<ElementInfo>* scope, const JsonValue& resource,
                                    const EvalOptions& options = {}) const;
  // Evaluates without a context (expressions over literals only).
  Result<Collection> Evaluate(const Expression& expression, const EvalOptions& options = {}) const;

  const Definitions& definitions() const;

  struct Impl;  // opaque; defined in fhir/fhirpath/evaluator.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace fhirpath
}  // namespace eds::fhir
