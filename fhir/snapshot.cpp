// Snapshot generation from a differential and the base snapshot.
#include "fhir/snapshot.hpp"

#include <rapidjson/document.h>

#include <cstdlib>
#include <unordered_map>

namespace eds::fhir {
namespace {

using Value = rapidjson::Value;
using Allocator = rapidjson::Document::AllocatorType;

constexpr std::string_view kCoreSd = "http://hl7.org/fhir/StructureDefinition/";

std::string Str(const Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

const Value* SnapshotElements(const Value& sd) {
  if (!sd.IsObject()) return nullptr;
  auto s = sd.FindMember("snapshot");
  if (s == sd.MemberEnd() || !s->value.IsObject()) return nullptr;
  auto e = s->value.FindMember("element");
  if (e == s->value.MemberEnd() || !e->value.IsArray() || e->value.Empty()) return nullptr;
  return &e->value;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// True when `id` is `parent` or below it (a child or a slice).
bool Within(std::string_view id, std::string_view parent) {
  return id.size() > parent.size() && StartsWith(id, parent) && (id[parent.size()] == '.' || id[parent.size()] == ':');
}

// Position of the last '.' of an element id (slice names hold no dots).
std::size_t LastDot(std::string_view id) { return id.rfind('.'); }

// Upper-case first letter: "Address" from "address".
std::string Capitalised(std::string_view s) {
  std::string out(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

class Generator {
 public:
  Generator(Allocator& a, const SnapshotSource& source) : a_(a), source_(source) {}

  std::vector<Value> out;

  std::string Id(const Value& e) const {
    std::string id = Str(e, "id");
    return id.empty() ? Str(e, "path") : id;
  }

  int Find(std::string_view id) const {
    for (std::size_t i = 0; i < out.size(); ++i)
      if (IdIs(out[i], id)) return static_cast<int>(i);
    return -1;
  }

  // The index of `id`, unrolling data types and creating slices on the way;
  // -1 when it addresses nothing. `narrowed` gets the type a type-specific
  // choice name selects (valueAddress: Address); below such a name
  // (valueQuantity.code) the choice element unrolls that type.
  int Ensure(const std::string& id, std::string* narrowed = nullptr) {
    if (int i = Find(id); i >= 0) return i;
    std::size_t dot = LastDot(id);
    if (dot == std::string::npos) return -1;
    std::string parent = id.substr(0, dot);
    std::string last = id.substr(dot + 1);
    if (auto colon = last.find(':'); colon != std::string::npos) {
      int si = Ensure(parent + "." + last.substr(0, colon));
      if (si < 0) return -1;
      std::string name = last.substr(colon + 1);
      std::string real = Id(out[si]) + ":" + name;
      if (int i = Find(real); i >= 0) return i;
      return CreateSlice(si, real, name);
    }
    int pi = Ensure(parent);
    if (pi < 0) return -1;
    // the parent's id as the snapshot has it (value[x] for valueQuantity)
    const std::string real_parent = Id(out[pi]);
    const std::string child = real_parent + "." + last;
    if (int i = Find(child); i >= 0) return i;
    Unroll(pi);
    if (int i = Find(child); i >= 0) return i;
    // a type-specific name of a choice element: valueAddress -> value[x]
    for (std::size_t k = 1; k < last.size(); ++k) {
      if (last[k] < 'A' || last[k] > 'Z') continue;
      std::string choice = real_parent + "." + last.substr(0, k) + "[x]";
      int ci = Find(choice);
      if (ci < 0) continue;
      if (narrowed != nullptr) *narrowed = last.substr(k);
      else hints_[choice] = last.substr(k);
      return ci;
    }
    return -1;
  }

  // Merges differential element `d` onto out[i].
  void Merge(int i, const Value& d, const std::string& narrowed) {
    Value& e = out[i];
    for (const auto& m : d.GetObject()) {
      std::string_view key(m.name.GetString(), m.name.GetStringLength());
      if (key == "id" || key == "path") continue;
      if (key == "constraint" || key == "condition" || key == "mapping") {
        Append(e, key, m.value);
        continue;
      }
      if (StartsWith(key, "fixed") || StartsWith(key, "pattern")) RemovePrefixed(e, key.substr(0, key[0] == 'f' ? 5 : 7));
      Set(e, key, m.value);
    }
    if (!narrowed.empty() && !d.HasMember("type")) NarrowType(e, narrowed);
  }

 private:
  Allocator& a_;
  const SnapshotSource& source_;
  std::unordered_map<std::string, std::string> hints_;  // choice element id -> the type its children are of

  static bool IdIs(const Value& e, std::string_view id) {
    auto it = e.FindMember("id");
    if (it == e.MemberEnd() || !it->value.IsString()) {
      it = e.FindMember("path");
      if (it == e.MemberEnd() || !it->value.IsString()) return false;
    }
    return std::string_view(it->value.GetString(), it->value.GetStringLength()) == id;
  }

  void SetString(Value& obj, const char* key, const std::string& s) {
    Value v(s.data(), static_cast<rapidjson::SizeType>(s.size()), a_);
    if (auto it = obj.FindMember(key); it != obj.MemberEnd()) {
      it->value = v;
    } else {
      obj.AddMember(Value(key, a_), v, a_);
    }
  }

  void Set(Value& obj, std::string_view key, const Value& v) {
    Value copy(v, a_);
    for (auto& m : obj.GetObject())
      if (std::string_view(m.name.GetString(), m.name.GetStringLength()) == key) {
        m.value = copy;
        return;
      }
    obj.AddMember(Value(key.data(), static_cast<rapidjson::SizeType>(key.size()), a_), copy, a_);
  }

  void RemovePrefixed(Value& obj, std::string_view prefix) {
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd();) {
      std::string_view k(it->name.GetString(), it->name.GetStringLength());
      if (k.size() > prefix.size() && StartsWith(k, prefix) && k[prefix.size()] >= 'A' && k[prefix.size()] <= 'Z')
        it = obj.EraseMember(it);
      else
        ++it;
    }
  }

  // constraint, condition, mapping: the differential's entries are added
  // (a constraint with a key the element has replaces it).
  void Append(Value& e, std::string_view key, const Value& items) {
    if (!items.IsArray()) return;
    Value name(key.data(), static_cast<rapidjson::SizeType>(key.size()), a_);
    auto it = e.FindMember(name);
    if (it == e.MemberEnd() || !it->value.IsArray()) {
      Set(e, key, items);
      return;
    }
    Value& list = it->value;
    for (const auto& x : items.GetArray()) {
      bool replaced = false;
      if (key == "constraint" && x.IsObject()) {
        std::string k = Str(x, "key");
        for (auto& y : list.GetArray())
          if (!k.empty() && Str(y, "key") == k) {
            y = Value(x, a_);
            replaced = true;
          }
      } else if (key == "condition") {
        for (auto& y : list.GetArray()) replaced = replaced || y == x;
      }
      if (!replaced) list.PushBack(Value(x, a_), a_);
    }
  }

  // value[x] addressed as valueAddress: only the Address type stays.
  void NarrowType(Value& e, const std::string& type) {
    auto t = e.FindMember("type");
    if (t == e.MemberEnd() || !t->value.IsArray()) return;
    Value kept(rapidjson::kArrayType);
    for (auto& x : t->value.GetArray()) {
      std::string code = Str(x, "code");
      if (Capitalised(code) == type) kept.PushBack(Value(x, a_), a_);
    }
    if (!kept.Empty()) t->value = kept;
  }

  bool HasChildren(int i) const {
    std::string id = Id(out[i]);
    return static_cast<std::size_t>(i + 1) < out.size() && StartsWith(Id(out[i + 1]), id + ".");
  }

  // Inserts the elements of out[i]'s type (its profile's when it names
  // one) as its children.
  // Inserts the children of out[i]: the elements of its type (its type
  // profile's when it names one; Element's, id and extension, for a choice
  // of several types), or, for a content reference
  // (Composition.section.section), the referenced element's children in the
  // base type's definition.
  void Unroll(int i) {
    if (HasChildren(i)) return;
    const Value& e = out[i];
    const std::string path = Str(e, "path"), id = Id(e);
    if (std::string ref = Str(e, "contentReference"); !ref.empty()) {
      if (ref[0] == '#') ref.erase(0, 1);
      auto dot = ref.find('.');
      const Value* sd = dot == std::string::npos ? nullptr : source_(std::string(kCoreSd) + ref.substr(0, dot));
      const Value* elements = sd != nullptr ? SnapshotElements(*sd) : nullptr;
      if (elements == nullptr) return;
      std::vector<Value> children;
      for (const auto& c : elements->GetArray()) {
        std::string cpath = Str(c, "path");
        if (!StartsWith(cpath, ref + ".")) continue;
        Value copy(c, a_);
        SetString(copy, "path", path + cpath.substr(ref.size()));
        SetString(copy, "id", id + cpath.substr(ref.size()));
        children.push_back(std::move(copy));
      }
      out.insert(out.begin() + i + 1, std::make_move_iterator(children.begin()),
                 std::make_move_iterator(children.end()));
      return;
    }
    auto t = e.FindMember("type");
    if (t == e.MemberEnd() || !t->value.IsArray() || t->value.Empty()) return;
    const Value* type = &t->value[0];
    std::string code = Str(*type, "code");
    for (const auto& x : t->value.GetArray())
      if (Str(x, "code") != code) code.clear();
    bool common = false;  // a choice of several types: what they have in common
    if (code.empty()) {  // the type a type-specific name chose, if one did
      if (auto hint = hints_.find(id); hint != hints_.end())
        for (const auto& x : t->value.GetArray())
          if (Capitalised(Str(x, "code")) == hint->second) {
            type = &x;
            code = Str(x, "code");
          }
      if (code.empty()) {
        code = "Element";
        common = true;
      }
    }
    const Value* sd = nullptr;
    if (auto p = type->FindMember("profile"); !common && p != type->MemberEnd() && p->value.IsArray())
      for (const auto& url : p->value.GetArray())
        if (url.IsString() && sd == nullptr) sd = source_(url.GetString());
    if (sd == nullptr) sd = source_(std::string(kCoreSd) + code);
    const Value* elements = sd != nullptr ? SnapshotElements(*sd) : nullptr;
    if (elements == nullptr) return;
    std::vector<Value> children;
    for (rapidjson::SizeType k = 1; k < elements->Size(); ++k) {
      const Value& c = (*elements)[k];
      std::string cpath = Str(c, "path"), cid = Id(c);
      auto pd = cpath.find('.'), idd = cid.find('.');
      if (pd == std::string::npos || idd == std::string::npos) continue;
      Value copy(c, a_);
      SetString(copy, "path", path + cpath.substr(pd));
      SetString(copy, "id", id + cid.substr(idd));
      children.push_back(std::move(copy));
    }
    out.insert(out.begin() + i + 1, std::make_move_iterator(children.begin()), std::make_move_iterator(children.end()));
  }

  // A new slice `id` of out[si]: a copy of the sliced element and its
  // children, after the sliced element's last slice.
  int CreateSlice(int si, const std::string& id, const std::string& name) {
    std::string sliced = Id(out[si]);
    std::vector<Value> copies;
    Value root(out[si], a_);
    root.RemoveMember("slicing");
    SetString(root, "id", id);
    SetString(root, "sliceName", name);
    if (auto m = root.FindMember("min"); m != root.MemberEnd()) m->value.SetInt(0);
    copies.push_back(std::move(root));
    std::size_t k = si + 1;
    for (; k < out.size() && StartsWith(Id(out[k]), sliced + "."); ++k) {
      Value c(out[k], a_);
      SetString(c, "id", id + Id(out[k]).substr(sliced.size()));
      copies.push_back(std::move(c));
    }
    while (k < out.size() && Within(Id(out[k]), sliced)) ++k;
    out.insert(out.begin() + k, std::make_move_iterator(copies.begin()), std::make_move_iterator(copies.end()));
    return static_cast<int>(k);
  }
};

// The id a differential element without one stands for.
std::string DifferentialId(const Value& d) {
  std::string id = Str(d, "id");
  if (!id.empty()) return id;
  std::string path = Str(d, "path");
  std::string slice = Str(d, "sliceName");
  return slice.empty() ? path : path + ":" + slice;
}

}  // namespace

bool GenerateSnapshot(rapidjson::Document& sd, const SnapshotSource& source, std::string& problem,
                      std::vector<std::string>* skipped) {
  if (!sd.IsObject()) {
    problem = "not a StructureDefinition";
    return false;
  }
  const std::string base_url = Str(sd, "baseDefinition");
  const Value* base = base_url.empty() ? nullptr : source(base_url);
  const Value* base_elements = base != nullptr ? SnapshotElements(*base) : nullptr;
  if (base_elements == nullptr) {
    problem = "its base " + (base_url.empty() ? std::string("(none)") : base_url) + " is not known";
    return false;
  }
  const Value* diff = nullptr;
  if (auto d = sd.FindMember("differential"); d != sd.MemberEnd() && d->value.IsObject())
    if (auto el = d->value.FindMember("element"); el != d->value.MemberEnd() && el->value.IsArray()) diff = &el->value;
  if (diff == nullptr) {
    problem = "it has no differential";
    return false;
  }
  Allocator& a = sd.GetAllocator();
  Generator g(a, source);
  for (const auto& e : base_elements->GetArray()) {
    Value copy(e, a);
    // ids are filled in where the base has none
    if (!copy.HasMember("id")) {
      std::string path = Str(copy, "path");
      copy.AddMember("id", Value(path.data(), static_cast<rapidjson::SizeType>(path.size()), a), a);
    }
    g.out.push_back(std::move(copy));
  }
  for (const auto& d : diff->GetArray()) {
    if (!d.IsObject()) continue;
    std::string id = DifferentialId(d);
    std::string narrowed;
    int i = g.Ensure(id, &narrowed);
    if (i < 0) {
      if (skipped != nullptr) skipped->push_back(id);
      continue;
    }
    g.Merge(i, d, narrowed);
  }
  Value elements(rapidjson::kArrayType);
  elements.Reserve(static_cast<rapidjson::SizeType>(g.out.size()), a);
  for (auto& e : g.out) elements.PushBack(e, a);
  Value snapshot(rapidjson::kObjectType);
  snapshot.AddMember("element", elements, a);
  if (auto s = sd.FindMember("snapshot"); s != sd.MemberEnd()) {
    s->value = snapshot;
  } else {
    sd.AddMember("snapshot", snapshot, a);
  }
  return true;
}

}  // namespace eds::fhir
