// _summary / _elements subsets.
#include "fhir/subset.hpp"

#include <algorithm>

#include "fhir/definitions.hpp"
#include "fhir/json_internal.hpp"

namespace eds::fhir {
namespace {

constexpr const char* kSubsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

// The element of `type` (or its bases) a JSON property names: "name", or a
// choice variant such as "valueQuantity".
const ElementInfo* ElementForProperty(const TypeInfo& type, std::string_view property) {
  for (const TypeInfo* t = &type; t != nullptr; t = t->base) {
    for (const auto& e : *t->elements) {
      if (e.name == property) return &e;
      if (e.choice && property.size() > e.name.size() && property.substr(0, e.name.size()) == e.name &&
          e.ChoiceType(property) != nullptr)
        return &e;
    }
  }
  return nullptr;
}

void AddSubsettedTag(JsonValue& root, rapidjson::Document::AllocatorType& alloc) {
  auto meta = root.FindMember("meta");
  if (meta == root.MemberEnd() || !meta->value.IsObject()) {
    root.RemoveMember("meta");
    JsonValue m(rapidjson::kObjectType);
    root.AddMember("meta", m, alloc);
    meta = root.FindMember("meta");
  }
  auto tags = meta->value.FindMember("tag");
  if (tags == meta->value.MemberEnd() || !tags->value.IsArray()) {
    meta->value.RemoveMember("tag");
    JsonValue a(rapidjson::kArrayType);
    meta->value.AddMember("tag", a, alloc);
    tags = meta->value.FindMember("tag");
  }
  for (const auto& t : tags->value.GetArray())
    if (t.IsObject() && t.HasMember("code") && t["code"].IsString() && std::string_view(t["code"].GetString()) == "SUBSETTED")
      return;
  JsonValue tag(rapidjson::kObjectType);
  tag.AddMember("system", JsonValue(kSubsettedSystem, alloc), alloc);
  tag.AddMember("code", "SUBSETTED", alloc);
  tag.AddMember("display", "Resource encoded in summary mode", alloc);
  tags->value.PushBack(tag, alloc);
}

}  // namespace

bool WantsSubset(SummaryMode mode, const std::vector<std::string>& elements) {
  return mode == SummaryMode::kTrue || mode == SummaryMode::kText || mode == SummaryMode::kData ||
         !elements.empty();
}

std::string SubsetResource(std::string_view content, SummaryMode mode, const std::vector<std::string>& elements,
                           const Definitions& definitions) {
  rapidjson::Document doc;
  std::string error;
  if (!ParseJsonTree(content, 256, doc, error) || !doc.IsObject()) return std::string(content);
  auto rt = doc.FindMember("resourceType");
  if (rt == doc.MemberEnd() || !rt->value.IsString()) return std::string(content);
  const TypeInfo* type = definitions.FindType(std::string_view(rt->value.GetString(), rt->value.GetStringLength()));
  if (type == nullptr) return std::string(content);

  auto keep = [&](std::string_view property) {
    if (property == "resourceType" || property == "id" || property == "meta") return true;
    if (!property.empty() && property[0] == '_') property.remove_prefix(1);  // a primitive's extensions
    const ElementInfo* e = ElementForProperty(*type, property);
    if (e == nullptr) return mode == SummaryMode::kData;  // unknown: only where everything but text is kept
    if (!elements.empty())
      return e->min > 0 || std::find(elements.begin(), elements.end(), e->name) != elements.end();
    switch (mode) {
      case SummaryMode::kTrue: return e->summary;
      case SummaryMode::kText: return e->name == "text" || e->min > 0;
      case SummaryMode::kData: return e->name != "text";
      default: return true;
    }
  };
  std::vector<std::string> drop;
  for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
    std::string_view name(m->name.GetString(), m->name.GetStringLength());
    if (!keep(name)) drop.emplace_back(name);
  }
  for (const auto& name : drop) doc.EraseMember(rapidjson::StringRef(name.data(), name.size()));
  AddSubsettedTag(doc, doc.GetAllocator());
  return SerializeJson(doc);
}

}  // namespace eds::fhir
