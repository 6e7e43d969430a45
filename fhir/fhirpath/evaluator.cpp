// The FHIRPath evaluator: walks the syntax tree over JSON resources typed by
// the definitions; operators, navigation, equality and type tests.
#include "fhir/fhirpath/evaluator.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <exception>

#include "fhir/json.hpp"
#include "fhir/primitives.hpp"

namespace eds::fhir::fhirpath {
namespace {

constexpr int kMaxEvalDepth = 200;

std::string_view SystemTypeName(ValueKind k) {
  switch (k) {
    case ValueKind::kBoolean: return "Boolean";
    case ValueKind::kInteger: return "Integer";
    case ValueKind::kDecimal: return "Decimal";
    case ValueKind::kString: return "String";
    case ValueKind::kDate: return "Date";
    case ValueKind::kDateTime: return "DateTime";
    case ValueKind::kTime: return "Time";
    case ValueKind::kQuantity: return "Quantity";
    case ValueKind::kType: return "TypeInfo";
    case ValueKind::kObject: break;
  }
  return "";
}

std::optional<ValueKind> SystemKindByName(std::string_view name) {
  static constexpr std::pair<std::string_view, ValueKind> kTypes[] = {
      {"Boolean", ValueKind::kBoolean}, {"Integer", ValueKind::kInteger}, {"Decimal", ValueKind::kDecimal},
      {"String", ValueKind::kString},   {"Date", ValueKind::kDate},       {"DateTime", ValueKind::kDateTime},
      {"Time", ValueKind::kTime},       {"Quantity", ValueKind::kQuantity}};
  for (const auto& [n, k] : kTypes)
    if (n == name) return k;
  return std::nullopt;
}

// The System kind of a FHIR primitive type, by its root in the hierarchy.
ValueKind PrimitiveKind(const TypeInfo& t) {
  const TypeInfo* root = &t;
  static constexpr std::pair<std::string_view, ValueKind> kRoots[] = {
      {"boolean", ValueKind::kBoolean}, {"integer", ValueKind::kInteger},  {"integer64", ValueKind::kInteger},
      {"decimal", ValueKind::kDecimal}, {"date", ValueKind::kDate},        {"dateTime", ValueKind::kDateTime},
      {"instant", ValueKind::kDateTime}, {"time", ValueKind::kTime}};
  for (; root != nullptr && root->kind == TypeKind::kPrimitive; root = root->base)
    for (const auto& [n, k] : kRoots)
      if (n == root->name) return k;
  return ValueKind::kString;
}

bool KeyIs(const JsonValue& key, std::string_view name) {
  return key.GetStringLength() == name.size() && std::memcmp(key.GetString(), name.data(), name.size()) == 0;
}

bool UnderscoreKeyIs(const JsonValue& key, std::string_view name) {
  return key.GetStringLength() == name.size() + 1 && key.GetString()[0] == '_' &&
         std::memcmp(key.GetString() + 1, name.data(), name.size()) == 0;
}

// The member `name` and its `_name` partner, in one pass over the object.
void FindPair(const JsonValue& obj, std::string_view name, const JsonValue*& value, const JsonValue*& ext) {
  value = nullptr;
  ext = nullptr;
  for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
    if (KeyIs(m->name, name)) value = &m->value;
    else if (UnderscoreKeyIs(m->name, name)) ext = &m->value;
  }
}

// Fills the value fields of a primitive item from its JSON value.
void SetPrimitive(Item& it, ValueKind kind, const JsonValue* v) {
  it.kind = kind;
  if (v == nullptr) {
    it.has_value = false;
    return;
  }
  switch (kind) {
    case ValueKind::kBoolean:
      if (v->IsBool()) {
        it.boolean = v->GetBool();
        it.text = it.boolean ? "true" : "false";
        return;
      }
      break;
    case ValueKind::kInteger:
      if (IsNumber(*v)) {
        auto t = NumberText(*v);
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), it.integer);
        it.text = t;
        if (ec != std::errc() || p != t.data() + t.size()) it.kind = ValueKind::kDecimal;
        return;
      }
      break;
    case ValueKind::kDecimal:
      if (IsNumber(*v)) {
        it.text = NumberText(*v);
        return;
      }
      break;
    default:
      if (IsString(*v)) {
        it.text = StringOf(*v);
        return;
      }
      break;
  }
  // the JSON does not match the type: read it for what it is
  if (v->IsBool()) {
    it.kind = ValueKind::kBoolean;
    it.boolean = v->GetBool();
    it.text = it.boolean ? "true" : "false";
  } else if (IsNumber(*v)) {
    it.kind = ValueKind::kDecimal;
    it.text = NumberText(*v);
  } else if (v->IsString()) {
    it.kind = ValueKind::kString;
    it.text = StringOf(*v);
  } else {
    it.kind = ValueKind::kObject;
  }
}

// An item for JSON without type information.
void SetUntyped(Item& it, const JsonValue* v) {
  if (v == nullptr) {
    it.kind = ValueKind::kString;
    it.has_value = false;
  } else if (v->IsBool()) {
    SetPrimitive(it, ValueKind::kBoolean, v);
  } else if (IsNumber(*v)) {
    auto t = NumberText(*v);
    bool whole = t.find_first_of(".eE") == std::string_view::npos;
    SetPrimitive(it, whole ? ValueKind::kInteger : ValueKind::kDecimal, v);
  } else if (v->IsString()) {
    SetPrimitive(it, ValueKind::kString, v);
  } else {
    it.kind = ValueKind::kObject;
  }
}

void AddOne(EvalContext& ctx, const JsonValue* v, const JsonValue* x, const TypeInfo* type,
            const std::vector<ElementInfo>* scope, const JsonValue* resource, Items& out) {
  if (v != nullptr && v->IsNull()) v = nullptr;
  if (x != nullptr && !x->IsObject()) x = nullptr;
  if (v == nullptr && x == nullptr) return;
  if (v != nullptr && v->IsObject() && (type == nullptr || type->kind == TypeKind::kResource)) {
    auto rt = v->FindMember("resourceType");
    if (rt != v->MemberEnd() && IsString(rt->value)) {
      out.push_back(ResourceItem(ctx, *v));
      return;
    }
  }
  Item it;
  it.node = v;
  it.extension = x;
  it.type = type;
  it.scope = scope;
  it.resource = resource;
  if (type == nullptr) SetUntyped(it, v);
  else if (type->kind == TypeKind::kPrimitive) SetPrimitive(it, PrimitiveKind(*type), v);
  else if (v == nullptr) return;  // a complex element has no _name partner
  out.push_back(it);
}

