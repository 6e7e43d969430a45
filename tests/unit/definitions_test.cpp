// Unit tests of fhir/definitions: loading the R4 package and checking the
// element structure of resources against it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "test_support.hpp"

namespace eds::fhir {
namespace {

using testing::R4Definitions;

// Structure issues of `json` (which must parse); their expressions.
std::vector<std::string> Issues(std::string_view json) {
  auto r = Resource::Parse(json);
  INFO(json);
  REQUIRE(r.ok());
  Outcome out = R4Definitions()->CheckStructure(*r);
  std::vector<std::string> exprs;
  for (const auto& i : out.issues()) {
    CHECK(i.severity == Severity::kError);
    CHECK(i.code == "structure");
    CHECK_FALSE(i.diagnostics.empty());
    exprs.push_back(i.expression);
  }
  return exprs;
}

void RequireValid(std::string_view json) {
  auto issues = Issues(json);
  INFO(json);
  CHECK(issues == std::vector<std::string>{});
}

// Checks that `json` has exactly one issue, at `expression`, mentioning `words`.
void RequireOneIssue(std::string_view json, const std::string& expression, const std::string& words = {}) {
  auto r = Resource::Parse(json);
  REQUIRE(r.ok());
  Outcome out = R4Definitions()->CheckStructure(*r);
  INFO(json << "\n" << out.ToJson());
  REQUIRE(out.issues().size() == 1);
  CHECK(out.HasErrors());
  CHECK(out.issues()[0].expression == expression);
  if (!words.empty()) CHECK_THAT(out.issues()[0].diagnostics, Catch::Contains(words));
}

TEST_CASE("Definitions::Load reads the R4 package", "[fhir]") {
  auto defs = R4Definitions();
  REQUIRE(defs != nullptr);
  const auto& types = defs->resource_types();
  CHECK(types.size() == 146);
  CHECK(std::is_sorted(types.begin(), types.end()));
  for (const char* t : {"Patient", "Observation", "Bundle", "Questionnaire", "Parameters",
                        "OperationOutcome", "CapabilityStatement", "Binary"}) {
    INFO(t);
    CHECK(defs->IsResourceType(t));
    CHECK(std::find(types.begin(), types.end(), t) != types.end());
  }
  for (const char* t : {"Resource", "DomainResource", "HumanName", "string", "Extension", "Foo",
                        "patient", ""}) {
    INFO(t);
    CHECK_FALSE(defs->IsResourceType(t));
  }
  CHECK(defs->fhir_version() == "4.0.1");
}

TEST_CASE("Definitions::Load fails on a missing directory", "[fhir]") {
  CHECK_THROWS_AS(Definitions::Load("/nonexistent/fhir/package"), std::runtime_error);
}

TEST_CASE("CheckStructure accepts well-formed resources", "[fhir]") {
  RequireValid(R"({"resourceType":"Patient"})");
  RequireValid(R"({
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z", "tag": [{"system": "http://x", "code": "t"}],
             "profile": ["http://example.org/StructureDefinition/p"]},
    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
    "extension": [{"url": "http://example.org/ext", "valueString": "v"},
                  {"url": "http://example.org/complex", "extension": [{"url": "a", "valueInteger": 3}]}],
    "identifier": [{"system": "urn:oid:1.2.3", "value": "123", "period": {"start": "2020-01-01"}}],
    "active": true,
    "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
    "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1}],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                  "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
    "deceasedBoolean": false,
    "multipleBirthInteger": 2,
    "contact": [{"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}],
                 "name": {"family": "du Marché", "_family": {"extension": [{"url": "http://x", "valueString": "VV"}]}},
                 "gender": "female"}],
    "contained": [{"resourceType": "Organization", "id": "org1", "name": "Clinic"}],
    "managingOrganization": {"reference": "#org1"}
  })");
}

