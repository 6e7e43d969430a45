// FHIR search request parsing.
#include "fhir/search_query.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "fhir/primitives.hpp"

namespace eds::fhir {
namespace {

struct PrefixCodeEntry {
  const char* code;
  Prefix prefix;
};
constexpr PrefixCodeEntry kPrefixes[] = {{"eq", Prefix::kEq}, {"ne", Prefix::kNe}, {"gt", Prefix::kGt},
                                         {"lt", Prefix::kLt}, {"ge", Prefix::kGe}, {"le", Prefix::kLe},
                                         {"sa", Prefix::kSa}, {"eb", Prefix::kEb}, {"ap", Prefix::kAp}};

Error Invalid(const std::string& param, std::string message) {
  return MakeError(ErrorKind::kInvalid, fmt::format("search parameter '{}': {}", param, message), param);
}

bool IsDecimal(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  std::size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    std::size_t exp = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++exp;
    if (exp == 0) return false;
  }
  return i == s.size();
}

bool TakesPrefix(SearchParamType t) {
  return t == SearchParamType::kNumber || t == SearchParamType::kDate || t == SearchParamType::kQuantity;
}

// Modifiers each parameter type supports here. Terminology-based ones
// (in, not-in, above/below on tokens) need a terminology service: refused.
bool ModifierAllowed(SearchParamType t, const std::string& m, const std::vector<std::string>& targets) {
  if (m.empty() || m == "missing") return true;
  switch (t) {
    case SearchParamType::kString: return m == "exact" || m == "contains";
    case SearchParamType::kToken: return m == "text" || m == "not" || m == "of-type";
    case SearchParamType::kReference:
      return m == "identifier" || std::find(targets.begin(), targets.end(), m) != targets.end() ||
             (targets.empty() && IsTypeNameSyntax(m));
    case SearchParamType::kUri: return m == "above" || m == "below";
    default: return false;
  }
}

bool ParseInt(std::string_view s, long& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

class Parser {
 public:
  Parser(const SearchParameterRegistry& reg, const SearchOptions& opt, SearchQuery& q)
      : reg_(reg), opt_(opt), q_(q) {}

  std::optional<Error> Param(const std::string& name, const std::string& value) {
    if (name == "_format" || name == "_pretty") return std::nullopt;  // handled by the HTTP layer
    if (name == "_count") return Count(value);
    if (name == "_offset") return Offset(value);
    if (name == "_cursor") {
      q_.cursor = value;
      return std::nullopt;
    }
    if (name == "_sort") return Sort(value);
    if (name == "_include" || name == "_include:iterate" || name == "_include:recurse")
      return Include(name, value, name != "_include", q_.includes);
    if (name == "_revinclude" || name == "_revinclude:iterate" || name == "_revinclude:recurse")
      return Include(name, value, name != "_revinclude", q_.revincludes);
    if (name == "_summary") return Summary(value);
    if (name == "_elements") {
      for (const auto& e : SplitEscaped(value, ',')) q_.elements.push_back(Unescape(e));
      q_.used.emplace_back(name, value);
      return std::nullopt;
    }
    if (name == "_total") return Total(value);
    if (name == "_type" && q_.resource_type.empty()) return std::nullopt;  // read first, by ParseSearch
    return Criterion(name, value);
  }

 private:
  std::optional<Error> Ignore(const std::string& name, std::string why) {
    if (opt_.strict) return Invalid(name, why);
    q_.ignored.Add({Severity::kWarning, "not-supported",
                    fmt::format("search parameter '{}' ignored: {}", name, why), name});
    return std::nullopt;
  }

  std::optional<Error> Count(const std::string& v) {
    long n = 0;
    if (!ParseInt(v, n) || n < 0) return Invalid("_count", "expected a whole number >= 0, got '" + v + "'");
    q_.count = static_cast<int>(std::min<long>(n, opt_.max_count));
    q_.used.emplace_back("_count", std::to_string(*q_.count));
    return std::nullopt;
  }

  std::optional<Error> Offset(const std::string& v) {
    long n = 0;
    if (!ParseInt(v, n) || n < 0) return Invalid("_offset", "expected a whole number >= 0, got '" + v + "'");
    q_.offset = n;
    q_.used.emplace_back("_offset", v);
    return std::nullopt;
  }

  std::optional<Error> Summary(const std::string& v) {
    if (v == "true") q_.summary = SummaryMode::kTrue;
    else if (v == "false") q_.summary = SummaryMode::kFalse;
    else if (v == "count") q_.summary = SummaryMode::kCount;
    else if (v == "data") q_.summary = SummaryMode::kData;
    else if (v == "text") q_.summary = SummaryMode::kText;
    else return Invalid("_summary", "expected true, false, count, data or text, got '" + v + "'");
    q_.used.emplace_back("_summary", v);
    return std::nullopt;
  }

  std::optional<Error> Total(const std::string& v) {
    if (v == "none") q_.total = TotalMode::kNone;
    else if (v == "estimate") q_.total = TotalMode::kEstimate;
    else if (v == "accurate") q_.total = TotalMode::kAccurate;
    else return Invalid("_total", "expected none, estimate or accurate, got '" + v + "'");
    q_.used.emplace_back("_total", v);
    return std::nullopt;
  }


 public:
  std::optional<Error> Types(const std::string& v) {
    for (const auto& t : SplitEscaped(v, ',')) {
      std::string type = Unescape(t);
      if (reg_.ForType(type).empty()) return Invalid("_type", "unknown resource type '" + type + "'");
      if (std::find(q_.types.begin(), q_.types.end(), type) == q_.types.end()) q_.types.push_back(type);
    }
    q_.used.emplace_back("_type", v);
    return std::nullopt;
  }

 private:
  // A parameter of a search over several types: the one every type in
  // _type has, with the same type (or, without _type, one of Resource).
  const SearchParamDef* CommonParam(const std::string& code, std::string& why) const {
    if (q_.types.empty()) {
      const SearchParamDef* p = reg_.Find("Basic", code);
      if (p != nullptr && std::find(p->base.begin(), p->base.end(), "Resource") == p->base.end() &&
          std::find(p->base.begin(), p->base.end(), "DomainResource") == p->base.end())
        p = nullptr;
      if (p == nullptr) why = "searching all types supports only parameters common to all of them; name the types with _type";
      return p;
    }
    const SearchParamDef* first = reg_.Find(q_.types.front(), code);
    for (const auto& t : q_.types) {
      const SearchParamDef* p = reg_.Find(t, code);
      if (p == nullptr || first == nullptr || p->type != first->type) {
        why = fmt::format("'{}' is not a parameter of the same type on every type in _type", code);
        return nullptr;
      }
    }
    return first;
  }

  // The rows of reference parameter `code` that other parameters' rows
  // hold, on each of `types` (listed in the result when `list_types`).
  std::vector<SharedReferenceRows> SharedReferences(const std::vector<std::string>& types, const std::string& code,
                                                    bool list_types) const {
    std::vector<SharedReferenceRows> out;
    for (const auto& t : types) {
      const SearchParamDef* p = reg_.Find(t, code);
      if (p == nullptr) continue;
      auto s = reg_.SharedReferencesOf(t, *p);
      if (!s) continue;
      auto it = std::find_if(out.begin(), out.end(), [&](const SharedReferenceRows& r) {
        return r.code == s->code && r.target_type == s->target_type;
      });
      if (it == out.end()) it = out.insert(out.end(), {s->code, s->target_type, {}});
      if (list_types) it->resource_types.push_back(t);
    }
    return out;
  }

  // Per component of composite `p` on `type`: every code whose rows a
  // search reads (see SearchCriterion::component_rows).
  std::vector<std::vector<std::string>> ComponentRows(const std::string& type, const SearchParamDef& p) const {
    std::vector<const SearchParamDef*> sources{&p};
    if (auto shared = reg_.SharedRowsOf(p))
      for (const auto& code : shared->shared)
        if (const SearchParamDef* s = reg_.Find(type, code)) sources.push_back(s);
    std::vector<std::vector<std::string>> out(p.components.size());
    for (std::size_t k = 0; k < out.size(); ++k) {
      auto add = [&](std::string code) {
        if (std::find(out[k].begin(), out[k].end(), code) == out[k].end()) out[k].push_back(std::move(code));
      };
      for (const SearchParamDef* s : sources) add(s->code + "$" + std::to_string(k));
      for (const SearchParamDef* s : sources) {
        auto roots = reg_.RootComponentsOf(type, *s);
        if (roots.size() == out.size()) add(roots[k]->code);
      }
    }
    return out;
  }

  std::optional<Error> Sort(const std::string& v) {
    const std::string& type = q_.resource_type;
    for (const auto& raw : SplitEscaped(v, ',')) {
      std::string key = Unescape(raw);
      SortKey k;
      if (!key.empty() && key[0] == '-') {
        k.descending = true;
        key.erase(0, 1);
      }
      k.code = key;
      k.param = type.empty() ? nullptr : reg_.Find(type, key);
      if (k.param != nullptr) {
        if (auto shared = reg_.SharedRowsOf(*k.param)) k.shared_rows = shared->shared;
        k.shared_references = SharedReferences({type}, key, false);
      }
      if (k.param == nullptr && key != "_id" && key != "_lastUpdated")
        return Invalid("_sort", "unknown search parameter '" + key + "'");
      if (k.param != nullptr && (k.param->type == SearchParamType::kComposite ||
                                 k.param->type == SearchParamType::kSpecial))
        return Invalid("_sort", "cannot sort by the " + std::string(SearchParamTypeCode(k.param->type)) +
                                    " parameter '" + key + "'");
      q_.sort.push_back(k);
    }
    q_.used.emplace_back("_sort", v);
    return std::nullopt;
  }

  std::optional<Error> Include(const std::string& name, const std::string& v, bool iterate,
                               std::vector<IncludeSpec>& out) {
    IncludeSpec spec;
    spec.iterate = iterate;
    if (v == "*") {
      spec.wildcard = true;
      out.push_back(spec);
      q_.used.emplace_back(name, v);
      return std::nullopt;
    }
    auto parts = SplitEscaped(v, ':');
    if (parts.size() < 2 || parts.size() > 3)
      return Invalid(name, "expected Type:parameter[:targetType], got '" + v + "'");
    spec.source_type = Unescape(parts[0]);
    std::string code = Unescape(parts[1]);
    if (code == "*") {
      spec.wildcard = true;
      for (const SearchParamDef* d : reg_.ForType(spec.source_type))
        if (d->type == SearchParamType::kReference) spec.wildcard_params.push_back(d->code);
    } else {
      spec.param = reg_.Find(spec.source_type, code);
      if (spec.param == nullptr || spec.param->type != SearchParamType::kReference)
        return Invalid(name, fmt::format("'{}' is not a reference parameter of {}", code, spec.source_type));
      spec.shared_references = SharedReferences({spec.source_type}, code, false);
    }
    if (parts.size() == 3) spec.target_type = Unescape(parts[2]);
    out.push_back(spec);
    q_.used.emplace_back(name, v);
    return std::nullopt;
  }

  // The target type of a chain step through `param` of `type`, followed by
  // parameter `next`: an explicit `:Type`; else the one type the branch for
  // `type` narrows to (`.where(resolve() is Patient)`); else the only target
  // that has `next`.
  std::optional<Error> ChainTarget(const std::string& name, const std::string& type, const SearchParamDef& param,
                                   const std::string& modifier, const std::string& next, std::string& target,
                                   std::vector<std::string>* all_targets = nullptr) {
    if (!modifier.empty()) {
      if (!param.targets.empty() &&
          std::find(param.targets.begin(), param.targets.end(), modifier) == param.targets.end())
        return Invalid(name, fmt::format("{} cannot refer to {}", param.code, modifier));
      target = modifier;
      return std::nullopt;
    }
    std::vector<std::string> candidates;
    const std::string expression = reg_.ExpressionFor(param, type);
    for (const auto& t : param.targets)
      if (expression.find("resolve() is " + t + ")") != std::string::npos) candidates.push_back(t);
    if (candidates.size() != 1) {
      candidates.clear();
      for (const auto& t : param.targets)
        if (reg_.Find(t, next) != nullptr) candidates.push_back(t);
    }
    if (candidates.size() == 1) {
      target = candidates.front();
      return std::nullopt;
    }
    // several targets with the next parameter alike: the chain follows them all
    if (candidates.size() > 1 && all_targets != nullptr) {
      const SearchParamDef* first = reg_.Find(candidates.front(), next);
      bool alike = first != nullptr;
      for (const auto& t : candidates) {
        const SearchParamDef* d = reg_.Find(t, next);
        alike = alike && d != nullptr && d->type == first->type;
      }
      if (alike) {
        target = candidates.front();
        *all_targets = candidates;
        return std::nullopt;
      }
    }
    return Invalid(name, fmt::format("{} may refer to several types; name one, e.g. {}:{}", param.code,
                                     param.code, param.targets.empty() ? "Patient" : param.targets.front()));
  }

  std::optional<Error> Criterion(const std::string& name, const std::string& value) {
    SearchCriterion c;
    c.name = name;
    std::string type = q_.resource_type;
    std::string_view rest = name;
    // _has:Type:refparam:... (may nest)
    while (rest.substr(0, 5) == "_has:") {
      auto p1 = rest.find(':', 5);
      auto p2 = p1 == std::string_view::npos ? p1 : rest.find(':', p1 + 1);
      if (p2 == std::string_view::npos) return Invalid(name, "expected _has:Type:reference:parameter");
      std::string has_type(rest.substr(5, p1 - 5));
      std::string ref(rest.substr(p1 + 1, p2 - p1 - 1));
      const SearchParamDef* rp = reg_.Find(has_type, ref);
      if (rp == nullptr || rp->type != SearchParamType::kReference)
        return Invalid(name, fmt::format("'{}' is not a reference parameter of {}", ref, has_type));
      if (!type.empty() && !rp->targets.empty() &&
          std::find(rp->targets.begin(), rp->targets.end(), type) == rp->targets.end())
        return Invalid(name, fmt::format("{}.{} cannot refer to {}", has_type, ref, type));
      c.reverse.push_back({has_type, rp, SharedReferences({has_type}, ref, false)});
      type = has_type;
      rest = rest.substr(p2 + 1);
    }
    // forward chain: a:T.b.c
    std::vector<std::string> links;
    {
      std::size_t start = 0;
      for (std::size_t i = 0; i <= rest.size(); ++i)
        if (i == rest.size() || rest[i] == '.') {
          links.emplace_back(rest.substr(start, i - start));
          start = i + 1;
        }
    }
    for (std::size_t i = 0; i < links.size(); ++i) {
      std::string code = links[i], modifier;
      if (auto colon = code.find(':'); colon != std::string::npos) {
        modifier = code.substr(colon + 1);
        code.resize(colon);
      }
      const SearchParamDef* p = nullptr;
      if (type.empty()) {
        std::string why;
        if (i + 1 < links.size() || !c.reverse.empty())
          return Ignore(name, "chains are not supported when searching several types");
        p = CommonParam(code, why);
        if (p == nullptr) return Ignore(name, why);
        type = q_.types.empty() ? "Basic" : q_.types.front();
      } else {
        p = reg_.Find(type, code);
      }
      if (p == nullptr) return Ignore(name, fmt::format("{} has no search parameter '{}'", type, code));
      if (i + 1 < links.size()) {
        if (opt_.supported && !opt_.supported(type, *p))
          return Ignore(name, fmt::format("searching {} by '{}' is not supported yet", type, code));
        if (p->type != SearchParamType::kReference)
          return Invalid(name, fmt::format("'{}' is not a reference parameter, so it cannot be chained", code));
        std::string target, next = links[i + 1].substr(0, links[i + 1].find(':'));
        std::vector<std::string> all_targets;
        if (auto e = ChainTarget(name, type, *p, modifier, next, target, &all_targets)) return e;
        c.chain.push_back({type, p, SharedReferences({type}, code, false), target, all_targets});
        type = target;
        continue;
      }
      if (opt_.supported && !opt_.supported(type, *p))
        return Ignore(name, fmt::format("searching {} by '{}' is not supported yet", type, code));
      if (!ModifierAllowed(p->type, modifier, p->targets))
        return Invalid(name, fmt::format("modifier ':{}' is not supported for {} parameters", modifier,
                                         SearchParamTypeCode(p->type)));
      c.param = p;
      if (auto shared = reg_.SharedRowsOf(*p)) c.shared_rows = shared->shared;
      c.modifier = modifier;
      c.resource_type = q_.resource_type.empty() && c.chain.empty() && c.reverse.empty() ? "" : type;
      if (p->type == SearchParamType::kReference)
        c.shared_references = c.resource_type.empty() ? SharedReferences(q_.types, code, true)
                                                      : SharedReferences({type}, code, false);
      if (p->type == SearchParamType::kComposite) c.component_rows = ComponentRows(type, *p);
    }
    if (c.param->type == SearchParamType::kSpecial)
      return Ignore(name, "special search parameters are not supported");
    if (c.param->type == SearchParamType::kComposite) {
      for (const auto& comp : c.param->components) {
        const SearchParamDef* d = reg_.FindByUrl(comp.definition);
        if (d == nullptr || d->type == SearchParamType::kComposite || d->type == SearchParamType::kSpecial)
          return Ignore(name, fmt::format("a component of '{}' is not a parameter this server knows", c.param->code));
        c.components.push_back(d);
      }
    }
    if (auto e = Values(c, value)) return e;
    q_.criteria.push_back(std::move(c));
    q_.used.emplace_back(name, value);
    return std::nullopt;
  }

  std::optional<Error> Values(SearchCriterion& c, const std::string& value) {
    if (value.empty()) return Invalid(c.name, "empty value");
    if (c.modifier == "missing") {
      if (value != "true" && value != "false") return Invalid(c.name, ":missing takes true or false");
      c.values.push_back({Prefix::kEq, value, {value}, false, {}, {}});
      return std::nullopt;
    }
    for (const auto& raw : SplitEscaped(value, ',')) {
      SearchValue v;
      if (c.param->type == SearchParamType::kComposite) {
        auto parts = SplitEscaped(raw, '$');
        if (parts.size() != c.components.size())
          return Invalid(c.name, fmt::format("expected {} values separated by '$', got '{}'", c.components.size(), raw));
        for (std::size_t k = 0; k < parts.size(); ++k) {
          SearchValue part;
          if (auto e = ParseValue(c.name, c.components[k]->type, "", parts[k], part)) return e;
          v.components.push_back(std::move(part));
        }
        v.text = Unescape(raw);
        v.parts.push_back(v.text);
      } else if (auto e = ParseValue(c.name, c.param->type, c.modifier, raw, v)) {
        return e;
      } else if (c.param->type == SearchParamType::kReference && c.modifier != "identifier") {
        if (auto rel = opt_.local_bases.Relative(v.text)) {
          std::string local(*rel);
          v.url = std::move(v.text);
          v.text = std::move(local);
          v.parts = {v.text};
        }
      }
      c.values.push_back(std::move(v));
    }
    return std::nullopt;
  }

  static std::optional<Error> ParseValue(const std::string& name, SearchParamType t, const std::string& modifier,
                                         std::string_view raw, SearchValue& v) {
    std::string_view body = raw;
    if (TakesPrefix(t) && body.size() > 2) {
      for (const auto& p : kPrefixes)
        if (body.substr(0, 2) == p.code) {
          v.prefix = p.prefix;
          body.remove_prefix(2);
          break;
        }
    }
    const bool token_like = t == SearchParamType::kToken || t == SearchParamType::kQuantity ||
                            (t == SearchParamType::kReference && modifier == "identifier");
    if (token_like) {
      auto parts = SplitEscaped(body, '|');
      v.has_separator = parts.size() > 1;
      for (const auto& part : parts) v.parts.push_back(Unescape(part));
    } else {
      v.parts.push_back(Unescape(body));
    }
    v.text = Unescape(body);
    if (v.text.empty()) return Invalid(name, "empty value");
    switch (t) {
      case SearchParamType::kDate:
        if (!ParseDateTimeRange(v.text)) return Invalid(name, "'" + v.text + "' is not a date, dateTime or instant");
        break;
      case SearchParamType::kNumber:
        if (!IsDecimal(v.text)) return Invalid(name, "'" + v.text + "' is not a number");
        break;
      case SearchParamType::kQuantity:
        if (v.parts.size() > 3 || !IsDecimal(v.parts[0]))
          return Invalid(name, "expected [prefix]number[|system|code], got '" + std::string(raw) + "'");
        break;
      case SearchParamType::kToken:
        if (modifier == "of-type") {
          if (v.parts.size() != 3 || v.parts[1].empty() || v.parts[2].empty())
            return Invalid(name, ":of-type expects system|code|value, got '" + std::string(raw) + "'");
        } else if (v.parts.size() > 2) {
          return Invalid(name, "expected [system|]code, got '" + std::string(raw) + "'");
        }
        break;
      case SearchParamType::kReference:
        if (modifier == "identifier" && v.parts.size() > 2)
          return Invalid(name, "expected [system|]value, got '" + std::string(raw) + "'");
        break;
      default:
        break;
    }
    return std::nullopt;
  }

  const SearchParameterRegistry& reg_;
  const SearchOptions& opt_;
  SearchQuery& q_;
};

}  // namespace

const char* PrefixCode(Prefix p) {
  for (const auto& e : kPrefixes)
    if (e.prefix == p) return e.code;
  return "eq";
}

std::vector<std::string> SplitEscaped(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      cur += s[i];
      cur += s[++i];
    } else if (s[i] == sep) {
      out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += s[i];
    }
  }
  out.push_back(std::move(cur));
  return out;
}

