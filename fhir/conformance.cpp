// Loading profiles: StructureDefinitions found, snapshots generated where
// missing, element trees built and reduced to what differs from the base.
#include "fhir/conformance.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_set>

#include "fhir/definitions.hpp"
#include "fhir/package_archive.hpp"
#include "fhir/snapshot.hpp"

namespace eds::fhir {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kCoreSd = "http://hl7.org/fhir/StructureDefinition/";

std::string Str(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

std::string ReadText(const fs::path& f) {
  std::ifstream in(f, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const rapidjson::Value* ElementList(const rapidjson::Value& sd, const char* part) {
  auto m = sd.FindMember(part);
  if (m == sd.MemberEnd() || !m->value.IsObject()) return nullptr;
  auto el = m->value.FindMember("element");
  if (el == m->value.MemberEnd() || !el->value.IsArray() || el->value.Empty()) return nullptr;
  return &el->value;
}

// One StructureDefinition found in a directory.
struct SdEntry {
  std::string url, version, kind, derivation, type;
  fs::path file;           // empty for a stored one
  std::string label;       // the file, or the URL of a stored one, for notes
  bool candidate = false;  // found in one of the profile directories, or stored
  bool has_snapshot = false;
  std::unique_ptr<rapidjson::Document> doc;  // loaded on demand
  bool generating = false, generated = false, failed = false;
};

// Builds a profile's element tree from its snapshot (or, failing that,
// differential) element list. `target_type` gives the type a target
// profile constrains ("" when unknown).
template <typename TargetType>
std::unique_ptr<Profile> BuildProfile(const rapidjson::Value& list, std::string type, const TargetType& target_type,
                                      std::string& problem) {
  auto p = std::make_unique<Profile>();
  p->type = std::move(type);
  std::unordered_map<std::string, ProfileElement*> by_id;
  ProfileElement& root = p->elements.emplace_back();
  root.id = root.path = root.name = p->type;
  by_id[root.id] = &root;
  for (const auto& e : list.GetArray()) {
    std::string path = Str(e, "path");
    std::string id = Str(e, "id");
    if (id.empty()) id = path;
    if (path.empty()) continue;
    if (id == p->type || path.find('.') == std::string::npos) {  // the root element
      root.rules = ReadElementRules(e);
      continue;
    }
    ProfileElement pe;
    pe.id = id;
    pe.path = path;
    pe.slice_name = Str(e, "sliceName");
    auto dot = path.rfind('.');
    pe.name = dot == std::string::npos ? path : path.substr(dot + 1);
    if (pe.name.size() > 3 && pe.name.compare(pe.name.size() - 3, 3, "[x]") == 0) {
      pe.choice = true;
      pe.name.resize(pe.name.size() - 3);
    }
    if (auto m = e.FindMember("min"); m != e.MemberEnd() && m->value.IsInt()) pe.min = m->value.GetInt();
    if (std::string max = Str(e, "max"); !max.empty()) pe.max = max;
    if (auto t = e.FindMember("type"); t != e.MemberEnd() && t->value.IsArray())
      for (const auto& x : t->value.GetArray()) {
        pe.types.push_back(Str(x, "code"));
        for (const char* key : {"profile", "targetProfile"})
          if (auto ps = x.FindMember(key); ps != x.MemberEnd() && ps->value.IsArray())
            for (const auto& u : ps->value.GetArray())
              if (u.IsString())
                (key[0] == 'p' ? pe.type_profiles : pe.target_profiles).push_back(u.GetString());
      }
    pe.rules = ReadElementRules(e);
    // reference targets named by profile: the type each constrains
    if (pe.rules != nullptr && !pe.target_profiles.empty()) {
      auto rules = std::make_shared<ElementRules>(*pe.rules);
      rules->target_types.clear();
      bool all_known = true;
      for (const auto& url : pe.target_profiles) {
        std::string t = target_type(url);
        if (t.empty()) all_known = false;
        else if (std::find(rules->target_types.begin(), rules->target_types.end(), t) == rules->target_types.end())
          rules->target_types.push_back(t);
      }
      if (!all_known) rules->target_types.clear();  // unknown profiles: no check rather than a wrong one
      pe.rules = rules->Empty() ? nullptr : rules;
    }
    if (auto s = e.FindMember("slicing"); s != e.MemberEnd() && s->value.IsObject()) {
      pe.sliced = true;
      const std::string rules = Str(s->value, "rules");
      pe.closed = rules == "closed";
      pe.open_at_end = rules == "openAtEnd";
      if (auto o = s->value.FindMember("ordered"); o != s->value.MemberEnd() && o->value.IsBool())
        pe.ordered = o->value.GetBool();
      if (auto d = s->value.FindMember("discriminator"); d != s->value.MemberEnd() && d->value.IsArray())
        for (const auto& x : d->value.GetArray()) pe.discriminators.push_back({Str(x, "type"), Str(x, "path")});
    }
    // parent: a slice hangs under its sliced element, anything else under
    // the id up to its last '.'
    std::string last = id.substr(id.rfind('.') == std::string::npos ? 0 : id.rfind('.') + 1);
    std::string parent_id;
    bool is_slice = last.find(':') != std::string::npos;
    if (is_slice) {
      parent_id = id.substr(0, id.size() - last.size()) + last.substr(0, last.find(':'));
      if (pe.slice_name.empty()) pe.slice_name = last.substr(last.find(':') + 1);
    } else {
      auto pd = id.rfind('.');
      if (pd == std::string::npos) continue;
      parent_id = id.substr(0, pd);
    }
    auto parent = by_id.find(parent_id);
    std::string alias;
    if (parent == by_id.end() && is_slice) {
      // A snapshot that slices an element without listing the element (the
      // core profiles catalog and familymemberhistory-genetic slice the
      // single Composition.date): the slice stands for the element.
      auto pd = parent_id.rfind('.');
      auto up = pd == std::string::npos ? by_id.end() : by_id.find(parent_id.substr(0, pd));
      if (up != by_id.end()) {
        alias = parent_id;
        parent = up;
        is_slice = false;
        pe.slice_name.clear();
      }
    }
    if (parent == by_id.end()) {
      problem = "element " + id + " comes before its parent " + parent_id;
      return nullptr;
    }
    ProfileElement& stored = p->elements.emplace_back(std::move(pe));
    by_id[stored.id] = &stored;
    if (!alias.empty()) by_id[alias] = &stored;
    (is_slice ? parent->second->slices : parent->second->children).push_back(&stored);
  }
  // extensions sliced without a stated slicing: by url, open
  for (auto& pe : p->elements)
    if (!pe.slices.empty() && !pe.sliced && (pe.name == "extension" || pe.name == "modifierExtension")) {
      pe.sliced = true;
      pe.discriminators.push_back({"value", "url"});
    }
  return p;
}

// Marks the elements each discriminator path leads to in each slice.
void PinDiscriminators(Profile& p) {
  for (auto& pe : p.elements) {
    if (pe.discriminators.empty()) continue;
    for (ProfileElement* slice : pe.slices)
      for (const auto& d : pe.discriminators) {
        std::string_view path = d.path;
        if (path.substr(0, 6) == "$this.") path.remove_prefix(6);
        if (path == "$this") continue;
        ProfileElement* at = slice;
        while (at != nullptr && !path.empty()) {
          auto dot = path.find('.');
          std::string_view head = path.substr(0, dot);
          path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
          ProfileElement* next = nullptr;
          for (ProfileElement* c : at->children)
            if (c->name == head) next = c;
          if (next != nullptr) next->pinned = true;
          at = next;
        }
      }
  }
}

bool Contains(const ElementRules* rules, const std::string& key) {
  if (rules == nullptr) return false;
  for (const auto& c : rules->constraints)
    if (c.key == key) return true;
  return false;
}

// What `own` adds to the base element `base` of type `type`; nullptr when nothing.
std::shared_ptr<const ElementRules> Delta(const std::shared_ptr<const ElementRules>& own, const ElementInfo* base,
                                          const TypeInfo* type) {
  if (own == nullptr) return nullptr;
  auto d = std::make_shared<ElementRules>();
  const ElementRules* b = base != nullptr ? base->rules : nullptr;
  for (const auto& c : own->constraints) {
    bool known = Contains(b, c.key) || (type != nullptr && Contains(type->rules, c.key));
    if (base != nullptr)
      for (const TypeInfo* t : base->types) known = known || Contains(t->rules, c.key);
    if (!known) d->constraints.push_back(c);
  }
  if (b == nullptr || b->binding_strength != own->binding_strength || b->value_set != own->value_set) {
    d->binding_strength = own->binding_strength;
    d->value_set = own->value_set;
  }
  if (b == nullptr || b->max_length != own->max_length) d->max_length = own->max_length;
  d->fixed_json = own->fixed_json;
  d->pattern_json = own->pattern_json;
  if (b == nullptr || b->target_types != own->target_types) d->target_types = own->target_types;
  if (d->Empty()) return nullptr;
  return d;
}

class Pruner {
 public:
  Pruner(const Definitions& defs, const std::unordered_set<std::string>& base_type_profiles)
      : defs_(defs), base_type_profiles_(base_type_profiles) {}

  void Run(Profile& p) {
    ProfileElement& root = p.elements.front();
    const TypeInfo* t = defs_.FindType(p.type);
    root.rules = Delta(root.rules, nullptr, nullptr);
    if (root.rules != nullptr && t != nullptr) {
      // the root's invariants the type has are checked by the base walk
      auto r = std::make_shared<ElementRules>();
      for (const auto& c : root.rules->constraints)
        if (!Contains(t->rules, c.key)) r->constraints.push_back(c);
      root.rules = r->constraints.empty() ? nullptr : r;
    }
    Children(root, nullptr, t);
  }

 private:
  const Definitions& defs_;
  const std::unordered_set<std::string>& base_type_profiles_;

  const TypeInfo* TypeOf(const ProfileElement& pe, const ElementInfo* base) const {
    if (pe.types.size() == 1)
      if (const TypeInfo* t = defs_.FindType(pe.types.front())) return t;
    if (base != nullptr && base->types.size() == 1) return base->types.front();
    return nullptr;
  }

  // Prunes the children of `pe` (whose base element is `base`, values of
  // type `type`); returns whether any is left.
  void Children(ProfileElement& pe, const ElementInfo* base, const TypeInfo* type) {
    const std::vector<ElementInfo>* scope =
        base != nullptr && base->children != nullptr ? base->children : type != nullptr ? type->elements : nullptr;
    std::vector<ProfileElement*> kept;
    for (ProfileElement* c : pe.children) {
      const ElementInfo* cb = scope != nullptr ? FindElementIn(*scope, c->name) : nullptr;
      if (Keep(*c, cb)) kept.push_back(c);
    }
    pe.children = std::move(kept);
  }

  bool Keep(ProfileElement& pe, const ElementInfo* base) {
    const TypeInfo* type = TypeOf(pe, base);
    Children(pe, base, type);
    for (ProfileElement* s : pe.slices) Keep(*s, base);
    pe.rules = Delta(pe.rules, base, type);
    if (base == nullptr || pe.pinned || !pe.children.empty() || !pe.slices.empty() || pe.sliced || pe.rules)
      return true;
    if (!pe.slice_name.empty()) return true;
    if (pe.min && *pe.min != base->min) return true;
    if (pe.max && *pe.max != base->max) return true;
    if (pe.choice && !pe.types.empty() && pe.types.size() != base->types.size()) return true;
    for (const auto& url : pe.type_profiles)
      if (!base_type_profiles_.count(std::string(CanonicalUrl(url)))) return true;
    return false;
  }
};

}  // namespace

std::shared_ptr<const ConformanceStore> ConformanceStore::Load(const Definitions& defs,
                                                               const std::vector<std::string>& dirs,
                                                               const std::vector<std::string>& stored) {
  auto store = std::make_shared<ConformanceStore>();
  std::deque<SdEntry> kept_entries;
  CanonicalMap<SdEntry*> sds;  // by URL and version
  std::vector<SdEntry*> order;  // candidates in the order found
  // the type profiles of the base definitions (SimpleQuantity), by URL: the
  // base walk checks them already
  std::unordered_set<std::string> base_type_profiles;
  std::set<fs::path> scanned;
  // Registers one StructureDefinition (`file` empty: stored; `entry` set:
  // an entry of the package tarball `file`; both kept in memory).
  auto add = [&](std::unique_ptr<rapidjson::Document> d, const fs::path& file, bool candidate,
                 const std::string& entry = {}) {
    if (Str(*d, "resourceType") != "StructureDefinition") return;
    SdEntry e;
    e.url = std::string(CanonicalUrl(Str(*d, "url")));
    e.version = Str(*d, "version");
    e.kind = Str(*d, "kind");
    e.derivation = Str(*d, "derivation");
    e.type = Str(*d, "type");
    e.file = file;
    e.label = file.empty()     ? "StructureDefinition " + e.url + (e.version.empty() ? "" : "|" + e.version) + " (stored)"
              : entry.empty() ? file.string()
                              : file.string() + "#package/" + entry;
    e.candidate = candidate;
    e.has_snapshot = ElementList(*d, "snapshot") != nullptr;
    // the first one found of a URL and version wins
    if (e.url.empty() || sds.FindExact(e.url, e.version) != nullptr) return;
    if (e.derivation == "specialization" && e.has_snapshot)
      for (const auto& el : ElementList(*d, "snapshot")->GetArray())
        if (auto t = el.FindMember("type"); t != el.MemberEnd() && t->value.IsArray())
          for (const auto& x : t->value.GetArray())
            if (auto ps = x.FindMember("profile"); ps != x.MemberEnd() && ps->value.IsArray())
              for (const auto& u : ps->value.GetArray())
                if (u.IsString()) base_type_profiles.insert(std::string(CanonicalUrl(u.GetString())));
    bool wanted = candidate && e.derivation == "constraint" && (e.kind == "resource" || e.kind == "complex-type");
    // kept: it will be built (or cannot be read again)
    if (wanted || file.empty() || !entry.empty()) e.doc = std::move(d);
    SdEntry& kept = kept_entries.emplace_back(std::move(e));
    sds.Add(kept.url, kept.version, &kept);
    if (wanted) order.push_back(&kept);
  };
  for (const auto& text : stored) {
    auto d = std::make_unique<rapidjson::Document>();
    d->Parse(text.data(), text.size());
    if (d->HasParseError() || !d->IsObject()) continue;  // stored resources were checked on write
    add(std::move(d), {}, true);
  }
  auto scan = [&](const std::string& dir, bool candidate) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    fs::path canonical = fs::weakly_canonical(dir, ec);
    if (!scanned.insert(canonical).second) return;
    std::vector<fs::path> files, archives;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".json" && entry.path().filename() != "package.json")
        files.push_back(entry.path());
      else if (candidate && IsPackageArchiveName(entry.path()) && entry.is_regular_file(ec))
        archives.push_back(entry.path());
    std::sort(files.begin(), files.end());
    std::sort(archives.begin(), archives.end());
    // One JSON text: parsed and registered when it holds a StructureDefinition.
    auto read = [&](const std::string& text, const fs::path& f, const std::string& entry) {
      // cheap filter before parsing: package directories hold thousands of files
      if (text.find("\"StructureDefinition\"") == std::string::npos) return;
      auto d = std::make_unique<rapidjson::Document>();
      d->Parse(text.data(), text.size());
      if (d->HasParseError() || !d->IsObject()) {
        if (candidate)
          store->notes_.push_back(f.string() + (entry.empty() ? "" : "#package/" + entry) + ": not valid JSON");
        return;
      }
      add(std::move(d), f, candidate, entry);
    };
    for (const auto& f : files) read(ReadText(f), f, {});
    // package tarballs after the loose files: a loose file wins over an entry with its URL
    for (const auto& a : archives) {
      std::vector<PackageFile> entries;
      std::string problem;
      if (!ReadPackageArchive(a, entries, problem)) {
        store->notes_.push_back(a.string() + ": not a readable FHIR package: " + problem);
        continue;
      }
      for (const auto& e : entries) read(e.text, a, e.name);
    }
  };
  for (const auto& dir : dirs) scan(dir, true);
  scan(defs.package_dir(), false);

  // The StructureDefinition a canonical reference names, with its snapshot.
  std::function<const rapidjson::Value*(std::string_view)> source;
  // The StructureDefinition of one entry with its snapshot, generated when missing.
  auto prepare = [&](SdEntry& e) -> const rapidjson::Value* {
    if (e.failed || e.generating) return nullptr;
    if (e.doc == nullptr) {
      std::string text = ReadText(e.file);
      e.doc = std::make_unique<rapidjson::Document>();
      e.doc->Parse(text.data(), text.size());
      if (e.doc->HasParseError()) {
        e.failed = true;
        return nullptr;
      }
    }
    if (!e.has_snapshot) {
      if (e.derivation != "constraint") {
        e.failed = true;
        return nullptr;
      }
      e.generating = true;
      std::string problem;
      std::vector<std::string> skipped;
      bool ok = GenerateSnapshot(*e.doc, source, problem, &skipped);
      e.generating = false;
      if (!ok) {
        e.failed = true;
        store->notes_.push_back(e.label + ": no snapshot could be generated: " + problem);
        return nullptr;
      }
      for (const auto& s : skipped)
        store->notes_.push_back(e.label + ": differential element " + s + " addresses no element of the base");
      e.has_snapshot = true;
      e.generated = true;
    }
    return e.doc.get();
  };
  source = [&](std::string_view canonical) -> const rapidjson::Value* {
    SdEntry* const* found = sds.Find(canonical);
    return found == nullptr ? nullptr : prepare(**found);
  };
  auto target_type = [&](const std::string& canonical) -> std::string {
    // a core resource: its URL alone, or with the package's FHIR version
    const auto [url, version] = SplitCanonical(canonical);
    if (url.substr(0, kCoreSd.size()) == kCoreSd && defs.IsResourceType(url.substr(kCoreSd.size())) &&
        (version.empty() || version == defs.fhir_version()))
      return std::string(url.substr(kCoreSd.size()));
    SdEntry* const* e = sds.Find(canonical);
    if (e == nullptr || (*e)->kind != "resource") return {};
    return (*e)->type;
  };

  Pruner pruner(defs, base_type_profiles);
  for (SdEntry* at : order) {
    SdEntry& e = *at;
    bool resource = e.kind == "resource";
    if (resource ? !defs.IsResourceType(e.type) : defs.FindType(e.type) == nullptr) {
      store->notes_.push_back(e.label + ": profiles unknown " + (resource ? "resource " : "") + "type '" + e.type +
                              "'");
      continue;
    }
    const rapidjson::Value* sd = prepare(e);
    if (sd == nullptr) continue;  // noted
    const rapidjson::Value* list = ElementList(*sd, "snapshot");
    if (list == nullptr) continue;
    std::string problem;
    auto profile = BuildProfile(*list, e.type, target_type, problem);
    if (!profile) {
      store->notes_.push_back(e.label + ": " + problem);
      continue;
    }
    profile->url = e.url;
    profile->version = e.version;
    profile->name = Str(*sd, "name");
    profile->resource = resource;
    profile->from_snapshot = !e.generated;
    profile->generated = e.generated;
    PinDiscriminators(*profile);
    pruner.Run(*profile);
    if (e.generated) {
      rapidjson::StringBuffer buf;
      rapidjson::Writer<rapidjson::StringBuffer> w(buf);
      sd->Accept(w);
      store->generated_.emplace(profile.get(), std::string(buf.GetString(), buf.GetSize()));
    }
    store->by_url_.Add(profile->url, profile->version, profile.get());
    store->profiles_.push_back(std::move(profile));
  }
  // type profiles, now that every profile is known
  for (auto& p : store->profiles_)
    for (auto& pe : p->elements)
      for (const auto& url : pe.type_profiles) {
        if (base_type_profiles.count(std::string(CanonicalUrl(url)))) continue;
        if (const Profile* tp = store->Find(url); tp != nullptr && tp != p.get()) {
          pe.type_profile = tp;
          break;
        }
      }
  return store;
}

const Profile* ConformanceStore::Find(std::string_view canonical) const {
  const Profile* const* p = by_url_.Find(canonical);
  return p == nullptr ? nullptr : *p;
}

std::size_t ConformanceStore::resource_profile_count() const {
  std::size_t n = 0;
  for (const auto& p : profiles_) n += p->resource;
  return n;
}

const std::string* ConformanceStore::GeneratedSnapshot(std::string_view canonical) const {
  auto it = generated_.find(Find(canonical));
  return it == generated_.end() ? nullptr : &it->second;
}

}  // namespace eds::fhir
