// SearchParameter loading and lookup.
#include "fhir/search_parameters.hpp"

#include "fhir/fhirpath.hpp"
#include "fhir/fhirpath/ast.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace eds::fhir {
namespace {

struct TypeCode {
  const char* code;
  SearchParamType type;
};
constexpr TypeCode kTypeCodes[] = {
    {"number", SearchParamType::kNumber},       {"date", SearchParamType::kDate},
    {"string", SearchParamType::kString},       {"token", SearchParamType::kToken},
    {"reference", SearchParamType::kReference}, {"composite", SearchParamType::kComposite},
    {"quantity", SearchParamType::kQuantity},   {"uri", SearchParamType::kUri},
    {"special", SearchParamType::kSpecial},
};

std::string Str(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

std::vector<std::string> Strings(const rapidjson::Value& obj, const char* key) {
  std::vector<std::string> out;
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto& v : it->value.GetArray())
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// The type name a branch starts with ("Observation" in "Observation.subject",
// also inside a leading parenthesis), or empty when it has none.
std::string LeadingType(std::string_view branch) {
  branch = Trim(branch);
  while (!branch.empty() && branch.front() == '(') branch = Trim(branch.substr(1));
  std::size_t n = 0;
  while (n < branch.size() && ((branch[n] >= 'A' && branch[n] <= 'Z') || (branch[n] >= 'a' && branch[n] <= 'z') ||
                               (branch[n] >= '0' && branch[n] <= '9')))
    ++n;
  if (n == 0 || branch[0] < 'A' || branch[0] > 'Z') return {};
  if (n < branch.size() && branch[n] != '.' && branch[n] != ' ' && branch[n] != ')') return {};
  return std::string(branch.substr(0, n));
}

}  // namespace

bool ParseSearchParamType(std::string_view code, SearchParamType& out) {
  for (const auto& t : kTypeCodes)
    if (code == t.code) {
      out = t.type;
      return true;
    }
  return false;
}

const char* SearchParamTypeCode(SearchParamType type) {
  for (const auto& t : kTypeCodes)
    if (t.type == type) return t.code;
  return "special";
}

std::vector<std::string> SplitTopLevelUnion(std::string_view e) {
  std::vector<std::string> out;
  int depth = 0;
  char quote = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < e.size(); ++i) {
    char c = e[i];
    if (quote) {
      if (c == '\\') ++i;
      else if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '`' || c == '"') quote = c;
    else if (c == '(' || c == '[' || c == '{') ++depth;
    else if (c == ')' || c == ']' || c == '}') --depth;
    else if (c == '|' && depth == 0) {
      out.emplace_back(Trim(e.substr(start, i - start)));
      start = i + 1;
    }
  }
  out.emplace_back(Trim(e.substr(start)));
  return out;
}

struct SearchParameterRegistry::Impl {
  // the package's parameters, shared by every registry derived with WithCustom
  std::shared_ptr<const std::vector<std::unique_ptr<SearchParamDef>>> base;
  std::vector<std::unique_ptr<SearchParamDef>> custom;
  std::vector<std::string> resource_types;
  // resource type -> code -> parameter (Resource/DomainResource ones copied in)
  std::unordered_map<std::string, std::map<std::string, const SearchParamDef*, std::less<>>> by_type;
  std::unordered_map<std::string, const SearchParamDef*> by_url;
  std::unordered_map<std::string, bool> is_resource_type;
  // compartment -> resource type -> parameters
  std::shared_ptr<const std::map<std::string, std::map<std::string, std::vector<std::string>, std::less<>>, std::less<>>>
      compartments;

  // parameter -> the rows it shares (SharedRowsOf)
  std::unordered_map<const SearchParamDef*, SharedRows> shared;
  // "type\ncode" -> SharedReferencesOf, RootComponentsOf
  std::unordered_map<std::string, SharedReferences> shared_references;
  std::unordered_map<std::string, std::vector<const SearchParamDef*>> root_components;

