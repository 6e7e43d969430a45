// The validator: one walk over the resource with the base element model
// (cardinality, primitives, invariants, bindings, fixed/pattern, maxLength,
// reference targets), then one walk per profile over its element tree.
#include "fhir/validator.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <unordered_map>

#include "fhir/canonical.hpp"
#include "fhir/conformance.hpp"
#include "fhir/definitions.hpp"
#include "fhir/element_rules.hpp"
#include "fhir/fhirpath.hpp"
#include "fhir/json.hpp"
#include "fhir/json_internal.hpp"
#include "fhir/primitives.hpp"
#include "fhir/terminology.hpp"

namespace eds::fhir {
namespace {

// A profile as messages name it: its canonical URL, with |version when it
// has one (several versions of one URL can be loaded side by side).
std::string ProfileName(const Profile& p) { return p.version.empty() ? p.url : p.url + "|" + p.version; }

constexpr std::size_t kMaxIssues = 300;

bool AllDigits(std::string_view s, std::size_t pos, std::size_t n, int* out = nullptr) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  if (out) *out = v;
  return true;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

enum class DateKind { kDate, kDateTime, kInstant };

// FHIR date, dateTime and instant syntax (R4 regular expressions), with
// real calendar days.
bool ValidDateLike(std::string_view s, DateKind kind) {
  int year = 0, month = 0, day = 0, h = 0, m = 0, sec = 0;
  if (!AllDigits(s, 0, 4, &year) || year == 0) return false;
  if (s.size() == 4) return kind != DateKind::kInstant;
  if (s[4] != '-' || !AllDigits(s, 5, 2, &month) || month < 1 || month > 12) return false;
  if (s.size() == 7) return kind != DateKind::kInstant;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (s.size() < 10 || s[7] != '-' || !AllDigits(s, 8, 2, &day) || day < 1 ||
      day > (month == 2 && IsLeap(year) ? 29 : kDays[month - 1]))
    return false;
  if (s.size() == 10) return kind != DateKind::kInstant;
  if (kind == DateKind::kDate) return false;
  if (s.size() < 19 || s[10] != 'T' || !AllDigits(s, 11, 2, &h) || s[13] != ':' || !AllDigits(s, 14, 2, &m) ||
      s[16] != ':' || !AllDigits(s, 17, 2, &sec) || h > 23 || m > 59 || sec > 60)
    return false;
  std::size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    std::size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return false;
  }
  if (pos >= s.size()) return false;  // a time needs its zone
  if (s[pos] == 'Z') return pos + 1 == s.size();
  int oh = 0, om = 0;
  if ((s[pos] != '+' && s[pos] != '-') || pos + 6 != s.size() || !AllDigits(s, pos + 1, 2, &oh) ||
      s[pos + 3] != ':' || !AllDigits(s, pos + 4, 2, &om) || om > 59 || oh > 14 || (oh == 14 && om != 0))
    return false;
  return true;
}

bool ValidTime(std::string_view s) {
  int h = 0, m = 0, sec = 0;
  if (s.size() < 8 || !AllDigits(s, 0, 2, &h) || s[2] != ':' || !AllDigits(s, 3, 2, &m) || s[5] != ':' ||
      !AllDigits(s, 6, 2, &sec) || h > 23 || m > 59 || sec > 60)
    return false;
  if (s.size() == 8) return true;
  if (s[8] != '.' || s.size() == 9) return false;
  return AllDigits(s, 9, s.size() - 9);
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

// code: [^\s]+(\s[^\s]+)*
bool ValidCode(std::string_view s) {
  if (s.empty() || IsSpace(s.front()) || IsSpace(s.back())) return false;
  for (std::size_t i = 1; i < s.size(); ++i)
    if (IsSpace(s[i]) && IsSpace(s[i - 1])) return false;
  return true;
}

bool NoWhitespace(std::string_view s) {
  for (char c : s)
    if (IsSpace(c)) return false;
  return true;
}

bool ValidOid(std::string_view s) {
  constexpr std::string_view kPrefix = "urn:oid:";
  if (s.substr(0, kPrefix.size()) != kPrefix) return false;
  s.remove_prefix(kPrefix.size());
  if (s.size() < 3 || s[0] < '0' || s[0] > '2' || s[1] != '.') return false;
  s.remove_prefix(2);
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '.') {
      std::string_view arc = s.substr(start, i - start);
      if (arc.empty() || (arc.size() > 1 && arc[0] == '0')) return false;
      start = i + 1;
    } else if (s[i] < '0' || s[i] > '9') {
      return false;
    }
  }
  return true;
}

bool ValidUuid(std::string_view s) {
  constexpr std::string_view kPrefix = "urn:uuid:";
  if (s.substr(0, kPrefix.size()) != kPrefix || s.size() != kPrefix.size() + 36) return false;
  s.remove_prefix(kPrefix.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
      return false;
    }
  }
  return true;
}

// string and markdown: [ \r\n\t\S]+ (no other control characters)
bool ValidString(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 && c != '\r' && c != '\n' && c != '\t') return false;
  return true;
}

// integer (32-bit), positiveInt and unsignedInt from a JSON number's text.
std::optional<std::string> CheckInteger(std::string_view text, std::string_view type) {
  long long v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range) return fmt::format("{} is out of range for {}", text, type);
  if (ec != std::errc() || p != text.data() + text.size())
    return fmt::format("'{}' is not a valid {} (a whole number is required)", text, type);
  if (v > 2147483647LL || v < -2147483648LL) return fmt::format("{} is out of range for {}", text, type);
  if (type == "positiveInt" && v < 1) return fmt::format("{} is not a valid positiveInt (must be 1 or more)", text);
  if (type == "unsignedInt" && v < 0) return fmt::format("{} is not a valid unsignedInt (must be 0 or more)", text);
  return std::nullopt;
}

// The message for a primitive value that does not match its type, or nullopt.
std::optional<std::string> CheckPrimitiveValue(const JsonValue& v, const std::string& type) {
  if (type == "integer" || type == "positiveInt" || type == "unsignedInt") {
    if (!IsNumber(v)) return std::nullopt;  // structure reports the JSON type
    return CheckInteger(NumberText(v), type);
  }
  if (!IsString(v)) return std::nullopt;
  std::string_view s = StringOf(v);
  if (s.empty()) return std::nullopt;  // structure reports empty strings
  auto bad = [&](std::string_view what) { return fmt::format("'{}' is not a valid {}", s, what); };
  if (type == "id") {
    if (!IsValidId(s)) return bad("id (1-64 characters of A-Z a-z 0-9 - .)");
  } else if (type == "code") {
    if (!ValidCode(s)) return bad("code (no leading, trailing or repeated whitespace)");
  } else if (type == "uri" || type == "url" || type == "canonical") {
    if (!NoWhitespace(s)) return bad(type + " (whitespace is not allowed)");
  } else if (type == "oid") {
    if (!ValidOid(s)) return bad("oid (urn:oid: followed by a dotted OID)");
  } else if (type == "uuid") {
    if (!ValidUuid(s)) return bad("uuid (urn:uuid: followed by a lower-case UUID)");
  } else if (type == "date") {
    if (!ValidDateLike(s, DateKind::kDate)) return bad("date (YYYY, YYYY-MM or YYYY-MM-DD)");
  } else if (type == "dateTime") {
    if (!ValidDateLike(s, DateKind::kDateTime))
      return bad("dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a time zone)");
  } else if (type == "instant") {
    if (!ValidDateLike(s, DateKind::kInstant)) return bad("instant (YYYY-MM-DDThh:mm:ss[.sss] with a time zone)");
  } else if (type == "time") {
    if (!ValidTime(s)) return bad("time (hh:mm:ss[.sss])");
  } else if (type == "base64Binary") {
    if (!IsBase64(s)) return fmt::format("the value is not valid base64 for base64Binary");
  } else if (type == "string" || type == "markdown") {
    if (!ValidString(s)) return fmt::format("a {} must not contain control characters", type);
  }
  return std::nullopt;
}

