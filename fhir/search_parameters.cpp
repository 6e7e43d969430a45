// SearchParameter loading and lookup.
#include "fhir/search_parameters.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
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

// Finds, for every parameter of a single resource type, another parameter
// of that type whose expression branches are a strict part of its own and
// whose rows would be the same (same type; for composites the same
// component types and expressions): the largest such one.
void SearchParameterRegistry::ComputeSharedRows() {
  auto& impl = *impl_;
  impl.shared.clear();
  for (const auto& [type, params] : impl.by_type) {
    for (const auto& [code, p] : params) {
      if (p->base.size() != 1 || p->base[0] != type || !Shareable(p->type)) continue;
      const auto mine = Branches(ExpressionFor(*p, type));
      if (mine.size() < 2) continue;
      const SearchParamDef* best = nullptr;
      std::vector<std::string> best_branches;
      for (const auto& [other_code, q] : params) {
        if (q == p || q->type != p->type) continue;
        auto theirs = Branches(ExpressionFor(*q, type));
        if (theirs.empty() || theirs.size() >= mine.size() || theirs.size() <= best_branches.size()) continue;
        bool inside = true;
        for (const auto& b : theirs) inside = inside && std::find(mine.begin(), mine.end(), b) != mine.end();
        if (!inside) continue;
        if (p->type == SearchParamType::kComposite) {
          bool same = p->components.size() == q->components.size() && !p->components.empty();
          for (std::size_t k = 0; same && k < p->components.size(); ++k) {
            const SearchParamDef* a = FindByUrl(p->components[k].definition);
            const SearchParamDef* b = FindByUrl(q->components[k].definition);
            same = a != nullptr && b != nullptr && a->type == b->type &&
                   Trim(p->components[k].expression) == Trim(q->components[k].expression);
          }
          if (!same) continue;
        }
        best = q;
        best_branches = std::move(theirs);
      }
      if (best == nullptr) continue;
      std::string rest;
      for (const auto& b : mine)
        if (std::find(best_branches.begin(), best_branches.end(), b) == best_branches.end())
          rest += (rest.empty() ? "" : " | ") + b;
      impl.shared[p] = SharedRows{best->code, std::move(rest)};
    }
  }
  // a parameter whose rows are shared by another writes them all itself
  for (auto it = impl.shared.begin(); it != impl.shared.end();) {
    bool target_shares = false;
    for (const auto& [def, rows] : impl.shared)
      target_shares = target_shares || (def->code == it->second.shared && def->base == it->first->base);
    it = target_shares ? impl.shared.erase(it) : std::next(it);
  }
}

std::optional<SearchParameterRegistry::SharedRows> SearchParameterRegistry::SharedRowsOf(
    const SearchParamDef& def) const {
  auto it = impl_->shared.find(&def);
  if (it == impl_->shared.end()) return std::nullopt;
  return it->second;
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