TEST_CASE("CheckStructure reports unknown elements with their path", "[fhir]") {
  RequireOneIssue(R"({"resourceType":"Patient","foo":1})", "Patient.foo", "unknown element");
  RequireOneIssue(R"({"resourceType":"Patient","name":[{"family":"x"},{"foo":"bar"}]})",
                  "Patient.name[1].foo", "foo");
  RequireOneIssue(R"({"resourceType":"Patient","name":[{"foo":"bar"}]})", "Patient.name[0].foo");
  RequireOneIssue(R"({"resourceType":"Patient","_foo":{"id":"x"}})", "Patient._foo");
  RequireOneIssue(R"({"resourceType":"Patient","Active":true})", "Patient.Active");
  RequireOneIssue(R"({"resourceType":"Patient","maritalStatus":{"coding":[{"code":"M","version2":"x"}]}})",
                  "Patient.maritalStatus.coding[0].version2");
  SECTION("several issues are all reported") {
    CHECK(Issues(R"({"resourceType":"Patient","a":1,"b":2,"name":[{"c":3}]})") ==
          std::vector<std::string>{"Patient.a", "Patient.b", "Patient.name[0].c"});
  }
}

TEST_CASE("CheckStructure checks cardinality against JSON arrays", "[fhir]") {
  RequireOneIssue(R"({"resourceType":"Patient","birthDate":["1970-01-01"]})", "Patient.birthDate",
                  "must not be a JSON array");
  RequireOneIssue(R"({"resourceType":"Patient","name":{"family":"x"}})", "Patient.name",
                  "must be a JSON array");
  RequireOneIssue(R"({"resourceType":"Patient","name":[{"given":"Peter"}]})", "Patient.name[0].given",
                  "JSON array");
  RequireOneIssue(R"({"resourceType":"Patient","gender":["male"]})", "Patient.gender");
}

TEST_CASE("CheckStructure checks JSON types of primitives and complex values", "[fhir]") {
  RequireOneIssue(R"({"resourceType":"Patient","active":"yes"})", "Patient.active", "boolean");
  RequireOneIssue(R"({"resourceType":"Patient","birthDate":1970})", "Patient.birthDate", "string");
  RequireOneIssue(R"({"resourceType":"Patient","gender":true})", "Patient.gender", "string");
  RequireOneIssue(R"({"resourceType":"Patient","multipleBirthInteger":"2"})",
                  "Patient.multipleBirthInteger", "number");
  RequireOneIssue(R"({"resourceType":"Patient","name":["Peter"]})", "Patient.name[0]", "JSON object");
  RequireOneIssue(R"({"resourceType":"Patient","name":[{"given":[1]}]})", "Patient.name[0].given[0]");
  RequireOneIssue(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
                      "valueQuantity":{"value":"1.5"}})",
                  "Observation.valueQuantity.value", "number");
  RequireValid(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
                   "valueQuantity":{"value":1.50,"unit":"mmol/L"}})");
}

TEST_CASE("CheckStructure checks choice types", "[fhir]") {
  const std::string head = R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)";
  RequireValid(head + R"("valueString":"ok"})");
  RequireValid(head + R"("valueCodeableConcept":{"text":"ok"}})");
  RequireValid(head + R"("valueBoolean":true})");
  RequireValid(head + R"("valueInteger":5})");
  RequireValid(head + R"("effectiveDateTime":"2024-01-01","_valueString":{"id":"a"},"valueString":"x"})");
  RequireOneIssue(head + R"("valueFoo":"x"})", "Observation.valueFoo", "unknown element");
  RequireOneIssue(head + R"("valueAddress":{"city":"x"}})", "Observation.valueAddress");
  RequireOneIssue(head + R"("value":"x"})", "Observation.value");
  RequireOneIssue(head + R"("valuestring":"x"})", "Observation.valuestring");
  RequireOneIssue(head + R"("valueBoolean":"true"})", "Observation.valueBoolean", "boolean");
}

