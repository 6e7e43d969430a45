// Evaluation state and the helpers the function library shares with the
// evaluator: navigation over the JSON tree, FHIRPath equality and ordering,
// conversions between resource nodes and System values.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "fhir/definitions.hpp"
#include "fhir/fhirpath.hpp"
#include "fhir/fhirpath/ast.hpp"
#include "fhir/fhirpath/values.hpp"
#include "fhir/json_internal.hpp"

namespace eds::fhir::fhirpath {

// Thrown inside the evaluator only; Engine::Evaluate turns it into an Error.
struct EvalFailure {
  Error error;
};

[[noreturn]] void Fail(const Node& at, std::string message);

// Strings computed during one evaluation; items refer to them by view.
struct Arena {
  std::deque<std::string> strings;
  std::shared_ptr<const Node> expression;  // keeps literal texts alive with the result
  std::string_view Keep(std::string s) { return strings.emplace_back(std::move(s)); }
};

struct Engine::Impl {
  std::shared_ptr<const Definitions> defs;
  // types the evaluator asks for often
  const TypeInfo* resource = nullptr;
  const TypeInfo* element = nullptr;
  const TypeInfo* extension = nullptr;
  const TypeInfo* reference = nullptr;
  const TypeInfo* quantity = nullptr;
  const TypeInfo* bundle = nullptr;
  const TypeInfo* id = nullptr;
};

struct EvalContext {
  EvalContext(const Engine::Impl& e, const EvalOptions& o, Arena& a) : engine(e), options(o), arena(a) {}

  const Engine::Impl& engine;
  const EvalOptions& options;
  Arena& arena;
  const Item* root = nullptr;  // the context resource: %context, %resource, %rootResource
  const Item* this_item = nullptr;
  std::optional<std::int64_t> index;  // $index
  const Items* total = nullptr;       // $total
  std::int64_t now_ms = 0;
  int depth = 0;

  const Definitions& defs() const { return *engine.defs; }
};

// Evaluates `node`; a leading name or function applies to $this.
Items Eval(EvalContext& ctx, const Node& node);
// Evaluates argument `i` of `call` in the caller's context ($this unchanged).
Items EvalArg(EvalContext& ctx, const Node& call, std::size_t i);
// Evaluates `node` with $this = `item` and $index = `index` (lambdas:
// where, select, all, exists, repeat, ...); $index stays when nullopt.
Items EvalWith(EvalContext& ctx, const Node& node, const Item& item, std::optional<std::int64_t> index);

// Items for `value` (a JSON value of type `type`, with its `_name` object):
// arrays are flattened, resources get their own type.
void AddNodeItems(EvalContext& ctx, const JsonValue* value, const JsonValue* extension, const TypeInfo* type,
                  const std::vector<ElementInfo>* scope, const JsonValue* resource, Items& out);
// The item for a resource object.
Item ResourceItem(EvalContext& ctx, const JsonValue& resource);
// Children named `name` of `item` (FHIRPath member access).
void Navigate(EvalContext& ctx, const Item& item, std::string_view name, const Node& at, Items& out);
// All children of `item`, in document order.
void Children(EvalContext& ctx, const Item& item, Items& out);

// ---- values ------------------------------------------------------------------
Item MakeBoolean(bool v);
Item MakeInteger(std::int64_t v);
Item MakeString(EvalContext& ctx, std::string s);
Item MakeStringView(std::string_view s);  // `s` must outlive the result
Item MakeDecimal(EvalContext& ctx, const Decimal& d);
Item MakeDate(EvalContext& ctx, const DateTimeValue& v, ValueKind kind);
Item MakeQuantity(EvalContext& ctx, const Quantity& q);

bool IsStringKind(const Item& i);
bool IsNumberKind(const Item& i);
// The quantity an item stands for: System quantities and FHIR Quantity (and
// its specialisations) nodes.
std::optional<Quantity> AsQuantity(EvalContext& ctx, const Item& i);
std::optional<Decimal> AsDecimal(const Item& i);
std::optional<DateTimeValue> AsDateTime(const Item& i);  // Date and DateTime items
std::optional<DateTimeValue> AsTime(const Item& i);

// FHIRPath = on two items: nullopt when undecided (dates of different precision).
std::optional<bool> ItemsEqual(EvalContext& ctx, const Item& a, const Item& b);
bool ItemsEquivalent(EvalContext& ctx, const Item& a, const Item& b);
// FHIRPath ordering; nullopt when undecided; fails when the kinds do not compare.
std::optional<int> CompareItems(EvalContext& ctx, const Item& a, const Item& b, const Node& at);
// Appends the items of `add` not already in `into` (FHIRPath equality).
void AddDistinct(EvalContext& ctx, Items& into, const Items& add);
bool ContainsItem(EvalContext& ctx, const Items& items, const Item& item);

// A single item's Boolean value for criteria and logic operators: empty ->
// nullopt; a non-Boolean single item is true (an error in strict mode); more
// than one item is an error.
std::optional<bool> SingletonBoolean(EvalContext& ctx, const Items& items, const Node& at);
// The only item, nullptr when empty; fails on more than one.
const Item* Single(const Items& items, const Node& at, std::string_view what);

// FHIR type or System type match for is/as/ofType; `exact_primitives` makes
// FHIR primitives match only their own type (as, ofType).
bool IsOfType(EvalContext& ctx, const Item& item, const TypeSpec& type, const Node& at, bool exact_primitives);

}  // namespace eds::fhir::fhirpath