  void Add(const SearchParamDef* p, bool replace) {
    if (!p->url.empty()) by_url[p->url] = p;
    for (const auto& b : p->base) {
      if (b == "Resource" || b == "DomainResource") {
        for (const auto& t : resource_types)
          if (b == "Resource" || (t != "Bundle" && t != "Binary" && t != "Parameters")) {
            if (replace) by_type[t][p->code] = p;
            else by_type[t].emplace(p->code, p);  // a type's own parameter wins
          }
      } else {
        by_type[b][p->code] = p;
      }
    }
  }
};

namespace {

bool Shareable(SearchParamType t) {
  return t == SearchParamType::kToken || t == SearchParamType::kQuantity || t == SearchParamType::kString ||
         t == SearchParamType::kNumber || t == SearchParamType::kUri || t == SearchParamType::kComposite;
}

std::vector<std::string> Branches(const std::string& expression) {
  std::vector<std::string> out;
  for (auto& b : SplitTopLevelUnion(expression))
    if (!b.empty()) out.push_back(std::move(b));
  return out;
}

}  // namespace

namespace {

// Whether `q`'s rows would be `p`'s rows for the same branches: for
// composites, the same component types and expressions.
bool SameComponents(const SearchParameterRegistry& reg, const SearchParamDef& p, const SearchParamDef& q) {
  if (p.type != SearchParamType::kComposite) return true;
  bool same = p.components.size() == q.components.size() && !p.components.empty();
  for (std::size_t k = 0; same && k < p.components.size(); ++k) {
    const SearchParamDef* a = reg.FindByUrl(p.components[k].definition);
    const SearchParamDef* b = reg.FindByUrl(q.components[k].definition);
    same = a != nullptr && b != nullptr && a->type == b->type &&
           Trim(p.components[k].expression) == Trim(q.components[k].expression);
  }
  return same;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string TypeKey(std::string_view type, const std::string& code) {
  std::string k(type);
  k += '\n';
  k += code;
  return k;
}

// A branch of an expression as "element.as(type).element..." relative to
// the resource (type names in lower case), so that a composite's component
// (value.as(Quantity)) and a parameter of the resource ((Observation.value
// as Quantity)) compare; false for any other shape.
bool PathForm(const fhirpath::Node& n, std::string_view type, std::string& out) {
  using fhirpath::NodeKind;
  auto lower = [](std::string t) {
    for (auto& ch : t) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    return t;
  };
  switch (n.kind) {
    case NodeKind::kMember:
      if (n.target == nullptr) {
        out = n.name == type ? std::string() : n.name;
        return true;
      }
      if (!PathForm(*n.target, type, out)) return false;
      out += (out.empty() ? "" : ".") + n.name;
      return true;
    case NodeKind::kTypeOp:
      if (n.op != fhirpath::Op::kAs || n.target == nullptr || !PathForm(*n.target, type, out)) return false;
      out += ".as(" + lower(n.type.name) + ")";
      return true;
    case NodeKind::kCall:
      if (n.name != "as" || n.target == nullptr || !PathForm(*n.target, type, out)) return false;
      out += ".as(" + lower(n.type.name) + ")";
      return true;
    default: return false;
  }
}

// The PathForms of the branches of `expression`; nullopt when one has
// another shape.
std::optional<std::vector<std::string>> PathForms(const std::string& expression, std::string_view type) {
  auto parsed = fhirpath::Expression::Parse(expression);
  if (!parsed) return std::nullopt;
  std::vector<const fhirpath::Node*> todo{&parsed->root()};
  std::vector<std::string> out;
  while (!todo.empty()) {
    const fhirpath::Node* n = todo.back();
    todo.pop_back();
    if (n->kind == fhirpath::NodeKind::kBinary && n->op == fhirpath::Op::kUnion) {
      todo.push_back(n->target.get());
      todo.push_back(n->rhs.get());
      continue;
    }
    std::string form;
    if (!PathForm(*n, type, form) || form.empty()) return std::nullopt;
    out.push_back(std::move(form));
  }
  return out;
}

// Whether parameter `q`'s rows on `type` are exactly the rows of a
// composite component with `expression` evaluated on the resource: the same
// branches, except ones that can give `q` no row (SampledData for a
// quantity: Observation's value-quantity has it, code-value-quantity's
// value component does not).
bool SameRowsAsComponent(const SearchParameterRegistry& reg, const SearchParamDef& q, const std::string& type,
                         const std::string& expression) {
  auto component = PathForms(expression, type);
  auto plain = PathForms(reg.ExpressionFor(q, type), type);
  if (!component || !plain) return false;
  for (const auto& f : *component)
    if (!Contains(*plain, f)) return false;
  static constexpr std::string_view kNoQuantity = ".as(sampleddata)";
  for (const auto& f : *plain) {
    if (Contains(*component, f)) continue;
    const bool no_rows = q.type == SearchParamType::kQuantity && f.size() > kNoQuantity.size() &&
                         f.compare(f.size() - kNoQuantity.size(), kNoQuantity.size(), kNoQuantity) == 0;
    if (!no_rows) return false;
  }
  return true;
}

}  // namespace

// For every parameter of a single resource type, the other parameters of
// that type whose expression branches are parts of its own, with the same
// rows (same type; for composites the same component types and
// expressions): the largest first, none overlapping another. Then the
// reference parameters that are another one (limited to a target type),
// and the composites of the resource itself whose components are
// parameters of their own.
void SearchParameterRegistry::ComputeSharedRows() {
  auto& impl = *impl_;
  impl.shared.clear();
  impl.shared_references.clear();
  impl.root_components.clear();
  struct Candidate {
    const SearchParamDef* def;
    std::vector<std::string> branches;
  };
  for (const auto& [type, params] : impl.by_type) {
    for (const auto& [code, p] : params) {
      if (p->base.size() != 1 || p->base[0] != type || !Shareable(p->type)) continue;
      const auto mine = Branches(ExpressionFor(*p, type));
      if (mine.size() < 2) continue;
      std::vector<Candidate> candidates;
      for (const auto& [other_code, q] : params) {
        if (q == p || q->type != p->type) continue;
        auto theirs = Branches(ExpressionFor(*q, type));
        if (theirs.empty() || theirs.size() >= mine.size()) continue;
        bool inside = true;
        for (const auto& b : theirs) inside = inside && Contains(mine, b);
        if (inside && SameComponents(*this, *p, *q)) candidates.push_back({q, std::move(theirs)});
      }
      // the largest first; of equal ones the first by code (the map's order)
      std::stable_sort(candidates.begin(), candidates.end(),
                       [](const Candidate& a, const Candidate& b) { return a.branches.size() > b.branches.size(); });
      SharedRows rows;
      std::vector<std::string> covered;
      for (const auto& c : candidates) {
        bool overlaps = false;
        for (const auto& b : c.branches) overlaps = overlaps || Contains(covered, b);
        if (overlaps) continue;
        rows.shared.push_back(c.def->code);
        covered.insert(covered.end(), c.branches.begin(), c.branches.end());
      }
      if (rows.shared.empty()) continue;
      for (const auto& b : mine)
        if (!Contains(covered, b)) rows.rest += (rows.rest.empty() ? "" : " | ") + b;
      impl.shared[p] = std::move(rows);
    }
  }
  // a parameter whose rows are shared by another writes them all itself:
  // the others' rows never come from a third code
  std::unordered_map<const SearchParamDef*, SharedRows> kept;
  for (const auto& [def, rows] : impl.shared) {
    const std::string& type = def->base[0];
    SharedRows k;
    std::vector<std::string> back;  // branches of dropped codes, written again
    for (const auto& code : rows.shared) {
      const SearchParamDef* q = Find(type, code);
      if (q != nullptr && impl.shared.count(q) == 0) k.shared.push_back(code);
      else if (q != nullptr) back.push_back(ExpressionFor(*q, type));
    }
    if (k.shared.empty()) continue;
    k.rest = rows.rest;
    for (const auto& b : back) k.rest += (k.rest.empty() ? "" : " | ") + b;
    kept.emplace(def, std::move(k));
  }
  impl.shared = std::move(kept);

  for (const auto& [type, params] : impl.by_type) {
    // references: `X` and `X.where(resolve() is T)` of single branches
    std::map<std::string, const SearchParamDef*> by_expression;  // the first by code
    for (const auto& [code, p] : params) {
      if (p->type != SearchParamType::kReference) continue;
      auto branches = Branches(ExpressionFor(*p, type));
      if (branches.size() == 1) by_expression.emplace(branches[0], p);
    }
    for (const auto& [code, p] : params) {
      if (p->type != SearchParamType::kReference) continue;
      auto branches = Branches(ExpressionFor(*p, type));
      if (branches.size() != 1) continue;
      const std::string& e = branches[0];
      auto same = by_expression.find(e);
      if (same != by_expression.end() && same->second != p) {
        impl.shared_references[TypeKey(type, code)] = {same->second->code, {}};
        continue;
      }
      static constexpr std::string_view kWhere = ".where(resolve() is ";
      auto w = e.rfind(kWhere);
      if (w == std::string::npos || e.back() != ')') continue;
      std::string target = e.substr(w + kWhere.size(), e.size() - 1 - w - kWhere.size());
      if (impl.is_resource_type.count(target) == 0) continue;
      auto whole = by_expression.find(e.substr(0, w));
      if (whole == by_expression.end()) continue;
      impl.shared_references[TypeKey(type, code)] = {whole->second->code, target};
    }
    // a reference parameter whose rows come from `X` that is itself the
    // same as a third reads the third's
    for (const auto& [code, p] : params) {
      auto it = impl.shared_references.find(TypeKey(type, code));
      if (it == impl.shared_references.end()) continue;
      auto next = impl.shared_references.find(TypeKey(type, it->second.code));
      if (next != impl.shared_references.end() && next->second.target_type.empty()) it->second.code = next->second.code;
    }

    for (const auto& [code, p] : params) {
      if (p->type != SearchParamType::kComposite || p->components.empty() || Trim(ExpressionFor(*p, type)) != type)
        continue;
      std::vector<const SearchParamDef*> parts;
      for (const auto& c : p->components) {
        const SearchParamDef* q = FindByUrl(c.definition);
        if (q == nullptr || Find(type, q->code) != q || q->type == SearchParamType::kComposite ||
            q->type == SearchParamType::kReference || impl.shared.count(q) != 0 ||
            !SameRowsAsComponent(*this, *q, type, c.expression))
          break;
        parts.push_back(q);
      }
      if (parts.size() == p->components.size()) impl.root_components[TypeKey(type, code)] = std::move(parts);
    }
  }
}

std::optional<SearchParameterRegistry::SharedRows> SearchParameterRegistry::SharedRowsOf(
    const SearchParamDef& def) const {
  auto it = impl_->shared.find(&def);
  if (it == impl_->shared.end()) return std::nullopt;
  return it->second;
}

std::optional<SearchParameterRegistry::SharedReferences> SearchParameterRegistry::SharedReferencesOf(
    std::string_view resource_type, const SearchParamDef& def) const {
  if (def.type != SearchParamType::kReference || Find(resource_type, def.code) != &def) return std::nullopt;
  auto it = impl_->shared_references.find(TypeKey(resource_type, def.code));
  if (it == impl_->shared_references.end()) return std::nullopt;
  return it->second;
}

std::vector<const SearchParamDef*> SearchParameterRegistry::RootComponentsOf(std::string_view resource_type,
                                                                              const SearchParamDef& def) const {
  if (def.type != SearchParamType::kComposite || Find(resource_type, def.code) != &def) return {};
  auto it = impl_->root_components.find(TypeKey(resource_type, def.code));
  return it == impl_->root_components.end() ? std::vector<const SearchParamDef*>{} : it->second;
}

namespace {

bool ReadDefinition(const rapidjson::Value& d, SearchParamDef& def, std::string& error) {
  if (!d.IsObject() || Str(d, "resourceType") != "SearchParameter") {
    error = "not a SearchParameter";
    return false;
  }
  def.url = Str(d, "url");
  def.code = Str(d, "code");
  def.status = Str(d, "status");
  if (def.code.empty()) {
    error = "SearchParameter.code is missing";
    return false;
  }
  if (!ParseSearchParamType(Str(d, "type"), def.type)) {
    error = "SearchParameter.type is missing or unknown";
    return false;
  }
  def.base = Strings(d, "base");
  def.expression = Str(d, "expression");
  def.targets = Strings(d, "target");
  def.modifiers = Strings(d, "modifier");
  def.comparators = Strings(d, "comparator");
  def.chains = Strings(d, "chain");
  auto comp = d.FindMember("component");
  if (comp != d.MemberEnd() && comp->value.IsArray())
    for (const auto& c : comp->value.GetArray())
      if (c.IsObject()) def.components.push_back({Str(c, "definition"), Str(c, "expression")});
  if (def.base.empty()) {
    error = "SearchParameter.base is missing";
    return false;
  }
  if (def.expression.empty() && def.type != SearchParamType::kSpecial) {
    error = "SearchParameter.expression is missing";
    return false;
  }
  return true;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

bool ParseSearchParameterResource(std::string_view json, SearchParamDef& out, std::string& error) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError()) {
    error = "not valid JSON";
    return false;
  }
  return ReadDefinition(d, out, error);
}

SearchParameterRegistry::SearchParameterRegistry() : impl_(std::make_unique<Impl>()) {}
SearchParameterRegistry::~SearchParameterRegistry() = default;

std::shared_ptr<const SearchParameterRegistry> SearchParameterRegistry::Load(
    const std::string& package_dir, const std::vector<std::string>& resource_types) {
  namespace fs = std::filesystem;
  std::shared_ptr<SearchParameterRegistry> reg(new SearchParameterRegistry());
  auto& impl = *reg->impl_;
  impl.resource_types = resource_types;
  for (const auto& t : resource_types) impl.is_resource_type[t] = true;
  std::vector<fs::path> files, compartment_files;
  if (fs::is_directory(package_dir))
    for (const auto& e : fs::directory_iterator(package_dir)) {
      auto name = e.path().filename().string();
      if (e.path().extension() != ".json") continue;
      if (name.rfind("SearchParameter-", 0) == 0) files.push_back(e.path());
      if (name.rfind("CompartmentDefinition-", 0) == 0) compartment_files.push_back(e.path());
    }
  std::sort(files.begin(), files.end());
  auto base = std::make_shared<std::vector<std::unique_ptr<SearchParamDef>>>();
  for (const auto& path : files) {
    std::string text = ReadFile(path);
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    if (d.HasParseError()) continue;
    // experimental ones are examples and extension parameters, not R4's own
    // (SearchParameter-example-reference.json would replace Condition.subject)
    if (auto x = d.FindMember("experimental"); x != d.MemberEnd() && x->value.IsBool() && x->value.GetBool()) continue;
    auto def = std::make_unique<SearchParamDef>();
    std::string error;
    // parameters of the package without an expression or base are kept
    // (known by URL, never indexed)
    if (!ReadDefinition(d, *def, error) && error != "SearchParameter.expression is missing" &&
        error != "SearchParameter.base is missing")
      continue;
    impl.Add(def.get(), false);
    base->push_back(std::move(def));
  }
  if (base->empty()) throw std::runtime_error("no SearchParameter definitions found in " + package_dir);
  impl.base = std::move(base);
  auto compartments = std::make_shared<
      std::map<std::string, std::map<std::string, std::vector<std::string>, std::less<>>, std::less<>>>();
  for (const auto& path : compartment_files) {
    std::string text = ReadFile(path);
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    if (d.HasParseError() || !d.IsObject() || Str(d, "resourceType") != "CompartmentDefinition") continue;
    if (Str(d, "url").rfind("http://hl7.org/fhir/CompartmentDefinition/", 0) != 0) continue;
    std::string code = Str(d, "code");
    auto res = d.FindMember("resource");
    if (code.empty() || res == d.MemberEnd() || !res->value.IsArray()) continue;
    auto& by_type = (*compartments)[code];
    for (const auto& r : res->value.GetArray()) {
      if (!r.IsObject()) continue;
      auto params = Strings(r, "param");
      if (!params.empty()) by_type[Str(r, "code")] = std::move(params);
    }
  }
  impl.compartments = std::move(compartments);
  reg->ComputeSharedRows();
  return reg;
}

std::shared_ptr<const SearchParameterRegistry> SearchParameterRegistry::WithCustom(
    std::vector<SearchParamDef> custom) const {
  std::shared_ptr<SearchParameterRegistry> reg(new SearchParameterRegistry());
  auto& impl = *reg->impl_;
  impl.base = impl_->base;
  impl.resource_types = impl_->resource_types;
  impl.is_resource_type = impl_->is_resource_type;
  impl.compartments = impl_->compartments;
  for (const auto& p : *impl.base) impl.Add(p.get(), false);
  for (auto& c : custom) {
    impl.custom.push_back(std::make_unique<SearchParamDef>(std::move(c)));
    impl.Add(impl.custom.back().get(), true);
  }
  reg->ComputeSharedRows();
  return reg;
}

std::vector<const SearchParamDef*> SearchParameterRegistry::Custom() const {
  std::vector<const SearchParamDef*> out;
  for (const auto& c : impl_->custom) out.push_back(c.get());
  return out;
}

const std::vector<std::string>& SearchParameterRegistry::CompartmentParams(std::string_view compartment,
                                                                          std::string_view resource_type) const {
  static const std::vector<std::string> kNone;
  auto c = impl_->compartments->find(compartment);
  if (c == impl_->compartments->end()) return kNone;
  auto t = c->second.find(resource_type);
  return t == c->second.end() ? kNone : t->second;
}

std::vector<std::string> SearchParameterRegistry::CompartmentTypes(std::string_view compartment) const {
  std::vector<std::string> out;
  auto c = impl_->compartments->find(compartment);
  if (c == impl_->compartments->end()) return out;
  for (const auto& [type, params] : c->second) out.push_back(type);
  return out;
}

bool SearchParameterRegistry::IsCompartment(std::string_view compartment) const {
  return impl_->compartments->count(compartment) != 0;
}

const SearchParamDef* SearchParameterRegistry::Find(std::string_view resource_type, std::string_view code) const {
  auto t = impl_->by_type.find(std::string(resource_type));
  if (t == impl_->by_type.end()) return nullptr;
  auto p = t->second.find(code);
  return p == t->second.end() ? nullptr : p->second;
}

const SearchParamDef* SearchParameterRegistry::FindByUrl(std::string_view url) const {
  auto it = impl_->by_url.find(std::string(url));
  return it == impl_->by_url.end() ? nullptr : it->second;
}

std::vector<const SearchParamDef*> SearchParameterRegistry::ForType(std::string_view resource_type) const {
  std::vector<const SearchParamDef*> out;
  auto t = impl_->by_type.find(std::string(resource_type));
  if (t == impl_->by_type.end()) return out;
  for (const auto& [code, p] : t->second) out.push_back(p);
  return out;
}

std::string SearchParameterRegistry::ExpressionFor(const SearchParamDef& def, std::string_view resource_type) const {
  std::string out;
  for (const auto& branch : SplitTopLevelUnion(def.expression)) {
    if (branch.empty()) continue;
    std::string lead = LeadingType(branch);
    // A branch names its type first; one that names another concrete
    // resource type cannot match. Resource/DomainResource branches apply to all.
    bool other = !lead.empty() && lead != resource_type && lead != "Resource" && lead != "DomainResource" &&
                 impl_->is_resource_type.count(lead) != 0;
    if (other) continue;
    if (!out.empty()) out += " | ";
    out += branch;
  }
  return out;
}

std::size_t SearchParameterRegistry::size() const { return impl_->base->size() + impl_->custom.size(); }

}  // namespace eds::fhir