bool IsQuantityItem(const EvalContext& ctx, const Item& i) {
  if (i.kind == ValueKind::kQuantity) return true;
  return i.kind == ValueKind::kObject && i.type != nullptr && ctx.engine.quantity != nullptr &&
         i.type->IsA(*ctx.engine.quantity);
}

std::string NormalizedForEquivalence(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

bool JsonEqual(const JsonValue& a, const JsonValue& b, bool equivalent) {
  if (a.IsObject() && b.IsObject()) {
    if (a.MemberCount() != b.MemberCount()) return false;
    for (auto m = a.MemberBegin(); m != a.MemberEnd(); ++m) {
      auto o = b.FindMember(m->name);
      if (o == b.MemberEnd() || !JsonEqual(m->value, o->value, equivalent)) return false;
    }
    return true;
  }
  if (a.IsArray() && b.IsArray()) {
    if (a.Size() != b.Size()) return false;
    for (rapidjson::SizeType i = 0; i < a.Size(); ++i)
      if (!JsonEqual(a[i], b[i], equivalent)) return false;
    return true;
  }
  if (IsNumber(a) && IsNumber(b)) {
    auto x = Decimal::Parse(NumberText(a)), y = Decimal::Parse(NumberText(b));
    return x && y && x->Compare(*y) == 0;
  }
  if (IsString(a) && IsString(b)) {
    if (equivalent) return NormalizedForEquivalence(StringOf(a)) == NormalizedForEquivalence(StringOf(b));
    return StringOf(a) == StringOf(b);
  }
  if (a.IsBool() && b.IsBool()) return a.GetBool() == b.GetBool();
  return a.IsNull() && b.IsNull();
}

// ---- operators ----------------------------------------------------------------

Items Bool(bool v) { return {MakeBoolean(v)}; }

Items Logic(EvalContext& ctx, const Node& node) {
  auto left = SingletonBoolean(ctx, Eval(ctx, *node.target), *node.target);
  switch (node.op) {
    case Op::kAnd: {
      if (left == false) return Bool(false);
      auto right = SingletonBoolean(ctx, Eval(ctx, *node.rhs), *node.rhs);
      if (right == false) return Bool(false);
      if (left && right) return Bool(true);
      return {};
    }
    case Op::kOr: {
      if (left == true) return Bool(true);
      auto right = SingletonBoolean(ctx, Eval(ctx, *node.rhs), *node.rhs);
      if (right == true) return Bool(true);
      if (left && right) return Bool(false);
      return {};
    }
    case Op::kXor: {
      auto right = SingletonBoolean(ctx, Eval(ctx, *node.rhs), *node.rhs);
      if (left && right) return Bool(*left != *right);
      return {};
    }
    default: {  // implies
      if (left == false) return Bool(true);
      auto right = SingletonBoolean(ctx, Eval(ctx, *node.rhs), *node.rhs);
      if (right == true) return Bool(true);
      if (left && right) return Bool(false);
      return {};
    }
  }
}

Items Equality(EvalContext& ctx, const Node& node) {
  Items a = Eval(ctx, *node.target), b = Eval(ctx, *node.rhs);
  bool negate = node.op == Op::kNotEqual || node.op == Op::kNotEquivalent;
  if (node.op == Op::kEqual || node.op == Op::kNotEqual) {
    if (a.empty() || b.empty()) return {};
    if (a.size() != b.size()) return Bool(negate);
    bool unknown = false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto eq = ItemsEqual(ctx, a[i], b[i]);
      if (eq == false) return Bool(negate);
      if (!eq) unknown = true;
    }
    if (unknown) return {};
    return Bool(!negate);
  }
  bool result;
  if (a.empty() || b.empty()) {
    result = a.empty() && b.empty();
  } else if (a.size() != b.size()) {
    result = false;
  } else {
    std::vector<bool> used(b.size(), false);
    result = true;
    for (const auto& x : a) {
      bool found = false;
      for (std::size_t j = 0; j < b.size() && !found; ++j)
        if (!used[j] && ItemsEquivalent(ctx, x, b[j])) used[j] = found = true;
      if (!found) {
        result = false;
        break;
      }
    }
  }
  return Bool(result != negate);
}

Items Comparison(EvalContext& ctx, const Node& node) {
  Items a = Eval(ctx, *node.target), b = Eval(ctx, *node.rhs);
  const Item* x = Single(a, *node.target, "comparison");
  const Item* y = Single(b, *node.rhs, "comparison");
  if (x == nullptr || y == nullptr) return {};
  auto c = CompareItems(ctx, *x, *y, node);
  if (!c) return {};
  switch (node.op) {
    case Op::kLess: return Bool(*c < 0);
    case Op::kLessOrEqual: return Bool(*c <= 0);
    case Op::kGreater: return Bool(*c > 0);
    default: return Bool(*c >= 0);
  }
}

Items Membership(EvalContext& ctx, const Node& node) {
  Items a = Eval(ctx, *node.target), b = Eval(ctx, *node.rhs);
  const Items& element = node.op == Op::kIn ? a : b;
  const Items& collection = node.op == Op::kIn ? b : a;
  const Node& at = node.op == Op::kIn ? *node.target : *node.rhs;
  const Item* e = Single(element, at, node.op == Op::kIn ? "'in'" : "'contains'");
  if (e == nullptr) return {};
  return Bool(ContainsItem(ctx, collection, *e));
}

[[noreturn]] void OperandError(const Node& node, const Item& a, const Item& b) {
  static constexpr std::pair<Op, std::string_view> kNames[] = {
      {Op::kPlus, "+"}, {Op::kMinus, "-"}, {Op::kMultiply, "*"}, {Op::kDivide, "/"},
      {Op::kDiv, "div"}, {Op::kMod, "mod"}, {Op::kConcat, "&"}};
  std::string_view op = "?";
  for (const auto& [o, n] : kNames)
    if (o == node.op) op = n;
  Fail(node, "operator '" + std::string(op) + "' cannot take " + std::string(a.TypeName()) + " and " +
                 std::string(b.TypeName()));
}