// JSON equality with numbers compared by their text.
bool JsonEqual(const JsonValue& a, const JsonValue& b) {
  if (a.GetType() != b.GetType()) return false;
  if (a.IsString()) return StringOf(a) == StringOf(b);
  if (a.IsObject()) {
    if (a.MemberCount() != b.MemberCount()) return false;
    for (const auto& m : a.GetObject()) {
      auto it = b.FindMember(m.name);
      if (it == b.MemberEnd() || !JsonEqual(m.value, it->value)) return false;
    }
    return true;
  }
  if (a.IsArray()) {
    if (a.Size() != b.Size()) return false;
    for (rapidjson::SizeType i = 0; i < a.Size(); ++i)
      if (!JsonEqual(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

// A FHIR pattern: every element of the pattern is in the value (arrays:
// each pattern item matches some value item).
bool PatternMatches(const JsonValue& pattern, const JsonValue& value) {
  if (pattern.IsObject()) {
    if (!value.IsObject()) return false;
    for (const auto& m : pattern.GetObject()) {
      auto it = value.FindMember(m.name);
      if (it == value.MemberEnd() || !PatternMatches(m.value, it->value)) return false;
    }
    return true;
  }
  if (pattern.IsArray()) {
    if (!value.IsArray()) {
      return pattern.Size() == 1 && PatternMatches(pattern[0], value);
    }
    for (const auto& p : pattern.GetArray()) {
      bool any = false;
      for (const auto& v : value.GetArray()) any = any || PatternMatches(p, v);
      if (!any) return false;
    }
    return true;
  }
  return JsonEqual(pattern, value);
}

// Type and id of a literal reference ("Patient/1", an absolute RESTful URL,
// with or without _history); empty type when it is not such a reference.
std::pair<std::string_view, std::string_view> ReferenceTarget(std::string_view ref) {
  if (ref.empty() || ref[0] == '#' || ref.substr(0, 4) == "urn:") return {};
  if (auto q = ref.find('?'); q != std::string_view::npos) return {};  // conditional reference
  std::vector<std::string_view> segs;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= ref.size(); ++i)
    if (i == ref.size() || ref[i] == '/') {
      segs.push_back(ref.substr(start, i - start));
      start = i + 1;
    }
  if (segs.size() >= 4 && segs[segs.size() - 2] == "_history") segs.resize(segs.size() - 2);
  if (segs.size() < 2) return {};
  std::string_view type = segs[segs.size() - 2], id = segs.back();
  if (!IsTypeNameSyntax(type) || !IsValidId(id)) return {};
  return {type, id};
}

}  // namespace

struct Validator::Impl {
  std::shared_ptr<const Definitions> defs;
  std::shared_ptr<const Terminology> terminology;
  std::shared_ptr<const ConformanceStore> profiles;
  fhirpath::Engine engine;
  std::unordered_map<const Constraint*, fhirpath::Expression> compiled;
  // fixed[x] and pattern[x] values, parsed once (numbers as text, like resources)
  std::unordered_map<const std::string*, std::unique_ptr<rapidjson::Document>> values;
  ValidatorStats stats;
  mutable std::atomic<std::size_t> evaluation_failures{0};

  Impl(std::shared_ptr<const Definitions> d, std::shared_ptr<const Terminology> t,
       std::shared_ptr<const ConformanceStore> p)
      : defs(std::move(d)), terminology(std::move(t)), profiles(std::move(p)), engine(defs) {}

  void Prepare(const ElementRules* rules) {
    if (rules == nullptr) return;
    for (const auto& c : rules->constraints) {
      if (c.expression.empty() || compiled.count(&c)) continue;
      ++stats.constraints;
      auto e = fhirpath::Expression::Parse(c.expression);
      if (e) {
        compiled.emplace(&c, std::move(*e));
      } else {
        ++stats.unparsed;
        if (std::find(stats.unparsed_keys.begin(), stats.unparsed_keys.end(), c.key) == stats.unparsed_keys.end())
          stats.unparsed_keys.push_back(c.key);
      }
    }
    for (const std::string* text : {&rules->fixed_json, &rules->pattern_json}) {
      if (text->empty() || values.count(text)) continue;
      auto doc = std::make_unique<rapidjson::Document>();
      std::string error;
      if (ParseJsonTree(*text, 64, *doc, error)) values.emplace(text, std::move(doc));
    }
  }

  void PrepareAll() {
    // every type's root rules and its elements (inline children included)
    std::vector<const std::vector<ElementInfo>*> pending;
    std::unordered_map<const void*, bool> seen;
    auto visit_scope = [&](const std::vector<ElementInfo>* scope) {
      if (scope != nullptr && !seen[scope]) {
        seen[scope] = true;
        pending.push_back(scope);
      }
    };
    for (const auto& t : AllTypes()) {
      Prepare(t->rules);
      visit_scope(t->elements);
    }
    while (!pending.empty()) {
      auto* scope = pending.back();
      pending.pop_back();
      for (const auto& e : *scope) {
        Prepare(e.rules);
        visit_scope(e.children);
      }
    }
    if (profiles)
      for (const auto& p : profiles->profiles())
        for (const auto& e : p->elements) Prepare(e.rules.get());
  }

  std::vector<const TypeInfo*> AllTypes() const {
    std::vector<const TypeInfo*> out;
    for (const auto& n : defs->resource_types())
      if (auto* t = defs->FindType(n)) out.push_back(t);
    // data types: walk from resources' element types
    std::unordered_map<const TypeInfo*, bool> seen;
    for (auto* t : out) seen[t] = true;
    for (std::size_t i = 0; i < out.size(); ++i) {
      std::vector<const std::vector<ElementInfo>*> scopes{out[i]->elements};
      for (std::size_t k = 0; k < scopes.size(); ++k)
        for (const auto& e : *scopes[k]) {
          if (e.children && scopes.size() < 10000 &&
              std::find(scopes.begin(), scopes.end(), e.children) == scopes.end())
            scopes.push_back(e.children);
          for (auto* et : e.types)
            if (!seen[et]) {
              seen[et] = true;
              out.push_back(et);
            }
        }
      for (auto* b = out[i]->base; b != nullptr; b = b->base)
        if (!seen[b]) {
          seen[b] = true;
          out.push_back(b);
        }
    }
    return out;
  }

  const JsonValue* Value(const std::string& text) const {
    auto it = values.find(&text);
    return it == values.end() ? nullptr : it->second.get();
  }
};

namespace {

// A member group of one JSON object: the element, its type, value and _value.
struct Member {
  const ElementInfo* element = nullptr;
  const TypeInfo* type = nullptr;
  std::string_view key;  // the JSON name without '_'
  const JsonValue* value = nullptr;
  const JsonValue* extension = nullptr;
};

class Walker {
 public:
  Walker(const Validator::Impl& v, Outcome& out) : v_(v), out_(out) {
    now_.now_ms = NowMs();
  }

  void Report(Severity severity, std::string code, std::string message, std::string expression) {
    if (out_.issues().size() >= kMaxIssues) return;
    out_.Add({severity, std::move(code), std::move(message), std::move(expression)});
  }

  void Resource(const JsonValue& obj, const std::string& expr) {
    if (!obj.IsObject()) return;
    auto rt = obj.FindMember("resourceType");
    if (rt == obj.MemberEnd() || !IsString(rt->value)) return;
    const TypeInfo* type = v_.defs->FindType(StringOf(rt->value));
    if (type == nullptr || type->kind != TypeKind::kResource || type->abstract) return;
    const JsonValue* saved = resource_;
    resource_ = &obj;
    Node(&obj, nullptr, nullptr, type, expr);
    resource_ = saved;
  }

  void Contained(const JsonValue& obj, const std::string& expr) {
    auto rt = obj.FindMember("resourceType");
    if (rt == obj.MemberEnd() || !IsString(rt->value)) return;
    const TypeInfo* type = v_.defs->FindType(StringOf(rt->value));
    if (type == nullptr || type->kind != TypeKind::kResource || type->abstract) return;
    Node(&obj, nullptr, nullptr, type, expr);
  }

  // One value of element `e` (nullptr at a resource root) of type `t`.
  void Node(const JsonValue* value, const JsonValue* extension, const ElementInfo* e, const TypeInfo* t,
            const std::string& expr) {
    if (value != nullptr && value->IsNull()) value = nullptr;
    if (extension != nullptr && !extension->IsObject()) extension = nullptr;
    if (value == nullptr && extension == nullptr) return;
    const ElementRules* rules = e != nullptr ? e->rules : nullptr;
    if (t->kind == TypeKind::kPrimitive) {
      if (value != nullptr) {
        if (auto problem = CheckPrimitiveValue(*value, t->name)) Report(Severity::kError, "value", *problem, expr);
        if (rules != nullptr) PrimitiveRules(*value, *rules, t, expr);
      }
      Invariants(value, extension, e, t, nullptr, expr);
      if (extension != nullptr)
        if (const TypeInfo* element = v_.defs->FindType("Element")) Children(*extension, *element->elements, expr);
      return;
    }
    if (!value->IsObject()) return;  // structure reports it
    if (e != nullptr && t->kind == TypeKind::kResource) {  // contained, Bundle.entry.resource, ...
      // a contained resource's local references (ref-1) point into its
      // container: %resource stays the container
      if (e->name == "contained") {
        Contained(*value, expr);
        return;
      }
      Resource(*value, expr);
      return;
    }
    if (rules != nullptr) ComplexRules(*value, *rules, t, expr);
    const std::vector<ElementInfo>* scope = e != nullptr && e->children != nullptr ? e->children : t->elements;
    Invariants(value, nullptr, e, t, e != nullptr ? e->children : nullptr, expr);
    Children(*value, *scope, expr);
  }

  // The members of `obj`, grouped by element, checked for cardinality and
  // each walked.
  void Children(const JsonValue& obj, const std::vector<ElementInfo>& scope, const std::string& expr) {
    if (!obj.IsObject()) return;
    std::vector<Member> members;
    for (const auto& m : obj.GetObject()) {
      std::string_view key = StringOf(m.name);
      if (key == "resourceType") continue;
      bool underscore = !key.empty() && key[0] == '_';
      if (underscore) key.remove_prefix(1);
      const ElementInfo* e = FindElementIn(scope, key);
      const TypeInfo* t = nullptr;
      if (e != nullptr && !e->choice) {
        t = e->types.empty() ? nullptr : e->types.front();
      } else {
        e = nullptr;
        for (const auto& c : scope)
          if (c.choice && (t = c.ChoiceType(key)) != nullptr) {
            e = &c;
            break;
          }
      }
      if (e == nullptr || t == nullptr) continue;  // unknown: structure reports it
      Member* slot = nullptr;
      for (auto& x : members)
        if (x.key == key) slot = &x;
      if (slot == nullptr) slot = &members.emplace_back(Member{e, t, key, nullptr, nullptr});
      (underscore ? slot->extension : slot->value) = &m.value;
    }
    // cardinality
    for (const auto& e : scope) {
      if (e.min == 0 && (e.max == "*" || e.max.empty())) continue;
      std::size_t count = 0;
      for (const auto& m : members)
        if (m.element == &e) count += Count(m);
      if (static_cast<int>(count) < e.min)
        Report(Severity::kError, "required",
               fmt::format("{}{} is required (minimum {}), but {} found", e.name, e.choice ? "[x]" : "", e.min,
                           count == 0 ? std::string("none was") : fmt::format("only {} were", count)),
               expr + "." + e.name);
      if (e.many && e.max != "*" && !e.max.empty()) {
        int max = std::atoi(e.max.c_str());
        if (static_cast<int>(count) > max)
          Report(Severity::kError, "structure",
                 fmt::format("{} may occur at most {} time(s), but occurs {} times", e.name, max, count),
                 expr + "." + e.name);
      }
    }
    for (const auto& m : members) {
      std::string base = expr + "." + std::string(m.key);
      bool va = m.value != nullptr && m.value->IsArray();
      bool xa = m.extension != nullptr && m.extension->IsArray();
      if (va || xa) {
        rapidjson::SizeType n = std::max(va ? m.value->Size() : 0, xa ? m.extension->Size() : 0);
        for (rapidjson::SizeType i = 0; i < n; ++i) {
          const JsonValue* v = va && i < m.value->Size() ? &(*m.value)[i] : nullptr;
          const JsonValue* x = xa && i < m.extension->Size() ? &(*m.extension)[i] : nullptr;
          Node(v, x, m.element, m.type, base + "[" + std::to_string(i) + "]");
        }
      } else {
        Node(m.value, m.extension, m.element, m.type, base);
      }
    }
  }

  static std::size_t Count(const Member& m) {
    bool va = m.value != nullptr && m.value->IsArray();
    bool xa = m.extension != nullptr && m.extension->IsArray();
    if (!va && !xa) {
      bool has = (m.value != nullptr && !m.value->IsNull()) || (m.extension != nullptr && m.extension->IsObject());
      return has ? 1 : 0;
    }
    rapidjson::SizeType n = std::max(va ? m.value->Size() : 0, xa ? m.extension->Size() : 0);
    std::size_t count = 0;
    for (rapidjson::SizeType i = 0; i < n; ++i) {
      bool v = va && i < m.value->Size() && !(*m.value)[i].IsNull();
      bool x = xa && i < m.extension->Size() && (*m.extension)[i].IsObject();
      count += v || x;
    }
    return count;
  }

  // Invariants of the element and of its type (each key once).
  void Invariants(const JsonValue* value, const JsonValue* extension, const ElementInfo* e, const TypeInfo* t,
                  const std::vector<ElementInfo>* scope, const std::string& expr) {
    const ElementRules* lists[] = {e != nullptr ? e->rules : nullptr, t->rules};
    std::string_view done[32];
    std::size_t n_done = 0;
    for (const ElementRules* rules : lists) {
      if (rules == nullptr) continue;
      for (const auto& c : rules->constraints) {
        bool repeat = false;
        for (std::size_t i = 0; i < n_done; ++i) repeat = repeat || done[i] == c.key;
        if (repeat) continue;
        if (n_done < 32) done[n_done++] = c.key;
        Evaluate(c, value, extension, t, scope, expr);
      }
    }
  }

  void Evaluate(const Constraint& c, const JsonValue* value, const JsonValue* extension, const TypeInfo* t,
                const std::vector<ElementInfo>* scope, const std::string& expr) {
    auto it = v_.compiled.find(&c);
    if (it == v_.compiled.end()) return;  // no expression, or one the engine cannot parse
    // ele-1 on a primitive with a value is hasValue(): true without evaluating
    if (c.key == "ele-1" && t->kind == TypeKind::kPrimitive && value != nullptr) return;
    auto r = v_.engine.EvaluateOnNode(it->second, value, extension, t, scope, *resource_, now_);
    if (!r) {
      ++v_.evaluation_failures;
      return;
    }
    if (r->empty()) return;
    if (r->size() == 1 && (*r)[0].kind == fhirpath::ValueKind::kBoolean && (*r)[0].boolean) return;
    if (r->size() == 1 && (*r)[0].kind != fhirpath::ValueKind::kBoolean) return;  // not a Boolean: not a verdict
    Report(c.severity, "invariant", fmt::format("constraint {} failed: {}", c.key, c.human), expr);
  }

  void PrimitiveRules(const JsonValue& value, const ElementRules& rules, const TypeInfo* t, const std::string& expr) {
    if (rules.max_length > 0 && IsString(value) && static_cast<int>(CodePoints(StringOf(value))) > rules.max_length)
      Report(Severity::kError, "too-long",
             fmt::format("the value is {} characters long; at most {} are allowed", CodePoints(StringOf(value)),
                         rules.max_length),
             expr);
    FixedAndPattern(value, rules, expr);
    if (!rules.binding_strength.empty() && IsString(value) &&
        (t->name == "code" || t->name == "string" || t->name == "uri"))
      BindingCodes(rules, {{std::string_view(), StringOf(value)}}, expr, false);
  }

  static std::size_t CodePoints(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  }

  void FixedAndPattern(const JsonValue& value, const ElementRules& rules, const std::string& expr) {
    if (!rules.fixed_json.empty())
      if (const JsonValue* fixed = v_.Value(rules.fixed_json); fixed && !JsonEqual(*fixed, value))
        Report(Severity::kError, "value", fmt::format("the value must be exactly {}", rules.fixed_json), expr);
    if (!rules.pattern_json.empty())
      if (const JsonValue* pattern = v_.Value(rules.pattern_json); pattern && !PatternMatches(*pattern, value))
        Report(Severity::kError, "value", fmt::format("the value must match the pattern {}", rules.pattern_json), expr);
  }

  void ComplexRules(const JsonValue& obj, const ElementRules& rules, const TypeInfo* t, const std::string& expr) {
    FixedAndPattern(obj, rules, expr);
    if (!rules.binding_strength.empty()) {
      std::vector<std::pair<std::string_view, std::string_view>> codings;
      auto add = [&](const JsonValue& coding) {
        if (!coding.IsObject()) return;
        auto c = coding.FindMember("code");
        if (c == coding.MemberEnd() || !IsString(c->value)) return;
        auto s = coding.FindMember("system");
        std::string_view system = s != coding.MemberEnd() && IsString(s->value) ? StringOf(s->value) : "";
        codings.emplace_back(system.empty() ? std::string_view("\x01") : system, StringOf(c->value));
      };
      if (t->name == "Coding") {
        add(obj);
      } else if (t->name == "CodeableConcept") {
        auto cs = obj.FindMember("coding");
        if (cs != obj.MemberEnd() && cs->value.IsArray())
          for (const auto& c : cs->value.GetArray()) add(c);
      } else if (const TypeInfo* quantity = v_.defs->FindType("Quantity"); quantity != nullptr && t->IsA(*quantity)) {
        add(obj);  // system and code of the unit
      } else {
        return;  // other bound types: not checked
      }
      if (!codings.empty()) BindingCodes(rules, codings, expr, t->name == "CodeableConcept");
    }
    if (!rules.target_types.empty() && t->name == "Reference") {
      auto ref = obj.FindMember("reference");
      if (ref == obj.MemberEnd() || !IsString(ref->value)) return;
      auto [type, id] = ReferenceTarget(StringOf(ref->value));
      if (type.empty() || !v_.defs->IsResourceType(type)) return;
      for (const auto& allowed : rules.target_types)
        if (allowed == "Resource" || allowed == type) return;
      std::string list;
      for (const auto& allowed : rules.target_types) list += (list.empty() ? "" : ", ") + allowed;
      Report(Severity::kError, "structure",
             fmt::format("a reference to {} is not allowed here; allowed targets: {}", type, list), expr);
    }
  }

  // Checks codes against a required (error) or extensible (warning) binding.
  // For a CodeableConcept one coding in the value set is enough.
  void BindingCodes(const ElementRules& rules, const std::vector<std::pair<std::string_view, std::string_view>>& codes,
                    const std::string& expr, bool any_of) {
    if (v_.terminology == nullptr) return;
    const bool required = rules.binding_strength == "required";
    if (!required && rules.binding_strength != "extensible") return;
    bool member = false, unknown = false;
    std::string why, bad;
    for (const auto& [system, code] : codes) {
      std::string reason;
      std::string_view sys = system == "\x01" ? std::string_view() : system;
      auto m = v_.terminology->Check(rules.value_set, sys, code, &reason);
      if (m == Terminology::Membership::kMember) {
        member = true;
      } else if (m == Terminology::Membership::kUnknown) {
        unknown = true;
        if (why.empty()) why = reason;
      } else if (bad.empty()) {
        bad = sys.empty() ? fmt::format("'{}'", code) : fmt::format("'{}' of {}", code, sys);
        if (!reason.empty()) bad += fmt::format(" ({})", reason);
        if (!any_of) break;
      }
      if (!any_of && m != Terminology::Membership::kMember) break;
    }
    if (member && (any_of || codes.size() == 1)) return;
    if (!bad.empty() && !(any_of && unknown)) {
      Report(required ? Severity::kError : Severity::kWarning, "code-invalid",
             fmt::format("the code {} is not in the value set {} ({} binding)", bad, rules.value_set,
                         rules.binding_strength),
             expr);
      return;
    }
    if (unknown && required)
      Report(Severity::kWarning, "not-supported", fmt::format("the code could not be checked: {}", why), expr);
  }

  // ---- profiles ---------------------------------------------------------

  // The instances of child `pe` in `obj`: values with their type and expression.
  struct Instance {
    const JsonValue* value = nullptr;
    const JsonValue* extension = nullptr;
    const TypeInfo* type = nullptr;
    const ElementInfo* base = nullptr;
    std::string expr;
  };

  void ProfileRoot(const Profile& p, const JsonValue& resource) {
    const TypeInfo* t = v_.defs->FindType(p.type);
    if (t == nullptr) return;
    resource_ = &resource;
    root_ = &resource;
    profile_ = &p;
    RootRules(p, &resource, t, p.type);
    ProfileNode(p.root(), resource, nullptr, t, t->elements, p.type);
  }

  // The invariants a profile adds on its root element.
  void RootRules(const Profile& p, const JsonValue* value, const TypeInfo* t, const std::string& expr) {
    if (p.root().rules == nullptr) return;
    for (const auto& c : p.root().rules->constraints) Evaluate(c, value, nullptr, t, nullptr, expr);
  }

  // Walks profile `p` (a resource, data type or extension profile) over
  // the value `i`.
  void WalkProfile(const Profile& p, const Instance& i) {
    if (i.value == nullptr || !i.value->IsObject() || depth_ >= kMaxProfileDepth) return;
    const Profile* saved_profile = profile_;
    const JsonValue* saved_resource = resource_;
    const TypeInfo* t = i.type;
    if (p.resource) {
      auto rt = i.value->FindMember("resourceType");
      if (rt == i.value->MemberEnd() || !IsString(rt->value) || StringOf(rt->value) != p.type) return;
      t = v_.defs->FindType(p.type);
      if (t == nullptr) return;
      resource_ = i.value;
    }
    profile_ = &p;
    ++depth_;
    RootRules(p, i.value, t, i.expr);
    ProfileNode(p.root(), *i.value, nullptr, t, t->elements, i.expr);
    --depth_;
    profile_ = saved_profile;
    resource_ = saved_resource;
  }

  // The profile the element's values must conform to, walked over `i`.
  void TypeProfile(const ProfileElement& pe, const Instance& i) {
    if (pe.type_profile != nullptr) WalkProfile(*pe.type_profile, i);
  }

  // Whether `i` conforms to profile `p` (its walk gives no error).
  bool Conforms(const Profile& p, const Instance& i) {
    Outcome scratch;
    Walker sub(v_, scratch);
    sub.root_ = root_;
    sub.resource_ = resource_;
    sub.depth_ = depth_ + 1;
    sub.unsupported_reported_ = true;
    sub.WalkProfile(p, i);
    return !scratch.HasErrors();
  }

  // The resource a reference points to inside the resource being validated
  // (contained, `#id`) or inside the Bundle it is in (by fullUrl, or Type/id);
  // nullptr when it is not there.
  const JsonValue* Resolve(std::string_view ref) const {
    if (ref.empty()) return nullptr;
    auto id_of = [](const JsonValue& r, std::string_view key) -> std::string_view {
      if (!r.IsObject()) return {};
      auto it = r.FindMember(rapidjson::StringRef(key.data(), key.size()));
      return it != r.MemberEnd() && IsString(it->value) ? StringOf(it->value) : std::string_view();
    };
    if (ref[0] == '#') {
      if (resource_ == nullptr) return nullptr;
      auto c = resource_->FindMember("contained");
      if (c == resource_->MemberEnd() || !c->value.IsArray()) return nullptr;
      for (const auto& r : c->value.GetArray())
        if (id_of(r, "id") == ref.substr(1)) return &r;
      return nullptr;
    }
    if (root_ == nullptr || id_of(*root_, "resourceType") != "Bundle") return nullptr;
    auto entries = root_->FindMember("entry");
    if (entries == root_->MemberEnd() || !entries->value.IsArray()) return nullptr;
    auto [type, id] = ReferenceTarget(ref);
    for (const auto& e : entries->value.GetArray()) {
      if (!e.IsObject()) continue;
      auto r = e.FindMember("resource");
      if (r == e.MemberEnd() || !r->value.IsObject()) continue;
      std::string_view full = id_of(e, "fullUrl");
      if (!full.empty() && full == ref) return &r->value;
      if (!type.empty() && id_of(r->value, "resourceType") == type && id_of(r->value, "id") == id) return &r->value;
    }
    return nullptr;
  }

  // The resource type a profile URL constrains: the profile's, or a core
  // resource definition's name; empty when unknown.
  std::string_view ProfileType(const std::string& canonical) const {
    if (const Profile* p = v_.profiles ? v_.profiles->Find(canonical) : nullptr) return p->type;
    // a core resource: its URL alone, or with the definitions' FHIR version
    constexpr std::string_view kCore = "http://hl7.org/fhir/StructureDefinition/";
    const auto [url, version] = SplitCanonical(canonical);
    if (url.substr(0, kCore.size()) == kCore && v_.defs->IsResourceType(url.substr(kCore.size())) &&
        (version.empty() || version == v_.defs->fhir_version()))
      return url.substr(kCore.size());
    return {};
  }

  // The `profile` discriminator: whether `value` (of slice element `at`)
  // conforms to one of its profiles; for a reference, whether the resource
  // it points to conforms to one of the target profiles (a target outside
  // the resource or Bundle: whether its type is the one a target profile
  // constrains). nullopt when a profile is unknown.
  std::optional<bool> ProfileMatch(const ProfileElement& at, const JsonValue& value, const TypeInfo* type,
                                   const std::string& expr) {
    if (!at.target_profiles.empty() && value.IsObject() && type != nullptr && type->name == "Reference") {
      auto ref = value.FindMember("reference");
      std::string_view r = ref != value.MemberEnd() && IsString(ref->value) ? StringOf(ref->value) : "";
      const JsonValue* target = Resolve(r);
      bool unknown = false;
      if (target != nullptr) {
        auto rt = target->FindMember("resourceType");
        std::string_view target_type = rt != target->MemberEnd() && IsString(rt->value) ? StringOf(rt->value) : "";
        for (const auto& url : at.target_profiles) {
          const Profile* p = v_.profiles ? v_.profiles->Find(url) : nullptr;
          if (p == nullptr) {
            std::string_view t = ProfileType(url);
            if (t.empty()) unknown = true;
            else if (t == target_type) return true;
            continue;
          }
          if (p->type != target_type) continue;
          Instance ti{target, nullptr, v_.defs->FindType(p->type), nullptr, expr};
          if (ti.type != nullptr && Conforms(*p, ti)) return true;
        }
        if (unknown) return std::nullopt;
        return false;
      }
      std::string_view type_name = ReferenceTarget(r).first;
      if (type_name.empty())
        if (auto t = value.FindMember("type"); t != value.MemberEnd() && IsString(t->value)) type_name = StringOf(t->value);
      if (type_name.empty()) return std::nullopt;
      for (const auto& url : at.target_profiles) {
        std::string_view t = ProfileType(url);
        if (t.empty()) unknown = true;
        else if (t == type_name) return true;
      }
      if (unknown) return std::nullopt;
      return false;
    }
    if (at.type_profiles.empty() || type == nullptr) return std::nullopt;
    bool unknown = false;
    for (const auto& url : at.type_profiles) {
      const Profile* p = v_.profiles ? v_.profiles->Find(url) : nullptr;
      if (p == nullptr) {
        unknown = true;
        continue;
      }
      Instance vi{&value, nullptr, type, nullptr, expr};
      if (Conforms(*p, vi)) return true;
    }
    if (unknown) return std::nullopt;
    return false;
  }


  void Instances(const ProfileElement& pe, const JsonValue& obj, const std::vector<ElementInfo>& scope,
                 const std::string& expr, std::vector<Instance>& out) {
    const ElementInfo* base = FindElementIn(scope, pe.name);
    if (base == nullptr) return;
    for (const auto& m : obj.GetObject()) {
      std::string_view key = StringOf(m.name);
      if (!key.empty() && key[0] == '_') continue;
      const TypeInfo* t = nullptr;
      if (base->choice) {
        t = base->ChoiceType(key);
        if (t == nullptr) continue;
      } else if (key == pe.name) {
        t = base->types.empty() ? nullptr : base->types.front();
      } else {
        continue;
      }
      if (t == nullptr) continue;
      std::string x = "_" + std::string(key);
      auto ext = obj.FindMember(rapidjson::StringRef(x.data(), x.size()));
      const JsonValue* xv = ext != obj.MemberEnd() ? &ext->value : nullptr;
      std::string e = expr + "." + std::string(key);
      if (m.value.IsArray()) {
        for (rapidjson::SizeType i = 0; i < m.value.Size(); ++i) {
          const JsonValue* xi = xv && xv->IsArray() && i < xv->Size() ? &(*xv)[i] : nullptr;
          if (m.value[i].IsNull() && xi == nullptr) continue;
          out.push_back({&m.value[i], xi, t, base, e + "[" + std::to_string(i) + "]"});
        }
      } else if (!m.value.IsNull()) {
        out.push_back({&m.value, xv, t, base, e});
      }
    }
  }

  void ProfileNode(const ProfileElement& pe, const JsonValue& obj, const ElementInfo* base_element,
                   const TypeInfo* t, const std::vector<ElementInfo>* scope, const std::string& expr) {
    if (!obj.IsObject() || scope == nullptr) return;
    (void)base_element;
    for (const ProfileElement* child : pe.children) {
      std::vector<Instance> found;
      Instances(*child, obj, *scope, expr, found);
      const ElementInfo* base = FindElementIn(*scope, child->name);
      std::string at = expr + "." + child->name;
      Cardinality(*child, found.size(), base, at, "");
      // choice narrowed to some types
      if (child->choice && !child->types.empty())
        for (const auto& i : found) {
          bool ok = false;
          for (const auto& code : child->types) ok = ok || code == i.type->name;
          if (!ok)
            Report(Severity::kError, "structure",
                   fmt::format("the type {} is not allowed by the profile {}", i.type->name, ProfileName(*profile_)), i.expr);
        }
      for (const auto& i : found) {
        InstanceRules(*child, i);
        TypeProfile(*child, i);
      }
      if (child->sliced || !child->slices.empty()) Slicing(*child, found, at);
      if (!child->children.empty())
        for (const auto& i : found) Descend(*child, i);
    }
    (void)t;
  }

  void Descend(const ProfileElement& pe, const Instance& i) {
    if (i.value == nullptr || !i.value->IsObject()) return;
    const std::vector<ElementInfo>* scope =
        i.base != nullptr && i.base->children != nullptr ? i.base->children : i.type->elements;
    ProfileNode(pe, *i.value, i.base, i.type, scope, i.expr);
  }

  void Cardinality(const ProfileElement& pe, std::size_t count, const ElementInfo* base, const std::string& at,
                   const std::string& slice) {
    std::string what = slice.empty() ? pe.name : fmt::format("{} (slice {})", pe.name, slice);
    if (pe.min && static_cast<int>(count) < *pe.min && (base == nullptr || !slice.empty() || *pe.min > base->min))
      Report(Severity::kError, "required",
             fmt::format("{} is required (minimum {}) by the profile {}, but {} found", what, *pe.min, ProfileName(*profile_),
                         count == 0 ? std::string("none was") : fmt::format("only {} were", count)),
             at);
    if (pe.max && *pe.max != "*") {
      int max = std::atoi(pe.max->c_str());
      bool same_as_base = base != nullptr && slice.empty() && base->max == *pe.max;
      if (!same_as_base && static_cast<int>(count) > max)
        Report(Severity::kError, "structure",
               fmt::format("{} may occur at most {} time(s) by the profile {}, but occurs {} times", what, max,
                           ProfileName(*profile_), count),
               at);
    }
  }

  // Whether a profile's binding is the base element's, which the base walk
  // checks already (`url` and `url|version` of its latest are one value set).
  bool SameBinding(const ElementRules* base, const ElementRules& own) const {
    if (base == nullptr || base->binding_strength != own.binding_strength) return false;
    return base->value_set == own.value_set ||
           (v_.terminology != nullptr && v_.terminology->SameValueSet(base->value_set, own.value_set));
  }

  void InstanceRules(const ProfileElement& pe, const Instance& i) {
    if (pe.rules == nullptr || i.value == nullptr) return;
    const ElementRules& rules = *pe.rules;
    const ElementRules* base = i.base != nullptr ? i.base->rules : nullptr;
    if (i.type->kind == TypeKind::kPrimitive) {
      ElementRules own = rules;
      if (SameBinding(base, own)) own.binding_strength.clear();
      own.constraints.clear();
      // the copy's fixed/pattern text is looked up by address: check those on the original
      own.fixed_json.clear();
      own.pattern_json.clear();
      FixedAndPattern(*i.value, rules, i.expr);
      PrimitiveRules(*i.value, own, i.type, i.expr);
    } else {
      ElementRules own = rules;
      if (SameBinding(base, own)) own.binding_strength.clear();
      if (base != nullptr && base->target_types == own.target_types) own.target_types.clear();
      // the copy's fixed/pattern text is looked up by address: check those on the original
      own.fixed_json.clear();
      own.pattern_json.clear();
      FixedAndPattern(*i.value, rules, i.expr);
      ComplexRules(*i.value, own, i.type, i.expr);
    }
    // invariants the base does not have
    for (const auto& c : rules.constraints) {
      bool in_base = false;
      for (const ElementRules* b : {base, i.type->rules})
        if (b != nullptr)
          for (const auto& k : b->constraints) in_base = in_base || k.key == c.key;
      if (!in_base) Evaluate(c, i.value, i.extension, i.type, i.base ? i.base->children : nullptr, i.expr);
    }
  }

  // Values at a dotted path below a JSON node (arrays flattened).
  static void Navigate(const JsonValue& node, std::string_view path, std::vector<const JsonValue*>& out) {
    if (path.substr(0, 6) == "$this.") path.remove_prefix(6);
    if (path.empty() || path == "$this") {
      if (node.IsArray()) {
        for (const auto& v : node.GetArray()) out.push_back(&v);
      } else {
        out.push_back(&node);
      }
      return;
    }
    if (node.IsArray()) {
      for (const auto& v : node.GetArray()) Navigate(v, path, out);
      return;
    }
    if (!node.IsObject()) return;
    auto dot = path.find('.');
    std::string_view head = path.substr(0, dot);
    std::string_view rest = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
    for (const auto& m : node.GetObject()) {
      std::string_view key = StringOf(m.name);
      if (key == head || (key.size() > head.size() && key.substr(0, head.size()) == head && key[head.size()] >= 'A' &&
                          key[head.size()] <= 'Z'))
        Navigate(m.value, rest, out);
    }
  }

  // The element of slice `slice` at a discriminator path.
  // (Where the slice does not name the element, the slice's type profile
  // is looked into: Patient.extension:x by url finds the extension's url.)
  static const ProfileElement* AtPath(const ProfileElement& slice, std::string_view path) {
    if (path.substr(0, 6) == "$this.") path.remove_prefix(6);
    if (path.empty() || path == "$this") return &slice;
    const ProfileElement* at = &slice;
    while (!path.empty()) {
      auto dot = path.find('.');
      std::string_view head = path.substr(0, dot);
      path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
      const ProfileElement* next = nullptr;
      for (const ProfileElement* c : at->children)
        if (c->name == head) next = c;
      if (next == nullptr && at->type_profile != nullptr)
        for (const ProfileElement* c : at->type_profile->root().children)
          if (c->name == head) next = c;
      if (next == nullptr) return nullptr;
      at = next;
    }
    return at;
  }

  // What one discriminator says about a value and a slice: it matches, it
  // does not, the slice does not constrain what the discriminator looks at
  // (no fixed/pattern value, no required or forbidden element, no narrowed
  // type or profile there), or it cannot be evaluated (a reference outside
  // the resource, an unknown profile, an unsupported path).
  enum class Verdict { kMatch, kNoMatch, kUnconstrained, kUnknown };

  Verdict Discriminate(const ProfileElement::Discriminator& d, const ProfileElement& slice, const Instance& i) {
    std::string_view path = d.path;
    const bool resolve = path.size() >= 10 && path.substr(path.size() - 10) == ".resolve()";
    if (resolve) path.remove_suffix(10);
    if (path.find('(') != std::string_view::npos) return Verdict::kUnknown;
    const ProfileElement* at = AtPath(slice, path);
    std::vector<const JsonValue*> values;
    Navigate(*i.value, path, values);
    if (resolve) {
      // the resources the references point to, by type (or profile)
      if (at == nullptr) return Verdict::kUnconstrained;
      if (at->max && *at->max == "0") return values.empty() ? Verdict::kMatch : Verdict::kNoMatch;
      bool narrowed = false;
      for (const auto& url : at->target_profiles)
        narrowed = narrowed || CanonicalUrl(url) != "http://hl7.org/fhir/StructureDefinition/Resource";
      if (!narrowed) return Verdict::kUnconstrained;
      if (d.type != "type" && d.type != "profile") return Verdict::kUnknown;
      if (values.empty()) return Verdict::kNoMatch;
      for (const JsonValue* v : values) {
        auto m = ProfileMatch(*at, *v, v_.defs->FindType("Reference"), i.expr);
        if (!m) return Verdict::kUnknown;
        if (!*m) return Verdict::kNoMatch;
      }
      return Verdict::kMatch;
    }
    if (d.type == "value" || d.type == "pattern") {
      const JsonValue* fixed = nullptr;
      const JsonValue* pattern = nullptr;
      if (at != nullptr && at->rules != nullptr) {
        fixed = at->rules->fixed_json.empty() ? nullptr : v_.Value(at->rules->fixed_json);
        pattern = at->rules->pattern_json.empty() ? nullptr : v_.Value(at->rules->pattern_json);
      }
      if (fixed == nullptr && pattern == nullptr && path == "url" && !slice.type_profiles.empty()) {
        // an extension slice: its url is the canonical URL of its definition
        // (without the |version the slice may name)
        for (const JsonValue* v : values)
          for (const auto& url : slice.type_profiles)
            if (IsString(*v) && StringOf(*v) == CanonicalUrl(url)) return Verdict::kMatch;
        return Verdict::kNoMatch;
      }
      if (fixed == nullptr && pattern == nullptr) return Verdict::kUnconstrained;
      for (const JsonValue* v : values)
        if (fixed != nullptr ? JsonEqual(*fixed, *v) : PatternMatches(*pattern, *v)) return Verdict::kMatch;
      return Verdict::kNoMatch;
    }
    if (d.type == "exists") {
      if (at == nullptr) return Verdict::kUnconstrained;
      bool must = at->min && *at->min > 0;
      bool must_not = at->max && *at->max == "0";
      if (!must && !must_not) return Verdict::kUnconstrained;
      if (must && values.empty()) return Verdict::kNoMatch;
      if (must_not && !values.empty()) return Verdict::kNoMatch;
      return Verdict::kMatch;
    }
    if (d.type == "type") {
      if (at == nullptr || at->types.empty()) return Verdict::kUnconstrained;
      for (const JsonValue* v : values) {
        std::string_view type = i.type->name;
        if (v->IsObject())
          if (auto rt = v->FindMember("resourceType"); rt != v->MemberEnd() && IsString(rt->value))
            type = StringOf(rt->value);
        for (const auto& code : at->types)
          if (code == type) return Verdict::kMatch;
      }
      return Verdict::kNoMatch;
    }
    if (d.type == "profile") {
      if (at == nullptr || (at->type_profiles.empty() && at->target_profiles.empty())) return Verdict::kUnconstrained;
      const TypeInfo* vt = path.empty() || path == "$this" ? i.type : nullptr;
      if (vt == nullptr && at->types.size() == 1) vt = v_.defs->FindType(at->types.front());
      bool unknown = false;
      for (const JsonValue* v : values) {
        auto m = ProfileMatch(*at, *v, vt, i.expr);
        if (!m) unknown = true;
        else if (*m) return Verdict::kMatch;
      }
      return unknown ? Verdict::kUnknown : Verdict::kNoMatch;
    }
    return Verdict::kUnknown;
  }

  // Whether `value` belongs to `slice` under the discriminators of the
  // sliced element: every discriminator the slice constrains matches (and
  // it constrains at least one); nullopt when that cannot be decided.
  std::optional<bool> InSlice(const ProfileElement& sliced, const ProfileElement& slice, const Instance& i) {
    bool decided = false, unknown = false;
    for (const auto& d : sliced.discriminators) {
      switch (Discriminate(d, slice, i)) {
        case Verdict::kNoMatch: return false;
        case Verdict::kMatch: decided = true; break;
        case Verdict::kUnknown: unknown = true; break;
        case Verdict::kUnconstrained: break;
      }
    }
    if (unknown || !decided) return std::nullopt;
    return true;
  }

  // Puts each value in its slice, in the order of the values: the rules
  // openAtEnd and ordered are about that order. A value whose slice cannot
  // be decided counts as in no slice for closed slicing only.
  void Slicing(const ProfileElement& sliced, const std::vector<Instance>& found, const std::string& at) {
    std::vector<std::size_t> counts(sliced.slices.size(), 0);
    const Instance* unsliced = nullptr;  // the first value in no slice (openAtEnd)
    std::optional<std::size_t> last;     // the slice of the previous sliced value (ordered)
    for (const auto& i : found) {
      const ProfileElement* match = nullptr;
      std::size_t index = 0;
      bool undecided = false;
      for (std::size_t k = 0; k < sliced.slices.size() && match == nullptr; ++k) {
        auto in = InSlice(sliced, *sliced.slices[k], i);
        if (!in) {
          undecided = true;
          if (!unsupported_reported_) {
            Report(Severity::kWarning, "not-supported",
                   fmt::format("the slices of {} in {} use a discriminator this server cannot evaluate", sliced.id,
                               ProfileName(*profile_)),
                   at);
            unsupported_reported_ = true;
          }
          continue;
        }
        if (*in) {
          match = sliced.slices[k];
          index = k;
        }
      }
      if (match == nullptr) {
        if (sliced.closed)
          Report(Severity::kError, "structure",
                 fmt::format("the value matches none of the slices of {}, and the slicing is closed", sliced.id),
                 i.expr);
        if (!undecided && unsliced == nullptr) unsliced = &i;
        continue;
      }
      if (sliced.open_at_end && unsliced != nullptr)
        Report(Severity::kError, "structure",
               fmt::format("the value matches the slice {} of {}, but comes after {}, which matches none; the slicing "
                           "is openAtEnd, so values outside the slices must follow all the sliced ones",
                           match->slice_name, sliced.id, unsliced->expr),
               i.expr);
      if (sliced.ordered && last && *last > index)
        Report(Severity::kError, "structure",
               fmt::format("the value matches the slice {} of {}, but comes after a value of the slice {}; the "
                           "slicing is ordered, so values must follow the order of the slices",
                           match->slice_name, sliced.id, sliced.slices[*last]->slice_name),
               i.expr);
      if (!last || *last < index) last = index;
      ++counts[index];
      InstanceRules(*match, i);
      TypeProfile(*match, i);
      if (!match->children.empty()) Descend(*match, i);
    }
    for (std::size_t k = 0; k < sliced.slices.size(); ++k)
      Cardinality(*sliced.slices[k], counts[k], nullptr, at, sliced.slices[k]->slice_name);
  }

 private:
  const Validator::Impl& v_;
  Outcome& out_;
  static constexpr int kMaxProfileDepth = 8;  // profiles within profiles (extensions of extensions)
  const JsonValue* resource_ = nullptr;
  const JsonValue* root_ = nullptr;  // the resource validated (a Bundle: where references resolve)
  const Profile* profile_ = nullptr;
  int depth_ = 0;
  bool unsupported_reported_ = false;
  fhirpath::EvalOptions now_;

};

}  // namespace

Validator::Validator(std::shared_ptr<const Definitions> defs, std::shared_ptr<const Terminology> terminology,
                     std::shared_ptr<const ConformanceStore> profiles)
    : impl_(std::make_unique<Impl>(std::move(defs), std::move(terminology), std::move(profiles))) {
  impl_->PrepareAll();
}

Validator::~Validator() = default;

const ValidatorStats& Validator::stats() const { return impl_->stats; }
std::size_t Validator::evaluation_failures() const { return impl_->evaluation_failures.load(); }
const ConformanceStore* Validator::profiles() const { return impl_->profiles.get(); }

Outcome Validator::Validate(const Resource& resource, const ValidationOptions& options) const {
  Outcome out;
  if (options.structure) out = impl_->defs->CheckStructure(resource);
  const JsonValue& doc = resource.tree().doc;
  Walker walker(*impl_, out);
  walker.Resource(doc, resource.type());
  std::vector<std::pair<std::string, bool>> wanted;  // url, declared in meta.profile
  if (options.declared_profiles && doc.IsObject())
    if (auto meta = doc.FindMember("meta"); meta != doc.MemberEnd() && meta->value.IsObject())
      if (auto p = meta->value.FindMember("profile"); p != meta->value.MemberEnd() && p->value.IsArray())
        for (const auto& u : p->value.GetArray())
          if (IsString(u)) wanted.emplace_back(std::string(StringOf(u)), true);
  for (const auto& u : options.profiles) wanted.emplace_back(u, false);
  for (std::size_t k = 0; k < wanted.size(); ++k) {
    const auto& [url, declared] = wanted[k];
    const Profile* p = impl_->profiles ? impl_->profiles->Find(url) : nullptr;
    if (p == nullptr) {
      out.Add({declared ? Severity::kWarning : Severity::kError, declared ? "not-supported" : "not-found",
               fmt::format("the profile {} is not known to this server, so the resource was not checked against it",
                           url),
               declared ? fmt::format("{}.meta.profile[{}]", resource.type(), k) : std::string()});
      continue;
    }
    if (p->type != resource.type()) {
      out.Add({Severity::kError, "invalid",
               fmt::format("the profile {} constrains {}, not {}", url, p->type, resource.type()), resource.type()});
      continue;
    }
    Walker pw(*impl_, out);
    pw.ProfileRoot(*p, doc);
  }
  return out;
}

}  // namespace eds::fhir

namespace eds::fhir {

Result<ValidateInput> ReadValidateInput(Resource body, const std::string& type) {
  ValidateInput in;
  if (body.type() != "Parameters" || type == "Parameters") {
    in.resource = std::move(body);
    return in;
  }
  const JsonValue& doc = body.tree().doc;
  auto params = doc.FindMember("parameter");
  if (params != doc.MemberEnd() && params->value.IsArray())
    for (rapidjson::SizeType i = 0; i < params->value.Size(); ++i) {
      const JsonValue& p = params->value[i];
      if (!p.IsObject()) continue;
      auto name = p.FindMember("name");
      if (name == p.MemberEnd() || !IsString(name->value)) continue;
      std::string_view n = StringOf(name->value);
      auto value = [&](std::initializer_list<const char*> keys) -> std::string {
        for (const char* k : keys)
          if (auto v = p.FindMember(k); v != p.MemberEnd() && IsString(v->value)) return std::string(StringOf(v->value));
        return {};
      };
      if (n == "resource") {
        auto r = p.FindMember("resource");
        if (r == p.MemberEnd() || !r->value.IsObject())
          return MakeError(ErrorKind::kInvalid, "the resource parameter holds no resource",
                           fmt::format("Parameters.parameter[{}]", i));
        auto parsed = Resource::Parse(SerializeJson(r->value));
        if (!parsed) return std::move(parsed.error());
        in.resource = std::move(*parsed);
      } else if (n == "mode") {
        in.mode = value({"valueCode", "valueString"});
        if (in.mode != "create" && in.mode != "update" && in.mode != "delete")
          return MakeError(ErrorKind::kInvalid, fmt::format("unknown $validate mode '{}' (create, update, delete)", in.mode),
                           fmt::format("Parameters.parameter[{}]", i));
      } else if (n == "profile") {
        std::string url = value({"valueUri", "valueCanonical", "valueString"});
        if (!url.empty()) in.profiles.push_back(url);
      }
    }
  if (!in.resource && in.mode != "delete")
    return MakeError(ErrorKind::kInvalid, "$validate needs a resource: send it bare, or as the resource parameter",
                     "Parameters");
  return in;
}

}  // namespace eds::fhir