std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() &&
        (s[i + 1] == ',' || s[i + 1] == '$' || s[i + 1] == '|' || s[i + 1] == '\\' || s[i + 1] == ':'))
      ++i;
    out += s[i];
  }
  return out;
}

Result<SearchQuery> ParseSearch(const std::string& resource_type,
                                const std::vector<std::pair<std::string, std::string>>& params,
                                const SearchParameterRegistry& registry, const SearchOptions& options) {
  SearchQuery q;
  q.resource_type = resource_type;
  Parser parser(registry, options, q);
  if (resource_type.empty())
    for (const auto& [name, value] : params)
      if (name == "_type")
        if (auto e = parser.Types(value)) return std::move(*e);
  for (const auto& [name, value] : params)
    if (auto e = parser.Param(name, value)) return std::move(*e);
  if (!q.count) q.count = options.default_count;
  return q;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseQueryString(std::string_view query) {
  if (auto q = query.find('?'); q != std::string_view::npos) query.remove_prefix(q + 1);
  auto decode = [](std::string_view s, std::string& out) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%') {
        if (i + 2 >= s.size()) return false;
        int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
      } else {
        out += s[i];
      }
    }
    return true;
  };
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
    while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    std::string key, value;
    if (!decode(part.substr(0, eq), key) || (eq != std::string_view::npos && !decode(part.substr(eq + 1), value)))
      return MakeError(ErrorKind::kInvalid, "the criteria are not a valid query string");
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