Item IntegerResult(const Node& node, Op op, std::int64_t x, std::int64_t y) {
  std::int64_t r = 0;
  bool overflow = op == Op::kPlus    ? __builtin_add_overflow(x, y, &r)
                  : op == Op::kMinus ? __builtin_sub_overflow(x, y, &r)
                                     : __builtin_mul_overflow(x, y, &r);
  if (overflow) Fail(node, "integer overflow");
  return MakeInteger(r);
}

Items DecimalResult(EvalContext& ctx, const Node& node, std::optional<Decimal> d) {
  if (!d) Fail(node, "decimal overflow");
  return {MakeDecimal(ctx, *d)};
}

Items DateArithmetic(EvalContext& ctx, const Node& node, const Item& date, const Item& qty, bool subtract) {
  auto q = AsQuantity(ctx, qty);
  auto unit = q ? DateArithmeticUnit(q->unit, q->calendar) : std::nullopt;
  if (!unit) Fail(node, "cannot add '" + qty.ToText() + "' to a date: the unit is not a calendar duration");
  auto v = date.kind == ValueKind::kTime ? AsTime(date) : AsDateTime(date);
  if (!v) return {};
  auto amount = q->value.TruncateTo(0).ToInt64();
  if (!amount) Fail(node, "duration out of range");
  if (date.kind == ValueKind::kTime && (*unit == TimeUnit::kYear || *unit == TimeUnit::kMonth ||
                                        *unit == TimeUnit::kWeek || *unit == TimeUnit::kDay))
    Fail(node, "cannot add a calendar duration longer than hours to a time");
  DateTimeValue base = *v;
  if (date.kind == ValueKind::kTime) base.year = 2000;  // any day: times wrap around midnight
  auto r = AddDuration(base, subtract ? -*amount : *amount, *unit);
  if (!r) return {};
  return {MakeDate(ctx, *r, date.kind)};
}

Items Arithmetic(EvalContext& ctx, const Node& node) {
  Items left = Eval(ctx, *node.target), right = Eval(ctx, *node.rhs);
  if (node.op == Op::kConcat) {
    const Item* a = Single(left, *node.target, "'&'");
    const Item* b = Single(right, *node.rhs, "'&'");
    if ((a != nullptr && !IsStringKind(*a)) || (b != nullptr && !IsStringKind(*b)))
      OperandError(node, a != nullptr ? *a : *b, b != nullptr ? *b : *a);
    std::string s;
    if (a != nullptr) s += a->text;
    if (b != nullptr) s += b->text;
    return {MakeString(ctx, std::move(s))};
  }
  const Item* a = Single(left, *node.target, "arithmetic");
  const Item* b = Single(right, *node.rhs, "arithmetic");
  if (a == nullptr || b == nullptr) return {};
  const bool date_left = a->kind == ValueKind::kDate || a->kind == ValueKind::kDateTime || a->kind == ValueKind::kTime;
  if (a->kind == ValueKind::kInteger && b->kind == ValueKind::kInteger) {
    std::int64_t x = a->integer, y = b->integer;
    switch (node.op) {
      case Op::kPlus:
      case Op::kMinus:
      case Op::kMultiply:
        return {IntegerResult(node, node.op, x, y)};
      case Op::kDiv:
        if (y == 0) return {};
        return {MakeInteger(x / y)};
      case Op::kMod:
        if (y == 0) return {};
        return {MakeInteger(x % y)};
      default:
        break;  // '/' gives a decimal
    }
  }
  if (IsNumberKind(*a) && IsNumberKind(*b)) {
    Decimal x = *AsDecimal(*a), y = *AsDecimal(*b);
    switch (node.op) {
      case Op::kPlus: return DecimalResult(ctx, node, x.Add(y));
      case Op::kMinus: return DecimalResult(ctx, node, x.Sub(y));
      case Op::kMultiply: return DecimalResult(ctx, node, x.Mul(y));
      case Op::kDivide:
        if (y.IsZero()) return {};
        return DecimalResult(ctx, node, x.Div(y));
      case Op::kDiv: {
        if (y.IsZero()) return {};
        auto q = x.Div(y, Decimal::kMaxScale);
        if (!q) Fail(node, "decimal overflow");
        auto whole = q->TruncateTo(0).ToInt64();
        if (!whole) Fail(node, "integer overflow");
        return {MakeInteger(*whole)};
      }
      case Op::kMod: {
        if (y.IsZero()) return {};
        auto q = x.Div(y, Decimal::kMaxScale);
        if (!q) Fail(node, "decimal overflow");
        auto p = q->TruncateTo(0).Mul(y);
        return DecimalResult(ctx, node, p ? x.Sub(*p) : std::nullopt);
      }
      default:
        break;
    }
  }
  if (node.op == Op::kPlus && IsStringKind(*a) && IsStringKind(*b))
    return {MakeString(ctx, std::string(a->text) + std::string(b->text))};
  if ((node.op == Op::kPlus || node.op == Op::kMinus) && date_left && IsQuantityItem(ctx, *b))
    return DateArithmetic(ctx, node, *a, *b, node.op == Op::kMinus);
  if (IsQuantityItem(ctx, *a) || IsQuantityItem(ctx, *b)) {
    auto qa = IsNumberKind(*a) ? std::optional<Quantity>(Quantity{*AsDecimal(*a), "1", false}) : AsQuantity(ctx, *a);
    auto qb = IsNumberKind(*b) ? std::optional<Quantity>(Quantity{*AsDecimal(*b), "1", false}) : AsQuantity(ctx, *b);
    if (qa && qb) {
      switch (node.op) {
        case Op::kPlus:
        case Op::kMinus: {
          auto v = ConvertValue(*qb, qa->unit, qa->calendar);
          if (!v) Fail(node, "cannot add quantities in '" + qa->unit + "' and '" + qb->unit + "'");
          auto r = node.op == Op::kPlus ? qa->value.Add(*v) : qa->value.Sub(*v);
          if (!r) Fail(node, "decimal overflow");
          return {MakeQuantity(ctx, Quantity{*r, qa->unit, qa->calendar})};
        }
        case Op::kMultiply:
        case Op::kDivide: {
          bool divide = node.op == Op::kDivide;
          if (divide && qb->value.IsZero()) return {};
          auto r = divide ? qa->value.Div(qb->value) : qa->value.Mul(qb->value);
          if (!r) Fail(node, "decimal overflow");
          return {MakeQuantity(ctx, Quantity{*r, MultiplyUnits(*qa, *qb, divide), false})};
        }
        default:
          break;
      }
    }
  }
  OperandError(node, *a, *b);
}

