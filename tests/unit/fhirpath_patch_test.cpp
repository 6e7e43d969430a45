// Unit tests of FHIRPath Patch (Parameters-encoded operations) and of the
// PATCH checks shared by both patch kinds.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "fhir/definitions.hpp"
#include "fhir/fhirpath.hpp"
#include "fhir/fhirpath_patch.hpp"
#include "fhir/json.hpp"
#include "fhir/patch.hpp"
#include "test_support.hpp"

namespace eds::fhir {
namespace {

const fhirpath::Engine& TestEngine() {
  static const fhirpath::Engine engine(testing::R4Definitions());
  return engine;
}

// One operation parameter: type, path, and further parts (JSON objects).
std::string Op(const std::string& type, const std::string& path, const std::vector<std::string>& parts = {}) {
  std::string out = R"({"name":"operation","part":[{"name":"type","valueCode":")" + type +
                    R"("},{"name":"path","valueString":")" + path + "\"}";
  for (const auto& p : parts) out += "," + p;
  return out + "]}";
}

std::string Params(const std::vector<std::string>& ops) {
  std::string out = R"({"resourceType":"Parameters","parameter":[)";
  for (std::size_t i = 0; i < ops.size(); ++i) out += (i ? "," : "") + ops[i];
  return out + "]}";
}

Result<std::string> Patch(std::string_view doc, const std::string& params) {
  auto parameters = Resource::Parse(params);
  REQUIRE(parameters.ok());
  return ApplyFhirPathPatch(TestEngine(), doc, *parameters);
}

std::string Applied(std::string_view doc, const std::string& params) {
  auto r = Patch(doc, params);
  INFO(params << "\n" << (r.ok() ? std::string() : r.error().outcome.ToJson()));
  REQUIRE(r.ok());
  return *r;
}

ErrorKind Fails(std::string_view doc, const std::string& params) {
  auto r = Patch(doc, params);
  INFO(params << "\n" << (r.ok() ? *r : std::string()));
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.error().outcome.issues().empty());
  return r.error().kind;
}

void CheckJson(const std::string& actual, std::string_view expected) {
  INFO("actual:   " << actual << "\nexpected: " << expected);
  CHECK(JsonEquivalent(actual, expected));
}

const std::string kPatient =
    R"({"resourceType":"Patient","id":"p","identifier":[{"system":"a","value":"1"},{"system":"b","value":"2"}],)"
    R"("name":[{"family":"Rossi","given":["Mario","Luigi"],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]}],)"
    R"("gender":"male","deceasedBoolean":false})";

