// CapabilityStatement rendering.
#include "fhir/capability.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>

#include "fhir/definitions.hpp"

namespace eds::fhir {

std::string BuildCapabilityStatement(const Definitions& defs, const ServerCapabilities& caps) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto kv = [&w](const char* k, const std::string& v) {
    w.Key(k);
    w.String(v);
  };
  auto has = [](const std::vector<std::string>& v, const char* code) {
    return std::find(v.begin(), v.end(), code) != v.end();
  };
  w.StartObject();
  kv("resourceType", "CapabilityStatement");
  kv("status", "active");
  kv("date", caps.date);
  kv("publisher", "EDS core");
  kv("kind", "instance");
  w.Key("software");
  w.StartObject();
  kv("name", caps.software_name);
  kv("version", caps.software_version);
  w.EndObject();
  w.Key("implementation");
  w.StartObject();
  kv("description", "EDS core FHIR R4 data repository");
  kv("url", caps.base_url);
  w.EndObject();
  kv("fhirVersion", defs.fhir_version());
  w.Key("format");
  w.StartArray();
  w.String("application/fhir+json");
  w.String("json");
  w.EndArray();
  if (has(caps.type_interactions, "patch")) {
    w.Key("patchFormat");
    w.StartArray();
    w.String("application/json-patch+json");  // JSON Patch
    w.String("application/fhir+json");        // FHIRPath Patch (Parameters)
    w.EndArray();
  }
  w.Key("rest");
  w.StartArray();
  w.StartObject();
  kv("mode", "server");
  w.Key("resource");
  w.StartArray();
  static const std::vector<std::string> kReadOnly = {"read", "vread", "search-type"};
  for (const auto& type : defs.resource_types()) {
    const bool read_only = has(caps.read_only_types, type.c_str());
    const auto& interactions = read_only ? kReadOnly : caps.type_interactions;
    w.StartObject();
    kv("type", type);
    w.Key("interaction");
    w.StartArray();
    for (const auto& code : interactions) {
      if (read_only && !has(caps.type_interactions, code.c_str())) continue;
      w.StartObject();
      kv("code", code);
      w.EndObject();
    }
    w.EndArray();
    kv("versioning", "versioned-update");
    w.Key("readHistory");
    w.Bool(has(caps.type_interactions, "vread"));
    w.Key("updateCreate");
    w.Bool(!read_only && has(caps.type_interactions, "update"));
    w.Key("conditionalCreate");
    w.Bool(!read_only && caps.conditional);
    w.Key("conditionalUpdate");
    w.Bool(!read_only && caps.conditional);
    kv("conditionalDelete", !read_only && caps.conditional ? "single" : "not-supported");
    auto search_params = caps.search_params_for ? caps.search_params_for(type)
                                                : std::vector<ServerCapabilities::SearchParam>{};
    if (!search_params.empty()) {
      w.Key("searchParam");
      w.StartArray();
      for (const auto& sp : search_params) {
        w.StartObject();
        kv("name", sp.name);
        kv("definition", sp.definition);
        kv("type", sp.type);
        w.EndObject();
      }
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("interaction");
  w.StartArray();
  for (const auto& code : caps.system_interactions) {
    w.StartObject();
    kv("code", code);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

}  // namespace eds::fhir