Items Unary(EvalContext& ctx, const Node& node) {
  Items in = Eval(ctx, *node.target);
  const Item* a = Single(in, *node.target, "unary operator");
  if (a == nullptr) return {};
  if (node.op == Op::kPositive) {
    if (!IsNumberKind(*a) && !IsQuantityItem(ctx, *a)) Fail(node, "unary '+' needs a number");
    return {*a};
  }
  if (a->kind == ValueKind::kInteger) {
    if (a->integer == INT64_MIN) Fail(node, "integer overflow");
    return {MakeInteger(-a->integer)};
  }
  if (a->kind == ValueKind::kDecimal) return {MakeDecimal(ctx, AsDecimal(*a)->Negate())};
  if (IsQuantityItem(ctx, *a)) {
    auto q = AsQuantity(ctx, *a);
    if (!q) return {};
    q->value = q->value.Negate();
    return {MakeQuantity(ctx, *q)};
  }
  Fail(node, "unary '-' cannot take " + std::string(a->TypeName()));
}

Items TypeOperator(EvalContext& ctx, const Node& node) {
  Items in = Eval(ctx, *node.target);
  if (node.op == Op::kIs) {
    const Item* a = Single(in, *node.target, "'is'");
    if (a == nullptr) return {};
    return Bool(IsOfType(ctx, *a, node.type, node, false));
  }
  // 'as' filters: R4 search parameters apply it to repeating elements
  Items out;
  for (const auto& i : in)
    if (IsOfType(ctx, i, node.type, node, true)) out.push_back(i);
  return out;
}

Items Variable(EvalContext& ctx, const Node& node) {
  const std::string& n = node.name;
  if (n == "context" || n == "resource" || n == "rootResource") {
    if (ctx.root == nullptr) return {};
    return {*ctx.root};
  }
  if (n == "ucum") return {MakeStringView("http://unitsofmeasure.org")};
  if (n == "sct") return {MakeStringView("http://snomed.info/sct")};
  if (n == "loinc") return {MakeStringView("http://loinc.org")};
  for (const auto& [name, value] : ctx.options.variables)
    if (name == n) return {MakeStringView(value)};
  if (n.rfind("vs-", 0) == 0) return {MakeString(ctx, "http://hl7.org/fhir/ValueSet/" + n.substr(3))};
  if (n.rfind("ext-", 0) == 0) return {MakeString(ctx, "http://hl7.org/fhir/StructureDefinition/" + n.substr(4))};
  Fail(node, "unknown variable '%" + n + "'");
}

// A name at the start of a path: the context's type name selects the context.
Items LeadingName(EvalContext& ctx, const Node& node) {
  if (ctx.this_item == nullptr) return {};
  const Item& self = *ctx.this_item;
  if (self.type != nullptr)
    for (const TypeInfo* t = self.type; t != nullptr; t = t->base)
      if (t->name == node.name) return {self};
  // Another type's name ("AllergyIntolerance.patient | CarePlan.subject" over
  // a CarePlan): element names are never capitalised, so nothing to look up.
  if (!node.name.empty() && node.name[0] >= 'A' && node.name[0] <= 'Z' && ctx.defs().FindType(node.name) != nullptr) {
    if (ctx.options.strict)
      Fail(node, "'" + node.name + "' is not the type of the context (" + std::string(self.TypeName()) + ")");
    return {};
  }
  Items out;
  Navigate(ctx, self, node.name, node, out);
  return out;
}

// Strict mode: a member of a value cast to a type must be an element of that type.
void CheckCastMember(EvalContext& ctx, const Node& node) {
  const Node& t = *node.target;
  const TypeSpec* spec = nullptr;
  if (t.kind == NodeKind::kTypeOp && t.op == Op::kAs) spec = &t.type;
  if (t.kind == NodeKind::kCall && t.function != nullptr &&
      (t.function->name == "as" || t.function->name == "ofType"))
    spec = &t.type;
  if (spec == nullptr || spec->ns == "System") return;
  const TypeInfo* type = ctx.defs().FindType(spec->name);
  if (type != nullptr && type->kind != TypeKind::kPrimitive && type->Element(node.name) == nullptr)
    Fail(node, "'" + node.name + "' is not an element of " + type->name);
}

}  // namespace

[[noreturn]] void Fail(const Node& at, std::string message) { throw EvalFailure{{std::move(message), at.pos}}; }

// ---- items ---------------------------------------------------------------------

std::string_view Item::TypeName() const {
  if (type != nullptr) return type->name;
  return SystemTypeName(kind);
}

std::string Item::ToText() const {
  switch (kind) {
    case ValueKind::kObject: return {};
    case ValueKind::kBoolean: return boolean ? "true" : "false";
    case ValueKind::kInteger: return text.empty() ? std::to_string(integer) : std::string(text);
    case ValueKind::kQuantity: {
      std::string s(text);
      s += ' ';
      if (boolean) {
        s += unit;
      } else {
        s += '\'';
        s += unit;
        s += '\'';
      }
      return s;
    }
    default: return std::string(text);
  }
}

Item MakeBoolean(bool v) {
  Item i;
  i.kind = ValueKind::kBoolean;
  i.boolean = v;
  i.text = v ? "true" : "false";
  return i;
}

Item MakeInteger(std::int64_t v) {
  Item i;
  i.kind = ValueKind::kInteger;
  i.integer = v;
  return i;
}

Item MakeStringView(std::string_view s) {
  Item i;
  i.kind = ValueKind::kString;
  i.text = s;
  return i;
}