TEST_CASE("FHIRPath Patch add", "[fhir]") {
  CheckJson(Applied(R"({"resourceType":"Patient","id":"p"})",
                    Params({Op("add", "Patient", {R"({"name":"name","valueString":"birthDate"})",
                                                  R"({"name":"value","valueDate":"1930-01-01"})"})})),
            R"({"resourceType":"Patient","id":"p","birthDate":"1930-01-01"})");
  // a repeating element gets one more
  auto added = Applied(kPatient, Params({Op("add", "Patient", {R"({"name":"name","valueString":"identifier"})",
                                                               R"({"name":"value","valueIdentifier":{"system":"c","value":"3"}})"})}));
  CHECK(added.find(R"({"system":"b","value":"2"},{"system":"c","value":"3"}])") != std::string::npos);
  // deeper, with a primitive whose type derives from the element's (code from string)
  CheckJson(Applied(R"({"resourceType":"Patient","id":"p","name":[{"family":"R"}]})",
                    Params({Op("add", "Patient.name[0]", {R"({"name":"name","valueString":"use"})",
                                                          R"({"name":"value","valueString":"official"})"})})),
            R"({"resourceType":"Patient","id":"p","name":[{"family":"R","use":"official"}]})");
  // a choice element is named without its type; the value picks the variant
  CheckJson(Applied(R"({"resourceType":"Observation","status":"final","code":{"text":"x"}})",
                    Params({Op("add", "Observation", {R"({"name":"name","valueString":"value"})",
                                                      R"({"name":"value","valueQuantity":{"value":1.50,"unit":"mg"}})"})})),
            R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"}})");
  // an anonymous element (BackboneElement) given as parts
  CheckJson(Applied(R"({"resourceType":"Patient","id":"p"})",
                    Params({Op("add", "Patient",
                               {R"({"name":"name","valueString":"contact"})",
                                R"({"name":"value","part":[{"name":"name","valueHumanName":{"family":"Verdi"}},)"
                                R"({"name":"relationship","valueCodeableConcept":{"text":"sister"}},)"
                                R"({"name":"gender","valueCode":"female"}]})"})})),
            R"({"resourceType":"Patient","id":"p","contact":[{"name":{"family":"Verdi"},"relationship":[{"text":"sister"}],"gender":"female"}]})");

  CHECK(Fails(kPatient, Params({Op("add", "Patient", {R"({"name":"name","valueString":"gender"})",
                                                      R"({"name":"value","valueCode":"female"})"})})) ==
        ErrorKind::kUnprocessable);  // not repeating and already there
  CHECK(Fails(kPatient, Params({Op("add", "Patient", {R"({"name":"name","valueString":"deceased"})",
                                                      R"({"name":"value","valueDateTime":"2020"})"})})) ==
        ErrorKind::kUnprocessable);  // deceasedBoolean is there: one variant only
  CHECK(Fails(kPatient, Params({Op("add", "Patient", {R"({"name":"name","valueString":"colour"})",
                                                      R"({"name":"value","valueString":"red"})"})})) ==
        ErrorKind::kUnprocessable);  // no such element
  CHECK(Fails(R"({"resourceType":"Patient"})", Params({Op("add", "Patient", {R"({"name":"name","valueString":"birthDate"})",
                                                                            R"({"name":"value","valueInteger":3})"})})) ==
        ErrorKind::kUnprocessable);  // wrong type
  CHECK(Fails(kPatient, Params({Op("add", "Patient.identifier", {R"({"name":"name","valueString":"use"})",
                                                                 R"({"name":"value","valueCode":"usual"})"})})) ==
        ErrorKind::kUnprocessable);  // two containers
  CHECK(Fails(kPatient, Params({Op("add", "Patient.birthDate", {R"({"name":"name","valueString":"id"})",
                                                                R"({"name":"value","valueString":"x"})"})})) ==
        ErrorKind::kUnprocessable);  // nothing there
  CHECK(Fails(kPatient, Params({Op("add", "Patient", {R"({"name":"value","valueString":"x"})"})})) ==
        ErrorKind::kInvalid);  // no name
}