TEST_CASE("CheckStructure rejects empty values and nulls", "[fhir]") {
  RequireOneIssue(R"({"resourceType":"Patient","gender":""})", "Patient.gender", "empty");
  RequireOneIssue(R"({"resourceType":"Patient","name":[]})", "Patient.name", "empty");
  RequireOneIssue(R"({"resourceType":"Patient","maritalStatus":{}})", "Patient.maritalStatus", "empty");
  RequireOneIssue(R"({"resourceType":"Patient","name":[{}]})", "Patient.name[0]", "empty");
  RequireOneIssue(R"({"resourceType":"Patient","name":[{"given":[""]}]})", "Patient.name[0].given[0]",
                  "empty");
  RequireOneIssue(R"({"resourceType":"Patient","active":null})", "Patient.active", "null");
  RequireOneIssue(R"({"resourceType":"Patient","maritalStatus":null})", "Patient.maritalStatus", "null");
  RequireOneIssue(R"({"resourceType":"Patient","name":[null]})", "Patient.name[0]", "null");
  RequireOneIssue(R"({"resourceType":"Patient","_birthDate":{}})", "Patient.birthDate", "empty");
  SECTION("null aligns a primitive array with its _element array") {
    RequireValid(R"({"resourceType":"Patient","name":[{"given":["Peter",null,"James"],
                     "_given":[null,{"extension":[{"url":"http://x","valueString":"v"}]},null]}]})");
    RequireValid(R"({"resourceType":"Patient","name":[{"given":["Peter","James"],
                     "_given":[{"id":"g1"},null]}]})");
  }
}

TEST_CASE("CheckStructure checks primitive extensions", "[fhir]") {
  RequireValid(R"({"resourceType":"Patient","_gender":{"extension":[{"url":"http://x","valueCode":"c"}]}})");
  RequireOneIssue(R"({"resourceType":"Patient","_birthDate":{"foo":1}})", "Patient.birthDate.foo");
  RequireOneIssue(R"({"resourceType":"Patient","_birthDate":[{"id":"x"}]})", "Patient.birthDate",
                  "must not be a JSON array");
  RequireOneIssue(R"({"resourceType":"Patient","_name":[{"id":"x"}]})", "Patient._name",
                  "primitive");
}

TEST_CASE("CheckStructure descends into backbone elements and content references", "[fhir]") {
  RequireOneIssue(R"({"resourceType":"Patient","contact":[{"name":{"family":"x","foo":1}}]})",
                  "Patient.contact[0].name.foo");
  RequireOneIssue(R"({"resourceType":"Patient","contact":[{"name":[{"family":"x"}]}]})",
                  "Patient.contact[0].name", "must not be a JSON array");
  RequireOneIssue(R"({"resourceType":"Patient","contact":[{"bar":1}]})", "Patient.contact[0].bar");
  RequireOneIssue(R"({"resourceType":"Patient","link":[{"other":{"reference":"Patient/1"},"type":"seealso","x":1}]})",
                  "Patient.link[0].x");

  const std::string q = R"({"resourceType":"Questionnaire","status":"active","item":[)";
  RequireValid(q + R"({"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string","text":"Name?",
                      "item":[{"linkId":"1.1.1","type":"display","text":"help"}]}]}]})");
  RequireOneIssue(q + R"({"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string","foo":1}]}]})",
                  "Questionnaire.item[0].item[0].foo");
  RequireOneIssue(q + R"({"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string","required":"yes"}]}]})",
                  "Questionnaire.item[0].item[0].required", "boolean");
  RequireOneIssue(q + R"({"linkId":"1","type":"group","item":{"linkId":"1.1","type":"string"}}]})",
                  "Questionnaire.item[0].item", "JSON array");
  RequireOneIssue(
      q + R"({"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"choice","answerOption":[{"valueFoo":1}]}]}]})",
      "Questionnaire.item[0].item[0].answerOption[0].valueFoo");
}

