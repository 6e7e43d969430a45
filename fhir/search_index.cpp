// Search index rows from FHIR-typed nodes.
#include "fhir/search_index_internal.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <unordered_map>

#include "fhir/definitions.hpp"
#include "fhir/fhirpath.hpp"
#include "fhir/fhirpath/ast.hpp"
#include "fhir/json.hpp"
#include "fhir/primitives.hpp"

namespace eds::fhir {
namespace {

// Unicode code point -> ASCII letter it folds to (Latin-1 Supplement and
// Latin Extended-A), 0 when none.
char FoldLatin(uint32_t cp) {
  static const char kLatin1[] =  // U+00C0 .. U+00FF
      "AAAAAAACEEEEIIIIDNOOOOO\0OUUUUYTs"
      "aaaaaaaceeeeiiiidnooooo\0ouuuuyty";
  if (cp >= 0xC0 && cp <= 0xFF) return kLatin1[cp - 0xC0];
  if (cp >= 0x100 && cp <= 0x17F) {
    static const char kExtA[] =  // U+0100 .. U+017F, pairs upper/lower
        "AaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIiJjJjKkkLlLlLlLlLlNnNnNnnNnOoOoOoOoRrRrRrSsSsSsSsTtTtTtUuUuUuUuUuUuWwYyYZzZzZzs";
    std::size_t i = cp - 0x100;
    return i < sizeof(kExtA) - 1 ? kExtA[i] : 0;
  }
  return 0;
}

const JsonValue* Member(const JsonValue& obj, const char* key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

std::string Text(const JsonValue* v) {
  if (v == nullptr) return {};
  if (IsString(*v)) return std::string(StringOf(*v));
  if (IsNumber(*v)) return std::string(NumberText(*v));
  if (v->IsBool()) return v->GetBool() ? "true" : "false";
  return {};
}

void AddString(const std::string& param, const std::string& value, IndexRows& out) {
  if (value.empty()) return;
  out.strings.push_back({param, NormalizeForSearch(value), value});
}

void AddToken(const std::string& param, std::string system, std::string code, std::string text, IndexRows& out) {
  if (system.empty() && code.empty() && text.empty()) return;
  out.tokens.push_back({param, std::move(system), std::move(code), std::move(text)});
}

void AddCoding(const std::string& param, const JsonValue& coding, const std::string& extra_text, IndexRows& out) {
  std::string display = Text(Member(coding, "display"));
  AddToken(param, Text(Member(coding, "system")), Text(Member(coding, "code")),
           display.empty() ? extra_text : display, out);
}

void AddDate(const std::string& param, const std::string& low_text, const std::string& high_text, IndexRows& out) {
  auto low = low_text.empty() ? std::nullopt : ParseDateTimeRange(low_text);
  auto high = high_text.empty() ? std::nullopt : ParseDateTimeRange(high_text);
  if (!low && !high) return;
  constexpr int64_t kMin = INT64_MIN / 2, kMax = INT64_MAX / 2;  // open ends of a Period
  out.dates.push_back({param, low ? low->low_ms : kMin, high ? high->high_ms : kMax});
}

// Parses a reference string into type/id/version or an absolute URL.
void AddReference(const std::string& param, const std::string& ref, IndexRows& out) {
  if (ref.empty()) return;
  if (ref[0] == '#') {  // a contained resource: a value (for :missing), never a target
    out.references.push_back({param, {}, {}, {}, ref, 0});
    return;
  }
  ReferenceIndexRow row;
  row.param = param;
  std::string_view r = ref;
  std::string_view rel = r;
  bool absolute = r.find("://") != std::string_view::npos || r.rfind("urn:", 0) == 0;
  if (absolute) {
    row.url = ref;
    // the last Type/id[/_history/v] of an absolute RESTful URL
    auto hist = r.find("/_history/");
    std::string_view base = hist == std::string_view::npos ? r : r.substr(0, hist);
    auto id_slash = base.rfind('/');
    if (id_slash != std::string_view::npos) {
      auto type_slash = base.rfind('/', id_slash - 1);
      if (type_slash != std::string_view::npos) rel = r.substr(type_slash + 1);
      else rel = {};
    } else {
      rel = {};
    }
  }
  if (!rel.empty()) {
    auto slash = rel.find('/');
    if (slash != std::string_view::npos && IsTypeNameSyntax(rel.substr(0, slash))) {
      std::string_view rest = rel.substr(slash + 1);
      auto hist = rest.find("/_history/");
      std::string_view id = hist == std::string_view::npos ? rest : rest.substr(0, hist);
      if (IsValidId(id)) {
        row.target_type = std::string(rel.substr(0, slash));
        row.target_id = std::string(id);
        if (hist != std::string_view::npos) row.version = std::string(rest.substr(hist + 10));
      }
    }
  }
  if (row.target_id.empty() && row.url.empty()) return;
  out.references.push_back(std::move(row));
}

void AddNumber(const std::string& param, const std::string& value, IndexRows& out) {
  NumberIndexRow row{param, value, {}, {}};
  if (!DecimalRange(value, row.low, row.high)) return;
  out.numbers.push_back(std::move(row));
}

void AddQuantity(const std::string& param, const JsonValue& q, IndexRows& out) {
  QuantityIndexRow row;
  row.param = param;
  row.value = Text(Member(q, "value"));
  if (!DecimalRange(row.value, row.low, row.high)) return;
  row.system = Text(Member(q, "system"));
  row.code = Text(Member(q, "code"));
  row.unit = Text(Member(q, "unit"));
  if (row.code.empty()) row.code = Text(Member(q, "currency"));  // Money
  out.quantities.push_back(std::move(row));
}

constexpr const char* kFiscalCodeOid = "urn:oid:2.16.840.1.113883.2.9.4.3.2";
constexpr const char* kFiscalCodeUrl = "http://hl7.it/sid/codiceFiscale";

const char* FiscalCodeAlias(std::string_view system) {
  if (system == kFiscalCodeOid) return kFiscalCodeUrl;
  if (system == kFiscalCodeUrl) return kFiscalCodeOid;
  return nullptr;
}

bool IsPrimitiveText(std::string_view t) {
  return t == "string" || t == "code" || t == "id" || t == "markdown" || t == "uri" || t == "url" ||
         t == "canonical" || t == "oid" || t == "uuid" || t == "boolean" || t == "System.String" ||
         t == "System.Boolean";
}

}  // namespace

namespace {

struct Component {
  SearchParamDef def;  // the component's parameter, with code "composite$k"
  fhirpath::Expression expression;
};

struct Compiled {
  const SearchParamDef* def;
  fhirpath::Expression expression;
  std::vector<Component> components;  // composite parameters
  // SearchParameterRegistry::SharedReferencesOf: the rows of another
  // reference parameter that make this one's rows redundant
  std::optional<SearchParameterRegistry::SharedReferences> shared_references;
  // SearchParameterRegistry::RootComponentsOf, by code
  std::vector<std::string> root_codes;
  // FirstElements of the expression; `any` when it has none
  std::vector<std::string> first_elements;
  bool any = true;
};

// The elements whose absence from a resource makes `n` empty: for a path
// from the resource (Observation.code, Observation.value as Quantity,
// Observation.subject.where(resolve() is Patient), unions of such) the
// element each path starts with. False when `n` is not of that shape and may
// have a value on any resource (exists(), iif(), comparisons, ...).
bool FirstElements(const fhirpath::Node& n, std::string_view type, std::vector<std::string>& out) {
  using fhirpath::NodeKind;
  switch (n.kind) {
    case NodeKind::kMember: {
      if (n.target == nullptr) return false;  // the resource itself, or an element of $this
      const fhirpath::Node& t = *n.target;
      if (t.kind == NodeKind::kMember && t.target == nullptr &&
          (t.name == type || t.name == "Resource" || t.name == "DomainResource")) {
        out.push_back(n.name);
        return true;
      }
      return FirstElements(t, type, out);
    }
    case NodeKind::kCall: {
      // functions whose result is empty when their input is
      static constexpr std::string_view kEmptyOnEmpty[] = {"where", "resolve", "as",   "ofType", "first",
                                                           "last",  "extension", "single", "distinct",
                                                           "skip",  "take",  "tail", "select", "trace"};
      if (n.target == nullptr ||
          std::find(std::begin(kEmptyOnEmpty), std::end(kEmptyOnEmpty), n.name) == std::end(kEmptyOnEmpty))
        return false;
      return FirstElements(*n.target, type, out);
    }
    case NodeKind::kIndexer: return n.target != nullptr && FirstElements(*n.target, type, out);
    case NodeKind::kTypeOp:
      return n.op == fhirpath::Op::kAs && n.target != nullptr && FirstElements(*n.target, type, out);
    case NodeKind::kBinary:
      return n.op == fhirpath::Op::kUnion && n.target != nullptr && n.rhs != nullptr &&
             FirstElements(*n.target, type, out) && FirstElements(*n.rhs, type, out);
    default: return false;
  }
}

// Whether the resource has one of `names` (a choice element by any of its
// types, valueQuantity for value; a primitive by its extension alone).
bool HasAnyElement(const JsonValue& doc, const std::vector<std::string>& names) {
  if (!doc.IsObject()) return true;
  for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
    std::string_view k(m->name.GetString(), m->name.GetStringLength());
    if (!k.empty() && k[0] == '_') k.remove_prefix(1);
    for (const auto& n : names)
      if (k.size() >= n.size() && k.compare(0, n.size(), n) == 0 &&
          (k.size() == n.size() || (k[n.size()] >= 'A' && k[n.size()] <= 'Z')))
        return true;
  }
  return false;
}

bool SqlHandles(SearchParamType t) {
  return t == SearchParamType::kString || t == SearchParamType::kToken || t == SearchParamType::kDate ||
         t == SearchParamType::kReference || t == SearchParamType::kUri || t == SearchParamType::kNumber ||
         t == SearchParamType::kQuantity;
}

struct RowCounts {
  std::size_t s, t, d, n, q, r, u;
  explicit RowCounts(const IndexRows& x)
      : s(x.strings.size()), t(x.tokens.size()), d(x.dates.size()), n(x.numbers.size()), q(x.quantities.size()),
        r(x.references.size()), u(x.uris.size()) {}
};

template <class V>
void Mark(V& rows, std::size_t from, int group) {
  for (std::size_t i = from; i < rows.size(); ++i) rows[i].group = group;
}

void Truncate(IndexRows& x, const RowCounts& to) {
  x.strings.resize(to.s);
  x.tokens.resize(to.t);
  x.dates.resize(to.d);
  x.numbers.resize(to.n);
  x.quantities.resize(to.q);
  x.references.resize(to.r);
  x.uris.resize(to.u);
}

// Row values, apart from the parameter and the group.
bool SameValue(const StringIndexRow& a, const StringIndexRow& b) {
  return a.normalized == b.normalized && a.exact == b.exact;
}
bool SameValue(const TokenIndexRow& a, const TokenIndexRow& b) {
  return a.system == b.system && a.code == b.code && a.text == b.text;
}
bool SameValue(const DateIndexRow& a, const DateIndexRow& b) { return a.low_ms == b.low_ms && a.high_ms == b.high_ms; }
bool SameValue(const NumberIndexRow& a, const NumberIndexRow& b) {
  return a.value == b.value && a.low == b.low && a.high == b.high;
}
bool SameValue(const QuantityIndexRow& a, const QuantityIndexRow& b) {
  return a.value == b.value && a.low == b.low && a.high == b.high && a.system == b.system && a.code == b.code &&
         a.unit == b.unit;
}
bool SameValue(const UriIndexRow& a, const UriIndexRow& b) { return a.value == b.value; }
bool SameValue(const ReferenceIndexRow& a, const ReferenceIndexRow& b) {
  return a.target_type == b.target_type && a.target_id == b.target_id && a.version == b.version && a.url == b.url;
}

// Whether every row of `param` in `group` has a row of the same value under
// `other` in group 0.
template <class Row>
bool AllRepeated(const std::vector<Row>& rows, const std::string& param, int group, const std::string& other) {
  for (const auto& r : rows) {
    if (r.group != group || r.param != param) continue;
    bool found = false;
    for (const auto& o : rows) found = found || (o.group == 0 && o.param == other && SameValue(r, o));
    if (!found) return false;
  }
  return true;
}

bool AllRepeated(const IndexRows& x, SearchParamType type, const std::string& param, int group,
                 const std::string& other) {
  switch (type) {
    case SearchParamType::kString: return AllRepeated(x.strings, param, group, other);
    case SearchParamType::kToken: return AllRepeated(x.tokens, param, group, other);
    case SearchParamType::kDate: return AllRepeated(x.dates, param, group, other);
    case SearchParamType::kNumber: return AllRepeated(x.numbers, param, group, other);
    case SearchParamType::kQuantity: return AllRepeated(x.quantities, param, group, other);
    case SearchParamType::kUri: return AllRepeated(x.uris, param, group, other);
    default: return false;
  }
}

template <class V>
void EraseGroup(V& rows, int group) {
  rows.erase(std::remove_if(rows.begin(), rows.end(), [group](const auto& r) { return r.group == group; }),
             rows.end());
}

void EraseGroup(IndexRows& x, int group) {
  EraseGroup(x.strings, group);
  EraseGroup(x.tokens, group);
  EraseGroup(x.dates, group);
  EraseGroup(x.numbers, group);
  EraseGroup(x.quantities, group);
  EraseGroup(x.references, group);
  EraseGroup(x.uris, group);
}

void MarkGroup(IndexRows& x, const RowCounts& from, int group) {
  Mark(x.strings, from.s, group);
  Mark(x.tokens, from.t, group);
  Mark(x.dates, from.d, group);
  Mark(x.numbers, from.n, group);
  Mark(x.quantities, from.q, group);
  Mark(x.references, from.r, group);
  Mark(x.uris, from.u, group);
}

}  // namespace

struct SearchIndexer::Impl {
  std::shared_ptr<const Definitions> definitions;
  std::shared_ptr<const SearchParameterRegistry> registry;
  fhirpath::Engine engine;
  std::unordered_map<std::string, std::vector<Compiled>> by_type;
  // parameters all of whose rows other parameters write (SharedRowsOf with
  // no rest of their own): indexed without an expression to evaluate
  std::unordered_map<std::string, std::vector<const SearchParamDef*>> shared_only;
  mutable std::atomic<std::size_t> failures{0};

