// Loading profiles into element trees.
#include "fhir/conformance.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "fhir/definitions.hpp"

namespace eds::fhir {
namespace {

std::string Str(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

// Builds a profile's element tree from a snapshot or differential list.
std::unique_ptr<Profile> BuildProfile(const rapidjson::Value& list, std::string type, std::string& problem) {
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
    if (id == p->type) {  // the root element
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
      for (const auto& x : t->value.GetArray()) pe.types.push_back(Str(x, "code"));
    pe.rules = ReadElementRules(e);
    if (auto s = e.FindMember("slicing"); s != e.MemberEnd() && s->value.IsObject()) {
      pe.sliced = true;
      pe.closed = Str(s->value, "rules") == "closed";
      if (auto d = s->value.FindMember("discriminator"); d != s->value.MemberEnd() && d->value.IsArray())
        for (const auto& x : d->value.GetArray()) pe.discriminators.push_back({Str(x, "type"), Str(x, "path")});
    }
    // parent: a slice hangs under its sliced element, anything else under
    // the id up to its last '.'
    std::string last = id.substr(id.rfind('.') == std::string::npos ? 0 : id.rfind('.') + 1);
    std::string parent_id;
    bool is_slice = !pe.slice_name.empty() && last.find(':') != std::string::npos;
    if (is_slice) {
      parent_id = id.substr(0, id.size() - last.size()) + last.substr(0, last.find(':'));
    } else {
      auto pd = id.rfind('.');
      if (pd == std::string::npos) continue;
      parent_id = id.substr(0, pd);
    }
    auto parent = by_id.find(parent_id);
    if (parent == by_id.end()) {
      problem = "element " + id + " comes before its parent " + parent_id;
      return nullptr;
    }
    ProfileElement& stored = p->elements.emplace_back(std::move(pe));
    by_id[stored.id] = &stored;
    (is_slice ? parent->second->slices : parent->second->children).push_back(&stored);
  }
  return p;
}

}  // namespace

std::shared_ptr<const ConformanceStore> ConformanceStore::Load(const Definitions& defs,
                                                               const std::vector<std::string>& dirs) {
  namespace fs = std::filesystem;
  auto store = std::make_shared<ConformanceStore>();
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".json" && entry.path().filename() != "package.json")
        files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::ostringstream ss;
      ss << in.rdbuf();
      std::string text = ss.str();
      // cheap filter before parsing: package directories hold thousands of files
      if (text.find("\"StructureDefinition\"") == std::string::npos || text.find("constraint") == std::string::npos)
        continue;
      rapidjson::Document d;
      d.Parse(text.data(), text.size());
      if (d.HasParseError() || !d.IsObject()) {
        store->notes_.push_back(f.string() + ": not valid JSON");
        continue;
      }
      if (Str(d, "resourceType") != "StructureDefinition" || Str(d, "derivation") != "constraint" ||
          Str(d, "kind") != "resource")
        continue;
      std::string type = Str(d, "type");
      if (!defs.IsResourceType(type)) {
        store->notes_.push_back(f.string() + ": profiles unknown resource type '" + type + "'");
        continue;
      }
      const rapidjson::Value* list = nullptr;
      bool snapshot = false;
      for (const char* part : {"snapshot", "differential"}) {
        auto m = d.FindMember(part);
        if (m == d.MemberEnd() || !m->value.IsObject()) continue;
        auto el = m->value.FindMember("element");
        if (el == m->value.MemberEnd() || !el->value.IsArray()) continue;
        list = &el->value;
        snapshot = std::string_view(part) == "snapshot";
        break;
      }
      if (list == nullptr) {
        store->notes_.push_back(f.string() + ": neither snapshot nor differential");
        continue;
      }
      std::string problem;
      auto profile = BuildProfile(*list, type, problem);
      if (!profile) {
        store->notes_.push_back(f.string() + ": " + problem);
        continue;
      }
      profile->url = Str(d, "url");
      profile->name = Str(d, "name");
      profile->from_snapshot = snapshot;
      if (store->Find(profile->url) != nullptr) continue;  // the first directory wins
      store->profiles_.push_back(std::move(profile));
    }
  }
  return store;
}

const Profile* ConformanceStore::Find(std::string_view url) const {
  if (auto bar = url.find('|'); bar != std::string_view::npos) url = url.substr(0, bar);
  for (const auto& p : profiles_)
    if (p->url == url) return p.get();
  return nullptr;
}

}  // namespace eds::fhir