TEST_CASE("FHIRPath Patch insert and move", "[fhir]") {
  auto inserted = Applied(kPatient, Params({Op("insert", "Patient.identifier",
                                               {R"({"name":"index","valueInteger":1})",
                                                R"({"name":"value","valueIdentifier":{"system":"c"}})"})}));
  CHECK(inserted.find(R"("identifier":[{"system":"a","value":"1"},{"system":"c"},{"system":"b","value":"2"}])") !=
        std::string::npos);
  // into a list that does not exist yet
  CheckJson(Applied(R"({"resourceType":"Patient"})",
                    Params({Op("insert", "Patient.identifier",
                               {R"({"name":"index","valueInteger":0})", R"({"name":"value","valueIdentifier":{"value":"x"}})"})})),
            R"({"resourceType":"Patient","identifier":[{"value":"x"}]})");
  // primitives with extensions stay aligned with their _name array
  CheckJson(Applied(kPatient, Params({Op("insert", "Patient.name[0].given",
                                         {R"({"name":"index","valueInteger":0})", R"({"name":"value","valueString":"Ugo"})"})})),
            R"({"resourceType":"Patient","id":"p","identifier":[{"system":"a","value":"1"},{"system":"b","value":"2"}],)"
            R"("name":[{"family":"Rossi","given":["Ugo","Mario","Luigi"],"_given":[null,null,{"extension":[{"url":"http://x","valueString":"y"}]}]}],)"
            R"("gender":"male","deceasedBoolean":false})");
  CHECK(Fails(kPatient, Params({Op("insert", "Patient.identifier",
                                   {R"({"name":"index","valueInteger":3})", R"({"name":"value","valueIdentifier":{"system":"c"}})"})})) ==
        ErrorKind::kUnprocessable);
  CHECK(Fails(kPatient, Params({Op("insert", "Patient.gender",
                                   {R"({"name":"index","valueInteger":0})", R"({"name":"value","valueCode":"male"})"})})) ==
        ErrorKind::kUnprocessable);  // not a list
  CHECK(Fails(kPatient, Params({Op("insert", "Patient.identifier.first()",
                                   {R"({"name":"index","valueInteger":0})", R"({"name":"value","valueIdentifier":{}})"})})) ==
        ErrorKind::kInvalid);  // the path must name the list

  auto moved = Applied(kPatient, Params({Op("move", "Patient.identifier",
                                            {R"({"name":"source","valueInteger":0})", R"({"name":"destination","valueInteger":1})"})}));
  CHECK(moved.find(R"("identifier":[{"system":"b","value":"2"},{"system":"a","value":"1"}])") != std::string::npos);
  auto moved_given = Applied(kPatient, Params({Op("move", "Patient.name.given",
                                                  {R"({"name":"source","valueInteger":1})", R"({"name":"destination","valueInteger":0})"})}));
  CHECK(moved_given.find(R"("given":["Luigi","Mario"],"_given":[{"extension")") != std::string::npos);
  CHECK(Fails(kPatient, Params({Op("move", "Patient.identifier",
                                   {R"({"name":"source","valueInteger":0})", R"({"name":"destination","valueInteger":2})"})})) ==
        ErrorKind::kUnprocessable);
  CHECK(Fails(kPatient, Params({Op("move", "Patient.identifier", {R"({"name":"source","valueInteger":0})"})})) ==
        ErrorKind::kInvalid);  // no destination
}

TEST_CASE("FHIRPath Patch delete and replace", "[fhir]") {
  CheckJson(Applied(kPatient, Params({Op("delete", "Patient.identifier.where(system='a')"), Op("delete", "Patient.gender")})),
            R"({"resourceType":"Patient","id":"p","identifier":[{"system":"b","value":"2"}],)"
            R"("name":[{"family":"Rossi","given":["Mario","Luigi"],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]}],)"
            R"("deceasedBoolean":false})");
  // deleting what is not there changes nothing
  CheckJson(Applied(kPatient, Params({Op("delete", "Patient.birthDate")})), kPatient);
  // the extension array follows; an array left empty goes
  CheckJson(Applied(kPatient, Params({Op("delete", "Patient.name.given[1]")})),
            R"({"resourceType":"Patient","id":"p","identifier":[{"system":"a","value":"1"},{"system":"b","value":"2"}],)"
            R"("name":[{"family":"Rossi","given":["Mario"]}],"gender":"male","deceasedBoolean":false})");
  CHECK(Applied(R"({"resourceType":"Patient","identifier":[{"value":"x"}]})", Params({Op("delete", "Patient.identifier[0]")})) ==
        R"({"resourceType":"Patient"})");
  CHECK(Fails(kPatient, Params({Op("delete", "Patient.identifier")})) == ErrorKind::kUnprocessable);  // two
  CHECK(Fails(kPatient, Params({Op("delete", "Patient")})) == ErrorKind::kUnprocessable);  // the resource itself
  CHECK(Fails(kPatient, Params({Op("delete", "'text'")})) == ErrorKind::kUnprocessable);  // not in the resource

  CheckJson(Applied(kPatient, Params({Op("replace", "Patient.gender", {R"({"name":"value","valueCode":"female"})"}),
                                      Op("replace", "Patient.identifier[1].value", {R"({"name":"value","valueString":"9"})"}),
                                      Op("replace", "Patient.deceased", {R"({"name":"value","valueDateTime":"2020-01-01"})"}),
                                      Op("replace", "Patient.name.given[1]", {R"({"name":"value","valueString":"Gino"})"})})),
            R"({"resourceType":"Patient","id":"p","identifier":[{"system":"a","value":"1"},{"system":"b","value":"9"}],)"
            R"("name":[{"family":"Rossi","given":["Mario","Gino"]}],"gender":"female","deceasedDateTime":"2020-01-01"})");
  CHECK(Fails(kPatient, Params({Op("replace", "Patient.birthDate", {R"({"name":"value","valueDate":"2000"})"})})) ==
        ErrorKind::kUnprocessable);  // nothing to replace
  CHECK(Fails(kPatient, Params({Op("replace", "Patient.gender", {R"({"name":"value","valueInteger":1})"})})) ==
        ErrorKind::kUnprocessable);
  CHECK(Fails(kPatient, Params({Op("replace", "Patient.gender")})) == ErrorKind::kInvalid);  // no value
}