  LocalBases local_bases;

  Impl(std::shared_ptr<const Definitions> d, std::shared_ptr<const SearchParameterRegistry> r, LocalBases bases)
      : definitions(d), registry(std::move(r)), engine(std::move(d)), local_bases(std::move(bases)) {}

  IndexRows Extract(const Resource& resource, bool skip_absent) const;
};

SearchIndexer::SearchIndexer(std::shared_ptr<const Definitions> definitions,
                             std::shared_ptr<const SearchParameterRegistry> registry, LocalBases local_bases)
    : impl_(std::make_unique<Impl>(std::move(definitions), std::move(registry), std::move(local_bases))) {
  for (const auto& type : impl_->definitions->resource_types()) {
    auto& list = impl_->by_type[type];
    for (const SearchParamDef* def : impl_->registry->ForType(type)) {
      if (def->code == "_id" || def->code == "_lastUpdated") continue;
      if (!SqlHandles(def->type) && def->type != SearchParamType::kComposite) continue;
      std::string text = impl_->registry->ExpressionFor(*def, type);
      // rows another parameter writes anyway are not written again under
      // this one (searches read both codes): only the rest is evaluated
      if (auto shared = impl_->registry->SharedRowsOf(*def)) {
        text = shared->rest;
        if (text.empty()) {
          impl_->shared_only[type].push_back(def);
          continue;
        }
      }
      if (text.empty()) continue;
      auto parsed = fhirpath::Expression::Parse(text);
      if (!parsed) continue;
      Compiled compiled{def, std::move(*parsed), {}, impl_->registry->SharedReferencesOf(type, *def), {}, {}, true};
      compiled.any = !FirstElements(compiled.expression.root(), type, compiled.first_elements);
      for (const SearchParamDef* part : impl_->registry->RootComponentsOf(type, *def))
        compiled.root_codes.push_back(part->code);
      if (def->type == SearchParamType::kComposite) {
        bool ok = !def->components.empty();
        for (std::size_t k = 0; ok && k < def->components.size(); ++k) {
          const SearchParamDef* cdef = impl_->registry->FindByUrl(def->components[k].definition);
          auto cexpr = fhirpath::Expression::Parse(def->components[k].expression);
          if (cdef == nullptr || !SqlHandles(cdef->type) || !cexpr) {
            ok = false;
            break;
          }
          SearchParamDef synthetic = *cdef;
          synthetic.code = def->code + "$" + std::to_string(k);
          compiled.components.push_back({std::move(synthetic), std::move(*cexpr)});
        }
        if (!ok) continue;
      }
      list.push_back(std::move(compiled));
    }
  }
}

SearchIndexer::~SearchIndexer() = default;

const SearchParameterRegistry& SearchIndexer::registry() const { return *impl_->registry; }
const LocalBases& SearchIndexer::local_bases() const { return impl_->local_bases; }
const std::shared_ptr<const SearchParameterRegistry>& SearchIndexer::shared_registry() const { return impl_->registry; }
const std::shared_ptr<const Definitions>& SearchIndexer::definitions() const { return impl_->definitions; }

int64_t SearchIndexer::generation() const {
  int64_t g = 0;
  for (const auto* p : impl_->registry->Custom()) g = std::max(g, p->generation);
  return g;
}

std::vector<std::pair<std::string, int64_t>> SearchIndexer::RequiredGenerations() const {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& [type, list] : impl_->by_type) {
    int64_t g = 0;
    for (const auto& c : list) g = std::max(g, c.def->generation);
    if (g > 0) out.emplace_back(type, g);
  }
  std::sort(out.begin(), out.end());
  return out;
}
std::size_t SearchIndexer::failures() const { return impl_->failures.load(); }