Result<SearchQuery> ParseConditionalCriteria(
    const std::string& resource_type, const std::vector<std::pair<std::string, std::string>>& params,
    const SearchParameterRegistry& registry,
    const std::function<bool(std::string_view resource_type, const SearchParamDef&)>& supported,
    const LocalBases& local_bases) {
  static constexpr std::string_view kResultParameters[] = {
      "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_offset", "_cursor",
      "_contained", "_containedType"};
  std::vector<std::pair<std::string, std::string>> criteria;
  for (const auto& kv : params) {
    if (kv.first == "_format" || kv.first == "_pretty") continue;
    std::string_view name = std::string_view(kv.first).substr(0, kv.first.find(':'));
    if (std::find(std::begin(kResultParameters), std::end(kResultParameters), name) != std::end(kResultParameters))
      return MakeError(ErrorKind::kInvalid,
                       fmt::format("'{}' shapes search results; conditional criteria take filters only", kv.first),
                       kv.first);
    criteria.push_back(kv);
  }
  if (criteria.empty()) return MakeError(ErrorKind::kInvalid, "a conditional interaction needs search criteria");
  SearchOptions options;
  options.strict = true;
  options.supported = supported;
  options.local_bases = local_bases;
  return ParseSearch(resource_type, criteria, registry, options);
}

std::string CanonicalCriteria(const std::vector<std::pair<std::string, std::string>>& params) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : params)
    if (k != "_format" && k != "_pretty") parts.push_back(k + "=" + v);
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : "&") + part;
  return out;
}

}  // namespace eds::fhir