TEST_CASE("FHIRPath Patch: malformed patches are 400", "[fhir]") {
  CHECK(Fails(kPatient, R"({"resourceType":"Basic"})") == ErrorKind::kInvalid);
  CHECK(Fails(kPatient, R"({"resourceType":"Parameters"})") == ErrorKind::kInvalid);
  CHECK(Fails(kPatient, R"({"resourceType":"Parameters","parameter":[{"name":"op","part":[]}]})") == ErrorKind::kInvalid);
  CHECK(Fails(kPatient, Params({Op("upsert", "Patient.gender")})) == ErrorKind::kInvalid);
  CHECK(Fails(kPatient, Params({Op("delete", "Patient.(")})) == ErrorKind::kInvalid);
  CHECK(Fails(kPatient, Params({Op("delete", "Patient.gender", {R"({"name":"colour","valueString":"x"})"})})) ==
        ErrorKind::kInvalid);
  CHECK(Fails(kPatient, Params({Op("insert", "Patient.identifier",
                                   {R"({"name":"index","valueInteger":-1})", R"({"name":"value","valueIdentifier":{}})"})})) ==
        ErrorKind::kInvalid);
  auto r = Patch(kPatient, Params({Op("delete", "Patient.gender"), Op("upsert", "x")}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().outcome.issues()[0].expression == "Parameters.parameter[1]");
  // an unknown element in the path is an error, not an empty selection
  CHECK(Fails(kPatient, Params({Op("delete", "Patient.colour")})) == ErrorKind::kUnprocessable);
}

TEST_CASE("PatchResource checks the result like an update", "[fhir]") {
  auto params = Resource::Parse(Params({Op("replace", "Patient.id", {R"({"name":"value","valueId":"other"})"})}));
  REQUIRE(params.ok());
  PatchDocument fp;
  fp.fhirpath_patch = &*params;
  auto changed_id = PatchResource(TestEngine(), kPatient, "Patient", "p", fp);
  REQUIRE_FALSE(changed_id.ok());
  CHECK(changed_id.error().kind == ErrorKind::kUnprocessable);

  PatchDocument jp;
  jp.json_patch = R"([{"op":"add","path":"/colour","value":"red"}])";
  auto bad_structure = PatchResource(TestEngine(), kPatient, "Patient", "p", jp);
  REQUIRE_FALSE(bad_structure.ok());
  CHECK(bad_structure.error().kind == ErrorKind::kUnprocessable);

  jp.json_patch = R"([{"op":"replace","path":"/gender","value":"other"}])";
  auto ok = PatchResource(TestEngine(), kPatient, "Patient", "p", jp);
  REQUIRE(ok.ok());
  CHECK(ok->Render("1", "2024-01-01T00:00:00Z").find(R"("gender":"other")") != std::string::npos);
}

}  // namespace
}  // namespace eds::fhir