bool SearchIndexer::IsIndexed(std::string_view resource_type, const SearchParamDef& def) const {
  if (def.code == "_id" || def.code == "_lastUpdated") return true;
  auto it = impl_->by_type.find(std::string(resource_type));
  if (it == impl_->by_type.end()) return false;
  for (const auto& c : it->second)
    if (c.def == &def) return true;
  auto shared = impl_->shared_only.find(std::string(resource_type));
  return shared != impl_->shared_only.end() &&
         std::find(shared->second.begin(), shared->second.end(), &def) != shared->second.end();
}

IndexRows SearchIndexer::Extract(const Resource& resource) const { return impl_->Extract(resource, true); }

IndexRows SearchIndexer::ExtractEvaluatingAll(const Resource& resource) const {
  return impl_->Extract(resource, false);
}

IndexRows SearchIndexer::Impl::Extract(const Resource& resource, bool skip_absent) const {
  IndexRows out;
  auto it = by_type.find(resource.type());
  if (it == by_type.end()) return out;
  const JsonValue& doc = resource.tree().doc;
  int group = 0;
  std::vector<std::pair<const Compiled*, int>> roots;  // groups of RootComponentsOf composites
  std::vector<const Compiled*> shares;                 // SharedReferencesOf parameters
  for (const auto& c : it->second) {
    if (skip_absent && !c.any && !HasAnyElement(doc, c.first_elements)) continue;
    auto result = engine.Evaluate(c.expression, resource);
    if (!result) {
      failures.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    for (const auto& item : *result) {
      // computed booleans ("deceased.exists() and deceased != false") are token values
      if (item.node == nullptr && item.kind == fhirpath::ValueKind::kBoolean &&
          c.def->type == SearchParamType::kToken) {
        out.tokens.push_back({c.def->code, {}, item.boolean ? "true" : "false", {}, 0});
        continue;
      }
      if (item.IsReferenceTarget() || item.node == nullptr) continue;
      if (c.components.empty()) {
        AddIndexValues(*c.def, item.TypeName(), *item.node, out);
        continue;
      }
      // a composite: each component evaluated on the node the composite selected
      RowCounts before(out);
      ++group;
      bool complete = true;  // every component has a value: else no composite search can match the node
      for (const auto& comp : c.components) {
        auto values = engine.EvaluateOn(comp.expression, item, resource.tree().doc);
        if (!values) {
          failures.fetch_add(1, std::memory_order_relaxed);
          complete = false;
          break;
        }
        const std::size_t rows_before = out.size();
        const std::size_t tokens_before = out.tokens.size();
        for (const auto& v : *values)
          if (!v.IsReferenceTarget() && v.node != nullptr) AddIndexValues(comp.def, v.TypeName(), *v.node, out);
        // a composite's token component is matched by system|code: its
        // text-only rows (CodeableConcept.text) could never match
        if (comp.def.type == SearchParamType::kToken)
          out.tokens.erase(std::remove_if(out.tokens.begin() + static_cast<std::ptrdiff_t>(tokens_before),
                                          out.tokens.end(),
                                          [](const auto& t) { return t.system.empty() && t.code.empty(); }),
                           out.tokens.end());
        if (out.size() == rows_before) {
          complete = false;
          break;
        }
      }
      if (complete) {
        MarkGroup(out, before, group);
        if (!c.root_codes.empty()) roots.emplace_back(&c, group);
      } else {
        Truncate(out, before);
      }
    }
    if (c.shared_references) shares.push_back(&c);
  }
  // an absolute URL names a resource of this server only under one of its
  // bases: another server's Patient/123 is not the local Patient/123
  for (auto& r : out.references)
    if (!r.url.empty() && !r.target_id.empty() && !local_bases.Relative(r.url)) {
      r.target_id.clear();
      r.version.clear();
    }
  // rows other parameters' rows repeat are left out (searches read those)
  for (const auto& [c, g] : roots) {
    bool repeated = true;
    for (std::size_t k = 0; repeated && k < c->components.size(); ++k)
      repeated = AllRepeated(out, c->components[k].def.type, c->components[k].def.code, g, c->root_codes[k]);
    if (repeated) EraseGroup(out, g);
  }
  for (const Compiled* c : shares) {
    const auto& share = *c->shared_references;
    auto& refs = out.references;
    std::vector<char> drop(refs.size(), 0);
    for (std::size_t i = 0; i < refs.size(); ++i) {
      const auto& r = refs[i];
      if (r.param != c->def->code || r.group != 0) continue;
      if (!share.target_type.empty() && r.target_type != share.target_type) continue;
      for (const auto& o : refs)
        if (o.group == 0 && o.param == share.code && SameValue(r, o)) drop[i] = 1;
    }
    std::size_t kept = 0;
    for (std::size_t i = 0; i < refs.size(); ++i)
      if (!drop[i]) {
        if (kept != i) refs[kept] = std::move(refs[i]);
        ++kept;
      }
    refs.resize(kept);
  }
  return out;
}

std::size_t IndexRows::size() const {
  return strings.size() + tokens.size() + dates.size() + numbers.size() + quantities.size() + references.size() +
         uris.size();
}

std::string NormalizeForSearch(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp = c;
    std::size_t len = 1;
    if (c >= 0xC0 && c < 0xE0 && i + 1 < s.size()) {
      cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
      len = 2;
    } else if (c >= 0xE0 && c < 0xF0) {
      len = 3;
    } else if (c >= 0xF0) {
      len = 4;
    }
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') {
      space = !out.empty();
      i += len;
      continue;
    }
    if (space) {
      out.push_back(' ');
      space = false;
    }
    if (cp < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    } else if (char f = FoldLatin(cp); f != 0) {
      if (f == 's' && cp == 0xDF) out += "ss";  // ß
      else out.push_back(static_cast<char>(f >= 'A' && f <= 'Z' ? f - 'A' + 'a' : f));
    } else {
      out.append(s.substr(i, std::min(len, s.size() - i)));
    }
    i += len;
  }
  return out;
}

