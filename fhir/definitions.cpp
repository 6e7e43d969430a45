// Loading StructureDefinitions and checking resource structure against them.
#include "fhir/definitions.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "fhir/canonical.hpp"
#include "fhir/element_rules.hpp"
#include "fhir/json.hpp"
#include "fhir/json_internal.hpp"

namespace eds::fhir {
namespace {

struct Child {
  std::string name;                 // element name, without [x]
  bool choice = false;              // name[x]
  bool many = false;                // max > 1 or *
  std::vector<std::string> types;   // type codes
  std::string content_ref;          // path the element's definition is taken from
  std::string path;                 // full path, for inline (backbone) children
  int min = 0;
  std::string max;
  bool summary = false;             // isSummary
  // The FHIR type of each entry of `types`: System.String with its
  // structuredefinition-fhir-type extension becomes that type (string, uri).
  std::vector<std::string> fhir_types;
  std::shared_ptr<const ElementRules> rules;  // null when the element has none
};

struct TypeDef {
  std::string name;
  TypeKind kind = TypeKind::kComplex;
  bool abstract = false;
  std::string base;  // type name from baseDefinition; empty for the roots
  // parent path -> children, e.g. "Patient.contact" -> [relationship, name, ...]
  std::unordered_map<std::string, std::vector<Child>> children;
  std::shared_ptr<const ElementRules> root_rules;
};

constexpr std::string_view kSystemPrefix = "http://hl7.org/fhirpath/System.";
constexpr std::string_view kFhirTypeExtension =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

// Heterogeneous lookup, so string_view keys need no std::string copy.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// The FHIR primitive that stands for a FHIRPath System type in the model.
std::string FhirTypeForSystemType(std::string_view code) {
  static constexpr std::pair<std::string_view, std::string_view> kMap[] = {
      {"System.String", "string"}, {"System.Boolean", "boolean"}, {"System.Integer", "integer"},
      {"System.Decimal", "decimal"}, {"System.Date", "date"}, {"System.DateTime", "dateTime"},
      {"System.Time", "time"}};
  for (const auto& [system, fhir] : kMap)
    if (system == code) return std::string(fhir);
  return std::string(code);
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Str(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

// JSON representation of a primitive type.
enum class JsonKind { kString, kNumber, kBoolean };

JsonKind PrimitiveJsonKind(std::string_view code) {
  if (code == "boolean" || code == "System.Boolean") return JsonKind::kBoolean;
  if (code == "integer" || code == "decimal" || code == "positiveInt" || code == "unsignedInt" ||
      code == "integer64" || code == "System.Integer" || code == "System.Decimal")
    return JsonKind::kNumber;
  return JsonKind::kString;
}

std::string Capitalized(std::string_view s) {
  std::string out(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

}  // namespace

std::shared_ptr<const ElementRules> ReadElementRules(const rapidjson::Value& e) {
  auto rules = std::make_shared<ElementRules>();
  if (auto c = e.FindMember("constraint"); c != e.MemberEnd() && c->value.IsArray())
    for (const auto& x : c->value.GetArray()) {
      if (!x.IsObject()) continue;
      Constraint k;
      k.key = Str(x, "key");
      k.human = Str(x, "human");
      k.expression = Str(x, "expression");
      k.severity = Str(x, "severity") == "warning" ? Severity::kWarning : Severity::kError;
      rules->constraints.push_back(std::move(k));
    }
  if (auto b = e.FindMember("binding"); b != e.MemberEnd() && b->value.IsObject()) {
    rules->binding_strength = Str(b->value, "strength");
    rules->value_set = Str(b->value, "valueSet");
    if (rules->value_set.empty()) rules->binding_strength.clear();
  }
  if (auto m = e.FindMember("maxLength"); m != e.MemberEnd() && m->value.IsInt()) rules->max_length = m->value.GetInt();
  for (const auto& m : e.GetObject()) {
    std::string_view key(m.name.GetString(), m.name.GetStringLength());
    if (key.size() > 5 && key.substr(0, 5) == "fixed" && key[5] >= 'A' && key[5] <= 'Z')
      rules->fixed_json = SerializeJson(m.value);
    else if (key.size() > 7 && key.substr(0, 7) == "pattern" && key[7] >= 'A' && key[7] <= 'Z')
      rules->pattern_json = SerializeJson(m.value);
  }
  if (auto ty = e.FindMember("type"); ty != e.MemberEnd() && ty->value.IsArray())
    for (const auto& t : ty->value.GetArray()) {
      if (!t.IsObject() || Str(t, "code") != "Reference") continue;
      auto tp = t.FindMember("targetProfile");
      if (tp == t.MemberEnd() || !tp->value.IsArray()) continue;
      for (const auto& p : tp->value.GetArray()) {
        if (!p.IsString()) continue;
        std::string url(CanonicalUrl(p.GetString()));
        auto slash = url.rfind('/');
        rules->target_types.push_back(slash == std::string::npos ? url : url.substr(slash + 1));
      }
    }
  if (rules->Empty()) return nullptr;
  return rules;
}

struct Definitions::Impl {
  std::unordered_map<std::string, TypeDef> types;
  std::vector<std::string> resource_types;
  std::unordered_set<std::string> resource_type_set;
  std::string fhir_version = "4.0.1";
  std::string package_dir;
  // The linked model behind TypeInfo and ElementInfo (BuildModel). Both maps
  // are node-based, so the addresses handed out stay valid.
  std::unordered_map<std::string, std::unique_ptr<TypeInfo>, StringHash, std::equal_to<>> type_infos;
  std::unordered_map<std::string, std::vector<ElementInfo>> scopes;  // parent path -> children
  const std::vector<ElementInfo> no_elements;

  bool IsPrimitive(std::string_view code) const {
    if (code.rfind("System.", 0) == 0 || code.rfind(kSystemPrefix, 0) == 0) return true;
    auto it = types.find(std::string(code));
    return it != types.end() && it->second.kind == TypeKind::kPrimitive;
  }

  void AddStructure(const rapidjson::Value& sd) {
    TypeDef def;
    def.name = Str(sd, "type");
    std::string kind = Str(sd, "kind");
    def.kind = kind == "primitive-type" ? TypeKind::kPrimitive
               : kind == "resource"     ? TypeKind::kResource
                                        : TypeKind::kComplex;
    auto abs = sd.FindMember("abstract");
    def.abstract = abs != sd.MemberEnd() && abs->value.IsBool() && abs->value.GetBool();
    std::string base = Str(sd, "baseDefinition");
    if (auto slash = base.rfind('/'); slash != std::string::npos) def.base = base.substr(slash + 1);
    auto snap = sd.FindMember("snapshot");
    if (snap == sd.MemberEnd()) return;
    auto elems = snap->value.FindMember("element");
    if (elems == snap->value.MemberEnd() || !elems->value.IsArray()) return;
    for (const auto& e : elems->value.GetArray()) {
      std::string path = Str(e, "path");
      auto dot = path.rfind('.');
      if (dot == std::string::npos) {  // the root element
        def.root_rules = ReadElementRules(e);
        continue;
      }
      Child c;
      c.path = path;
      c.name = path.substr(dot + 1);
      if (c.name.size() > 3 && c.name.compare(c.name.size() - 3, 3, "[x]") == 0) {
        c.choice = true;
        c.name.resize(c.name.size() - 3);
        c.path.resize(c.path.size() - 3);
      }
      std::string max = Str(e, "max");
      c.many = max == "*" || (max != "0" && max != "1" && !max.empty());
      c.max = max;
      auto min = e.FindMember("min");
      if (min != e.MemberEnd() && min->value.IsInt()) c.min = min->value.GetInt();
      auto summary = e.FindMember("isSummary");
      c.summary = summary != e.MemberEnd() && summary->value.IsBool() && summary->value.GetBool();
      c.rules = ReadElementRules(e);
      std::string ref = Str(e, "contentReference");
      if (!ref.empty()) c.content_ref = ref[0] == '#' ? ref.substr(1) : ref;
      auto ty = e.FindMember("type");
      if (ty != e.MemberEnd() && ty->value.IsArray())
        for (const auto& t : ty->value.GetArray()) {
          std::string code = Str(t, "code");
          if (code.substr(0, kSystemPrefix.size()) == kSystemPrefix)
            code = "System." + code.substr(kSystemPrefix.size());
          std::string fhir_type = FhirTypeForSystemType(code);
          if (auto ext = t.FindMember("extension"); ext != t.MemberEnd() && ext->value.IsArray())
            for (const auto& x : ext->value.GetArray())
              if (x.IsObject() && Str(x, "url") == kFhirTypeExtension && !Str(x, "valueUrl").empty())
                fhir_type = Str(x, "valueUrl");
          // The R4 snapshots type Resource.id as string; the specification says id.
          if (def.kind == TypeKind::kResource && path == def.name + ".id") fhir_type = "id";
          c.fhir_types.push_back(std::move(fhir_type));
          c.types.push_back(std::move(code));
        }
      def.children[path.substr(0, dot)].push_back(std::move(c));
    }
    std::string name = def.name;
    types[name] = std::move(def);
  }

  const TypeInfo* FindTypeInfo(std::string_view name) const {
    auto it = type_infos.find(name);
    return it == type_infos.end() ? nullptr : it->second.get();
  }

  // Links every type to its base and every element to its types and inline
  // children. Runs once, after all StructureDefinitions are read.
  void BuildModel() {
    for (const auto& [name, def] : types) {
      auto info = std::make_unique<TypeInfo>();
      info->name = name;
      info->kind = def.kind;
      info->abstract = def.abstract;
      info->elements = &no_elements;
      info->rules = def.root_rules.get();
      type_infos.emplace(name, std::move(info));
      for (const auto& [parent, children] : def.children) {
        auto& scope = scopes[parent];
        for (const auto& c : children) {
          // FHIRPath sees a primitive's value as the item itself, not as a child.
          if (def.kind == TypeKind::kPrimitive && c.name == "value") continue;
          ElementInfo e;
          e.name = c.name;
          e.path = c.path;
          e.choice = c.choice;
          e.min = c.min;
          e.max = c.max;
          e.many = c.many;
          e.summary = c.summary;
          e.rules = c.rules.get();
          scope.push_back(std::move(e));
        }
      }
    }
    for (const auto& [name, def] : types) {
      TypeInfo& info = *type_infos.at(name);
      if (!def.base.empty()) info.base = FindTypeInfo(def.base);
      if (auto it = scopes.find(name); it != scopes.end()) info.elements = &it->second;
      for (const auto& [parent, children] : def.children) {
        auto& scope = scopes.at(parent);
        std::size_t i = 0;
        for (const auto& c : children) {
          if (def.kind == TypeKind::kPrimitive && c.name == "value") continue;
          ElementInfo& e = scope[i++];
          for (const auto& t : c.fhir_types)
            if (const TypeInfo* ti = FindTypeInfo(t)) e.types.push_back(ti);
          if (!c.content_ref.empty()) {
            if (auto it = scopes.find(c.content_ref); it != scopes.end()) e.children = &it->second;
            if (e.types.empty())
              if (const TypeInfo* bb = FindTypeInfo("BackboneElement")) e.types.push_back(bb);
          } else if (c.types.size() == 1 && (c.types[0] == "BackboneElement" || c.types[0] == "Element")) {
            if (auto it = scopes.find(c.path); it != scopes.end()) e.children = &it->second;
          }
        }
      }
    }
  }
};

Definitions::Definitions() : impl_(std::make_unique<Impl>()) {}
Definitions::~Definitions() = default;

std::shared_ptr<const Definitions> Definitions::Load(const std::string& package_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(package_dir))
    throw std::runtime_error("FHIR definitions directory not found: " + package_dir +
                             " (run deploy/fetch_definitions.sh)");
  std::shared_ptr<Definitions> defs(new Definitions());
  auto& impl = *defs->impl_;
  impl.package_dir = package_dir;
  {
    rapidjson::Document pkg;
    std::string text = ReadFile(fs::path(package_dir) / "package.json");
    pkg.Parse(text.data(), text.size());
    if (!pkg.HasParseError() && pkg.IsObject()) {
      auto fv = pkg.FindMember("fhirVersions");
      if (fv != pkg.MemberEnd() && fv->value.IsArray() && !fv->value.Empty() &&
          fv->value[0].IsString())
        impl.fhir_version = fv->value[0].GetString();
    }
  }
  for (const auto& entry : fs::directory_iterator(package_dir)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("StructureDefinition-", 0) != 0 || entry.path().extension() != ".json") continue;
    std::string text = ReadFile(entry.path());
    rapidjson::Document sd;
    sd.Parse(text.data(), text.size());
    if (sd.HasParseError() || !sd.IsObject()) continue;
    std::string kind = Str(sd, "kind");
    std::string derivation = Str(sd, "derivation");
    if (kind == "logical" || derivation == "constraint") continue;
    impl.AddStructure(sd);
  }
  for (const auto& [name, def] : impl.types)
    if (def.kind == TypeKind::kResource && !def.abstract) impl.resource_types.push_back(name);
  std::sort(impl.resource_types.begin(), impl.resource_types.end());
  impl.resource_type_set.insert(impl.resource_types.begin(), impl.resource_types.end());
  impl.BuildModel();
  if (impl.resource_types.empty())
    throw std::runtime_error("no resource StructureDefinitions found in " + package_dir);
  return defs;
}

const std::vector<std::string>& Definitions::resource_types() const { return impl_->resource_types; }

bool Definitions::IsResourceType(std::string_view name) const {
  return impl_->resource_type_set.count(std::string(name)) != 0;
}

const std::string& Definitions::fhir_version() const { return impl_->fhir_version; }
const std::string& Definitions::package_dir() const { return impl_->package_dir; }

const TypeInfo* Definitions::FindType(std::string_view name) const { return impl_->FindTypeInfo(name); }

bool Definitions::IsPrimitiveType(std::string_view name) const {
  const TypeInfo* t = FindType(name);
  return t != nullptr && t->kind == TypeKind::kPrimitive;
}

const ElementInfo* Definitions::FindElement(std::string_view type, std::string_view path) const {
  const TypeInfo* t = FindType(type);
  if (t == nullptr || path.empty()) return nullptr;
  const std::vector<ElementInfo>* scope = t->elements;
  while (true) {
    auto dot = path.find('.');
    std::string_view segment = path.substr(0, dot);
    const ElementInfo* e = FindElementIn(*scope, segment);
    const TypeInfo* chosen = nullptr;
    if (e == nullptr) {
      // a choice variant by its JSON name: valueQuantity
      for (const auto& candidate : *scope)
        if (candidate.choice && (chosen = candidate.ChoiceType(segment)) != nullptr) {
          e = &candidate;
          break;
        }
      if (e == nullptr) return nullptr;
    }
    if (dot == std::string_view::npos) return e;
    path.remove_prefix(dot + 1);
    if (e->children != nullptr) {
      scope = e->children;
    } else {
      if (chosen == nullptr && e->types.size() == 1) chosen = e->types.front();
      if (chosen == nullptr) return nullptr;
      scope = chosen->elements;
    }
  }
}

const ElementInfo* FindElementIn(const std::vector<ElementInfo>& elements, std::string_view name) {
  for (const auto& e : elements)
    if (e.name == name) return &e;
  return nullptr;
}

const TypeInfo* ElementInfo::ChoiceType(std::string_view property) const {
  if (!choice || property.size() <= name.size() || property.substr(0, name.size()) != name) return nullptr;
  std::string_view suffix = property.substr(name.size());
  for (const TypeInfo* t : types) {
    const std::string& n = t->name;
    if (n.size() != suffix.size() || n.empty()) continue;
    char first = n[0] >= 'a' && n[0] <= 'z' ? static_cast<char>(n[0] - 'a' + 'A') : n[0];
    if (first == suffix[0] && std::string_view(n).substr(1) == suffix.substr(1)) return t;
  }
  return nullptr;
}

bool TypeInfo::IsA(const TypeInfo& other) const {
  for (const TypeInfo* t = this; t != nullptr; t = t->base)
    if (t == &other) return true;
  return false;
}

const ElementInfo* TypeInfo::Element(std::string_view element_name) const {
  return FindElementIn(*elements, element_name);
}

namespace {

constexpr std::size_t kMaxIssues = 100;

class StructureChecker {
 public:
  StructureChecker(const Definitions::Impl& defs, Outcome& out) : defs_(defs), out_(out) {}

  void CheckResource(const JsonValue& obj, const std::string& expr) {
    auto rt = obj.FindMember("resourceType");
    if (rt == obj.MemberEnd() || !IsString(rt->value)) {
      Report(expr, "a resource must have a resourceType");
      return;
    }
    std::string type(StringOf(rt->value));
    auto it = defs_.types.find(type);
    if (it == defs_.types.end() || it->second.kind != TypeKind::kResource || it->second.abstract) {
      Report(expr + ".resourceType", "unknown resource type '" + type + "'");
      return;
    }
    CheckObject(obj, it->second, type, expr.empty() ? type : expr, true);
  }

 private:
  void Report(const std::string& expr, std::string message) {
    if (out_.issues().size() < kMaxIssues)
      out_.Add({Severity::kError, "structure", std::move(message), expr});
  }

  const TypeDef* Type(const std::string& code) const {
    auto it = defs_.types.find(code);
    return it == defs_.types.end() ? nullptr : &it->second;
  }

  // Checks `obj` as the element at `path` of type definition `def`.
  void CheckObject(const JsonValue& obj, const TypeDef& def, const std::string& path,
                   const std::string& expr, bool resource_root) {
    if (!obj.IsObject()) {
      Report(expr, "expected a JSON object");
      return;
    }
    if (obj.MemberCount() == 0) {
      Report(expr, "empty objects are not allowed");
      return;
    }
    auto kids = def.children.find(path);
    static const std::vector<Child> kNone;
    const auto& children = kids == def.children.end() ? kNone : kids->second;
    // Per element: its value and its _element, to check them together, and
    // which variant of each choice element was used.
    struct Seen {
      const JsonValue* value = nullptr;
      const JsonValue* extension = nullptr;
      std::string key;
    };
    std::unordered_map<const Child*, Seen> seen;
    for (const auto& m : obj.GetObject()) {
      std::string key(StringOf(m.name));
      if (resource_root && key == "resourceType") continue;
      bool underscore = !key.empty() && key[0] == '_';
      std::string base = underscore ? key.substr(1) : key;
      std::string type;
      const Child* child = Find(children, base, type);
      std::string child_expr = expr + "." + base;
      if (child == nullptr) {
        Report(expr + "." + key, "unknown element '" + key + "'");
        continue;
      }
      Seen& s = seen[child];
      if (child->choice && !s.key.empty() && s.key != base) {
        Report(expr + "." + child->name,
               "only one of the " + child->name + "[x] types may be present ('" + s.key + "' and '" + base + "')");
        continue;
      }
      s.key = base;
      if (underscore) {
        if (!defs_.IsPrimitive(type)) {
          Report(expr + "." + key, "'" + key + "' is only allowed for primitive elements");
          continue;
        }
        s.extension = &m.value;
        CheckMany(m.value, *child, child_expr, [&](const JsonValue& v, const std::string& e) {
          if (v.IsNull() && child->many) return;  // placeholder matching a primitive array
          CheckPrimitiveElement(v, e);
        });
        continue;
      }
      s.value = &m.value;
      CheckMany(m.value, *child, child_expr, [&](const JsonValue& v, const std::string& e) {
        CheckValue(v, *child, type, def, e);
      });
    }
    for (const auto& [child, s] : seen) {
      if (!child->many || !defs_.IsPrimitive(child->types.empty() ? "" : child->types.front())) continue;
      CheckPrimitiveArrays(s.value, s.extension, expr + "." + s.key);
    }
  }

  // A repeating primitive and its _element: equal lengths, and a null on one
  // side only where the other has something.
  void CheckPrimitiveArrays(const JsonValue* values, const JsonValue* extensions, const std::string& expr) {
    bool values_ok = values != nullptr && values->IsArray();
    bool extensions_ok = extensions != nullptr && extensions->IsArray();
    if (values_ok && extensions_ok && values->Size() != extensions->Size()) {
      Report(expr, "the array and its '_' array must have the same length");
      return;
    }
    auto size = values_ok ? values->Size() : extensions_ok ? extensions->Size() : 0;
    for (rapidjson::SizeType i = 0; i < size; ++i) {
      bool v_null = !values_ok || (*values)[i].IsNull();
      bool e_null = !extensions_ok || (*extensions)[i].IsNull();
      if (v_null && e_null) Report(expr + "[" + std::to_string(i) + "]", "null values are not allowed");
    }
  }

  const Child* Find(const std::vector<Child>& children, const std::string& name,
                    std::string& type) const {
    for (const auto& c : children) {
      if (!c.choice && c.name == name) {
        type = c.types.empty() ? std::string() : c.types.front();
        return &c;
      }
    }
    for (const auto& c : children) {
      if (!c.choice || name.size() <= c.name.size() || name.compare(0, c.name.size(), c.name) != 0)
        continue;
      std::string suffix = name.substr(c.name.size());
      for (const auto& t : c.types)
        if (Capitalized(t) == suffix) {
          type = t;
          return &c;
        }
    }
    return nullptr;
  }

  template <class Fn>
  void CheckMany(const JsonValue& v, const Child& c, const std::string& expr, Fn&& each) {
    if (c.many) {
      if (!v.IsArray()) {
        Report(expr, "element repeats, so its value must be a JSON array");
        return;
      }
      if (v.Empty()) {
        Report(expr, "empty arrays are not allowed");
        return;
      }
      rapidjson::SizeType i = 0;
      for (const auto& e : v.GetArray()) each(e, expr + "[" + std::to_string(i++) + "]");
    } else {
      if (v.IsArray()) {
        Report(expr, "element does not repeat, so its value must not be a JSON array");
        return;
      }
      each(v, expr);
    }
  }

  void CheckPrimitiveElement(const JsonValue& v, const std::string& expr) {
    const TypeDef* element = Type("Element");
    if (element == nullptr) return;
    CheckObject(v, *element, "Element", expr, false);
  }

  void CheckValue(const JsonValue& v, const Child& c, const std::string& type,
                  const TypeDef& owner, const std::string& expr) {
    if (v.IsNull()) {
      // in a primitive array a null may stand where the _element array has a
      // value (CheckPrimitiveArrays); anywhere else it is an error
      if (!(c.many && defs_.IsPrimitive(type))) Report(expr, "null values are not allowed");
      return;
    }
    if (!c.content_ref.empty()) {
      // e.g. Questionnaire.item.item -> #Questionnaire.item
      auto dot = c.content_ref.find('.');
      const TypeDef* t = Type(c.content_ref.substr(0, dot));
      if (t != nullptr) CheckObject(v, *t, c.content_ref, expr, false);
      return;
    }
    if (type.empty()) return;
    if (defs_.IsPrimitive(type)) {
      CheckPrimitive(v, type, expr);
      return;
    }
    if (type == "Resource") {
      if (!v.IsObject()) Report(expr, "expected a resource (JSON object)");
      else CheckResource(v, expr);
      return;
    }
    if (type == "BackboneElement" || type == "Element") {
      // inline definition: children are listed under this element's own path
      if (owner.children.count(c.path) != 0) {
        CheckObject(v, owner, c.path, expr, false);
        return;
      }
    }
    const TypeDef* t = Type(type);
    if (t == nullptr) return;  // unknown type code: nothing to check against
    CheckObject(v, *t, t->name, expr, false);
  }

  void CheckPrimitive(const JsonValue& v, const std::string& type, const std::string& expr) {
    switch (PrimitiveJsonKind(type)) {
      case JsonKind::kBoolean:
        if (!v.IsBool()) Report(expr, "expected a JSON boolean for type " + type);
        break;
      case JsonKind::kNumber:
        if (!IsNumber(v)) Report(expr, "expected a JSON number for type " + type);
        break;
      case JsonKind::kString:
        if (!IsString(v)) Report(expr, "expected a JSON string for type " + type);
        else if (v.GetStringLength() == 0) Report(expr, "empty strings are not allowed");
        break;
    }
  }

  const Definitions::Impl& defs_;
  Outcome& out_;
};

}  // namespace

Outcome Definitions::CheckStructure(const Resource& resource) const {
  Outcome out;
  StructureChecker checker(*impl_, out);
  checker.CheckResource(resource.tree().doc, "");
  return out;
}

}  // namespace eds::fhir
