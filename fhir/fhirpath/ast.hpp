// Syntax tree of FHIRPath expressions, built by the parser and walked by the
// evaluator. Nodes never change after parsing, so trees are shared freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/fhirpath.hpp"

namespace eds::fhir::fhirpath {

enum class NodeKind : std::uint8_t {
  kLiteral,   // literal: the value in `literal`
  kEmpty,     // {}
  kMember,    // target.name, or name at the start of a path (target null)
  kCall,      // target.name(args), or name(args) on $this (target null)
  kIndexer,   // target[rhs]
  kUnary,     // op target
  kBinary,    // target op rhs
  kTypeOp,    // target is/as type
  kVariable,  // %name
  kThis,      // $this
  kIndex,     // $index
  kTotal,     // $total
};

enum class Op : std::uint8_t {
  kNone,
  kImplies, kOr, kXor, kAnd,
  kIn, kContains,
  kEqual, kEquivalent, kNotEqual, kNotEquivalent,
  kLess, kLessOrEqual, kGreater, kGreaterOrEqual,
  kUnion,
  kIs, kAs,
  kPlus, kMinus, kConcat,
  kMultiply, kDivide, kDiv, kMod,
  kNegate, kPositive,
};

// A type named in is/as/ofType: namespace ("", "FHIR", "System") and name.
struct TypeSpec {
  std::string ns;
  std::string name;
};

struct FunctionDef;

struct Node {
  NodeKind kind = NodeKind::kEmpty;
  Op op = Op::kNone;
  std::size_t pos = 0;  // offset in the expression text
  std::string name;     // kMember, kCall, kVariable
  std::unique_ptr<Node> target;
  std::unique_ptr<Node> rhs;
  std::vector<std::unique_ptr<Node>> args;  // kCall
  // kLiteral: the value; its text and unit point into literal_text and
  // literal_unit, so a Node is never moved once its literal is set.
  Item literal;
  std::string literal_text;
  std::string literal_unit;
  TypeSpec type;  // kTypeOp, and functions that take a type (is, as, ofType)
  const FunctionDef* function = nullptr;
  // Pattern argument of matches/replaceMatches, compiled once when it is a
  // literal.
  std::shared_ptr<const std::regex> regex;
};

struct EvalContext;
using Items = std::vector<Item>;
using FunctionImpl = Items (*)(EvalContext& ctx, const Items& input, const Node& call);

struct FunctionDef {
  std::string_view name;
  int min_args = 0;
  int max_args = 0;
  FunctionImpl impl = nullptr;
  bool type_argument = false;   // the argument is a type specifier: is(Quantity)
  bool regex_argument = false;  // the first argument is a regular expression
  bool needs_order = false;     // meaningless on unordered input (first, skip, ...)
};

// The function named `name`, or nullptr.
const FunctionDef* FindFunction(std::string_view name);

// Compiles a FHIRPath regular expression (single-line mode: '.' also matches
// line breaks). nullptr when it does not compile.
std::shared_ptr<const std::regex> CompileRegex(std::string_view pattern);

}  // namespace eds::fhir::fhirpath