bool DecimalRange(std::string_view s, std::string& low, std::string& high) {
  // digits D and scale: value = D * 10^-scale
  bool negative = false;
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
  std::string digits;
  long scale = 0;
  bool point = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
      if (point) ++scale;
    } else if (c == '.' && !point) {
      point = true;
    } else if (c == 'e' || c == 'E') {
      long exp = 0;
      std::size_t j = i + 1;
      bool neg = false;
      if (j < s.size() && (s[j] == '-' || s[j] == '+')) neg = s[j++] == '-';
      if (j >= s.size()) return false;
      for (; j < s.size(); ++j) {
        if (s[j] < '0' || s[j] > '9') return false;
        exp = exp * 10 + (s[j] - '0');
        if (exp > 10000) return false;
      }
      scale -= neg ? -exp : exp;
      break;
    } else {
      return false;
    }
  }
  if (digits.empty()) return false;
  // |v| * 10 +- 5, at scale + 1
  auto add5 = [](std::string d, bool add) {  // d has >= 1 digit; returns digits of d +- 5 (d*10 form)
    d.push_back('0');
    int carry = add ? 5 : -5;
    for (std::size_t k = d.size(); k-- > 0 && carry != 0;) {
      int x = (d[k] - '0') + carry;
      carry = 0;
      if (x >= 10) {
        x -= 10;
        carry = 1;
      } else if (x < 0) {
        x += 10;
        carry = -1;
      }
      d[k] = static_cast<char>('0' + x);
    }
    if (carry == 1) d.insert(d.begin(), '1');
    return std::make_pair(d, carry == -1);  // second: went below zero
  };
  auto render = [](std::string d, long sc, bool neg) {
    auto nz = d.find_first_not_of('0');
    if (nz == std::string::npos) return std::string("0");
    std::string out;
    if (sc <= 0) {
      out = d.substr(nz) + std::string(static_cast<std::size_t>(-sc), '0');
    } else {
      if (static_cast<long>(d.size()) <= sc) d.insert(0, static_cast<std::size_t>(sc) - d.size() + 1, '0');
      out = d.substr(0, d.size() - static_cast<std::size_t>(sc));
      auto lead = out.find_first_not_of('0');
      out = lead == std::string::npos ? "0" : out.substr(lead);
      out += "." + d.substr(d.size() - static_cast<std::size_t>(sc));
    }
    return neg ? "-" + out : out;
  };
  const long sc = scale + 1;
  bool is_zero = digits.find_first_not_of('0') == std::string::npos;
  auto [up, up_neg] = add5(digits, true);
  if (is_zero) {  // [-0.5u, +0.5u)
    low = render(up, sc, true);
    high = render(up, sc, false);
    return true;
  }
  auto [down, down_neg] = add5(digits, false);
  (void)down_neg;  // |v| >= 1 unit at its precision, so |v|*10 - 5 > 0
  if (negative) {
    low = render(up, sc, true);
    high = render(down, sc, true);
  } else {
    low = render(down, sc, false);
    high = render(up, sc, false);
  }
  (void)up_neg;
  return true;
}

