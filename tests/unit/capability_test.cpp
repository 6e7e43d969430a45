// Unit tests of fhir/capability: the CapabilityStatement built from the
// definitions and the implemented interactions.
#include <catch2/catch.hpp>

#include <set>

#include "fhir/capability.hpp"
#include "fhir/definitions.hpp"
#include "test_support.hpp"

namespace eds::fhir {
namespace {

using testing::ParseJson;
using testing::R4Definitions;
using testing::StrOf;

std::vector<std::string> Codes(const rapidjson::Value& interactions) {
  std::vector<std::string> out;
  for (const auto& i : interactions.GetArray()) out.push_back(StrOf(i, "code"));
  return out;
}

TEST_CASE("BuildCapabilityStatement lists every resource type with its interactions", "[fhir]") {
  auto defs = R4Definitions();
  ServerCapabilities caps;
  caps.base_url = "http://example.test/fhir";
  caps.software_name = "EDS core";
  caps.software_version = "1.2.3";
  caps.date = "2024-05-06T10:11:12.345Z";
  caps.type_interactions = {"create", "read", "vread", "update", "delete", "history-instance",
                            "history-type"};
  caps.system_interactions = {"history-system"};

  auto doc = ParseJson(BuildCapabilityStatement(*defs, caps));
  CHECK(StrOf(doc, "resourceType") == "CapabilityStatement");
  CHECK(StrOf(doc, "status") == "active");
  CHECK(StrOf(doc, "kind") == "instance");
  CHECK(StrOf(doc, "date") == caps.date);
  CHECK(StrOf(doc, "fhirVersion") == "4.0.1");
  CHECK(StrOf(doc["software"], "name") == "EDS core");
  CHECK(StrOf(doc["software"], "version") == "1.2.3");
  CHECK(StrOf(doc["implementation"], "url") == "http://example.test/fhir");
  REQUIRE(doc["format"].IsArray());
  CHECK(std::string(doc["format"][0].GetString()) == "application/fhir+json");
  CHECK_FALSE(doc.HasMember("patchFormat"));  // no patch interaction
  caps.type_interactions.push_back("patch");
  auto with_patch = ParseJson(BuildCapabilityStatement(*defs, caps));
  REQUIRE(with_patch["patchFormat"].Size() == 2);
  CHECK(std::string(with_patch["patchFormat"][1].GetString()) == "application/fhir+json");
  caps.type_interactions.pop_back();

  REQUIRE(doc["rest"].Size() == 1);
  const auto& rest = doc["rest"][0];
  CHECK(StrOf(rest, "mode") == "server");
  CHECK(Codes(rest["interaction"]) == caps.system_interactions);

  const auto& resources = rest["resource"];
  REQUIRE(resources.Size() == defs->resource_types().size());
  CHECK(resources.Size() == 146);
  std::set<std::string> seen;
  for (rapidjson::SizeType i = 0; i < resources.Size(); ++i) {
    const auto& r = resources[i];
    const std::string type = StrOf(r, "type");
    CHECK(type == defs->resource_types()[i]);
    seen.insert(type);
    CHECK(Codes(r["interaction"]) == caps.type_interactions);
    CHECK(StrOf(r, "versioning") == "versioned-update");
    CHECK(r["readHistory"].GetBool());
    CHECK(r["updateCreate"].GetBool());
    CHECK_FALSE(r["conditionalCreate"].GetBool());
  }
  CHECK(seen.count("Patient") == 1);
  CHECK(seen.count("Observation") == 1);
  CHECK(seen.count("Bundle") == 1);
  CHECK(seen.count("DomainResource") == 0);
}

TEST_CASE("BuildCapabilityStatement reflects missing interactions", "[fhir]") {
  ServerCapabilities caps;
  caps.type_interactions = {"read"};
  auto doc = ParseJson(BuildCapabilityStatement(*R4Definitions(), caps));
  const auto& r = doc["rest"][0]["resource"][0];
  CHECK(Codes(r["interaction"]) == std::vector<std::string>{"read"});
  CHECK_FALSE(r["readHistory"].GetBool());
  CHECK_FALSE(r["updateCreate"].GetBool());
  CHECK(doc["rest"][0]["interaction"].Size() == 0);
}

}  // namespace
}  // namespace eds::fhir
