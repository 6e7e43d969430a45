// FHIRPath Patch on the RapidJSON tree: each operation's path is evaluated by
// the FHIRPath engine, the selected node is found again in the (mutable)
// document by its address, and the change is made there with the element
// definitions at hand (repeating or not, allowed types, choice names).
#include "fhir/fhirpath_patch.hpp"

#include <fmt/format.h>

#include <optional>
#include <set>
#include <vector>

#include "fhir/definitions.hpp"
#include "fhir/fhirpath.hpp"
#include "fhir/fhirpath/ast.hpp"
#include "fhir/json.hpp"
#include "fhir/json_internal.hpp"

namespace eds::fhir {
namespace {

using Alloc = rapidjson::Document::AllocatorType;
using rapidjson::SizeType;

struct Operation {
  std::string where;  // Parameters.parameter[n]
  std::string type;
  std::string path;
  std::optional<std::string> name;
  const JsonValue* value = nullptr;  // the `value` part
  std::optional<SizeType> index, source, destination;
};

const JsonValue* Member(const JsonValue& obj, std::string_view key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(rapidjson::StringRef(key.data(), static_cast<SizeType>(key.size())));
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

JsonValue* MutableMember(JsonValue& obj, std::string_view key) {
  auto it = obj.FindMember(rapidjson::StringRef(key.data(), static_cast<SizeType>(key.size())));
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

void RemoveMember(JsonValue& obj, std::string_view key) {
  auto it = obj.FindMember(rapidjson::StringRef(key.data(), static_cast<SizeType>(key.size())));
  if (it != obj.MemberEnd()) obj.EraseMember(it);
}

void AddMember(JsonValue& obj, const std::string& key, JsonValue value, Alloc& alloc) {
  JsonValue k(key.data(), static_cast<SizeType>(key.size()), alloc);
  obj.AddMember(k, value, alloc);
}

std::optional<std::string> StringMember(const JsonValue& obj, std::string_view key) {
  const JsonValue* v = Member(obj, key);
  if (v == nullptr || !IsString(*v)) return std::nullopt;
  return std::string(StringOf(*v));
}

// value[x] of a Parameters part, and the type its name carries ("String",
// "HumanName"); nullptr when the part has none.
const JsonValue* PartValue(const JsonValue& part, std::string_view& suffix) {
  for (auto m = part.MemberBegin(); m != part.MemberEnd(); ++m) {
    std::string_view key = StringOf(m->name);
    if (key.size() > 5 && key.substr(0, 5) == "value" && key[5] >= 'A' && key[5] <= 'Z') {
      suffix = key.substr(5);
      return &m->value;
    }
  }
  return nullptr;
}

Error Invalid(const Operation& op, std::string message) {
  return MakeError(ErrorKind::kInvalid, std::move(message), op.where);
}
Error Unprocessable(const Operation& op, std::string message) {
  return MakeError(ErrorKind::kUnprocessable, fmt::format("{} '{}': {}", op.type, op.path, message), op.where);
}

Result<std::vector<Operation>> ReadOperations(const Resource& parameters) {
  if (parameters.type() != "Parameters")
    return MakeError(ErrorKind::kInvalid,
                     fmt::format("a FHIRPath Patch is a Parameters resource, not {}", parameters.type()),
                     "resourceType");
  const JsonValue* list = Member(parameters.tree().doc, "parameter");
  if (list == nullptr || !list->IsArray() || list->Empty())
    return MakeError(ErrorKind::kInvalid, "the FHIRPath Patch has no operation", "Parameters.parameter");
  std::vector<Operation> ops;
  for (SizeType i = 0; i < list->Size(); ++i) {
    Operation op;
    op.where = fmt::format("Parameters.parameter[{}]", i);
    const JsonValue& p = (*list)[i];
    if (StringMember(p, "name") != std::optional<std::string>("operation"))
      return Invalid(op, "every parameter of a FHIRPath Patch must be named 'operation'");
    const JsonValue* parts = Member(p, "part");
    if (parts == nullptr || !parts->IsArray())
      return Invalid(op, "an operation needs parts (type, path, and what the type asks for)");
    std::set<std::string> seen;
    for (const auto& part : parts->GetArray()) {
      auto name = StringMember(part, "name");
      if (!name) return Invalid(op, "every part of an operation needs a name");
      if (!seen.insert(*name).second) return Invalid(op, fmt::format("the part '{}' is given twice", *name));
      auto text = [&](const char* key) -> std::optional<std::string> {
        if (auto s = StringMember(part, key)) return s;
        return std::nullopt;
      };
      if (*name == "type") {
        auto v = text("valueCode");
        if (!v) return Invalid(op, "the part 'type' needs a valueCode");
        op.type = *v;
      } else if (*name == "path") {
        auto v = text("valueString");
        if (!v || v->empty()) return Invalid(op, "the part 'path' needs a valueString");
        op.path = *v;
      } else if (*name == "name") {
        auto v = text("valueString");
        if (!v || v->empty()) return Invalid(op, "the part 'name' needs a valueString");
        op.name = *v;
      } else if (*name == "value") {
        op.value = &part;
      } else if (*name == "index" || *name == "source" || *name == "destination") {
        const JsonValue* v = Member(part, "valueInteger");
        std::optional<SizeType> n;
        if (v != nullptr && IsNumber(*v)) {
          std::string_view digits = NumberText(*v);
          if (!digits.empty() && digits.size() <= 9 && digits.find_first_not_of("0123456789") == std::string_view::npos)
            n = static_cast<SizeType>(std::stoul(std::string(digits)));
        }
        if (!n) return Invalid(op, fmt::format("the part '{}' needs a valueInteger of 0 or more", *name));
        (*name == "index" ? op.index : *name == "source" ? op.source : op.destination) = n;
      } else {
        return Invalid(op, fmt::format("unknown part '{}'", *name));
      }
    }
    if (op.type.empty()) return Invalid(op, "the operation has no type");
    if (op.path.empty()) return Invalid(op, "the operation has no path");
    auto require = [&](bool present, const char* part) -> std::optional<Error> {
      if (present) return std::nullopt;
      return Invalid(op, fmt::format("a '{}' operation needs the part '{}'", op.type, part));
    };
    std::optional<Error> missing;
    if (op.type == "add") {
      if (!(missing = require(op.name.has_value(), "name"))) missing = require(op.value != nullptr, "value");
    } else if (op.type == "insert") {
      if (!(missing = require(op.index.has_value(), "index"))) missing = require(op.value != nullptr, "value");
    } else if (op.type == "replace") {
      missing = require(op.value != nullptr, "value");
    } else if (op.type == "move") {
      if (!(missing = require(op.source.has_value(), "source")))
        missing = require(op.destination.has_value(), "destination");
    } else if (op.type != "delete") {
      return Invalid(op, fmt::format("unknown operation type '{}' (add, insert, delete, replace, move)", op.type));
    }
    if (missing) return std::move(*missing);
    ops.push_back(std::move(op));
  }
  return ops;
}

// The element of `scope` a JSON property names: "name", or a choice
// variant such as "valueQuantity".
const ElementInfo* Lookup(const std::vector<ElementInfo>& scope, std::string_view key) {
  if (const ElementInfo* e = FindElementIn(scope, key)) return e;
  for (const auto& c : scope)
    if (c.choice && c.ChoiceType(key) != nullptr) return &c;
  return nullptr;
}

// Where a selected node sits: member `key` of `parent` (position `index`
// when that member is an array).
struct Location {
  JsonValue* parent = nullptr;
  std::string key;
  bool in_array = false;
  SizeType index = 0;
  const ElementInfo* element = nullptr;
};

class Locator {
 public:
  Locator(const Definitions& defs, const void* target) : defs_(defs), target_(target) {}

  bool Find(JsonValue& obj, const std::vector<ElementInfo>* scope, Location& out) {
    for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
      std::string_view key = StringOf(m->name);
      const bool underscore = !key.empty() && key[0] == '_';
      if (underscore) key.remove_prefix(1);
      const ElementInfo* e = scope != nullptr ? Lookup(*scope, key) : nullptr;
      if (&m->value == target_) {
        out = Location{&obj, std::string(key), false, 0, e};
        return true;
      }
      if (m->value.IsArray()) {
        for (SizeType i = 0; i < m->value.Size(); ++i) {
          JsonValue& v = m->value[i];
          if (&v == target_) {
            out = Location{&obj, std::string(key), true, i, e};
            return true;
          }
          if (v.IsObject() && Find(v, ChildScope(e, key, v, underscore), out)) return true;
        }
      } else if (m->value.IsObject() && Find(m->value, ChildScope(e, key, m->value, underscore), out)) {
        return true;
      }
    }
    return false;
  }

 private:
  const std::vector<ElementInfo>* ChildScope(const ElementInfo* e, std::string_view key, const JsonValue& value,
                                             bool underscore) const {
    if (e == nullptr) return nullptr;
    if (e->children != nullptr && !underscore) return e->children;
    const TypeInfo* t = e->choice ? e->ChoiceType(key) : e->types.size() == 1 ? e->types.front() : nullptr;
    if (t == nullptr) return nullptr;
    if (t->kind == TypeKind::kResource && !underscore) {
      auto rt = StringMember(value, "resourceType");
      t = rt ? defs_.FindType(*rt) : nullptr;
      if (t == nullptr) return nullptr;
    }
    return t->elements;
  }

  const Definitions& defs_;
  const void* target_;
};

// The FHIR type value[x] names: "HumanName", "String" -> string.
const TypeInfo* TypeFromSuffix(const Definitions& defs, std::string_view suffix) {
  if (const TypeInfo* t = defs.FindType(suffix); t != nullptr && t->kind != TypeKind::kResource) return t;
  std::string lower(suffix);
  lower[0] = static_cast<char>(lower[0] - 'A' + 'a');
  return defs.FindType(lower);
}

// The type of `element` a value of type `value` may stand as, or nullptr.
// A primitive may stand for a primitive it derives from or that derives from
// it (valueString for a code): their JSON is the same.
const TypeInfo* Compatible(const TypeInfo& value, const ElementInfo& element) {
  for (const TypeInfo* t : element.types)
    if (value.IsA(*t)) return t;
  if (value.kind == TypeKind::kPrimitive)
    for (const TypeInfo* t : element.types)
      if (t->kind == TypeKind::kPrimitive && t->IsA(value)) return t;
  return nullptr;
}

std::string Capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::string TypeNames(const ElementInfo& e) {
  std::string out;
  for (const TypeInfo* t : e.types) out += (out.empty() ? "" : ", ") + t->name;
  return out;
}

// Builds the JSON for `element` from a `value` part (value[x], a resource,
// or parts naming the children) and sets `key` to its JSON property name.
Result<JsonValue> BuildValue(const Definitions& defs, const Operation& op, const JsonValue& part,
                             const ElementInfo& element, std::string& key, Alloc& alloc) {
  std::string_view suffix;
  if (const JsonValue* v = PartValue(part, suffix)) {
    const TypeInfo* vt = TypeFromSuffix(defs, suffix);
    if (vt == nullptr) return Invalid(op, fmt::format("value{} names no FHIR data type", suffix));
    const TypeInfo* t = Compatible(*vt, element);
    if (t == nullptr)
      return Unprocessable(op, fmt::format("a {} cannot be the value of {} ({})", vt->name, element.path,
                                           TypeNames(element)));
    key = element.choice ? element.name + Capitalized(t->name) : element.name;
    return JsonValue(*v, alloc);
  }
  if (const JsonValue* r = Member(part, "resource")) {
    bool takes_resource = false;
    for (const TypeInfo* t : element.types) takes_resource = takes_resource || t->kind == TypeKind::kResource;
    if (!takes_resource) return Unprocessable(op, fmt::format("{} does not hold a resource", element.path));
    key = element.name;
    return JsonValue(*r, alloc);
  }
  const JsonValue* parts = Member(part, "part");
  if (parts == nullptr || !parts->IsArray())
    return Invalid(op, fmt::format("the value for {} has no value[x], resource or parts", element.path));
  if (element.choice) return Unprocessable(op, fmt::format("{} takes a value[x], not parts", element.path));
  const std::vector<ElementInfo>* scope = element.children;
  if (scope == nullptr && element.types.size() == 1 && element.types.front()->kind == TypeKind::kComplex)
    scope = element.types.front()->elements;
  if (scope == nullptr) return Unprocessable(op, fmt::format("{} takes a value[x], not parts", element.path));
  JsonValue obj(rapidjson::kObjectType);
  for (const auto& sub : parts->GetArray()) {
    auto name = StringMember(sub, "name");
    if (!name) return Invalid(op, fmt::format("a part of the value for {} has no name", element.path));
    const ElementInfo* child = Lookup(*scope, *name);
    if (child == nullptr) return Unprocessable(op, fmt::format("'{}' is not an element of {}", *name, element.path));
    std::string child_key;
    auto v = BuildValue(defs, op, sub, *child, child_key, alloc);
    if (!v) return std::move(v.error());
    JsonValue* existing = MutableMember(obj, child_key);
    if (child->many) {
      if (existing == nullptr) {
        JsonValue arr(rapidjson::kArrayType);
        arr.PushBack(*v, alloc);
        AddMember(obj, child_key, std::move(arr), alloc);
      } else {
        existing->PushBack(*v, alloc);
      }
    } else {
      if (existing != nullptr) return Unprocessable(op, fmt::format("{}.{} is given twice", element.path, *name));
      AddMember(obj, child_key, std::move(*v), alloc);
    }
  }
  if (obj.ObjectEmpty()) return Unprocessable(op, fmt::format("the value for {} is empty", element.path));
  key = element.name;
  return obj;
}

void InsertAt(JsonValue& arr, SizeType index, JsonValue value, Alloc& alloc) {
  arr.PushBack(JsonValue(), alloc);
  for (SizeType i = arr.Size() - 1; i > index; --i) arr[i] = std::move(arr[i - 1]);
  arr[index] = std::move(value);
}

// The primitive extension array obj[_key], padded to `size` with nulls;
// nullptr when there is none.
JsonValue* ExtensionArray(JsonValue& obj, const std::string& key, SizeType size, Alloc& alloc) {
  JsonValue* ext = MutableMember(obj, "_" + key);
  if (ext == nullptr || !ext->IsArray()) return nullptr;
  while (ext->Size() < size) ext->PushBack(JsonValue(), alloc);
  return ext;
}

// Drops obj[_key] when no extension is left in it.
void TidyExtensionArray(JsonValue& obj, const std::string& key) {
  JsonValue* ext = MutableMember(obj, "_" + key);
  if (ext == nullptr || !ext->IsArray()) return;
  for (const auto& v : ext->GetArray())
    if (!v.IsNull()) return;
  RemoveMember(obj, "_" + key);
}

// Inserts into the array obj[key] (made when absent), keeping obj[_key] aligned.
void InsertElement(JsonValue& obj, const std::string& key, SizeType index, JsonValue value, Alloc& alloc) {
  JsonValue* arr = MutableMember(obj, key);
  if (arr == nullptr) {
    AddMember(obj, key, JsonValue(rapidjson::kArrayType), alloc);
    arr = MutableMember(obj, key);
  }
  const SizeType before = arr->Size();
  InsertAt(*arr, index, std::move(value), alloc);
  if (JsonValue* ext = ExtensionArray(obj, key, before, alloc)) InsertAt(*ext, index, JsonValue(), alloc);
}

void EraseElement(JsonValue& obj, const Location& loc, Alloc& alloc) {
  if (!loc.in_array) {
    RemoveMember(obj, loc.key);
    RemoveMember(obj, "_" + loc.key);
    return;
  }
  JsonValue* arr = MutableMember(obj, loc.key);
  const SizeType size = arr != nullptr && arr->IsArray() ? arr->Size() : 0;
  if (arr != nullptr && arr->IsArray() && loc.index < size) arr->Erase(arr->Begin() + loc.index);
  if (JsonValue* ext = ExtensionArray(obj, loc.key, size, alloc); ext != nullptr && loc.index < ext->Size())
    ext->Erase(ext->Begin() + loc.index);
  if (arr != nullptr && arr->IsArray() && arr->Empty()) RemoveMember(obj, loc.key);
  TidyExtensionArray(obj, loc.key);
}

class Patcher {
 public:
  Patcher(const fhirpath::Engine& engine, rapidjson::Document& doc)
      : engine_(engine), defs_(engine.definitions()), doc_(doc), alloc_(doc.GetAllocator()) {}

  std::optional<Error> Apply(const Operation& op) {
    if (op.type == "add") return Add(op);
    if (op.type == "insert") return Insert(op);
    if (op.type == "delete") return Delete(op);
    if (op.type == "replace") return Replace(op);
    return Move(op);
  }

 private:
  Result<fhirpath::Collection> Select(const Operation& op, const std::string& path) const {
    auto expr = fhirpath::Expression::Parse(path);
    if (!expr) return ParseError(op, path, expr.error());
    fhirpath::EvalOptions options;
    options.strict = true;
    auto r = engine_.Evaluate(*expr, doc_, options);
    if (!r) return Unprocessable(op, fmt::format("the path cannot be evaluated: {}", r.error().message));
    return std::move(*r);
  }

  static Error ParseError(const Operation& op, const std::string& path, const fhirpath::Error& e) {
    std::string at = e.position == fhirpath::kNoPosition ? "" : fmt::format(" (at position {})", e.position);
    return Invalid(op, fmt::format("the path '{}' is not valid FHIRPath: {}{}", path, e.message, at));
  }

  // The one object node `path` selects, with the elements it may hold.
  struct Container {
    JsonValue* node = nullptr;
    const std::vector<ElementInfo>* scope = nullptr;
    std::string type_name;
  };
  Result<Container> SelectContainer(const Operation& op, const std::string& path) const {
    auto items = Select(op, path);
    if (!items) return std::move(items.error());
    if (items->size() != 1)
      return Unprocessable(op, items->empty() ? fmt::format("'{}' selects nothing", path)
                                              : fmt::format("'{}' selects {} elements, not one", path, items->size()));
    const fhirpath::Item& item = (*items)[0];
    if (item.node == nullptr || !item.node->IsObject() || item.IsReferenceTarget())
      return Unprocessable(op,
                           fmt::format("'{}' does not select an element of the resource that can hold others", path));
    Container c;
    // The node belongs to doc_, which this patcher may change.
    c.node = const_cast<JsonValue*>(item.node);
    c.scope = item.scope != nullptr ? item.scope : item.type != nullptr ? item.type->elements : nullptr;
    c.type_name = std::string(item.TypeName());
    if (c.scope == nullptr) return Unprocessable(op, fmt::format("the type of '{}' is not known", path));
    if (!Inside(*c.node)) return Unprocessable(op, fmt::format("'{}' leaves the resource", path));
    return c;
  }

  bool Inside(const JsonValue& node) const {
    if (&node == &static_cast<const JsonValue&>(doc_)) return true;
    Location loc;
    return Locate(&node, loc);
  }

  bool Locate(const void* target, Location& out) const {
    Locator locator(defs_, target);
    auto rt = StringMember(doc_, "resourceType");
    const TypeInfo* type = rt ? defs_.FindType(*rt) : nullptr;
    return locator.Find(doc_, type != nullptr ? type->elements : nullptr, out);
  }

  // The single element `op.path` selects, located in the document; nullopt
  // in `loc` when it selects nothing.
  Result<bool> SelectElement(const Operation& op, Location& loc) const {
    auto items = Select(op, op.path);
    if (!items) return std::move(items.error());
    if (items->empty()) return false;
    if (items->size() > 1)
      return Unprocessable(op, fmt::format("the path selects {} elements; only one can be changed", items->size()));
    const fhirpath::Item& item = (*items)[0];
    const void* target = item.node != nullptr ? static_cast<const void*>(item.node) : item.extension;
    if (target == nullptr || !Locate(target, loc))
      return Unprocessable(op, "the path does not select an element inside the resource");
    return true;
  }

  // (container path, element name) of a path that ends in a name.
  static Result<std::pair<std::string, std::string>> Split(const Operation& op) {
    auto expr = fhirpath::Expression::Parse(op.path);
    if (!expr) return ParseError(op, op.path, expr.error());
    const fhirpath::Node& root = expr->root();
    if (root.kind != fhirpath::NodeKind::kMember)
      return Invalid(op, fmt::format("the path of '{}' must end in the name of the list", op.type));
    if (root.target == nullptr) return std::make_pair(std::string("$this"), root.name);
    std::string prefix = op.path.substr(0, root.pos);
    while (!prefix.empty() && (prefix.back() == ' ' || prefix.back() == '\t' || prefix.back() == '\n'))
      prefix.pop_back();
    if (prefix.empty() || prefix.back() != '.')
      return Invalid(op, fmt::format("the path of '{}' must end in the name of the list", op.type));
    prefix.pop_back();
    return std::make_pair(prefix, root.name);
  }

  std::optional<Error> Add(const Operation& op) {
    auto c = SelectContainer(op, op.path);
    if (!c) return std::move(c.error());
    const ElementInfo* e = Lookup(*c->scope, *op.name);
    if (e == nullptr) return Unprocessable(op, fmt::format("'{}' is not an element of {}", *op.name, c->type_name));
    std::string key;
    auto value = BuildValue(defs_, op, *op.value, *e, key, alloc_);
    if (!value) return std::move(value.error());
    JsonValue& obj = *c->node;
    if (e->many) {
      const JsonValue* arr = Member(obj, key);
      InsertElement(obj, key, arr != nullptr && arr->IsArray() ? arr->Size() : 0, std::move(*value), alloc_);
      return std::nullopt;
    }
    for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
      std::string_view k = StringOf(m->name);
      if (!k.empty() && k[0] == '_') k.remove_prefix(1);
      if (Lookup(*c->scope, k) == e)
        return Unprocessable(op, fmt::format("{} already has {}; use replace", c->type_name, k));
    }
    AddMember(obj, key, std::move(*value), alloc_);
    return std::nullopt;
  }

  std::optional<Error> Insert(const Operation& op) {
    auto split = Split(op);
    if (!split) return std::move(split.error());
    auto c = SelectContainer(op, split->first);
    if (!c) return std::move(c.error());
    const ElementInfo* e = Lookup(*c->scope, split->second);
    if (e == nullptr)
      return Unprocessable(op, fmt::format("'{}' is not an element of {}", split->second, c->type_name));
    if (!e->many) return Unprocessable(op, fmt::format("{} does not repeat", e->path));
    const JsonValue* arr = Member(*c->node, e->name);
    const SizeType size = arr != nullptr && arr->IsArray() ? arr->Size() : 0;
    if (*op.index > size)
      return Unprocessable(op, fmt::format("index {} is beyond the end of the list ({} elements)", *op.index, size));
    std::string key;
    auto value = BuildValue(defs_, op, *op.value, *e, key, alloc_);
    if (!value) return std::move(value.error());
    InsertElement(*c->node, key, *op.index, std::move(*value), alloc_);
    return std::nullopt;
  }

  std::optional<Error> Delete(const Operation& op) {
    Location loc;
    auto found = SelectElement(op, loc);
    if (!found) return std::move(found.error());
    if (*found) EraseElement(*loc.parent, loc, alloc_);
    return std::nullopt;
  }

  std::optional<Error> Replace(const Operation& op) {
    Location loc;
    auto found = SelectElement(op, loc);
    if (!found) return std::move(found.error());
    if (!*found) return Unprocessable(op, "the path selects nothing to replace");
    if (loc.element == nullptr) return Unprocessable(op, fmt::format("'{}' is not a known element", loc.key));
    std::string key;
    auto value = BuildValue(defs_, op, *op.value, *loc.element, key, alloc_);
    if (!value) return std::move(value.error());
    JsonValue& obj = *loc.parent;
    if (loc.in_array) {
      JsonValue* arr = MutableMember(obj, loc.key);
      const SizeType size = arr->Size();
      (*arr)[loc.index] = std::move(*value);
      if (JsonValue* ext = ExtensionArray(obj, loc.key, size, alloc_)) (*ext)[loc.index].SetNull();
      TidyExtensionArray(obj, loc.key);
    } else {
      // the whole element, its primitive extensions included; a choice
      // element may change its type, and so its name
      RemoveMember(obj, "_" + loc.key);
      if (key == loc.key) {
        *MutableMember(obj, key) = std::move(*value);
      } else {
        RemoveMember(obj, loc.key);
        AddMember(obj, key, std::move(*value), alloc_);
      }
    }
    return std::nullopt;
  }

  std::optional<Error> Move(const Operation& op) {
    auto split = Split(op);
    if (!split) return std::move(split.error());
    auto c = SelectContainer(op, split->first);
    if (!c) return std::move(c.error());
    const ElementInfo* e = Lookup(*c->scope, split->second);
    if (e == nullptr)
      return Unprocessable(op, fmt::format("'{}' is not an element of {}", split->second, c->type_name));
    JsonValue* arr = MutableMember(*c->node, e->name);
    const SizeType size = arr != nullptr && arr->IsArray() ? arr->Size() : 0;
    if (*op.source >= size || *op.destination >= size)
      return Unprocessable(op, fmt::format("source {} and destination {} must be below the list's size ({})",
                                           *op.source, *op.destination, size));
    auto move = [&](JsonValue& list) {
      JsonValue v = std::move(list[*op.source]);
      list.Erase(list.Begin() + *op.source);
      InsertAt(list, *op.destination, std::move(v), alloc_);
    };
    move(*arr);
    if (JsonValue* ext = ExtensionArray(*c->node, e->name, size, alloc_)) move(*ext);
    return std::nullopt;
  }

  const fhirpath::Engine& engine_;
  const Definitions& defs_;
  rapidjson::Document& doc_;
  Alloc& alloc_;
};

}  // namespace

Result<std::string> ApplyFhirPathPatch(const fhirpath::Engine& engine, std::string_view document,
                                       const Resource& parameters, std::size_t max_depth) {
  auto ops = ReadOperations(parameters);
  if (!ops) return std::move(ops.error());
  rapidjson::Document doc;
  std::string error;
  if (!ParseJsonTree(document, max_depth, doc, error))
    return MakeError(ErrorKind::kInternal, "the stored resource is not valid JSON: " + error);
  Patcher patcher(engine, doc);
  for (const auto& op : *ops)
    if (auto err = patcher.Apply(op)) return std::move(*err);
  return SerializeJson(doc);
}

}  // namespace eds::fhir