void AddIndexValues(const SearchParamDef& def, std::string_view t, const JsonValue& node, IndexRows& out) {
  const std::string& p = def.code;
  switch (def.type) {
    case SearchParamType::kString:
      if (t == "HumanName") {
        for (const char* k : {"family", "text"}) AddString(p, Text(Member(node, k)), out);
        for (const char* k : {"given", "prefix", "suffix"})
          if (const auto* a = Member(node, k); a && a->IsArray())
            for (const auto& v : a->GetArray()) AddString(p, Text(&v), out);
      } else if (t == "Address") {
        for (const char* k : {"text", "city", "district", "state", "postalCode", "country"})
          AddString(p, Text(Member(node, k)), out);
        if (const auto* a = Member(node, "line"); a && a->IsArray())
          for (const auto& v : a->GetArray()) AddString(p, Text(&v), out);
      } else if (IsPrimitiveText(t) || t == "System.String") {
        AddString(p, Text(&node), out);
      }
      break;
    case SearchParamType::kToken:
      if (t == "Coding") {
        AddCoding(p, node, {}, out);
      } else if (t == "CodeableConcept") {
        std::string text = Text(Member(node, "text"));
        // kept as the display of a coding without one, or a coding's display
        // is the same text (then a row of its own would match nothing more)
        bool text_kept = false;
        if (const auto* a = Member(node, "coding"); a && a->IsArray())
          for (const auto& c : a->GetArray()) {
            const std::string display = Text(Member(c, "display"));
            text_kept = text_kept || display.empty() || display == text;
            AddCoding(p, c, text, out);
          }
        // :text searches CodeableConcept.text too, not only the displays
        if (!text_kept) AddToken(p, {}, {}, text, out);
      } else if (t == "Identifier") {
        std::string type_text;
        const std::string value = Text(Member(node, "value"));
        if (const auto* ty = Member(node, "type")) {
          type_text = Text(Member(*ty, "text"));
          if (const auto* a = Member(*ty, "coding"); a && a->IsArray() && !value.empty())
            for (const auto& c : a->GetArray())
              AddToken(p + ":of-type", Text(Member(c, "system")), Text(Member(c, "code")), value, out);
        }
        const std::string system = Text(Member(node, "system"));
        AddToken(p, system, value, type_text, out);
        // the Italian fiscal code has two systems in use (the Gateway's OID and
        // HL7 Italia's URL): searching by either finds it
        if (const char* alias = FiscalCodeAlias(system)) AddToken(p, alias, value, type_text, out);
      } else if (t == "ContactPoint") {
        AddToken(p, Text(Member(node, "system")), Text(Member(node, "value")), Text(Member(node, "use")), out);
      } else if (IsPrimitiveText(t)) {
        AddToken(p, {}, Text(&node), {}, out);
      }
      break;
    case SearchParamType::kDate:
      if (t == "Period") {
        AddDate(p, Text(Member(node, "start")), Text(Member(node, "end")), out);
      } else if (t == "Timing") {
        if (const auto* ev = Member(node, "event"); ev && ev->IsArray() && !ev->Empty()) {
          std::string first = Text(&(*ev)[0]), last = first;
          for (const auto& e : ev->GetArray()) {
            std::string x = Text(&e);
            auto rx = ParseDateTimeRange(x), rf = ParseDateTimeRange(first), rl = ParseDateTimeRange(last);
            if (rx && rf && rx->low_ms < rf->low_ms) first = x;
            if (rx && rl && rx->high_ms > rl->high_ms) last = x;
          }
          AddDate(p, first, last, out);
        }
      } else if (t == "date" || t == "dateTime" || t == "instant" || t == "System.DateTime" || t == "System.Date") {
        std::string v = Text(&node);
        AddDate(p, v, v, out);
      }
      break;
    case SearchParamType::kNumber:
      if (IsNumber(node)) AddNumber(p, std::string(NumberText(node)), out);
      break;
    case SearchParamType::kQuantity:
      if (t == "Quantity" || t == "Age" || t == "Duration" || t == "Distance" || t == "Count" ||
          t == "SimpleQuantity" || t == "MoneyQuantity" || t == "Money")
        AddQuantity(p, node, out);
      break;
    case SearchParamType::kReference:
      if (t == "Reference") {
        AddReference(p, Text(Member(node, "reference")), out);
        if (const auto* ident = Member(node, "identifier"); ident && ident->IsObject())
          AddToken(p + ":identifier", Text(Member(*ident, "system")), Text(Member(*ident, "value")), {}, out);
      } else if (t == "canonical" || t == "uri" || t == "url") {
        std::string v = Text(&node);
        if (auto bar = v.find('|'); bar != std::string::npos) v.resize(bar);
        AddReference(p, v, out);
      }
      break;
    case SearchParamType::kUri:
      if (IsPrimitiveText(t)) {
        std::string v = Text(&node);
        if (!v.empty()) out.uris.push_back({p, v});
      }
      break;
    case SearchParamType::kComposite:
    case SearchParamType::kSpecial:
      break;
  }
}

}  // namespace eds::fhir