TEST_CASE("CheckStructure checks contained and nested resources as their own type", "[fhir]") {
  RequireOneIssue(R"({"resourceType":"Patient","contained":[{"resourceType":"Organization","foo":1}]})",
                  "Patient.contained[0].foo");
  RequireOneIssue(R"({"resourceType":"Patient","contained":[{"resourceType":"Organization","name":"x"},
                      {"resourceType":"Practitioner","gender":1}]})",
                  "Patient.contained[1].gender", "string");
  RequireOneIssue(R"({"resourceType":"Patient","contained":[{"resourceType":"Nonsense"}]})",
                  "Patient.contained[0].resourceType", "unknown resource type");
  RequireOneIssue(R"({"resourceType":"Patient","contained":[{"resourceType":"Resource"}]})",
                  "Patient.contained[0].resourceType");
  RequireOneIssue(R"({"resourceType":"Patient","contained":[{"id":"x"}]})", "Patient.contained[0]",
                  "resourceType");
  RequireOneIssue(R"({"resourceType":"Patient","contained":["x"]})", "Patient.contained[0]",
                  "resource");

  const std::string b = R"({"resourceType":"Bundle","type":"collection","entry":[)";
  RequireValid(b + R"({"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","name":[{"family":"x"}]}},
                      {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"v"}}]})");
  RequireOneIssue(b + R"({"resource":{"resourceType":"Patient","name":{"family":"x"}}}]})",
                  "Bundle.entry[0].resource.name", "JSON array");
  RequireOneIssue(b + R"({"resource":{"resourceType":"Patient"}},{"resource":{"resourceType":"Observation","birthDate":"x"}}]})",
                  "Bundle.entry[1].resource.birthDate", "unknown element");
  RequireOneIssue(
      b + R"({"resource":{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","x":1}}]}}]})",
      "Bundle.entry[0].resource.entry[0].resource.x");
}

TEST_CASE("CheckStructure checks the server-relevant primitive elements id and url", "[fhir]") {
  RequireValid(R"({"resourceType":"Patient","id":"p1","_id":{"extension":[{"url":"http://x","valueString":"v"}]}})");
  RequireOneIssue(R"({"resourceType":"Patient","id":""})", "Patient.id", "empty");
  RequireOneIssue(R"({"resourceType":"Patient","contained":[{"resourceType":"Organization","id":5}]})",
                  "Patient.contained[0].id", "string");
  RequireOneIssue(R"({"resourceType":"Patient","extension":[{"url":true,"valueString":"v"}]})",
                  "Patient.extension[0].url", "string");
}

TEST_CASE("CheckStructure caps the number of issues", "[fhir]") {
  std::string json = R"({"resourceType":"Patient")";
  for (int i = 0; i < 150; ++i) json += ",\"x" + std::to_string(i) + "\":1";
  json += "}";
  auto issues = Issues(json);
  CHECK(issues.size() == 100);
}

TEST_CASE("primitive arrays and their _element arrays are checked together", "[fhir]") {
  RequireValid(R"({"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]}]})");
  RequireOneIssue(R"({"resourceType":"Patient","name":[{"given":[null]}]})", "Patient.name[0].given[0]", "null");
  RequireValid(R"({"resourceType":"Patient","name":[{"given":["a"],"_given":[null]}]})");  // no extension there
  RequireOneIssue(R"({"resourceType":"Patient","name":[{"given":["a","b"],"_given":[{"id":"x"}]}]})",
                  "Patient.name[0].given", "same length");
  RequireOneIssue(R"({"resourceType":"Patient","_gender":null})", "Patient.gender");
}

TEST_CASE("only one type of a choice element may be present", "[fhir]") {
  RequireValid(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","_valueString":{"id":"i"}})");
  RequireOneIssue(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","valueBoolean":true})",
                  "Observation.value", "only one");
}

}  // namespace
}  // namespace eds::fhir
