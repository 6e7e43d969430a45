// ValueSet expansion over the package's CodeSystems, computed on first use.
#include "fhir/terminology.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "fhir/canonical.hpp"
#include "fhir/package_archive.hpp"
#include "fhir/ucum.hpp"

namespace eds::fhir {
namespace {

std::string ReadText(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Str(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

// A CodeSystem's codes and their hierarchy.
struct CodeSystemData {
  bool complete = false;  // content = complete: every code is listed
  std::vector<std::string> codes;
  std::unordered_map<std::string, std::vector<std::string>> children;
};

// A value set's expansion: the codes by system, and what is not enumerable.
struct Expansion {
  bool known = false;
  std::unordered_set<std::string> codes;       // system + '|' + code
  std::unordered_set<std::string> bare_codes;  // code alone, for elements of type code
  std::set<std::string> open_systems;          // systems included but not enumerable
  std::set<std::string> whole_systems;         // of those, the ones included whole (no concepts, no filter)
  std::string open_reason;                     // set when a part could not be expanded
};

}  // namespace

// Where a value set or code system is read from: a file, or the text of a
// resource stored in the database; `key` is its URL and version, the one
// name its expansion is kept under whatever reference found it.
struct Source {
  std::filesystem::path file;
  std::string text;
  std::string key;
  std::string Text() const { return file.empty() ? text : ReadText(file); }
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Terminology::Impl {
  CanonicalMap<Source> value_set_files;  // by URL and version
  CanonicalMap<Source> code_system_files;
  mutable std::shared_mutex mu;
  // by Source::key (or the reference, for one that names nothing known)
  mutable std::unordered_map<std::string, std::unique_ptr<Expansion>> expansions;
  // by the reference Check was given: the expansion it resolved to
  mutable std::unordered_map<std::string, const Expansion*, StringHash, std::equal_to<>> checked;
  mutable std::unordered_map<std::string, std::unique_ptr<CodeSystemData>> code_systems;

  // Adds a ValueSet or CodeSystem under its URL and version (the first one found stays).
  static void Add(CanonicalMap<Source>& into, const rapidjson::Document& d, Source source) {
    const std::string url = Str(d, "url"), version = Str(d, "version");
    source.key = url + "|" + version;
    into.Add(url, version, std::move(source));
  }

  // The source a canonical reference names. The core package names its own
  // value sets and code systems (http://hl7.org/fhir/...,
  // http://terminology.hl7.org/...) with the FHIR version, `|4.0.1`,
  // whatever business version they carry (some are dated, 2018-08-12): such
  // a reference finds the latest held when no version 4.0.1 is.
  static const Source* FindSource(const CanonicalMap<Source>& in, std::string_view canonical) {
    if (const Source* s = in.Find(canonical)) return s;
    const auto [url, version] = SplitCanonical(canonical);
    if (version != kFhirCoreVersion) return nullptr;
    for (std::string_view core : {"http://hl7.org/fhir/", "http://terminology.hl7.org/"})
      if (url.substr(0, core.size()) == core) return in.Find(url);
    return nullptr;
  }

  // The code system a canonical reference names.
  const CodeSystemData* CodeSystem(std::string_view canonical) const {  // under the unique lock
    const Source* source = FindSource(code_system_files, canonical);
    const std::string key = source != nullptr ? source->key : std::string(canonical);
    if (auto it = code_systems.find(key); it != code_systems.end()) return it->second.get();
    std::unique_ptr<CodeSystemData> cs;
    if (source != nullptr) {
      rapidjson::Document d;
      std::string text = source->Text();
      d.Parse(text.data(), text.size());
      if (!d.HasParseError() && d.IsObject()) {
        cs = std::make_unique<CodeSystemData>();
        cs->complete = Str(d, "content") == "complete";
        auto walk = [&](auto& self, const rapidjson::Value& list, const std::string& parent) -> void {
          if (!list.IsArray()) return;
          for (const auto& c : list.GetArray()) {
            std::string code = Str(c, "code");
            if (code.empty()) continue;
            cs->codes.push_back(code);
            if (!parent.empty()) cs->children[parent].push_back(code);
            if (auto sub = c.FindMember("concept"); sub != c.MemberEnd()) self(self, sub->value, code);
          }
        };
        if (auto c = d.FindMember("concept"); c != d.MemberEnd()) walk(walk, c->value, "");
        // subsumedBy properties also make a hierarchy
        if (auto c = d.FindMember("concept"); c != d.MemberEnd() && c->value.IsArray())
          for (const auto& concept_ : c->value.GetArray())
            if (auto props = concept_.FindMember("property"); props != concept_.MemberEnd() && props->value.IsArray())
              for (const auto& p : props->value.GetArray())
                if (Str(p, "code") == "subsumedBy" && !Str(p, "valueCode").empty())
                  cs->children[Str(p, "valueCode")].push_back(Str(concept_, "code"));
      }
    }
    auto* out = cs.get();
    code_systems.emplace(key, std::move(cs));
    return out;
  }

  // Codes of a filter over a code system's hierarchy; false when the filter
  // is not one the server evaluates.
  static bool Filter(const CodeSystemData& cs, const rapidjson::Value& filter, std::vector<std::string>& out) {
    std::string property = Str(filter, "property");
    std::string op = Str(filter, "op");
    std::string value = Str(filter, "value");
    if (property != "concept" || (op != "is-a" && op != "descendent-of" && op != "=")) return false;
    if (op == "=") {
      out.push_back(value);
      return true;
    }
    if (op == "is-a") out.push_back(value);
    std::vector<std::string> stack{value};
    std::set<std::string> seen;
    while (!stack.empty()) {
      std::string c = std::move(stack.back());
      stack.pop_back();
      auto it = cs.children.find(c);
      if (it == cs.children.end()) continue;
      for (const auto& k : it->second)
        if (seen.insert(k).second) {
          out.push_back(k);
          stack.push_back(k);
        }
    }
    return true;
  }

  // Adds (or, for exclude, removes) the codes of one compose part.
  void ApplyPart(const rapidjson::Value& part, bool include, Expansion& x, int depth) const {
    std::string system = Str(part, "system");
    std::set<std::string> part_codes;  // system|code
    bool from_value_sets = false;
    std::vector<const Expansion*> nested;
    if (auto vs = part.FindMember("valueSet"); vs != part.MemberEnd() && vs->value.IsArray()) {
      for (const auto& u : vs->value.GetArray())
        if (u.IsString()) {
          const Expansion* n = Expand(std::string_view(u.GetString(), u.GetStringLength()), depth + 1);
          nested.push_back(n);
          from_value_sets = true;
        }
    }
    bool open = false;
    if (!system.empty()) {
      auto concepts = part.FindMember("concept");
      auto filters = part.FindMember("filter");
      bool has_concepts = concepts != part.MemberEnd() && concepts->value.IsArray();
      bool has_filters = filters != part.MemberEnd() && filters->value.IsArray() && !filters->value.Empty();
      if (has_concepts) {
        for (const auto& c : concepts->value.GetArray()) part_codes.insert(system + "|" + Str(c, "code"));
      } else {
        // the version the part names, if any; else the latest
        const std::string version = Str(part, "version");
        const CodeSystemData* cs = CodeSystem(version.empty() ? system : system + "|" + version);
        if (cs == nullptr || (!cs->complete && !has_filters)) {
          open = true;
          if (include && !has_filters && !from_value_sets) x.whole_systems.insert(system);
        } else if (has_filters) {
          std::optional<std::set<std::string>> acc;
          for (const auto& f : filters->value.GetArray()) {
            std::vector<std::string> codes;
            if (!Filter(*cs, f, codes)) {
              open = true;
              break;
            }
            std::set<std::string> s(codes.begin(), codes.end());
            if (!acc) {
              acc = std::move(s);
            } else {
              std::set<std::string> both;
              for (const auto& c : *acc)
                if (s.count(c)) both.insert(c);
              acc = std::move(both);
            }
          }
          if (!open && acc)
            for (const auto& c : *acc) part_codes.insert(system + "|" + c);
        } else {
          for (const auto& c : cs->codes) part_codes.insert(system + "|" + c);
        }
      }
    }
    if (from_value_sets) {
      // the intersection of the nested value sets (and of the system part, if any)
      for (const Expansion* n : nested)
        if (n == nullptr || !n->known || !n->open_reason.empty()) {
          if (include) {
            x.open_reason = "it includes a value set the server cannot expand";
            if (n != nullptr)
              for (const auto& s : n->open_systems) x.open_systems.insert(s);
          }
          return;
        }
      std::set<std::string> acc(nested.front()->codes.begin(), nested.front()->codes.end());
      for (std::size_t i = 1; i < nested.size(); ++i) {
        std::set<std::string> both;
        for (const auto& c : acc)
          if (nested[i]->codes.count(c)) both.insert(c);
        acc = std::move(both);
      }
      if (!system.empty() && !open) {
        std::set<std::string> both;
        for (const auto& c : acc)
          if (part_codes.count(c)) both.insert(c);
        acc = std::move(both);
      }
      if (!system.empty() && open) {
        if (include) x.open_systems.insert(system);
        return;
      }
      part_codes = std::move(acc);
    } else if (open) {
      if (include) x.open_systems.insert(system);
      return;  // an exclude the server cannot enumerate removes nothing it knows of
    }
    for (const auto& c : part_codes) {
      if (include) x.codes.insert(c);
      else x.codes.erase(c);
    }
  }

  // The expansion of the value set a canonical reference names: kept under
  // the value set's key, so `url` and `url|version` of the latest share it.
  const Expansion* Expand(std::string_view canonical, int depth = 0) const {  // under the unique lock
    const Source* f = FindSource(value_set_files, canonical);
    const std::string url = f != nullptr ? f->key : std::string(canonical);
    if (auto it = expansions.find(url); it != expansions.end()) return it->second.get();
    auto x = std::make_unique<Expansion>();
    if (depth > 16) {
      x->open_reason = "value sets include each other too deeply";
      return expansions.emplace(url, std::move(x)).first->second.get();
    }
    // a placeholder first, so a cycle ends
    expansions.emplace(url, std::make_unique<Expansion>());
    if (f != nullptr) {
      rapidjson::Document d;
      std::string text = f->Text();
      d.Parse(text.data(), text.size());
      auto compose = d.IsObject() ? d.FindMember("compose") : d.MemberEnd();
      if (!d.HasParseError() && d.IsObject() && compose != d.MemberEnd() && compose->value.IsObject()) {
        x->known = true;
        if (auto inc = compose->value.FindMember("include"); inc != compose->value.MemberEnd() && inc->value.IsArray())
          for (const auto& part : inc->value.GetArray()) ApplyPart(part, true, *x, depth);
        if (auto exc = compose->value.FindMember("exclude"); exc != compose->value.MemberEnd() && exc->value.IsArray())
          for (const auto& part : exc->value.GetArray()) ApplyPart(part, false, *x, depth);
      }
    }
    for (const auto& c : x->codes) x->bare_codes.insert(c.substr(c.find('|') + 1));
    auto& slot = expansions[url];
    slot = std::move(x);
    return slot.get();
  }
};

Terminology::Terminology() : impl_(std::make_unique<Impl>()) {}
Terminology::~Terminology() = default;

std::shared_ptr<const Terminology> Terminology::Load(const std::vector<std::string>& dirs,
                                                     const std::vector<std::string>& stored) {
  namespace fs = std::filesystem;
  std::shared_ptr<Terminology> t(new Terminology());
  for (const auto& text : stored) {
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    if (d.HasParseError() || !d.IsObject()) continue;
    std::string type = Str(d, "resourceType"), url = Str(d, "url");
    if (url.empty() || (type != "ValueSet" && type != "CodeSystem")) continue;
    Impl::Add(type == "ValueSet" ? t->impl_->value_set_files : t->impl_->code_system_files, d, Source{{}, text, {}});
  }
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      const bool vs = name.rfind("ValueSet-", 0) == 0;
      const bool cs = name.rfind("CodeSystem-", 0) == 0;
      if ((!vs && !cs) || entry.path().extension() != ".json") continue;
      // only the canonical URL and version are needed now: they sit at the top level
      std::string text = ReadText(entry.path());
      rapidjson::Document d;
      d.Parse(text.data(), text.size());
      if (d.HasParseError() || !d.IsObject()) continue;
      if (Str(d, "url").empty()) continue;
      Impl::Add(vs ? t->impl_->value_set_files : t->impl_->code_system_files, d, Source{entry.path(), {}, {}});
    }
    // package tarballs after the loose files; a bad one is reported by the
    // ConformanceStore, which reads the same directories
    std::vector<fs::path> archives;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (IsPackageArchiveName(entry.path()) && entry.is_regular_file(ec)) archives.push_back(entry.path());
    std::sort(archives.begin(), archives.end());
    for (const auto& a : archives) {
      std::vector<PackageFile> files;
      std::string problem;
      if (!ReadPackageArchive(a, files, problem)) continue;
      for (auto& f : files) {
        if (f.text.find("\"ValueSet\"") == std::string::npos && f.text.find("\"CodeSystem\"") == std::string::npos)
          continue;
        rapidjson::Document d;
        d.Parse(f.text.data(), f.text.size());
        if (d.HasParseError() || !d.IsObject()) continue;
        std::string type = Str(d, "resourceType"), url = Str(d, "url");
        if (url.empty() || (type != "ValueSet" && type != "CodeSystem")) continue;
        Impl::Add(type == "ValueSet" ? t->impl_->value_set_files : t->impl_->code_system_files, d,
                  Source{{}, std::move(f.text), {}});
      }
    }
  }
  return t;
}

std::size_t Terminology::value_set_count() const { return impl_->value_set_files.size(); }
std::size_t Terminology::code_system_count() const { return impl_->code_system_files.size(); }

bool Terminology::SameValueSet(std::string_view a, std::string_view b) const {
  if (a == b) return true;
  if (CanonicalUrl(a) != CanonicalUrl(b)) return false;
  const Source* sa = Impl::FindSource(impl_->value_set_files, a);
  return sa != nullptr && sa == Impl::FindSource(impl_->value_set_files, b);
}

Terminology::Membership Terminology::Check(std::string_view value_set, std::string_view system,
                                           std::string_view code, std::string* why) const {
  const std::string_view url = value_set;
  const Expansion* x = nullptr;
  {
    std::shared_lock lock(impl_->mu);
    if (auto it = impl_->checked.find(url); it != impl_->checked.end()) x = it->second;
  }
  if (x == nullptr) {
    std::unique_lock lock(impl_->mu);
    x = impl_->Expand(url);
    impl_->checked.emplace(std::string(url), x);
  }
  if (!x->known) {
    if (why) *why = "the value set " + std::string(url) + " is not known to this server";
    return Membership::kUnknown;
  }
  std::string key;
  if (system.empty()) {
    if (x->bare_codes.count(std::string(code))) return Membership::kMember;
  } else {
    key.reserve(system.size() + code.size() + 1);
    key.append(system).append("|").append(code);
    if (x->codes.count(key)) return Membership::kMember;
  }
  if (!x->open_reason.empty()) {
    if (why) *why = "the value set " + std::string(url) + " cannot be fully expanded here (" + x->open_reason + ")";
    return Membership::kUnknown;
  }
  // all of UCUM: a code is in when it is a valid UCUM expression
  if ((system == kUcumSystem || (system.empty() && x->open_systems.count(std::string(kUcumSystem)))) &&
      x->whole_systems.count(std::string(kUcumSystem))) {
    auto problem = UcumProblem(code);
    if (!problem) return Membership::kMember;
    if (system == kUcumSystem || x->open_systems.size() == 1) {
      if (why) *why = *problem;
      return Membership::kNotMember;
    }
  }
  if ((system.empty() && !x->open_systems.empty()) || x->open_systems.count(std::string(system))) {
    if (why)
      *why = "codes of " + (system.empty() ? *x->open_systems.begin() : std::string(system)) +
             " cannot be enumerated by this server";
    return Membership::kUnknown;
  }
  return Membership::kNotMember;
}

}  // namespace eds::fhir