Item MakeString(EvalContext& ctx, std::string s) { return MakeStringView(ctx.arena.Keep(std::move(s))); }

Item MakeDecimal(EvalContext& ctx, const Decimal& d) {
  Item i;
  i.kind = ValueKind::kDecimal;
  i.text = ctx.arena.Keep(d.ToString());
  return i;
}

Item MakeDate(EvalContext& ctx, const DateTimeValue& v, ValueKind kind) {
  Item i;
  i.kind = kind;
  i.text = ctx.arena.Keep(kind == ValueKind::kDate ? v.FormatDate()
                          : kind == ValueKind::kTime ? v.FormatTime()
                                                     : v.FormatDateTime());
  return i;
}

Item MakeQuantity(EvalContext& ctx, const Quantity& q) {
  Item i;
  i.kind = ValueKind::kQuantity;
  i.text = ctx.arena.Keep(q.value.ToString());
  i.unit = ctx.arena.Keep(q.unit);
  i.boolean = q.calendar;
  return i;
}

bool IsStringKind(const Item& i) { return i.kind == ValueKind::kString && i.has_value; }

bool IsNumberKind(const Item& i) {
  return (i.kind == ValueKind::kInteger || i.kind == ValueKind::kDecimal) && i.has_value;
}

std::optional<Decimal> AsDecimal(const Item& i) {
  if (!i.has_value) return std::nullopt;
  if (i.kind == ValueKind::kInteger) return Decimal::FromInteger(i.integer);
  if (i.kind == ValueKind::kDecimal) return Decimal::Parse(i.text);
  return std::nullopt;
}

std::optional<Quantity> AsQuantity(EvalContext& ctx, const Item& i) {
  if (i.kind == ValueKind::kQuantity) {
    auto v = Decimal::Parse(i.text);
    if (!v) return std::nullopt;
    return Quantity{*v, std::string(i.unit), i.boolean};
  }
  if (!IsQuantityItem(ctx, i) || i.node == nullptr) return std::nullopt;
  const JsonValue& n = *i.node;
  auto value = n.FindMember("value");
  if (value == n.MemberEnd() || !IsNumber(value->value)) return std::nullopt;
  auto d = Decimal::Parse(NumberText(value->value));
  if (!d) return std::nullopt;
  Quantity q;
  q.value = *d;
  auto code = n.FindMember("code");
  auto unit = n.FindMember("unit");
  if (code != n.MemberEnd() && IsString(code->value)) q.unit = std::string(StringOf(code->value));
  else if (unit != n.MemberEnd() && IsString(unit->value)) q.unit = std::string(StringOf(unit->value));
  return q;
}

std::optional<DateTimeValue> AsDateTime(const Item& i) {
  if (!i.has_value) return std::nullopt;
  if (i.kind == ValueKind::kDate) return DateTimeValue::ParseDate(i.text);
  if (i.kind == ValueKind::kDateTime) return DateTimeValue::ParseDateTime(i.text);
  return std::nullopt;
}

std::optional<DateTimeValue> AsTime(const Item& i) {
  if (!i.has_value || i.kind != ValueKind::kTime) return std::nullopt;
  return DateTimeValue::ParseTime(i.text);
}

// ---- equality and order ------------------------------------------------------------

std::optional<bool> ItemsEqual(EvalContext& ctx, const Item& a, const Item& b) {
  if (a.node != nullptr && a.node == b.node && a.extension == b.extension) return true;
  if (IsQuantityItem(ctx, a) && IsQuantityItem(ctx, b)) {
    auto x = AsQuantity(ctx, a), y = AsQuantity(ctx, b);
    if (!x || !y) return std::nullopt;
    return QuantitiesEqual(*x, *y);
  }
  if (a.kind == ValueKind::kObject || b.kind == ValueKind::kObject) {
    if (a.kind != b.kind || a.node == nullptr || b.node == nullptr) return false;
    return JsonEqual(*a.node, *b.node, false);
  }
  if (!a.has_value || !b.has_value) return std::nullopt;
  if (IsNumberKind(a) && IsNumberKind(b)) {
    if (a.kind == ValueKind::kInteger && b.kind == ValueKind::kInteger) return a.integer == b.integer;
    auto x = AsDecimal(a), y = AsDecimal(b);
    return x && y && x->Compare(*y) == 0;
  }
  auto dated = [](const Item& i) { return i.kind == ValueKind::kDate || i.kind == ValueKind::kDateTime; };
  if (dated(a) && dated(b)) {
    auto x = AsDateTime(a), y = AsDateTime(b);
    if (!x || !y) return false;
    auto c = CompareDateTimes(*x, *y);
    if (!c) return std::nullopt;
    return *c == 0;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case ValueKind::kBoolean: return a.boolean == b.boolean;
    case ValueKind::kString: return a.text == b.text;
    case ValueKind::kTime: {
      auto x = AsTime(a), y = AsTime(b);
      if (!x || !y) return false;
      auto c = CompareTimes(*x, *y);
      if (!c) return std::nullopt;
      return *c == 0;
    }
    case ValueKind::kType: return a.text == b.text && a.unit == b.unit;
    default: return false;
  }
}

bool ItemsEquivalent(EvalContext& ctx, const Item& a, const Item& b) {
  if (a.node != nullptr && a.node == b.node && a.extension == b.extension) return true;
  if (IsQuantityItem(ctx, a) && IsQuantityItem(ctx, b)) {
    auto x = AsQuantity(ctx, a), y = AsQuantity(ctx, b);
    return x && y && QuantitiesEquivalent(*x, *y);
  }
  if (a.kind == ValueKind::kObject || b.kind == ValueKind::kObject) {
    if (a.kind != b.kind || a.node == nullptr || b.node == nullptr) return false;
    return JsonEqual(*a.node, *b.node, true);
  }
  if (!a.has_value || !b.has_value) return !a.has_value && !b.has_value;
  if (IsNumberKind(a) && IsNumberKind(b)) {
    auto x = AsDecimal(a), y = AsDecimal(b);
    if (!x || !y) return false;
    int digits = std::min(x->scale(), y->scale());
    return x->RoundTo(digits).Compare(y->RoundTo(digits)) == 0;
  }
  auto dated = [](const Item& i) { return i.kind == ValueKind::kDate || i.kind == ValueKind::kDateTime; };
  if (dated(a) && dated(b)) {
    auto x = AsDateTime(a), y = AsDateTime(b);
    if (!x || !y || !SamePrecision(*x, *y)) return false;
    return CompareDateTimes(*x, *y) == 0;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case ValueKind::kBoolean: return a.boolean == b.boolean;
    case ValueKind::kString: return NormalizedForEquivalence(a.text) == NormalizedForEquivalence(b.text);
    case ValueKind::kTime: {
      auto x = AsTime(a), y = AsTime(b);
      return x && y && SamePrecision(*x, *y) && CompareTimes(*x, *y) == 0;
    }
    case ValueKind::kType: return a.text == b.text && a.unit == b.unit;
    default: return false;
  }
}

