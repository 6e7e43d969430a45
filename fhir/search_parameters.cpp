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
  std::vector<std::unique_ptr<SearchParamDef>> all;
  // resource type -> code -> parameter (Resource/DomainResource ones copied in)
  std::unordered_map<std::string, std::map<std::string, const SearchParamDef*, std::less<>>> by_type;
  std::unordered_map<std::string, const SearchParamDef*> by_url;
  std::unordered_map<std::string, bool> is_resource_type;
};

SearchParameterRegistry::SearchParameterRegistry() : impl_(std::make_unique<Impl>()) {}
SearchParameterRegistry::~SearchParameterRegistry() = default;

std::shared_ptr<const SearchParameterRegistry> SearchParameterRegistry::Load(
    const std::string& package_dir, const std::vector<std::string>& resource_types) {
  namespace fs = std::filesystem;
  std::shared_ptr<SearchParameterRegistry> reg(new SearchParameterRegistry());
  auto& impl = *reg->impl_;
  for (const auto& t : resource_types) impl.is_resource_type[t] = true;
  std::vector<fs::path> files;
  if (fs::is_directory(package_dir))
    for (const auto& e : fs::directory_iterator(package_dir)) {
      auto name = e.path().filename().string();
      if (name.rfind("SearchParameter-", 0) == 0 && e.path().extension() == ".json") files.push_back(e.path());
    }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    if (d.HasParseError() || !d.IsObject() || Str(d, "resourceType") != "SearchParameter") continue;
    auto def = std::make_unique<SearchParamDef>();
    def->url = Str(d, "url");
    def->code = Str(d, "code");
    if (!ParseSearchParamType(Str(d, "type"), def->type) || def->code.empty()) continue;
    def->base = Strings(d, "base");
    def->expression = Str(d, "expression");
    def->targets = Strings(d, "target");
    def->modifiers = Strings(d, "modifier");
    def->comparators = Strings(d, "comparator");
    def->chains = Strings(d, "chain");
    auto comp = d.FindMember("component");
    if (comp != d.MemberEnd() && comp->value.IsArray())
      for (const auto& c : comp->value.GetArray())
        def->components.push_back({Str(c, "definition"), Str(c, "expression")});
    const SearchParamDef* p = def.get();
    if (!def->url.empty()) impl.by_url[def->url] = p;
    for (const auto& b : def->base) {
      if (b == "Resource" || b == "DomainResource") {
        for (const auto& t : resource_types)
          if (b == "Resource" || (t != "Bundle" && t != "Binary" && t != "Parameters"))
            impl.by_type[t].emplace(def->code, p);  // a type's own parameter wins
      } else {
        impl.by_type[b][def->code] = p;
      }
    }
    impl.all.push_back(std::move(def));
  }
  if (impl.all.empty()) throw std::runtime_error("no SearchParameter definitions found in " + package_dir);
  return reg;
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

std::size_t SearchParameterRegistry::size() const { return impl_->all.size(); }

}  // namespace eds::fhir
