// The FHIRPath function library (N1 plus the FHIR additions, the boundary
// functions, sort and the 2.1 string functions), one table for the parser
// and the evaluator.
#include "fhir/fhirpath/ast.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <iterator>
#include <string>

#include "fhir/fhirpath/evaluator.hpp"
#include "fhir/primitives.hpp"

namespace eds::fhir::fhirpath {
namespace {

// ---- argument helpers -------------------------------------------------------------

std::string FnName(const Node& call) { return call.name + "()"; }

const Item* InputItem(const Items& in, const Node& call) { return Single(in, call, FnName(call)); }

// The single string input; fails for anything else but empty.
const Item* StringInput(const Items& in, const Node& call) {
  const Item* i = InputItem(in, call);
  if (i != nullptr && !IsStringKind(*i)) {
    if (i->kind == ValueKind::kString) return nullptr;  // a primitive with only extensions
    Fail(call, FnName(call) + " needs a String but the input is " + std::string(i->TypeName()));
  }
  return i;
}

std::optional<std::string_view> StringArg(EvalContext& ctx, const Node& call, std::size_t i, Items& holder) {
  holder = EvalArg(ctx, call, i);
  const Item* a = Single(holder, *call.args[i], "argument of " + FnName(call));
  if (a == nullptr) return std::nullopt;
  if (!IsStringKind(*a)) Fail(*call.args[i], "argument of " + FnName(call) + " must be a String");
  return a->text;
}

std::optional<std::int64_t> IntegerArg(EvalContext& ctx, const Node& call, std::size_t i) {
  Items v = EvalArg(ctx, call, i);
  const Item* a = Single(v, *call.args[i], "argument of " + FnName(call));
  if (a == nullptr) return std::nullopt;
  if (a->kind != ValueKind::kInteger) Fail(*call.args[i], "argument of " + FnName(call) + " must be an Integer");
  return a->integer;
}

Items Bool(bool v) { return {MakeBoolean(v)}; }

// ---- UTF-8 ----------------------------------------------------------------------------

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::size_t CodePoints(std::string_view s) {
  std::size_t n = 0;
  for (char c : s)
    if (!IsContinuation(c)) ++n;
  return n;
}

// Byte offset of code point `index` (s.size() when past the end).
std::size_t ByteOffset(std::string_view s, std::size_t index) {
  std::size_t cp = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (IsContinuation(s[i])) continue;
    if (cp++ == index) return i;
  }
  return s.size();
}

std::size_t CodePointIndex(std::string_view s, std::size_t byte) { return CodePoints(s.substr(0, byte)); }

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// ---- existence --------------------------------------------------------------------

Items FnEmpty(EvalContext&, const Items& in, const Node&) { return Bool(in.empty()); }

Items FnExists(EvalContext& ctx, const Items& in, const Node& call) {
  if (call.args.empty()) return Bool(!in.empty());
  for (std::size_t i = 0; i < in.size(); ++i)
    if (SingletonBoolean(ctx, EvalWith(ctx, *call.args[0], in[i], static_cast<std::int64_t>(i)), *call.args[0]) == true)
      return Bool(true);
  return Bool(false);
}

Items FnAll(EvalContext& ctx, const Items& in, const Node& call) {
  for (std::size_t i = 0; i < in.size(); ++i)
    if (SingletonBoolean(ctx, EvalWith(ctx, *call.args[0], in[i], static_cast<std::int64_t>(i)), *call.args[0]) != true)
      return Bool(false);
  return Bool(true);
}

template <bool kAll, bool kValue>
Items FnBooleans(EvalContext&, const Items& in, const Node& call) {
  for (const auto& i : in) {
    if (i.kind != ValueKind::kBoolean) Fail(call, FnName(call) + " needs Boolean items but found " + std::string(i.TypeName()));
    if (!i.has_value) continue;
    if (kAll && i.boolean != kValue) return Bool(false);
    if (!kAll && i.boolean == kValue) return Bool(true);
  }
  return Bool(kAll);
}

Items FnSubsetOf(EvalContext& ctx, const Items& in, const Node& call) {
  Items other = EvalArg(ctx, call, 0);
  for (const auto& i : in)
    if (!ContainsItem(ctx, other, i)) return Bool(false);
  return Bool(true);
}

Items FnSupersetOf(EvalContext& ctx, const Items& in, const Node& call) {
  Items other = EvalArg(ctx, call, 0);
  for (const auto& i : other)
    if (!ContainsItem(ctx, in, i)) return Bool(false);
  return Bool(true);
}

Items FnCount(EvalContext&, const Items& in, const Node&) { return {MakeInteger(static_cast<std::int64_t>(in.size()))}; }

Items FnDistinct(EvalContext& ctx, const Items& in, const Node&) {
  Items out;
  AddDistinct(ctx, out, in);
  return out;
}

Items FnIsDistinct(EvalContext& ctx, const Items& in, const Node&) {
  Items out;
  AddDistinct(ctx, out, in);
  return Bool(out.size() == in.size());
}

// ---- filtering and projection ------------------------------------------------------------

Items FnWhere(EvalContext& ctx, const Items& in, const Node& call) {
  Items out;
  for (std::size_t i = 0; i < in.size(); ++i)
    if (SingletonBoolean(ctx, EvalWith(ctx, *call.args[0], in[i], static_cast<std::int64_t>(i)), *call.args[0]) == true)
      out.push_back(in[i]);
  return out;
}

Items FnSelect(EvalContext& ctx, const Items& in, const Node& call) {
  Items out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    Items r = EvalWith(ctx, *call.args[0], in[i], static_cast<std::int64_t>(i));
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

// Resource nodes are the same when they are the same node; computed values
// when they are equal.
bool SeenBefore(EvalContext& ctx, const Items& seen, const Item& item) {
  for (const auto& s : seen) {
    if (item.node != nullptr || item.extension != nullptr) {
      if (s.node == item.node && s.extension == item.extension) return true;
    } else if (s.node == nullptr && s.extension == nullptr && ItemsEqual(ctx, s, item) == true) {
      return true;
    }
  }
  return false;
}

Items FnRepeat(EvalContext& ctx, const Items& in, const Node& call) {
  Items out, frontier = in;
  while (!frontier.empty()) {
    Items next;
    for (std::size_t i = 0; i < frontier.size(); ++i) {
      for (const auto& r : EvalWith(ctx, *call.args[0], frontier[i], static_cast<std::int64_t>(i))) {
        if (SeenBefore(ctx, out, r)) continue;
        out.push_back(r);
        next.push_back(r);
      }
    }
    frontier = std::move(next);
  }
  return out;
}

Items FnOfType(EvalContext& ctx, const Items& in, const Node& call) {
  Items out;
  for (const auto& i : in)
    if (IsOfType(ctx, i, call.type, call, true)) out.push_back(i);
  return out;
}

Items FnIs(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = InputItem(in, call);
  if (i == nullptr) return {};
  return Bool(IsOfType(ctx, *i, call.type, call, false));
}

Items FnType(EvalContext&, const Items& in, const Node&) {
  Items out;
  for (const auto& i : in) {
    Item t;
    t.kind = ValueKind::kType;
    t.text = i.TypeName();
    t.unit = i.type != nullptr ? "FHIR" : "System";
    if (!t.text.empty()) out.push_back(t);
  }
  return out;
}

// ---- subsetting ---------------------------------------------------------------------------

Items FnSingle(EvalContext&, const Items& in, const Node& call) {
  if (in.size() > 1) Fail(call, "single() found " + std::to_string(in.size()) + " items");
  return in;
}

Items FnFirst(EvalContext&, const Items& in, const Node&) {
  if (in.empty()) return {};
  return {in.front()};
}

Items FnLast(EvalContext&, const Items& in, const Node&) {
  if (in.empty()) return {};
  return {in.back()};
}

Items FnTail(EvalContext&, const Items& in, const Node&) {
  if (in.size() <= 1) return {};
  return Items(in.begin() + 1, in.end());
}

Items FnSkip(EvalContext& ctx, const Items& in, const Node& call) {
  auto n = IntegerArg(ctx, call, 0);
  if (!n) return {};
  if (*n <= 0) return in;
  if (static_cast<std::uint64_t>(*n) >= in.size()) return {};
  return Items(in.begin() + *n, in.end());
}

Items FnTake(EvalContext& ctx, const Items& in, const Node& call) {
  auto n = IntegerArg(ctx, call, 0);
  if (!n || *n <= 0) return {};
  if (static_cast<std::uint64_t>(*n) >= in.size()) return in;
  return Items(in.begin(), in.begin() + *n);
}

Items FnIntersect(EvalContext& ctx, const Items& in, const Node& call) {
  Items other = EvalArg(ctx, call, 0);
  Items out;
  for (const auto& i : in)
    if (ContainsItem(ctx, other, i) && !ContainsItem(ctx, out, i)) out.push_back(i);
  return out;
}

Items FnExclude(EvalContext& ctx, const Items& in, const Node& call) {
  Items other = EvalArg(ctx, call, 0);
  Items out;
  for (const auto& i : in)
    if (!ContainsItem(ctx, other, i)) out.push_back(i);
  return out;
}

Items FnUnion(EvalContext& ctx, const Items& in, const Node& call) {
  Items other = EvalArg(ctx, call, 0);
  Items out;
  AddDistinct(ctx, out, in);
  AddDistinct(ctx, out, other);
  return out;
}

Items FnCombine(EvalContext& ctx, const Items& in, const Node& call) {
  Items out = in;
  Items other = EvalArg(ctx, call, 0);
  out.insert(out.end(), other.begin(), other.end());
  return out;
}

// ---- iif, not, aggregate, trace ----------------------------------------------------------------

Items FnIif(EvalContext& ctx, const Items& in, const Node& call) {
  if (in.size() > 1) Fail(call, "iif() needs at most one input item but found " + std::to_string(in.size()));
  auto branch = [&](std::size_t arg) -> Items {
    if (in.empty()) return Eval(ctx, *call.args[arg]);
    return EvalWith(ctx, *call.args[arg], in[0], std::nullopt);  // iif keeps the caller's $index
  };
  auto criterion = SingletonBoolean(ctx, branch(0), *call.args[0]);
  if (criterion == true) return branch(1);
  if (call.args.size() > 2) return branch(2);
  return {};
}

Items FnNot(EvalContext& ctx, const Items& in, const Node& call) {
  auto v = SingletonBoolean(ctx, in, call);
  if (!v) return {};
  return Bool(!*v);
}

Items FnAggregate(EvalContext& ctx, const Items& in, const Node& call) {
  Items total;
  if (call.args.size() > 1) total = EvalArg(ctx, call, 1);
  const Items* saved = ctx.total;
  for (std::size_t i = 0; i < in.size(); ++i) {
    ctx.total = &total;
    Items next;
    try {
      next = EvalWith(ctx, *call.args[0], in[i], static_cast<std::int64_t>(i));
    } catch (...) {
      ctx.total = saved;
      throw;
    }
    total = std::move(next);
  }
  ctx.total = saved;
  return total;
}

Items FnTrace(EvalContext& ctx, const Items& in, const Node& call) {
  Items holder;
  auto name = StringArg(ctx, call, 0, holder);
  if (ctx.options.trace) {
    if (call.args.size() > 1) {
      Items projected;
      for (std::size_t i = 0; i < in.size(); ++i) {
        Items r = EvalWith(ctx, *call.args[1], in[i], static_cast<std::int64_t>(i));
        projected.insert(projected.end(), r.begin(), r.end());
      }
      ctx.options.trace(name.value_or(""), projected);
    } else {
      ctx.options.trace(name.value_or(""), in);
    }
  }
  return in;
}

// ---- conversions --------------------------------------------------------------------

bool IsIntegerText(std::string_view s) {
  std::size_t i = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

bool IsDecimalText(std::string_view s) {
  auto dot = s.find('.');
  if (dot == std::string_view::npos) return IsIntegerText(s);
  std::string_view frac = s.substr(dot + 1);
  return IsIntegerText(s.substr(0, dot)) && !frac.empty() &&
         std::all_of(frac.begin(), frac.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<Item> ToBoolean(const Item& i) {
  if (!i.has_value) return std::nullopt;
  switch (i.kind) {
    case ValueKind::kBoolean: return MakeBoolean(i.boolean);
    case ValueKind::kInteger:
      if (i.integer == 1) return MakeBoolean(true);
      if (i.integer == 0) return MakeBoolean(false);
      return std::nullopt;
    case ValueKind::kDecimal: {
      auto d = AsDecimal(i);
      if (d && d->Compare(Decimal(1, 0)) == 0) return MakeBoolean(true);
      if (d && d->IsZero()) return MakeBoolean(false);
      return std::nullopt;
    }
    case ValueKind::kString: {
      std::string s(i.text);
      for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (s == "true" || s == "t" || s == "yes" || s == "y" || s == "1" || s == "1.0") return MakeBoolean(true);
      if (s == "false" || s == "f" || s == "no" || s == "n" || s == "0" || s == "0.0") return MakeBoolean(false);
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

std::optional<Item> ToInteger(const Item& i) {
  if (!i.has_value) return std::nullopt;
  switch (i.kind) {
    case ValueKind::kInteger: return MakeInteger(i.integer);
    case ValueKind::kBoolean: return MakeInteger(i.boolean ? 1 : 0);
    case ValueKind::kString: {
      if (!IsIntegerText(i.text)) return std::nullopt;
      std::string_view t = i.text[0] == '+' ? i.text.substr(1) : i.text;
      std::int64_t v = 0;
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (ec != std::errc() || p != t.data() + t.size()) return std::nullopt;
      return MakeInteger(v);
    }
    default: return std::nullopt;
  }
}

std::optional<Item> ToDecimal(EvalContext& ctx, const Item& i) {
  if (!i.has_value) return std::nullopt;
  switch (i.kind) {
    case ValueKind::kInteger:
    case ValueKind::kDecimal: return MakeDecimal(ctx, *AsDecimal(i));
    case ValueKind::kBoolean: return MakeDecimal(ctx, Decimal(i.boolean ? 10 : 0, 1));
    case ValueKind::kString: {
      if (!IsDecimalText(i.text)) return std::nullopt;
      auto d = Decimal::Parse(i.text);
      if (!d) return std::nullopt;
      return MakeDecimal(ctx, *d);
    }
    default: return std::nullopt;
  }
}

std::optional<Item> ToStringItem(EvalContext& ctx, const Item& i) {
  if (!i.has_value) return std::nullopt;
  if (i.kind == ValueKind::kObject) {
    auto q = AsQuantity(ctx, i);
    if (!q) return std::nullopt;
    return MakeString(ctx, FormatQuantity(*q));
  }
  if (i.kind == ValueKind::kType) return std::nullopt;
  if (i.kind == ValueKind::kString || !i.text.empty()) {
    if (i.kind == ValueKind::kQuantity) return MakeString(ctx, i.ToText());
    return MakeStringView(i.text);
  }
  return MakeString(ctx, i.ToText());
}

std::optional<Item> ToDate(EvalContext& ctx, const Item& i) {
  if (!i.has_value) return std::nullopt;
  std::optional<DateTimeValue> v;
  if (i.kind == ValueKind::kDate || i.kind == ValueKind::kDateTime) v = AsDateTime(i);
  else if (i.kind == ValueKind::kString) v = DateTimeValue::ParseDateTime(i.text);
  if (!v) return std::nullopt;
  if (v->precision > DatePrecision::kDay) v->precision = DatePrecision::kDay;
  return MakeDate(ctx, *v, ValueKind::kDate);
}

std::optional<Item> ToDateTime(EvalContext& ctx, const Item& i) {
  if (!i.has_value) return std::nullopt;
  std::optional<DateTimeValue> v;
  if (i.kind == ValueKind::kDate || i.kind == ValueKind::kDateTime) v = AsDateTime(i);
  else if (i.kind == ValueKind::kString) v = DateTimeValue::ParseDateTime(i.text);
  if (!v) return std::nullopt;
  return MakeDate(ctx, *v, ValueKind::kDateTime);
}

std::optional<Item> ToTime(EvalContext& ctx, const Item& i) {
  if (!i.has_value) return std::nullopt;
  std::optional<DateTimeValue> v;
  if (i.kind == ValueKind::kTime) v = AsTime(i);
  else if (i.kind == ValueKind::kString) v = DateTimeValue::ParseTime(i.text);
  if (!v) return std::nullopt;
  return MakeDate(ctx, *v, ValueKind::kTime);
}

std::optional<Quantity> ToQuantityValue(EvalContext& ctx, const Item& i) {
  if (!i.has_value) return std::nullopt;
  if (IsNumberKind(i)) return Quantity{*AsDecimal(i), "1", false};
  if (i.kind == ValueKind::kBoolean) return Quantity{Decimal(i.boolean ? 10 : 0, 1), "1", false};
  if (i.kind == ValueKind::kString) return ParseQuantity(i.text);
  return AsQuantity(ctx, i);
}

std::optional<Item> ToQuantity(EvalContext& ctx, const Item& i, const Node& call) {
  auto q = ToQuantityValue(ctx, i);
  if (!q) return std::nullopt;
  if (!call.args.empty()) {
    Items holder;
    auto unit = StringArg(ctx, call, 0, holder);
    if (!unit) return std::nullopt;
    bool calendar = IsCalendarKeyword(*unit);
    auto v = ConvertValue(*q, *unit, calendar);
    if (!v) return std::nullopt;
    q = Quantity{*v, std::string(*unit), calendar};
  }
  return MakeQuantity(ctx, *q);
}

enum class Conversion { kBoolean, kInteger, kDecimal, kString, kDate, kDateTime, kTime, kQuantity };

template <Conversion kTo, bool kTest>
Items FnConvert(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = InputItem(in, call);
  if (i == nullptr) return {};
  std::optional<Item> r;
  switch (kTo) {
    case Conversion::kBoolean: r = ToBoolean(*i); break;
    case Conversion::kInteger: r = ToInteger(*i); break;
    case Conversion::kDecimal: r = ToDecimal(ctx, *i); break;
    case Conversion::kString: r = ToStringItem(ctx, *i); break;
    case Conversion::kDate: r = ToDate(ctx, *i); break;
    case Conversion::kDateTime: r = ToDateTime(ctx, *i); break;
    case Conversion::kTime: r = ToTime(ctx, *i); break;
    case Conversion::kQuantity: r = ToQuantity(ctx, *i, call); break;
  }
  if (kTest) return Bool(r.has_value());
  if (!r) return {};
  return {*r};
}

// ---- strings ------------------------------------------------------------------------

Items FnIndexOf(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  Items holder;
  auto sub = StringArg(ctx, call, 0, holder);
  if (s == nullptr || !sub) return {};
  auto pos = s->text.find(*sub);
  if (pos == std::string_view::npos) return {MakeInteger(-1)};
  return {MakeInteger(static_cast<std::int64_t>(CodePointIndex(s->text, pos)))};
}

Items FnLastIndexOf(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  Items holder;
  auto sub = StringArg(ctx, call, 0, holder);
  if (s == nullptr || !sub) return {};
  auto pos = s->text.rfind(*sub);
  if (pos == std::string_view::npos) return {MakeInteger(-1)};
  return {MakeInteger(static_cast<std::int64_t>(CodePointIndex(s->text, pos)))};
}

Items FnSubstring(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  auto start = IntegerArg(ctx, call, 0);
  if (s == nullptr || !start) return {};
  std::size_t n = CodePoints(s->text);
  if (*start < 0 || static_cast<std::uint64_t>(*start) >= n) return {};
  std::size_t from = ByteOffset(s->text, static_cast<std::size_t>(*start));
  std::size_t to = s->text.size();
  if (call.args.size() > 1) {
    auto length = IntegerArg(ctx, call, 1);
    if (length) {
      if (*length <= 0) return {MakeStringView("")};
      std::uint64_t end = static_cast<std::uint64_t>(*start) + static_cast<std::uint64_t>(*length);
      if (end < n) to = ByteOffset(s->text, static_cast<std::size_t>(end));
    }
  }
  return {MakeStringView(s->text.substr(from, to - from))};
}

template <int kWhich>  // 0 startsWith, 1 endsWith, 2 contains
Items FnStringTest(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  Items holder;
  auto arg = StringArg(ctx, call, 0, holder);
  if (s == nullptr || !arg) return {};
  std::string_view t = s->text;
  if (kWhich == 0) return Bool(t.substr(0, arg->size()) == *arg);
  if (kWhich == 1) return Bool(t.size() >= arg->size() && t.substr(t.size() - arg->size()) == *arg);
  return Bool(t.find(*arg) != std::string_view::npos);
}

template <bool kUpper>
Items FnCase(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  if (s == nullptr) return {};
  std::string out(s->text);
  for (auto& c : out) {
    if (kUpper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!kUpper && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return {MakeString(ctx, std::move(out))};
}

Items FnReplace(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  Items h1, h2;
  auto pattern = StringArg(ctx, call, 0, h1);
  auto replacement = StringArg(ctx, call, 1, h2);
  if (s == nullptr || !pattern || !replacement) return {};
  std::string out;
  std::string_view t = s->text;
  if (pattern->empty()) {
    // '' matches between every character and at both ends
    out += *replacement;
    for (std::size_t i = 0; i < t.size(); ++i) {
      out += t[i];
      if (i + 1 == t.size() || !IsContinuation(t[i + 1])) out += *replacement;
    }
    return {MakeString(ctx, std::move(out))};
  }
  std::size_t at = 0;
  while (true) {
    auto found = t.find(*pattern, at);
    if (found == std::string_view::npos) break;
    out.append(t.substr(at, found - at));
    out += *replacement;
    at = found + pattern->size();
  }
  out.append(t.substr(at));
  return {MakeString(ctx, std::move(out))};
}

// The compiled pattern of a regex function: from the parser when the pattern
// is a literal, else compiled now.
std::shared_ptr<const std::regex> PatternOf(EvalContext& ctx, const Node& call, bool& empty_pattern, bool& absent) {
  Items holder;
  auto pattern = StringArg(ctx, call, 0, holder);
  absent = !pattern;
  empty_pattern = pattern && pattern->empty();
  if (!pattern) return nullptr;
  if (call.regex) return call.regex;
  auto re = CompileRegex(*pattern);
  if (!re) Fail(*call.args[0], "invalid regular expression '" + std::string(*pattern) + "'");
  return re;
}

template <bool kFull>
Items FnMatches(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  bool empty_pattern = false, absent = false;
  auto re = PatternOf(ctx, call, empty_pattern, absent);
  if (s == nullptr || absent) return {};
  auto begin = s->text.begin(), end = s->text.end();
  return Bool(kFull ? std::regex_match(begin, end, *re) : std::regex_search(begin, end, *re));
}

Items FnReplaceMatches(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  bool empty_pattern = false, absent = false;
  auto re = PatternOf(ctx, call, empty_pattern, absent);
  Items holder;
  auto replacement = StringArg(ctx, call, 1, holder);
  if (s == nullptr || absent || !replacement) return {};
  if (empty_pattern) return {*s};
  std::string out;
  std::regex_replace(std::back_inserter(out), s->text.begin(), s->text.end(), *re, std::string(*replacement));
  return {MakeString(ctx, std::move(out))};
}

Items FnLength(EvalContext&, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  if (s == nullptr) return {};
  return {MakeInteger(static_cast<std::int64_t>(CodePoints(s->text)))};
}

Items FnToChars(EvalContext&, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  if (s == nullptr) return {};
  Items out;
  std::string_view t = s->text;
  for (std::size_t i = 0; i < t.size();) {
    std::size_t j = i + 1;
    while (j < t.size() && IsContinuation(t[j])) ++j;
    out.push_back(MakeStringView(t.substr(i, j - i)));
    i = j;
  }
  return out;
}

Items FnTrim(EvalContext&, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  if (s == nullptr) return {};
  std::string_view t = s->text;
  while (!t.empty() && IsSpace(t.front())) t.remove_prefix(1);
  while (!t.empty() && IsSpace(t.back())) t.remove_suffix(1);
  return {MakeStringView(t)};
}

Items FnSplit(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  Items holder;
  auto sep = StringArg(ctx, call, 0, holder);
  if (s == nullptr || !sep) return {};
  Items out;
  std::string_view t = s->text;
  if (sep->empty()) return FnToChars(ctx, in, call);
  std::size_t at = 0;
  while (true) {
    auto found = t.find(*sep, at);
    if (found == std::string_view::npos) break;
    out.push_back(MakeStringView(t.substr(at, found - at)));
    at = found + sep->size();
  }
  out.push_back(MakeStringView(t.substr(at)));
  return out;
}

Items FnJoin(EvalContext& ctx, const Items& in, const Node& call) {
  std::string_view sep;
  Items holder;
  if (!call.args.empty()) sep = StringArg(ctx, call, 0, holder).value_or("");
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (!IsStringKind(in[i])) Fail(call, "join() needs String items but found " + std::string(in[i].TypeName()));
    if (i > 0) out += sep;
    out += in[i].text;
  }
  return {MakeString(ctx, std::move(out))};
}

constexpr std::string_view kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64Encode(std::string_view in, bool url) {
  std::string out;
  std::size_t i = 0;
  auto ch = [&](unsigned v) {
    char c = kBase64[v & 63];
    if (url && c == '+') c = '-';
    if (url && c == '/') c = '_';
    return c;
  };
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += ch(v >> 18);
    out += ch(v >> 12);
    out += ch(v >> 6);
    out += ch(v);
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += ch(v >> 18);
    out += ch(v >> 12);
    out += i + 1 < in.size() ? ch(v >> 6) : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view in) {
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    if (c == '-') c = '+';
    if (c == '_') c = '/';
    auto p = kBase64.find(c);
    if (p == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(p);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

Items FnEncode(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  Items holder;
  auto format = StringArg(ctx, call, 0, holder);
  if (s == nullptr || !format) return {};
  if (*format == "base64" || *format == "urlbase64") return {MakeString(ctx, Base64Encode(s->text, *format == "urlbase64"))};
  if (*format == "hex") {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s->text) {
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    return {MakeString(ctx, std::move(out))};
  }
  return {};
}

Items FnDecode(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  Items holder;
  auto format = StringArg(ctx, call, 0, holder);
  if (s == nullptr || !format) return {};
  if (*format == "base64" || *format == "urlbase64") {
    auto d = Base64Decode(s->text);
    if (!d) return {};
    return {MakeString(ctx, std::move(*d))};
  }
  if (*format == "hex") {
    std::string_view t = s->text;
    if (t.size() % 2 != 0) return {};
    std::string out;
    for (std::size_t i = 0; i < t.size(); i += 2) {
      unsigned v = 0;
      auto [p, ec] = std::from_chars(t.data() + i, t.data() + i + 2, v, 16);
      if (ec != std::errc() || p != t.data() + i + 2) return {};
      out += static_cast<char>(v);
    }
    return {MakeString(ctx, std::move(out))};
  }
  return {};
}

Items FnEscape(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  Items holder;
  auto format = StringArg(ctx, call, 0, holder);
  if (s == nullptr || !format) return {};
  std::string out;
  if (*format == "html") {
    for (char c : s->text) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
  } else if (*format == "json") {
    for (char c : s->text) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: out += c;
      }
    }
  } else {
    return {};
  }
  return {MakeString(ctx, std::move(out))};
}

Items FnUnescape(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* s = StringInput(in, call);
  Items holder;
  auto format = StringArg(ctx, call, 0, holder);
  if (s == nullptr || !format) return {};
  std::string_view t = s->text;
  std::string out;
  if (*format == "html") {
    static constexpr std::pair<std::string_view, char> kEntities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}, {"&apos;", '\''}};
    for (std::size_t i = 0; i < t.size();) {
      bool replaced = false;
      if (t[i] == '&')
        for (const auto& [entity, c] : kEntities)
          if (t.substr(i, entity.size()) == entity) {
            out += c;
            i += entity.size();
            replaced = true;
            break;
          }
      if (!replaced) out += t[i++];
    }
  } else if (*format == "json") {
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (t[i] != '\\' || i + 1 == t.size()) {
        out += t[i];
        continue;
      }
      char e = t[++i];
      switch (e) {
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        default: out += e;
      }
    }
  } else {
    return {};
  }
  return {MakeString(ctx, std::move(out))};
}

// ---- math -----------------------------------------------------------------------

const Item* NumberInput(EvalContext& ctx, const Items& in, const Node& call, bool quantity_ok = false) {
  const Item* i = InputItem(in, call);
  if (i == nullptr) return nullptr;
  if (IsNumberKind(*i)) return i;
  if (quantity_ok && AsQuantity(ctx, *i)) return i;
  if (!i->has_value) return nullptr;
  Fail(call, FnName(call) + " needs a number but the input is " + std::string(i->TypeName()));
}

Items FnAbs(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = NumberInput(ctx, in, call, true);
  if (i == nullptr) return {};
  if (i->kind == ValueKind::kInteger) {
    if (i->integer == INT64_MIN) Fail(call, "integer overflow");
    return {MakeInteger(i->integer < 0 ? -i->integer : i->integer)};
  }
  if (i->kind == ValueKind::kDecimal) return {MakeDecimal(ctx, AsDecimal(*i)->Abs())};
  auto q = AsQuantity(ctx, *i);
  q->value = q->value.Abs();
  return {MakeQuantity(ctx, *q)};
}

template <bool kCeiling>
Items FnRounding(EvalContext&, const Items& in, const Node& call) {
  const Item* i = InputItem(in, call);
  if (i == nullptr) return {};
  if (i->kind == ValueKind::kInteger) return {MakeInteger(i->integer)};
  auto d = AsDecimal(*i);
  if (!d) Fail(call, FnName(call) + " needs a number");
  auto v = (kCeiling ? d->Ceiling() : d->Floor()).ToInt64();
  if (!v) Fail(call, "integer overflow");
  return {MakeInteger(*v)};
}

Items FnTruncate(EvalContext&, const Items& in, const Node& call) {
  const Item* i = InputItem(in, call);
  if (i == nullptr) return {};
  if (i->kind == ValueKind::kInteger) return {MakeInteger(i->integer)};
  auto d = AsDecimal(*i);
  if (!d) Fail(call, "truncate() needs a number");
  auto v = d->TruncateTo(0).ToInt64();
  if (!v) Fail(call, "integer overflow");
  return {MakeInteger(*v)};
}

Items FnRound(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = NumberInput(ctx, in, call);
  std::int64_t digits = 0;
  if (!call.args.empty()) {
    auto p = IntegerArg(ctx, call, 0);
    if (!p) return {};
    digits = *p;
  }
  if (i == nullptr) return {};
  if (digits < 0) Fail(call, "round() needs a precision of 0 or more");
  return {MakeDecimal(ctx, AsDecimal(*i)->RoundTo(static_cast<int>(std::min<std::int64_t>(digits, Decimal::kMaxScale))))};
}

Items DoubleResult(EvalContext& ctx, double v) {
  auto d = Decimal::FromDouble(v);
  if (!d) return {};
  return {MakeDecimal(ctx, *d)};
}

Items FnExp(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = NumberInput(ctx, in, call);
  if (i == nullptr) return {};
  return DoubleResult(ctx, std::exp(AsDecimal(*i)->ToDouble()));
}

Items FnLn(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = NumberInput(ctx, in, call);
  if (i == nullptr) return {};
  double v = AsDecimal(*i)->ToDouble();
  if (v <= 0) return {};
  return DoubleResult(ctx, std::log(v));
}

Items FnLog(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = NumberInput(ctx, in, call);
  Items base_items = EvalArg(ctx, call, 0);
  const Item* base = Single(base_items, *call.args[0], "argument of log()");
  if (i == nullptr || base == nullptr) return {};
  auto b = AsDecimal(*base);
  if (!b) Fail(*call.args[0], "log() needs a numeric base");
  double v = AsDecimal(*i)->ToDouble(), bv = b->ToDouble();
  if (v <= 0 || bv <= 0 || bv == 1) return {};
  return DoubleResult(ctx, std::log(v) / std::log(bv));
}

Items FnSqrt(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = NumberInput(ctx, in, call);
  if (i == nullptr) return {};
  double v = AsDecimal(*i)->ToDouble();
  if (v < 0) return {};
  return DoubleResult(ctx, std::sqrt(v));
}

Items FnPower(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = NumberInput(ctx, in, call);
  Items exp_items = EvalArg(ctx, call, 0);
  const Item* e = Single(exp_items, *call.args[0], "argument of power()");
  if (i == nullptr || e == nullptr) return {};
  if (!IsNumberKind(*e)) Fail(*call.args[0], "power() needs a numeric exponent");
  if (i->kind == ValueKind::kInteger && e->kind == ValueKind::kInteger && e->integer >= 0) {
    std::int64_t r = 1;
    for (std::int64_t k = 0; k < e->integer; ++k)
      if (__builtin_mul_overflow(r, i->integer, &r)) Fail(call, "integer overflow");
    return {MakeInteger(r)};
  }
  double v = std::pow(AsDecimal(*i)->ToDouble(), AsDecimal(*e)->ToDouble());
  return DoubleResult(ctx, v);
}

// ---- tree navigation ------------------------------------------------------------------

Items FnChildren(EvalContext& ctx, const Items& in, const Node&) {
  Items out;
  for (const auto& i : in) Children(ctx, i, out);
  return out;
}

Items FnDescendants(EvalContext& ctx, const Items& in, const Node&) {
  Items out, frontier = in;
  while (!frontier.empty()) {
    Items next;
    for (const auto& i : frontier) Children(ctx, i, next);
    out.insert(out.end(), next.begin(), next.end());
    frontier = std::move(next);
  }
  return out;
}

// ---- dates ---------------------------------------------------------------------------

// The evaluation's clock: read once, when first needed (most expressions
// never ask, and reading it for each would cost them).
std::int64_t NowOf(EvalContext& ctx) {
  if (ctx.now_ms == 0) ctx.now_ms = NowMs();
  return ctx.now_ms;
}

Items FnNow(EvalContext& ctx, const Items&, const Node&) {
  return {MakeDate(ctx, DateTimeValue::FromEpochMs(NowOf(ctx)), ValueKind::kDateTime)};
}

Items FnToday(EvalContext& ctx, const Items&, const Node&) {
  auto v = DateTimeValue::FromEpochMs(NowOf(ctx));
  v.precision = DatePrecision::kDay;
  return {MakeDate(ctx, v, ValueKind::kDate)};
}

Items FnTimeOfDay(EvalContext& ctx, const Items&, const Node&) {
  return {MakeDate(ctx, DateTimeValue::FromEpochMs(NowOf(ctx)), ValueKind::kTime)};
}

// ---- FHIR additions ------------------------------------------------------------------------

Items ExtensionsWithUrl(EvalContext& ctx, const Items& in, const Node& call, std::string_view url) {
  Items exts;
  for (const auto& i : in) Navigate(ctx, i, "extension", call, exts);
  Items out;
  for (const auto& e : exts) {
    if (e.node == nullptr || !e.node->IsObject()) continue;
    auto u = e.node->FindMember("url");
    if (u != e.node->MemberEnd() && IsString(u->value) && StringOf(u->value) == url) out.push_back(e);
  }
  return out;
}

Items FnExtension(EvalContext& ctx, const Items& in, const Node& call) {
  Items holder;
  auto url = StringArg(ctx, call, 0, holder);
  if (!url) return {};
  return ExtensionsWithUrl(ctx, in, call, *url);
}

Items FnHasExtension(EvalContext& ctx, const Items& in, const Node& call) {
  Items holder;
  auto url = StringArg(ctx, call, 0, holder);
  if (!url) return {};
  return Bool(!ExtensionsWithUrl(ctx, in, call, *url).empty());
}

bool IsPrimitiveItem(const Item& i) {
  if (i.type != nullptr) return i.type->kind == TypeKind::kPrimitive;
  return i.kind != ValueKind::kObject && i.kind != ValueKind::kType;
}

Items FnHasValue(EvalContext&, const Items& in, const Node&) {
  return Bool(in.size() == 1 && IsPrimitiveItem(in[0]) && in[0].has_value);
}

Items FnGetValue(EvalContext&, const Items& in, const Node&) {
  if (in.size() != 1 || !IsPrimitiveItem(in[0]) || !in[0].has_value) return {};
  Item v = in[0];
  v.type = nullptr;
  v.node = nullptr;
  v.extension = nullptr;
  v.scope = nullptr;
  return {v};
}

// The Bundle entry whose resource is `resource`, or nullptr.
const JsonValue* EntryOf(const JsonValue& entries, const JsonValue* resource) {
  for (const auto& e : entries.GetArray()) {
    if (!e.IsObject()) continue;
    auto res = e.FindMember("resource");
    if (res != e.MemberEnd() && &res->value == resource) return &e;
  }
  return nullptr;
}

std::string_view StringMember(const JsonValue& obj, const char* key) {
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && IsString(it->value) ? StringOf(it->value) : std::string_view();
}

// The resource `reference` points to inside the document: a contained
// resource (#id) or a Bundle entry. In a Bundle, a reference matches an
// entry's fullUrl; a relative one is first made absolute with the base of
// the referencing entry's fullUrl, and matches by type and id when that
// entry has no absolute fullUrl.
const JsonValue* FindInDocument(EvalContext& ctx, const Item& from, std::string_view reference) {
  auto find_contained = [&](const JsonValue* resource) -> const JsonValue* {
    if (resource == nullptr || !resource->IsObject()) return nullptr;
    auto contained = resource->FindMember("contained");
    if (contained == resource->MemberEnd() || !contained->value.IsArray()) return nullptr;
    for (const auto& c : contained->value.GetArray())
      if (c.IsObject() && StringMember(c, "id") == reference.substr(1)) return &c;
    return nullptr;
  };
  if (!reference.empty() && reference[0] == '#') {
    if (auto* c = find_contained(from.resource)) return c;
    return ctx.root != nullptr ? find_contained(ctx.root->node) : nullptr;
  }
  if (ctx.root == nullptr || ctx.root->type != ctx.engine.bundle || ctx.root->node == nullptr) return nullptr;
  auto entries = ctx.root->node->FindMember("entry");
  if (entries == ctx.root->node->MemberEnd() || !entries->value.IsArray()) return nullptr;
  if (auto h = reference.find("/_history/"); h != std::string_view::npos) reference = reference.substr(0, h);
  const bool relative = reference.find(':') == std::string_view::npos;
  std::string absolute;
  if (relative) {
    const JsonValue* entry = EntryOf(entries->value, from.resource);
    std::string_view full = entry != nullptr ? StringMember(*entry, "fullUrl") : std::string_view();
    // http://example.org/fhir/Patient/1 -> base http://example.org/fhir
    auto last = full.rfind('/');
    auto type_slash = last == std::string_view::npos || last == 0 ? std::string_view::npos : full.rfind('/', last - 1);
    if (full.find("://") != std::string_view::npos && type_slash != std::string_view::npos)
      absolute = std::string(full.substr(0, type_slash + 1)) + std::string(reference);
  }
  for (const auto& e : entries->value.GetArray()) {
    if (!e.IsObject()) continue;
    auto res = e.FindMember("resource");
    if (res == e.MemberEnd() || !res->value.IsObject()) continue;
    std::string_view full = StringMember(e, "fullUrl");
    if (!full.empty() && (full == reference || full == absolute)) return &res->value;
  }
  if (!relative || !absolute.empty()) return nullptr;
  auto slash = reference.find('/');
  if (slash == std::string_view::npos) return nullptr;
  std::string_view type = reference.substr(0, slash), id = reference.substr(slash + 1);
  for (const auto& e : entries->value.GetArray()) {
    if (!e.IsObject()) continue;
    auto res = e.FindMember("resource");
    if (res == e.MemberEnd() || !res->value.IsObject()) continue;
    if (StringMember(res->value, "resourceType") == type && StringMember(res->value, "id") == id) return &res->value;
  }
  return nullptr;
}

// The resource type a reference names: "Patient/1", "http://x/fhir/Patient/1",
// "Patient/1/_history/2"; nullptr when it names none.
const TypeInfo* ReferencedType(EvalContext& ctx, std::string_view reference) {
  auto cut = reference.find_first_of("?#");
  if (cut != std::string_view::npos) reference = reference.substr(0, cut);
  std::vector<std::string_view> parts;
  std::size_t at = 0;
  while (at <= reference.size()) {
    auto slash = reference.find('/', at);
    if (slash == std::string_view::npos) slash = reference.size();
    parts.push_back(reference.substr(at, slash - at));
    at = slash + 1;
  }
  std::size_t n = parts.size();
  if (n >= 4 && parts[n - 2] == "_history") n -= 2;
  if (n < 2 || parts[n - 1].empty()) return nullptr;
  if (!ctx.defs().IsResourceType(parts[n - 2])) return nullptr;
  return ctx.defs().FindType(parts[n - 2]);
}

Items FnResolve(EvalContext& ctx, const Items& in, const Node&) {
  Items out;
  for (const auto& i : in) {
    std::string_view reference;
    const TypeInfo* declared = nullptr;
    if (i.kind == ValueKind::kString && i.has_value) {
      reference = i.text;
    } else if (i.node != nullptr && i.node->IsObject()) {
      auto r = i.node->FindMember("reference");
      if (r != i.node->MemberEnd() && IsString(r->value)) reference = StringOf(r->value);
      auto t = i.node->FindMember("type");
      if (t != i.node->MemberEnd() && IsString(t->value)) {
        std::string_view type = StringOf(t->value);
        if (ctx.defs().IsResourceType(type)) declared = ctx.defs().FindType(type);
        else declared = ReferencedType(ctx, type);  // a type given as a canonical URL
      }
    }
    if (!reference.empty()) {
      if (const JsonValue* target = FindInDocument(ctx, i, reference)) {
        out.push_back(ResourceItem(ctx, *target));
        continue;
      }
    }
    const TypeInfo* type = reference.empty() ? nullptr : ReferencedType(ctx, reference);
    if (type == nullptr) type = declared;
    if (type == nullptr) continue;
    Item target;  // the referenced resource is known by its type only
    target.type = type;
    out.push_back(target);
  }
  return out;
}

// Terminology functions (memberOf, subsumes, subsumedBy) need a terminology
// service; without one the answer is unknown: empty.
Items FnNothing(EvalContext&, const Items&, const Node&) { return {}; }

// The XHTML rules of narratives (txt-1, txt-2) are not checked here: a
// narrative that is present passes.
Items FnHtmlChecks(EvalContext&, const Items& in, const Node&) { return Bool(!in.empty()); }

Items FnConformsTo(EvalContext& ctx, const Items& in, const Node& call) {
  Items holder;
  auto url = StringArg(ctx, call, 0, holder);
  const Item* i = InputItem(in, call);
  if (i == nullptr || !url) return {};
  constexpr std::string_view kCore = "http://hl7.org/fhir/StructureDefinition/";
  if (url->substr(0, kCore.size()) != kCore) Fail(call, "unknown profile '" + std::string(*url) + "'");
  const TypeInfo* type = ctx.defs().FindType(url->substr(kCore.size()));
  if (type == nullptr) return {};  // a core profile: not checked here
  return Bool(i->type != nullptr && i->type->IsA(*type));
}

Items FnComparable(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = InputItem(in, call);
  Items other = EvalArg(ctx, call, 0);
  const Item* o = Single(other, *call.args[0], "argument of comparable()");
  if (i == nullptr || o == nullptr) return {};
  auto a = AsQuantity(ctx, *i), b = AsQuantity(ctx, *o);
  if (!a || !b) Fail(call, "comparable() needs quantities");
  return Bool(QuantitiesComparable(*a, *b));
}

// ---- boundaries and precision ----------------------------------------------------------

constexpr int kMaxBoundaryDigits = 28;

std::optional<Decimal> DecimalBoundary(const Decimal& x, int digits, bool high) {
  if (x.IsNegative()) {
    auto r = DecimalBoundary(x.Negate(), digits, !high);
    if (!r) return std::nullopt;
    return r->Negate();
  }
  // half a unit of the last digit either side
  Decimal half(5, x.scale() + 1);
  auto edge = high ? x.Add(half) : x.Sub(half);
  if (!edge) return std::nullopt;
  Decimal cut = high ? edge->RoundTo(digits) : edge->TruncateTo(digits);
  return cut.WithScale(digits);
}

// Digits of precision of dates (YYYYMMDDhhmmssfff) and times (hhmmssfff).
DatePrecision PrecisionFromDigits(std::int64_t digits, bool time, bool& ok) {
  ok = true;
  if (time) {
    switch (digits) {
      case 2: return DatePrecision::kHour;
      case 4: return DatePrecision::kMinute;
      case 6: return DatePrecision::kSecond;
      case 9: return DatePrecision::kMillisecond;
      default: break;
    }
  } else {
    switch (digits) {
      case 4: return DatePrecision::kYear;
      case 6: return DatePrecision::kMonth;
      case 8: return DatePrecision::kDay;
      case 10: return DatePrecision::kHour;
      case 12: return DatePrecision::kMinute;
      case 14: return DatePrecision::kSecond;
      case 17: return DatePrecision::kMillisecond;
      default: break;
    }
  }
  ok = false;
  return DatePrecision::kYear;
}

DateTimeValue DateBoundary(DateTimeValue v, DatePrecision to, bool high) {
  // an hour without minutes is read as hh:00, as other engines do
  if (v.precision == DatePrecision::kHour && to > DatePrecision::kHour) v.precision = DatePrecision::kMinute;
  if (v.precision < DatePrecision::kMonth) v.month = high ? 12 : 1;
  if (v.precision < DatePrecision::kDay) v.day = high ? 31 : 1;
  if (v.precision < DatePrecision::kHour) v.hour = high ? 23 : 0;
  if (v.precision < DatePrecision::kMinute) v.minute = high ? 59 : 0;
  if (v.precision < DatePrecision::kSecond) v.second = high ? 59 : 0;
  if (v.precision < DatePrecision::kMillisecond) v.millisecond = high ? 999 : 0;
  if (high && v.precision < DatePrecision::kDay) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (v.year % 4 == 0 && v.year % 100 != 0) || v.year % 400 == 0;
    v.day = v.month == 2 && leap ? 29 : kDays[v.month - 1];
  }
  if (to >= DatePrecision::kHour && !v.has_tz && v.year != 0) {
    // the widest zones: the earliest and the latest the local time can be
    v.has_tz = true;
    v.tz_minutes = high ? -12 * 60 : 14 * 60;
  }
  v.precision = to;
  return v;
}

template <bool kHigh>
Items FnBoundary(EvalContext& ctx, const Items& in, const Node& call) {
  const Item* i = InputItem(in, call);
  std::optional<std::int64_t> digits;
  if (!call.args.empty()) {
    digits = IntegerArg(ctx, call, 0);
    if (!digits) return {};
  }
  if (i == nullptr || !i->has_value) return {};
  if (IsNumberKind(*i) || i->kind == ValueKind::kQuantity || AsQuantity(ctx, *i)) {
    int d = static_cast<int>(digits.value_or(8));
    if (digits && (*digits < 0 || *digits > kMaxBoundaryDigits)) return {};
    if (IsNumberKind(*i)) {
      auto r = DecimalBoundary(*AsDecimal(*i), d, kHigh);
      if (!r) return {};
      return {MakeDecimal(ctx, *r)};
    }
    auto q = AsQuantity(ctx, *i);
    auto r = DecimalBoundary(q->value, d, kHigh);
    if (!r) return {};
    q->value = *r;
    return {MakeQuantity(ctx, *q)};
  }
  bool time = i->kind == ValueKind::kTime;
  auto v = time ? AsTime(*i) : AsDateTime(*i);
  if (!v) {
    if (i->kind == ValueKind::kDate || i->kind == ValueKind::kDateTime || time) return {};
    Fail(call, FnName(call) + " needs a number, quantity, date or time");
  }
  bool ok = true;
  DatePrecision to = PrecisionFromDigits(digits.value_or(time ? 9 : 17), time, ok);
  if (!ok) return {};
  DateTimeValue b = DateBoundary(*v, to, kHigh);
  ValueKind kind = time ? ValueKind::kTime : to > DatePrecision::kDay ? ValueKind::kDateTime : i->kind;
  return {MakeDate(ctx, b, kind)};
}

Items FnPrecision(EvalContext&, const Items& in, const Node& call) {
  const Item* i = InputItem(in, call);
  if (i == nullptr || !i->has_value) return {};
  if (i->kind == ValueKind::kInteger) return {MakeInteger(0)};
  if (i->kind == ValueKind::kDecimal) {
    auto d = AsDecimal(*i);
    return {MakeInteger(d ? d->scale() : 0)};
  }
  bool time = i->kind == ValueKind::kTime;
  auto v = time ? AsTime(*i) : AsDateTime(*i);
  if (!v) return {};
  static constexpr int kDateDigits[] = {0, 4, 6, 8, 10, 12, 14, 17};
  static constexpr int kTimeDigits[] = {0, 0, 0, 0, 2, 4, 6, 9};
  int p = static_cast<int>(v->precision);
  return {MakeInteger(time ? kTimeDigits[p] : kDateDigits[p])};
}

// ---- sort --------------------------------------------------------------------------------

Items FnSort(EvalContext& ctx, const Items& in, const Node& call) {
  struct Key {
    const Node* expr;
    bool descending;
  };
  std::vector<Key> keys;
  for (const auto& a : call.args) {
    if (a->kind == NodeKind::kUnary && a->op == Op::kNegate) keys.push_back({a->target.get(), true});
    else keys.push_back({a.get(), false});
  }
  std::vector<std::vector<Items>> values(in.size());
  for (std::size_t i = 0; i < in.size(); ++i)
    for (const auto& k : keys) values[i].push_back(EvalWith(ctx, *k.expr, in[i], static_cast<std::int64_t>(i)));
  std::vector<std::size_t> order(in.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    if (keys.empty()) return CompareItems(ctx, in[x], in[y], call).value_or(0) < 0;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const Items& a = values[x][k];
      const Items& b = values[y][k];
      if (a.empty() || b.empty()) {  // empty keys come first, in either direction
        if (a.empty() != b.empty()) return a.empty();
        continue;
      }
      int c = CompareItems(ctx, a[0], b[0], call).value_or(0);
      if (c != 0) return keys[k].descending ? c > 0 : c < 0;
    }
    return false;
  });
  Items out;
  out.reserve(in.size());
  for (std::size_t i : order) out.push_back(in[i]);
  return out;
}

// ---- the table --------------------------------------------------------------------------------

constexpr int kMany = 16;

const FunctionDef kFunctions[] = {
    // name, min, max, impl, type argument, regex argument, needs order
    {"empty", 0, 0, FnEmpty},
    {"exists", 0, 1, FnExists},
    {"all", 1, 1, FnAll},
    {"allTrue", 0, 0, FnBooleans<true, true>},
    {"anyTrue", 0, 0, FnBooleans<false, true>},
    {"allFalse", 0, 0, FnBooleans<true, false>},
    {"anyFalse", 0, 0, FnBooleans<false, false>},
    {"subsetOf", 1, 1, FnSubsetOf},
    {"supersetOf", 1, 1, FnSupersetOf},
    {"count", 0, 0, FnCount},
    {"distinct", 0, 0, FnDistinct},
    {"isDistinct", 0, 0, FnIsDistinct},
    {"where", 1, 1, FnWhere},
    {"select", 1, 1, FnSelect},
    {"repeat", 1, 1, FnRepeat},
    {"ofType", 1, 1, FnOfType, true},
    {"as", 1, 1, FnOfType, true},
    {"is", 1, 1, FnIs, true},
    {"type", 0, 0, FnType},
    {"single", 0, 0, FnSingle, false, false, true},
    {"first", 0, 0, FnFirst, false, false, true},
    {"last", 0, 0, FnLast, false, false, true},
    {"tail", 0, 0, FnTail, false, false, true},
    {"skip", 1, 1, FnSkip, false, false, true},
    {"take", 1, 1, FnTake, false, false, true},
    {"intersect", 1, 1, FnIntersect},
    {"exclude", 1, 1, FnExclude},
    {"union", 1, 1, FnUnion},
    {"combine", 1, 1, FnCombine},
    {"iif", 2, 3, FnIif},
    {"not", 0, 0, FnNot},
    {"aggregate", 1, 2, FnAggregate},
    {"trace", 1, 2, FnTrace},
    {"toBoolean", 0, 0, FnConvert<Conversion::kBoolean, false>},
    {"convertsToBoolean", 0, 0, FnConvert<Conversion::kBoolean, true>},
    {"toInteger", 0, 0, FnConvert<Conversion::kInteger, false>},
    {"convertsToInteger", 0, 0, FnConvert<Conversion::kInteger, true>},
    {"toDecimal", 0, 0, FnConvert<Conversion::kDecimal, false>},
    {"convertsToDecimal", 0, 0, FnConvert<Conversion::kDecimal, true>},
    {"toString", 0, 0, FnConvert<Conversion::kString, false>},
    {"convertsToString", 0, 0, FnConvert<Conversion::kString, true>},
    {"toDate", 0, 0, FnConvert<Conversion::kDate, false>},
    {"convertsToDate", 0, 0, FnConvert<Conversion::kDate, true>},
    {"toDateTime", 0, 0, FnConvert<Conversion::kDateTime, false>},
    {"convertsToDateTime", 0, 0, FnConvert<Conversion::kDateTime, true>},
    {"toTime", 0, 0, FnConvert<Conversion::kTime, false>},
    {"convertsToTime", 0, 0, FnConvert<Conversion::kTime, true>},
    {"toQuantity", 0, 1, FnConvert<Conversion::kQuantity, false>},
    {"convertsToQuantity", 0, 1, FnConvert<Conversion::kQuantity, true>},
    {"indexOf", 1, 1, FnIndexOf},
    {"lastIndexOf", 1, 1, FnLastIndexOf},
    {"substring", 1, 2, FnSubstring},
    {"startsWith", 1, 1, FnStringTest<0>},
    {"endsWith", 1, 1, FnStringTest<1>},
    {"contains", 1, 1, FnStringTest<2>},
    {"upper", 0, 0, FnCase<true>},
    {"lower", 0, 0, FnCase<false>},
    {"replace", 2, 2, FnReplace},
    {"matches", 1, 1, FnMatches<false>, false, true},
    {"matchesFull", 1, 1, FnMatches<true>, false, true},
    {"replaceMatches", 2, 2, FnReplaceMatches, false, true},
    {"length", 0, 0, FnLength},
    {"toChars", 0, 0, FnToChars},
    {"trim", 0, 0, FnTrim},
    {"split", 1, 1, FnSplit},
    {"join", 0, 1, FnJoin},
    {"encode", 1, 1, FnEncode},
    {"decode", 1, 1, FnDecode},
    {"escape", 1, 1, FnEscape},
    {"unescape", 1, 1, FnUnescape},
    {"abs", 0, 0, FnAbs},
    {"ceiling", 0, 0, FnRounding<true>},
    {"floor", 0, 0, FnRounding<false>},
    {"truncate", 0, 0, FnTruncate},
    {"round", 0, 1, FnRound},
    {"exp", 0, 0, FnExp},
    {"ln", 0, 0, FnLn},
    {"log", 1, 1, FnLog},
    {"sqrt", 0, 0, FnSqrt},
    {"power", 1, 1, FnPower},
    {"children", 0, 0, FnChildren},
    {"descendants", 0, 0, FnDescendants},
    {"now", 0, 0, FnNow},
    {"today", 0, 0, FnToday},
    {"timeOfDay", 0, 0, FnTimeOfDay},
    {"extension", 1, 1, FnExtension},
    {"hasExtension", 1, 1, FnHasExtension},
    {"hasValue", 0, 0, FnHasValue},
    {"getValue", 0, 0, FnGetValue},
    {"resolve", 0, 0, FnResolve},
    {"memberOf", 1, 1, FnNothing},
    {"subsumes", 1, 1, FnNothing},
    {"subsumedBy", 1, 1, FnNothing},
    {"conformsTo", 1, 1, FnConformsTo},
    {"htmlChecks", 0, 0, FnHtmlChecks},
    {"comparable", 1, 1, FnComparable},
    {"lowBoundary", 0, 1, FnBoundary<false>},
    {"highBoundary", 0, 1, FnBoundary<true>},
    {"precision", 0, 0, FnPrecision},
    {"sort", 0, kMany, FnSort},
};

}  // namespace

const FunctionDef* FindFunction(std::string_view name) {
  for (const auto& f : kFunctions)
    if (f.name == name) return &f;
  return nullptr;
}

std::shared_ptr<const std::regex> CompileRegex(std::string_view pattern) {
  // FHIRPath regexes run in single-line mode: '.' matches line breaks too,
  // which ECMAScript '.' does not.
  std::string translated;
  bool in_class = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      translated += c;
      translated += pattern[++i];
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
      translated += c;
    } else if (c == '[') {
      in_class = true;
      translated += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') translated += pattern[++i];
    } else if (c == '.') {
      translated += "[\\s\\S]";
    } else {
      translated += c;
    }
  }
  try {
    return std::make_shared<const std::regex>(translated, std::regex::ECMAScript);
  } catch (const std::regex_error&) {
    return nullptr;
  }
}

}  // namespace eds::fhir::fhirpath