std::optional<int> CompareItems(EvalContext& ctx, const Item& a, const Item& b, const Node& at) {
  if (!a.has_value || !b.has_value) return std::nullopt;
  if (IsNumberKind(a) && IsNumberKind(b)) {
    if (a.kind == ValueKind::kInteger && b.kind == ValueKind::kInteger)
      return a.integer < b.integer ? -1 : a.integer > b.integer ? 1 : 0;
    auto x = AsDecimal(a), y = AsDecimal(b);
    if (!x || !y) return std::nullopt;
    return x->Compare(*y);
  }
  if (IsStringKind(a) && IsStringKind(b)) {
    int c = a.text.compare(b.text);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  auto dated = [](const Item& i) { return i.kind == ValueKind::kDate || i.kind == ValueKind::kDateTime; };
  if (dated(a) && dated(b)) {
    auto x = AsDateTime(a), y = AsDateTime(b);
    if (!x || !y) return std::nullopt;
    return CompareDateTimes(*x, *y);
  }
  if (a.kind == ValueKind::kTime && b.kind == ValueKind::kTime) {
    auto x = AsTime(a), y = AsTime(b);
    if (!x || !y) return std::nullopt;
    return CompareTimes(*x, *y);
  }
  if (IsQuantityItem(ctx, a) && IsQuantityItem(ctx, b)) {
    auto x = AsQuantity(ctx, a), y = AsQuantity(ctx, b);
    if (!x || !y) return std::nullopt;
    return CompareQuantities(*x, *y);
  }
  Fail(at, "cannot compare " + std::string(a.TypeName()) + " with " + std::string(b.TypeName()));
}

bool ContainsItem(EvalContext& ctx, const Items& items, const Item& item) {
  for (const auto& i : items)
    if (ItemsEqual(ctx, i, item) == true) return true;
  return false;
}

void AddDistinct(EvalContext& ctx, Items& into, const Items& add) {
  for (const auto& i : add)
    if (!ContainsItem(ctx, into, i)) into.push_back(i);
}

std::optional<bool> SingletonBoolean(EvalContext& ctx, const Items& items, const Node& at) {
  if (items.empty()) return std::nullopt;
  if (items.size() > 1) Fail(at, "expected a single Boolean but found " + std::to_string(items.size()) + " items");
  const Item& i = items[0];
  if (i.kind == ValueKind::kBoolean) {
    if (!i.has_value) return std::nullopt;
    return i.boolean;
  }
  if (ctx.options.strict) Fail(at, "expected a Boolean but found " + std::string(i.TypeName()));
  return true;
}

const Item* Single(const Items& items, const Node& at, std::string_view what) {
  if (items.empty()) return nullptr;
  if (items.size() > 1)
    Fail(at, std::string(what) + " needs a single item but found " + std::to_string(items.size()));
  return &items[0];
}

bool IsOfType(EvalContext& ctx, const Item& item, const TypeSpec& type, const Node& at, bool exact_primitives) {
  const bool system_ns = type.ns == "System";
  const bool fhir_ns = type.ns == "FHIR";
  if (!type.ns.empty() && !system_ns && !fhir_ns) Fail(at, "unknown type namespace '" + type.ns + "'");
  const TypeInfo* fhir_type = system_ns ? nullptr : ctx.defs().FindType(type.name);
  auto system_kind = fhir_ns ? std::nullopt : SystemKindByName(type.name);
  if (fhir_type == nullptr && !system_kind && !system_ns)
    Fail(at, "unknown type '" + (type.ns.empty() ? type.name : type.ns + "." + type.name) + "'");
  if (item.type != nullptr) {
    if (fhir_type == nullptr) return false;
    if (exact_primitives && fhir_type->kind == TypeKind::kPrimitive) return item.type == fhir_type;
    return item.type->IsA(*fhir_type);
  }
  if (item.kind == ValueKind::kObject) return false;
  return system_kind && *system_kind == item.kind;
}

// ---- navigation -------------------------------------------------------------------

Item ResourceItem(EvalContext& ctx, const JsonValue& resource) {
  Item it;
  it.kind = ValueKind::kObject;
  it.node = &resource;
  it.resource = &resource;
  auto rt = resource.FindMember("resourceType");
  if (rt != resource.MemberEnd() && IsString(rt->value)) it.type = ctx.defs().FindType(StringOf(rt->value));
  return it;
}

void AddNodeItems(EvalContext& ctx, const JsonValue* value, const JsonValue* extension, const TypeInfo* type,
                  const std::vector<ElementInfo>* scope, const JsonValue* resource, Items& out) {
  bool value_array = value != nullptr && value->IsArray();
  bool ext_array = extension != nullptr && extension->IsArray();
  if (!value_array && !ext_array) {
    AddOne(ctx, value, extension, type, scope, resource, out);
    return;
  }
  rapidjson::SizeType n = std::max(value_array ? value->Size() : 0, ext_array ? extension->Size() : 0);
  for (rapidjson::SizeType i = 0; i < n; ++i) {
    const JsonValue* v = value_array && i < value->Size() ? &(*value)[i] : nullptr;
    const JsonValue* x = ext_array && i < extension->Size() ? &(*extension)[i] : nullptr;
    AddOne(ctx, v, x, type, scope, resource, out);
  }
}

void Navigate(EvalContext& ctx, const Item& item, std::string_view name, const Node& at, Items& out) {
  if (item.kind == ValueKind::kType) {
    if (name == "name") out.push_back(MakeStringView(item.text));
    else if (name == "namespace") out.push_back(MakeStringView(item.unit));
    return;
  }
  if (item.IsReferenceTarget()) return;  // its content is not in the document
  const JsonValue* obj = nullptr;
  const std::vector<ElementInfo>* scope = item.scope;
  if (item.type != nullptr && item.type->kind == TypeKind::kPrimitive) {
    obj = item.extension;  // id and extension of a primitive live in its _name object
    scope = item.type->elements;
  } else if (item.node != nullptr && item.node->IsObject()) {
    obj = item.node;
    if (scope == nullptr && item.type != nullptr) scope = item.type->elements;
  }
  const ElementInfo* e = scope != nullptr ? FindElementIn(*scope, name) : nullptr;
  if (scope != nullptr && e == nullptr) {
    for (const auto& c : *scope)
      if (c.choice && c.ChoiceType(name) != nullptr)
        Fail(at, "'" + std::string(name) + "' is not an element of " + std::string(item.TypeName()) + "; use " +
                     c.name + ".ofType(" + c.ChoiceType(name)->name + ")");
    if (ctx.options.strict)
      Fail(at, "'" + std::string(name) + "' is not an element of " + std::string(item.TypeName()));
    return;
  }
  if (scope == nullptr && ctx.options.strict && item.node == nullptr && item.type == nullptr)
    Fail(at, "'" + std::string(name) + "' is not an element of " + std::string(item.TypeName()));
  if (obj == nullptr) return;
  const JsonValue* resource = item.resource;
  if (e == nullptr) {  // no type information: plain JSON
    const JsonValue *value, *ext;
    FindPair(*obj, name, value, ext);
    AddNodeItems(ctx, value, ext, nullptr, nullptr, resource, out);
    return;
  }
  if (e->choice) {
    for (auto m = obj->MemberBegin(); m != obj->MemberEnd(); ++m) {
      std::string_view key = StringOf(m->name);
      bool underscore = !key.empty() && key[0] == '_';
      if (underscore) key.remove_prefix(1);
      const TypeInfo* t = e->ChoiceType(key);
      if (t == nullptr) continue;
      const JsonValue *value, *ext;
      FindPair(*obj, key, value, ext);
      if (underscore && value != nullptr) continue;  // added with its value
      AddNodeItems(ctx, value, ext, t, nullptr, resource, out);
    }
    return;
  }
  const JsonValue *value, *ext;
  FindPair(*obj, name, value, ext);
  const TypeInfo* t = e->types.size() == 1 ? e->types.front() : nullptr;
  AddNodeItems(ctx, value, ext, t, e->children, resource, out);
}

void Children(EvalContext& ctx, const Item& item, Items& out) {
  const JsonValue* obj = nullptr;
  const std::vector<ElementInfo>* scope = item.scope;
  if (item.type != nullptr && item.type->kind == TypeKind::kPrimitive) {
    obj = item.extension;
    scope = item.type->elements;
  } else if (item.node != nullptr && item.node->IsObject()) {
    obj = item.node;
    if (scope == nullptr && item.type != nullptr) scope = item.type->elements;
  }
  if (obj == nullptr) return;
  const bool is_resource = item.node != nullptr && item.node == item.resource;
  for (auto m = obj->MemberBegin(); m != obj->MemberEnd(); ++m) {
    std::string_view key = StringOf(m->name);
    if (is_resource && key == "resourceType") continue;
    bool underscore = !key.empty() && key[0] == '_';
    if (underscore) key.remove_prefix(1);
    const JsonValue *value, *ext;
    FindPair(*obj, key, value, ext);
    if (underscore && value != nullptr) continue;  // added with its value
    const TypeInfo* type = nullptr;
    const std::vector<ElementInfo>* children = nullptr;
    if (scope != nullptr) {
      if (const ElementInfo* e = FindElementIn(*scope, key); e != nullptr && !e->choice) {
        type = e->types.size() == 1 ? e->types.front() : nullptr;
        children = e->children;
      } else {
        for (const auto& c : *scope)
          if (c.choice && (type = c.ChoiceType(key)) != nullptr) break;
      }
    }
    AddNodeItems(ctx, value, ext, type, children, item.resource, out);
  }
}

// ---- the evaluator -----------------------------------------------------------------------

Items Eval(EvalContext& ctx, const Node& node) {
  struct Depth {
    explicit Depth(EvalContext& c, const Node& n) : ctx(c) {
      if (++ctx.depth > kMaxEvalDepth) Fail(n, "evaluation nested too deeply");
    }
    ~Depth() { --ctx.depth; }
    EvalContext& ctx;
  } depth(ctx, node);

  switch (node.kind) {
    case NodeKind::kLiteral:
      return {node.literal};
    case NodeKind::kEmpty:
      return {};
    case NodeKind::kThis:
      if (ctx.this_item == nullptr) return {};
      return {*ctx.this_item};
    case NodeKind::kIndex:
      if (!ctx.index) return {};
      return {MakeInteger(*ctx.index)};
    case NodeKind::kTotal:
      return ctx.total != nullptr ? *ctx.total : Items{};
    case NodeKind::kVariable:
      return Variable(ctx, node);
    case NodeKind::kMember: {
      if (node.target == nullptr) return LeadingName(ctx, node);
      if (ctx.options.strict) CheckCastMember(ctx, node);
      Items in = Eval(ctx, *node.target);
      Items out;
      for (const auto& i : in) Navigate(ctx, i, node.name, node, out);
      return out;
    }
    case NodeKind::kCall: {
      if (ctx.options.check_ordered_functions && node.function->needs_order && node.target != nullptr &&
          node.target->kind == NodeKind::kCall &&
          (node.target->function->name == "children" || node.target->function->name == "descendants"))
        Fail(node, "'" + node.name + "' needs an ordered collection, and " + node.target->name +
                       "() is not ordered");
      Items in;
      if (node.target != nullptr) in = Eval(ctx, *node.target);
      else if (ctx.this_item != nullptr) in.push_back(*ctx.this_item);
      return node.function->impl(ctx, in, node);
    }
    case NodeKind::kIndexer: {
      Items in = Eval(ctx, *node.target);
      Items idx = Eval(ctx, *node.rhs);
      const Item* i = Single(idx, *node.rhs, "an index");
      if (i == nullptr) return {};
      if (i->kind != ValueKind::kInteger) Fail(*node.rhs, "an index must be an Integer");
      if (i->integer < 0 || static_cast<std::uint64_t>(i->integer) >= in.size()) return {};
      return {in[static_cast<std::size_t>(i->integer)]};
    }
    case NodeKind::kUnary:
      return Unary(ctx, node);
    case NodeKind::kTypeOp:
      return TypeOperator(ctx, node);
    case NodeKind::kBinary:
      switch (node.op) {
        case Op::kAnd:
        case Op::kOr:
        case Op::kXor:
        case Op::kImplies:
          return Logic(ctx, node);
        case Op::kUnion: {
          Items a = Eval(ctx, *node.target), b = Eval(ctx, *node.rhs);
          Items out;
          AddDistinct(ctx, out, a);
          AddDistinct(ctx, out, b);
          return out;
        }
        case Op::kEqual:
        case Op::kNotEqual:
        case Op::kEquivalent:
        case Op::kNotEquivalent:
          return Equality(ctx, node);
        case Op::kLess:
        case Op::kLessOrEqual:
        case Op::kGreater:
        case Op::kGreaterOrEqual:
          return Comparison(ctx, node);
        case Op::kIn:
        case Op::kContains:
          return Membership(ctx, node);
        default:
          return Arithmetic(ctx, node);
      }
  }
  return {};
}

Items EvalArg(EvalContext& ctx, const Node& call, std::size_t i) { return Eval(ctx, *call.args[i]); }

Items EvalWith(EvalContext& ctx, const Node& node, const Item& item, std::optional<std::int64_t> index) {
  const Item* saved_this = ctx.this_item;
  auto saved_index = ctx.index;
  ctx.this_item = &item;
  if (index) ctx.index = index;
  struct Restore {
    EvalContext& ctx;
    const Item* item;
    std::optional<std::int64_t> index;
    ~Restore() {
      ctx.this_item = item;
      ctx.index = index;
    }
  } restore{ctx, saved_this, saved_index};
  return Eval(ctx, node);
}

// ---- the engine -----------------------------------------------------------------------

Engine::Engine(std::shared_ptr<const Definitions> definitions) : impl_(std::make_unique<Impl>()) {
  impl_->defs = std::move(definitions);
  const Definitions& d = *impl_->defs;
  impl_->resource = d.FindType("Resource");
  impl_->element = d.FindType("Element");
  impl_->extension = d.FindType("Extension");
  impl_->reference = d.FindType("Reference");
  impl_->quantity = d.FindType("Quantity");
  impl_->bundle = d.FindType("Bundle");
  impl_->id = d.FindType("id");
}

Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

const Definitions& Engine::definitions() const { return *impl_->defs; }

Result<Collection> Engine::Evaluate(const Expression& expression, const Resource& resource,
                                    const EvalOptions& options) const {
  return Evaluate(expression, resource.tree().doc, options);
}

Result<Collection> Engine::Evaluate(const Expression& expression, const EvalOptions& options) const {
  static const JsonValue kNoContext;  // null: no context item
  return Evaluate(expression, kNoContext, options);
}

Result<Collection> Engine::EvaluateOn(const Expression& expression, const Item& context, const JsonValue& resource,
                                      const EvalOptions& options) const {
  auto arena = std::make_shared<Arena>();
  arena->expression = expression.shared_root();
  EvalContext ctx(*impl_, options, *arena);
  ctx.now_ms = options.now_ms;  // 0: the clock is read when now() and the like first need it
  Item root;
  if (resource.IsObject()) {
    root = ResourceItem(ctx, resource);
    ctx.root = &root;
  }
  ctx.this_item = &context;
  try {
    Collection out;
    out.items_ = Eval(ctx, expression.root());
    out.storage_ = std::move(arena);
    return out;
  } catch (const EvalFailure& f) {
    return f.error;
  } catch (const std::exception& e) {
    return Error{std::string("evaluation failed: ") + e.what(), kNoPosition};
  }
}

Result<Collection> Engine::EvaluateOnNode(const Expression& expression, const JsonValue* value,
                                          const JsonValue* extension, const TypeInfo* type,
                                          const std::vector<ElementInfo>* scope, const JsonValue& resource,
                                          const EvalOptions& options) const {
  auto arena = std::make_shared<Arena>();
  arena->expression = expression.shared_root();
  EvalContext ctx(*impl_, options, *arena);
  ctx.now_ms = options.now_ms;  // 0: the clock is read when now() and the like first need it
  Item root;
  if (resource.IsObject()) {
    root = ResourceItem(ctx, resource);
    ctx.root = &root;
  }
  try {
    Items self;
    AddNodeItems(ctx, value, extension, type, scope, &resource, self);
    if (self.empty()) return Collection{};
    ctx.this_item = &self.front();
    Collection out;
    out.items_ = Eval(ctx, expression.root());
    out.storage_ = std::move(arena);
    return out;
  } catch (const EvalFailure& f) {
    return f.error;
  } catch (const std::exception& e) {
    return Error{std::string("evaluation failed: ") + e.what(), kNoPosition};
  }
}

Result<Collection> Engine::Evaluate(const Expression& expression, const JsonValue& resource,
                                    const EvalOptions& options) const {
  auto arena = std::make_shared<Arena>();
  arena->expression = expression.shared_root();
  EvalContext ctx(*impl_, options, *arena);
  ctx.now_ms = options.now_ms;  // 0: the clock is read when now() and the like first need it
  Item root;
  if (resource.IsObject()) {
    root = ResourceItem(ctx, resource);
    ctx.root = &root;
    ctx.this_item = &root;
  }
  try {
    Collection out;
    out.items_ = Eval(ctx, expression.root());
    out.storage_ = std::move(arena);
    return out;
  } catch (const EvalFailure& f) {
    return f.error;
  } catch (const std::exception& e) {
    // regex_error from a pattern built at run time, bad_alloc: report, never throw
    return Error{std::string("evaluation failed: ") + e.what(), kNoPosition};
  }
}

}  // namespace eds::fhir::fhirpath
