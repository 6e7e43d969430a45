// The validator over hand-made invalid resources (each with the issue it
// must produce), the R4 examples (no errors but a listed few), and profiles.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <unistd.h>

#include "fhir/conformance.hpp"
#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "fhir/terminology.hpp"
#include "fhir/ucum.hpp"
#include "fhir/validator.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using eds::fhir::Severity;

namespace {

std::string SourceDir() {
  const char* d = std::getenv("EDS_SOURCE_DIR");
  return d != nullptr ? d : ".";
}

const eds::fhir::Validator& TheValidator() {
  static std::shared_ptr<const eds::fhir::Validator> v = [] {
    auto defs = eds::testing::R4Definitions();
    auto dir = eds::testing::DefinitionsDir();
    auto terminology = eds::fhir::Terminology::Load({dir});
    auto profiles = eds::fhir::ConformanceStore::Load(
        *defs, {SourceDir() + "/profiles", SourceDir() + "/tests/data/profiles", dir});
    return std::make_shared<const eds::fhir::Validator>(defs, terminology, profiles);
  }();
  return *v;
}

eds::fhir::Outcome Validate(const std::string& json, bool profiles = true) {
  auto r = eds::fhir::Resource::Parse(json);
  REQUIRE(r.ok());
  eds::fhir::ValidationOptions options;
  options.structure = false;
  options.declared_profiles = profiles;
  return TheValidator().Validate(*r, options);
}

std::string Describe(const eds::fhir::Outcome& o) {
  std::string out;
  for (const auto& i : o.issues())
    out += std::string(eds::fhir::SeverityCode(i.severity)) + " " + i.code + " at " + i.expression + ": " +
           i.diagnostics + "\n";
  return out;
}

struct Case {
  const char* name;
  std::string json;
  Severity severity;
  std::string expression;
  std::string code;    // issue code
  int errors = -1;     // errors expected in all (-1: 1 for an error case, 0 for a warning case)
};

const std::string kText = R"("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"})";
std::string Pat(const std::string& body) {
  return R"({"resourceType":"Patient",)" + kText + (body.empty() ? "" : "," + body) + "}";
}
std::string Obs(const std::string& body) {
  return R"({"resourceType":"Observation",)" + kText + R"(,"status":"final","code":{"text":"x"})" +
         (body.empty() ? "" : "," + body) + "}";
}
const std::string kLabMeta = R"("meta":{"profile":["https://eds.fse.it/fhir/StructureDefinition/eds-lab-observation"]})";
const std::string kLabCategory =
    R"("category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}])";
const std::string kLoinc = R"("code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]})";
std::string Lab(const std::string& category, const std::string& code, const std::string& rest) {
  std::string parts = kLabMeta;
  for (const auto& p : {category, code, rest})
    if (!p.empty()) parts += "," + p;
  return R"({"resourceType":"Observation",)" + kText + R"(,"status":"final",)" + parts + "}";
}
const std::string kCfMeta = R"("meta":{"profile":["https://eds.fse.it/fhir/StructureDefinition/eds-patient"]})";
std::string CfPatient(const std::string& identifiers) {
  return Pat(kCfMeta + (identifiers.empty() ? "" : R"(,"identifier":)" + identifiers));
}
const std::string kFixedMeta = R"("meta":{"profile":["http://example.org/fhir/StructureDefinition/test-fixed-patient"]})";
const std::string kGpMeta = R"("meta":{"profile":["http://example.org/fhir/StructureDefinition/test-gp-patient"]})";
// Patient under test-slice-order-patient: identifiers sliced openAtEnd
// (cf, mrn), telecoms sliced ordered (phone, email).
std::string OrderPatient(const std::string& body) {
  return Pat(R"("meta":{"profile":["http://example.org/fhir/StructureDefinition/test-slice-order-patient"]},)" + body);
}
const std::string kCfId = R"({"system":"http://hl7.it/sid/codiceFiscale","value":"RSSMRA85T10A562S"})";
const std::string kMrnId = R"({"system":"http://example.org/mrn","value":"1"})";
const std::string kOtherId = R"({"system":"http://example.org/other","value":"2"})";
const std::string kPhone = R"({"system":"phone","value":"0612345"})";
const std::string kEmail = R"({"system":"email","value":"a@example.org"})";
const std::string kFax = R"({"system":"fax","value":"0654321"})";
const std::string kGpOrg = R"("generalPractitioner":[{"reference":"Organization/o1"}])";
const std::string kNickname = R"({"url":"http://example.org/fhir/StructureDefinition/test-nickname",)";
// A Composition under test-sections-composition (sections sliced by
// exists, type of the resolved entries and pattern), holding a Patient and
// an Observation its sections may point to.
std::string SectionsComposition(const std::string& sections) {
  return R"({"resourceType":"Composition",)" + kText +
         R"(,"meta":{"profile":["http://example.org/fhir/StructureDefinition/test-sections-composition"]},)"
         R"("contained":[{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}},)"
         R"({"resourceType":"Patient","id":"p1"}],"subject":{"reference":"#p1"},"event":[{"detail":[{"reference":"#o1"}]}],)"
         R"("status":"final","type":{"text":"report"},"date":"2024-01-01","author":[{"display":"a"}],"title":"t",)"
         R"("section":)" + sections + "}";
}
const std::string kNotesCode = R"("code":{"coding":[{"system":"http://loinc.org","code":"48767-8"}]})";
std::string CodingObs(const std::string& code, const std::string& rest) {
  return R"({"resourceType":"Observation",)" + kText +
         R"(,"meta":{"profile":["http://example.org/fhir/StructureDefinition/test-coding-observation"]},"status":"final","code":)" +
         code + (rest.empty() ? "" : "," + rest) + "}";
}

std::vector<Case> Cases() {
  const auto E = Severity::kError;
  const auto W = Severity::kWarning;
  return {
      // a. cardinality
      {"Observation without status", R"({"resourceType":"Observation",)" + kText + R"(,"code":{"text":"x"}})", E,
       "Observation.status", "required"},
      {"Observation without code", R"({"resourceType":"Observation",)" + kText + R"(,"status":"final"})", E,
       "Observation.code", "required"},
      {"Patient.link without other", Pat(R"("link":[{"type":"seealso"}])"), E, "Patient.link[0].other", "required"},
      {"Patient.communication without language", Pat(R"("communication":[{"preferred":true}])"), E,
       "Patient.communication[0].language", "required"},
      {"Observation.component without code", Obs(R"("component":[{"valueString":"a"}])"), E,
       "Observation.component[0].code", "required"},
      {"Bundle without type", R"({"resourceType":"Bundle"})", E, "Bundle.type", "required"},
      {"Encounter without status",
       R"({"resourceType":"Encounter",)" + kText +
           R"(,"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}})",
       E, "Encounter.status", "required"},
      {"Extension without url", Pat(R"("extension":[{"valueString":"x"}])"), E, "Patient.extension[0].url",
       "required"},
      {"Narrative without div", R"({"resourceType":"Patient","text":{"status":"generated"}})", E, "Patient.text.div",
       "required"},
      {"AllergyIntolerance without patient", R"({"resourceType":"AllergyIntolerance",)" + kText + "}", E,
       "AllergyIntolerance.patient", "required", 2},  // and ait-1: no clinicalStatus
      {"Condition without subject", R"({"resourceType":"Condition",)" + kText + "}", E, "Condition.subject",
       "required"},
      {"nested extension without url", Pat(R"("extension":[{"url":"http://x","extension":[{"valueString":"y"}]}])"), E,
       "Patient.extension[0].extension[0].url", "required"},
      {"primitive extension without url", Pat(R"("birthDate":"2000-01-01","_birthDate":{"extension":[{"valueString":"y"}]})"),
       E, "Patient.birthDate.extension[0].url", "required"},
      // b. primitives
      {"id with a space", Pat(R"("id":"bad id")"), E, "Patient.id", "value"},
      {"id too long", Pat(R"("id":")" + std::string(65, 'a') + "\""), E, "Patient.id", "value"},
      {"code with two spaces", Pat(R"("language":"en  US")"), E, "Patient.language", "value"},
      {"code with a leading space", Pat(R"("language":" en")"), E, "Patient.language", "value"},
      {"uri with a space", Pat(R"("implicitRules":"http://a b")"), E, "Patient.implicitRules", "value"},
      {"canonical with a space", Pat(R"("meta":{"profile":["http://x y"]})"), E, "Patient.meta.profile[0]", "value"},
      {"date with no such day", Pat(R"("birthDate":"2021-02-29")"), E, "Patient.birthDate", "value"},
      {"date with slashes", Pat(R"("birthDate":"2020/01/01")"), E, "Patient.birthDate", "value"},
      {"date with a time", Pat(R"("birthDate":"2020-01-01T10:00:00Z")"), E, "Patient.birthDate", "value"},
      {"date month 13", Pat(R"("birthDate":"2020-13")"), E, "Patient.birthDate", "value"},
      {"year zero", Pat(R"("birthDate":"0000")"), E, "Patient.birthDate", "value"},
      {"dateTime without zone", Pat(R"("deceasedDateTime":"2020-01-01T10:00:00")"), E, "Patient.deceasedDateTime",
       "value"},
      {"dateTime hour 25", Pat(R"("deceasedDateTime":"2020-01-01T25:00:00Z")"), E, "Patient.deceasedDateTime",
       "value"},
      {"dateTime without seconds", Pat(R"("deceasedDateTime":"2020-01-01T10:00Z")"), E, "Patient.deceasedDateTime",
       "value"},
      {"dateTime zone +15:00", Pat(R"("deceasedDateTime":"2020-01-01T10:00:00+15:00")"), E,
       "Patient.deceasedDateTime", "value"},
      {"instant without time", Pat(R"("meta":{"lastUpdated":"2020-01-01"})"), E, "Patient.meta.lastUpdated", "value"},
      {"instant without zone", Pat(R"("meta":{"lastUpdated":"2020-01-01T10:00:00.123"})"), E,
       "Patient.meta.lastUpdated", "value"},
      {"time hour 25", Obs(R"("valueTime":"25:00:00")"), E, "Observation.valueTime", "value"},
      {"time without seconds", Obs(R"("valueTime":"10:00")"), E, "Observation.valueTime", "value"},
      {"integer with a fraction", Obs(R"("valueInteger":1.5)"), E, "Observation.valueInteger", "value"},
      {"integer out of range", Obs(R"("valueInteger":3000000000)"), E, "Observation.valueInteger", "value"},
      {"integer with an exponent", Obs(R"("valueInteger":1e3)"), E, "Observation.valueInteger", "value"},
      {"positiveInt zero",
       Obs(R"("valueSampledData":{"origin":{"value":0},"period":1,"dimensions":0,"data":"E"})"), E,
       "Observation.valueSampledData.dimensions", "value"},
      {"unsignedInt negative", Pat(R"("photo":[{"contentType":"image/png","size":-1}])"), E, "Patient.photo[0].size",
       "value"},
      {"base64Binary not base64", Pat(R"("photo":[{"contentType":"image/png","data":"!!!"}])"), E,
       "Patient.photo[0].data", "value"},
      {"string with a control character", Pat(R"("name":[{"family":"a\u0001b"}])"), E, "Patient.name[0].family",
       "value"},
      {"url with a space",
       R"({"resourceType":"Endpoint",)" + kText +
           R"(,"status":"active","connectionType":{"system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type","code":"hl7-fhir-rest"},"payloadType":[{"text":"x"}],"address":"http://a b"})",
       E, "Endpoint.address", "value"},
      // c. invariants
      {"pat-1 contact without details", Pat(R"("contact":[{"gender":"male"}])"), E, "Patient.contact[0]", "invariant"},
      {"per-1 period ends before it starts", Pat(R"("name":[{"family":"x","period":{"start":"2020-01-02","end":"2020-01-01"}}])"),
       E, "Patient.name[0].period", "invariant"},
      {"ele-1 element with only an id", Pat(R"("name":[{"id":"a"}])"), E, "Patient.name[0]", "invariant"},
      {"ext-1 value and extensions", Pat(R"("extension":[{"url":"http://x","valueString":"a","extension":[{"url":"y","valueString":"b"}]}])"),
       E, "Patient.extension[0]", "invariant"},
      {"ext-1 neither value nor extensions", Pat(R"("extension":[{"url":"http://x"}])"), E, "Patient.extension[0]",
       "invariant"},
      {"dom-3 contained resource not referenced", Pat(R"("contained":[{"resourceType":"Organization","id":"o1","name":"x"}])"),
       E, "Patient", "invariant"},
      {"dom-4 contained with versionId",
       Pat(R"("managingOrganization":{"reference":"#o1"},"contained":[{"resourceType":"Organization","id":"o1","meta":{"versionId":"1"},"name":"x"}])"),
       E, "Patient", "invariant"},
      {"obs-6 value with dataAbsentReason", Obs(R"("valueString":"a","dataAbsentReason":{"text":"x"})"), E,
       "Observation", "invariant"},
      {"obs-7 component code equal to code",
       R"({"resourceType":"Observation",)" + kText +
           R"(,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1-8"}]},"valueString":"a","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"1-8"}]},"valueString":"b"}]})",
       E, "Observation", "invariant"},
      {"qty-3 code without system", Obs(R"("valueQuantity":{"value":1,"code":"mg"})"), E, "Observation.valueQuantity",
       "invariant"},
      {"ref-1 local reference to nothing", Obs(R"("subject":{"reference":"#nope"})"), E, "Observation.subject",
       "invariant"},
      {"cpt-2 value without system", Pat(R"("telecom":[{"value":"123"}])"), E, "Patient.telecom[0]", "invariant"},
      {"rng-2 low above high", Obs(R"("valueRange":{"low":{"value":5},"high":{"value":1}})"), E,
       "Observation.valueRange", "invariant"},
      {"rat-1 numerator without denominator", Obs(R"("valueRatio":{"numerator":{"value":1}})"), E,
       "Observation.valueRatio", "invariant"},
      {"att-1 data without contentType", Pat(R"("photo":[{"data":"AAAA"}])"), E, "Patient.photo[0]", "invariant"},
      {"con-5 clinicalStatus with entered-in-error",
       R"({"resourceType":"Condition",)" + kText +
           R"(,"subject":{"reference":"Patient/1"},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"entered-in-error"}]}})",
       E, "Condition", "invariant"},
      {"con-3 warning: problem without clinicalStatus",
       R"({"resourceType":"Condition",)" + kText +
           R"(,"subject":{"reference":"Patient/1"},"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]}]})",
       W, "Condition", "invariant"},
      {"dom-6 warning: no narrative", R"({"resourceType":"Patient","active":true})", W, "Patient", "invariant"},
      {"ait-1 no clinicalStatus",
       R"({"resourceType":"AllergyIntolerance",)" + kText +
           R"(,"patient":{"reference":"Patient/1"},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}]}})",
       E, "AllergyIntolerance", "invariant"},
      {"bdl-1 total in a collection", R"({"resourceType":"Bundle","type":"collection","total":1})", E, "Bundle",
       "invariant"},
      {"ele-1 in a backbone element", Pat(R"("contact":[{"id":"c1"}])"), E, "Patient.contact[0]", "invariant", 2},
      // d. bindings
      {"gender not in the value set", Pat(R"("gender":"unknownx")"), E, "Patient.gender", "code-invalid"},
      {"Observation.status not in the value set",
       R"({"resourceType":"Observation",)" + kText + R"(,"status":"done","code":{"text":"x"}})", E,
       "Observation.status", "code-invalid"},
      {"extensible Coding outside the value set (is-a filter)",
       R"({"resourceType":"Encounter",)" + kText +
           R"(,"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"NOPE"}})",
       W, "Encounter.class", "code-invalid"},
      {"required CodeableConcept outside the value set",
       R"({"resourceType":"AllergyIntolerance",)" + kText +
           R"(,"patient":{"reference":"Patient/1"},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"bogus"}]}})",
       E, "AllergyIntolerance.clinicalStatus", "code-invalid"},
      {"required CodeableConcept with a wrong system",
       R"({"resourceType":"Condition",)" + kText +
           R"(,"subject":{"reference":"Patient/1"},"verificationStatus":{"coding":[{"system":"http://example.org","code":"confirmed"}]}})",
       E, "Condition.verificationStatus", "code-invalid"},
      {"system the server cannot enumerate", Pat(R"("photo":[{"contentType":"image/png"}])"), W,
       "Patient.photo[0].contentType", "not-supported"},
      {"Quantity.comparator not in the value set", Obs(R"("valueQuantity":{"value":1,"comparator":"<<"})"), E,
       "Observation.valueQuantity.comparator", "code-invalid"},
      {"Identifier.use not in the value set", Pat(R"("identifier":[{"use":"bogus","value":"1"}])"), E,
       "Patient.identifier[0].use", "code-invalid"},
      {"HumanName.use not in the value set", Pat(R"("name":[{"use":"bogus","family":"x"}])"), E,
       "Patient.name[0].use", "code-invalid"},
      {"ContactPoint.system not in the value set", Pat(R"("telecom":[{"system":"pager2","value":"1"}])"), E,
       "Patient.telecom[0].system", "code-invalid"},
      {"contained resource binding", Pat(R"("managingOrganization":{"reference":"#p"},"contained":[{"resourceType":"Practitioner","id":"p","gender":"x"}])"),
       E, "Patient.contained[0].gender", "code-invalid"},
      // e. reference targets
      {"subject pointing to a Medication", Obs(R"("subject":{"reference":"Medication/1"})"), E, "Observation.subject",
       "structure"},
      {"generalPractitioner pointing to a Patient", Pat(R"("generalPractitioner":[{"reference":"Patient/1"}])"), E,
       "Patient.generalPractitioner[0]", "structure"},
      {"absolute reference with _history to a wrong type",
       Obs(R"("subject":{"reference":"http://example.org/fhir/Medication/1/_history/2"})"), E, "Observation.subject",
       "structure"},
      // f. profiles (profiles/ and tests/data/profiles)
      {"eds-patient without identifier", CfPatient(""), E, "Patient.identifier", "required", 2},
      {"eds-patient without a fiscal code",
       CfPatient(R"([{"system":"http://example.org/mrn","value":"1"}])"), E, "Patient.identifier", "required"},
      {"eds-patient with a malformed fiscal code",
       CfPatient(R"([{"system":"http://hl7.it/sid/codiceFiscale","value":"RSSMRA85T10A562"}])"), E,
       "Patient.identifier[0]", "invariant"},
      {"eds-patient with a lower-case fiscal code",
       CfPatient(R"([{"system":"http://hl7.it/sid/codiceFiscale","value":"rssmra85t10a562s"}])"), E,
       "Patient.identifier[0]", "invariant"},
      {"eds-patient with a fiscal code too long",
       CfPatient(R"([{"system":"http://hl7.it/sid/codiceFiscale","value":"RSSMRA85T10A562SX"}])"), E,
       "Patient.identifier[0].value", "too-long", 2},
      {"eds-patient with two fiscal codes",
       CfPatient(R"([{"system":"http://hl7.it/sid/codiceFiscale","value":"RSSMRA85T10A562S"},{"system":"http://hl7.it/sid/codiceFiscale","value":"VRDLGU70A01H501Z"}])"),
       E, "Patient.identifier", "structure"},
      {"eds-patient fiscal code without value", CfPatient(R"([{"system":"http://hl7.it/sid/codiceFiscale"}])"), E,
       "Patient.identifier[0].value", "required"},
      {"lab Observation without category", Lab("", kLoinc, R"("subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01")"),
       E, "Observation.category", "required", 2},
      {"lab Observation with another category",
       Lab(R"("category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}])",
           kLoinc, R"("subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01")"),
       E, "Observation.category", "required"},
      {"lab Observation without a LOINC code",
       Lab(kLabCategory, R"("code":{"coding":[{"system":"http://snomed.info/sct","code":"1234"}]})",
           R"("subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01")"),
       E, "Observation.code.coding", "required"},
      {"lab Observation without subject", Lab(kLabCategory, kLoinc, R"("effectiveDateTime":"2024-01-01")"), E,
       "Observation.subject", "required"},
      {"lab Observation about a Group",
       Lab(kLabCategory, kLoinc, R"("subject":{"reference":"Group/1"},"effectiveDateTime":"2024-01-01")"), E,
       "Observation.subject", "structure"},
      {"lab Observation without effective time", Lab(kLabCategory, kLoinc, R"("subject":{"reference":"Patient/1"})"),
       E, "Observation.effective", "required"},
      {"unknown declared profile", Pat(R"("meta":{"profile":["http://example.org/nope"]})"), W,
       "Patient.meta.profile[0]", "not-supported"},
      {"fixed boolean", Pat(kFixedMeta + R"(,"active":false)"), E, "Patient.active", "value"},
      {"fixed code", Pat(kFixedMeta + R"(,"gender":"male")"), E, "Patient.gender", "value"},
      {"pattern CodeableConcept",
       Pat(kFixedMeta +
           R"(,"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"S"}]})"),
       E, "Patient.maritalStatus", "value"},
      {"maxLength", Pat(kFixedMeta + R"(,"name":[{"family":"Abcdefg"}])"), E, "Patient.name[0].family", "too-long"},
      {"profile max below the base", Pat(kFixedMeta + R"(,"name":[{"family":"a"},{"family":"b"},{"family":"c"}])"),
       E, "Patient.name", "structure"},
      {"profile invariant at warning", Pat(kFixedMeta + R"(,"contact":[{"gender":"male","telecom":[{"system":"phone","value":"1"}]}])"),
       W, "Patient.contact[0]", "invariant"},
      // g. snapshots generated from differentials: paths into data types, root invariants
      {"profile path into a data type: coding required", CodingObs(R"({"text":"x"})", R"("valueString":"a")"), E,
       "Observation.code.coding", "required"},
      {"profile path into a data type: coding.system required",
       CodingObs(R"({"coding":[{"code":"x"}]})", R"("valueString":"a")"), E, "Observation.code.coding[0].system",
       "required"},
      {"profile root invariant", CodingObs(R"({"coding":[{"system":"http://loinc.org","code":"2345-7"}]})", ""), E,
       "Observation", "invariant"},
      {"UCUM unit outside ucum-units (required binding)",
       CodingObs(R"({"coding":[{"system":"http://loinc.org","code":"2345-7"}]})",
                 R"("valueQuantity":{"value":1,"system":"http://unitsofmeasure.org","code":"mg/dx"})"),
       E, "Observation.valueQuantity.code", "code-invalid"},
      // h. profile discriminator (references by target profile) and extension profiles
      {"profile discriminator: a reference in no slice of a closed slicing",
       Pat(kGpMeta + R"(,"generalPractitioner":[{"reference":"Practitioner/1"}])"), E,
       "Patient.generalPractitioner[0]", "structure", 2},
      {"profile discriminator: the required slice missing",
       Pat(kGpMeta + R"(,"generalPractitioner":[{"reference":"PractitionerRole/1"}])"), E,
       "Patient.generalPractitioner", "required"},
      {"profile discriminator: a contained target not conforming to the target profile",
       Pat(kGpMeta + R"(,"generalPractitioner":[{"reference":"#o1"}],"contained":[{"resourceType":"Organization","id":"o1","name":"x"}])"),
       E, "Patient.generalPractitioner[0]", "structure", 2},
      {"discriminators on resolved references: a section in no slice of a closed slicing",
       SectionsComposition(R"([{"title":"x","entry":[{"reference":"#p1"}]},{"title":"r","entry":[{"reference":"#o1"}]}])"),
       E, "Composition.section[0]", "structure"},
      {"discriminators: a notes-coded section with an entry fits no slice",
       SectionsComposition(R"([{"title":"n",)" + kNotesCode + R"(,"entry":[{"reference":"#p1"}]}])"), E,
       "Composition.section[0]", "structure"},
      {"discriminators: the slice a pattern chose checks its own rules (notes need text)",
       SectionsComposition(R"([{"title":"n",)" + kNotesCode + "}]"), E, "Composition.section[0].text", "required",
       2},  // and cmp-1: a section holds text, entries or sections
      {"extension profile: value type not allowed",
       Pat(kGpMeta + "," + kGpOrg + R"(,"extension":[)" + kNickname + R"("valueInteger":3}])"), E,
       "Patient.extension[0].valueInteger", "structure"},
      {"extension profile: maxLength", Pat(kGpMeta + "," + kGpOrg + R"(,"extension":[)" + kNickname +
                                           R"("valueString":"abcdefghijkl"}])"),
       E, "Patient.extension[0].valueString", "too-long"},
      {"extension profile: value required", Pat(kGpMeta + "," + kGpOrg + R"(,"extension":[)" + kNickname +
                                                R"("extension":[{"url":"a","valueString":"b"}]}])"),
       E, "Patient.extension[0].value", "required", 2},
      // i. slicing rules openAtEnd and ordered
      {"openAtEnd: a sliced value after one in no slice",
       OrderPatient(R"("identifier":[)" + kCfId + "," + kOtherId + "," + kMrnId + "]"), E, "Patient.identifier[2]",
       "structure"},
      {"openAtEnd: the first value in no slice, then a sliced one",
       OrderPatient(R"("identifier":[)" + kOtherId + "," + kCfId + "]"), E, "Patient.identifier[1]", "structure"},
      {"ordered: a value of the first slice after one of the second",
       OrderPatient(R"("telecom":[)" + kEmail + "," + kPhone + "]"), E, "Patient.telecom[1]", "structure"},
      {"ordered: values outside the slices do not reset the order",
       OrderPatient(R"("telecom":[)" + kPhone + "," + kEmail + "," + kFax + "," + kPhone + "]"), E,
       "Patient.telecom[3]", "structure"},
      {"extension slice: at most one", Pat(kGpMeta + "," + kGpOrg + R"(,"extension":[)" + kNickname +
                                           R"("valueString":"a"},)" + kNickname + R"("valueString":"b"}])"),
       E, "Patient.extension", "structure"},
  };
}

}  // namespace

TEST_CASE("validator: each invalid resource gives its issue", "[fhir][validator]") {
  auto cases = Cases();
  CHECK(cases.size() >= 60);
  for (const auto& c : cases) {
    INFO(c.name << "\n" << c.json);
    auto outcome = Validate(c.json);
    INFO(Describe(outcome));
    int errors = 0;
    bool found = false;
    for (const auto& i : outcome.issues()) {
      errors += i.severity == Severity::kError;
      found = found || (i.severity == c.severity && i.expression == c.expression && i.code == c.code);
    }
    CHECK(found);
    CHECK(errors == (c.errors >= 0 ? c.errors : c.severity == Severity::kError ? 1 : 0));
  }
}

TEST_CASE("validator: valid resources give no errors", "[fhir][validator]") {
  const std::vector<std::string> valid = {
      Pat(R"("gender":"female","birthDate":"1985-12-10","name":[{"family":"Rossi","given":["Maria"]}])"),
      Obs(R"("subject":{"reference":"Patient/1"},"valueQuantity":{"value":5.4,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"})"),
      R"({"resourceType":"Encounter",)" + kText +
          R"(,"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}})",
      CfPatient(R"([{"system":"http://hl7.it/sid/codiceFiscale","value":"RSSMRA85T10A562S"}])"),
      CfPatient(R"([{"system":"http://example.org/mrn","value":"1"},{"system":"http://hl7.it/sid/codiceFiscale","value":"RSSMRA85T1LA56NS"}])"),
      Lab(kLabCategory, kLoinc, R"("subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-01T08:30:00+01:00","valueQuantity":{"value":95,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"})"),
      Pat(R"("managingOrganization":{"reference":"#o1"},"contained":[{"resourceType":"Organization","id":"o1","name":"x"}])"),
      Pat(R"("deceasedDateTime":"2020-02-29T23:59:60.123-03:30","meta":{"lastUpdated":"2020-01-01T10:00:00Z"})"),
      CodingObs(R"({"coding":[{"system":"http://loinc.org","code":"2345-7"}]})", R"("valueString":"a")"),
      // profile discriminator: a target outside the resource counts by its type; a contained one by its content
      CodingObs(R"({"coding":[{"system":"http://loinc.org","code":"2345-7"}]})",
                R"("valueQuantity":{"value":1,"system":"http://unitsofmeasure.org","code":"mL/min/{1.73_m2}"})"),
      SectionsComposition(R"([{"title":"r","entry":[{"reference":"#o1"}]},{"title":"n",)" + kNotesCode +
                          R"(,"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">n</div>"}}])"),
      Pat(kGpMeta + "," + kGpOrg),
      Pat(kGpMeta + R"(,"generalPractitioner":[{"reference":"#o1"},{"reference":"PractitionerRole/2"}],)"
                    R"("contained":[{"resourceType":"Organization","id":"o1","identifier":[{"value":"1"}]}])"),
      Pat(kGpMeta + "," + kGpOrg + R"(,"extension":[)" + kNickname + R"("valueString":"Mimi"}])"),
      // openAtEnd: values in no slice last; ordered: slices in order, others anywhere
      OrderPatient(R"("identifier":[)" + kCfId + "," + kMrnId + "," + kOtherId + "," + kOtherId + "]"),
      OrderPatient(R"("identifier":[)" + kMrnId + "," + kCfId + "," + kOtherId + "]"),
      OrderPatient(R"("identifier":[)" + kOtherId + "]"),
      OrderPatient(R"("telecom":[)" + kFax + "," + kPhone + "," + kPhone + "," + kFax + "," + kEmail + "]"),
      OrderPatient(R"("telecom":[)" + kEmail + "," + kFax + "]"),
  };
  for (const auto& json : valid) {
    INFO(json);
    auto outcome = Validate(json);
    INFO(Describe(outcome));
    CHECK_FALSE(outcome.HasErrors());
  }
}

TEST_CASE("validator: explicit profiles and counts", "[fhir][validator]") {
  auto r = eds::fhir::Resource::Parse(Pat(R"("gender":"male")"));
  REQUIRE(r.ok());
  eds::fhir::ValidationOptions options;
  options.profiles = {"http://example.org/fhir/StructureDefinition/test-fixed-patient"};
  auto outcome = TheValidator().Validate(*r, options);
  INFO(Describe(outcome));
  CHECK(outcome.HasErrors());
  options.profiles = {"http://example.org/nope"};
  outcome = TheValidator().Validate(*r, options);
  REQUIRE(!outcome.issues().empty());
  CHECK(outcome.issues().back().code == "not-found");
  CHECK(outcome.issues().back().severity == Severity::kError);
  const auto& st = TheValidator().stats();
  WARN("invariants: " << st.constraints << " with an expression, " << st.unparsed << " skipped (do not parse)");
  CHECK(st.constraints > 500);
  REQUIRE(TheValidator().profiles() != nullptr);
  CHECK(TheValidator().profiles()->Find("https://eds.fse.it/fhir/StructureDefinition/eds-patient") != nullptr);
  CHECK(TheValidator().profiles()->Find("https://eds.fse.it/fhir/StructureDefinition/eds-lab-observation") != nullptr);
  // every profile of the package loads, the two whose snapshots slice an
  // element they do not list included
  for (const auto& n : TheValidator().profiles()->notes()) UNSCOPED_INFO(n);
  CHECK(TheValidator().profiles()->notes().empty());
  CHECK(TheValidator().profiles()->Find("http://hl7.org/fhir/StructureDefinition/catalog") != nullptr);
  CHECK(TheValidator().profiles()->Find("http://hl7.org/fhir/StructureDefinition/familymemberhistory-genetic") != nullptr);
}

namespace {

// tests/data/invalid_examples.txt: "file  reason" per line.
std::map<std::string, std::string> KnownInvalidExamples() {
  std::map<std::string, std::string> out;
  std::ifstream in(SourceDir() + "/tests/data/invalid_examples.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.find(' ');
    out[line.substr(0, sp)] = sp == std::string::npos ? "" : line.substr(sp + 1);
  }
  return out;
}

}  // namespace

TEST_CASE("validator: every R4 example validates against its base definition", "[fhir][validator][examples]") {
  static const std::set<std::string> kSkippedTypes = {
      "CapabilityStatement", "StructureDefinition", "ImplementationGuide", "SearchParameter", "MessageDefinition",
      "OperationDefinition", "CompartmentDefinition", "StructureMap", "GraphDefinition", "ExampleScenario",
      "TestScript", "TestReport", "CodeSystem", "ValueSet", "ConceptMap", "NamingSystem", "TerminologyCapabilities"};
  auto known = KnownInvalidExamples();
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(eds::testing::DefinitionsDir()))
    if (e.path().extension() == ".json" && e.path().filename() != "package.json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  int checked = 0, invalid = 0;
  std::vector<std::string> unexpected, now_valid;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = eds::fhir::Resource::Parse(ss.str());
    if (!r || kSkippedTypes.count(r->type())) continue;
    ++checked;
    eds::fhir::ValidationOptions options;
    auto outcome = TheValidator().Validate(*r, options);
    const std::string name = path.filename().string();
    if (outcome.HasErrors()) {
      ++invalid;
      if (!known.count(name)) {
        std::string first;
        for (const auto& i : outcome.issues())
          if (i.severity == Severity::kError) {
            first = i.expression + ": " + i.diagnostics;
            break;
          }
        unexpected.push_back(name + " -- " + first);
      }
    } else if (known.count(name)) {
      now_valid.push_back(name);
    }
  }
  for (const auto& u : unexpected) UNSCOPED_INFO("unexpected errors: " << u);
  for (const auto& u : now_valid) UNSCOPED_INFO("listed as invalid but valid: " << u);
  CHECK(unexpected.empty());
  CHECK(now_valid.empty());
  CHECK(checked > 600);
  WARN("R4 examples validated: " << checked << ", with errors (listed with reasons): " << invalid
                                 << "; invariant evaluation failures (skipped): "
                                 << TheValidator().evaluation_failures());
}

namespace {

// The base IG's examples carry no meta.profile; its ImplementationGuide
// pairs them with these profiles.
std::string BaseExampleProfile(const std::string& file) {
  const std::string b = "http://hl7.it/fhir/StructureDefinition/";
  if (file.rfind("Patient-", 0) == 0) return b + "Patient-it-base";
  if (file.rfind("Coverage-", 0) == 0) return b + "Coverage-it-base";
  if (file == "Organization-asl-020101.json") return b + "Organization-it-hcp";
  if (file.rfind("Organization-", 0) == 0) return b + "Organization-it-base";
  if (file.rfind("Practitioner-", 0) == 0) return b + "Practitioner-it-base";
  if (file == "PractitionerRole-PractitionerRoleMMGExample.json") return b + "PractitionerRole-it-mmg";
  if (file.rfind("PractitionerRole-", 0) == 0) return b + "PractitionerRole-it-base";
  return {};
}

// Examples that are invalid under their profiles, each with the reason.
const std::map<std::string, std::string>& KnownInvalidItExamples() {
  static const std::map<std::string, std::string> kKnown = {
  };
  return kKnown;
}

}  // namespace

TEST_CASE("validator: HL7 Italia profiles (../shared/testdata/it-profiles)", "[fhir][validator]") {
  const fs::path dir = fs::path(SourceDir()) / ".." / "shared" / "testdata" / "it-profiles";
  if (!fs::is_directory(dir)) {
    std::cout << "SKIPPED: HL7 Italia profile tests (../shared/testdata/it-profiles absent)" << std::endl;
    WARN("SKIPPED: HL7 Italia profile tests (../shared/testdata/it-profiles absent)");
    return;
  }
  // The IGs are differential-only: each is loaded on its own (snapshots
  // generated, bases from the R4 package) with the Italian terminology, and
  // each example validated against its profiles: no errors, but for the
  // examples listed with the reason they are invalid.
  auto defs = eds::testing::R4Definitions();
  auto terminology = eds::fhir::Terminology::Load({eds::testing::DefinitionsDir(), (dir / "terminology").string()});
  const auto& known = KnownInvalidItExamples();
  std::vector<std::string> unexpected, now_valid;
  for (const char* ig : {"base", "lab-report"}) {
    auto store = eds::fhir::ConformanceStore::Load(*defs, {(dir / ig).string()});
    CHECK(store->resource_profile_count() > 5);
    for (const auto& n : store->notes()) UNSCOPED_INFO(ig << ": " << n);
    eds::fhir::Validator validator(defs, terminology, store);
    int examples = 0, with_errors = 0, warnings = 0;
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir / ig / "examples", ec)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
      std::ifstream in(path, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      auto r = eds::fhir::Resource::Parse(ss.str());
      REQUIRE(r.ok());
      ++examples;
      const std::string name = std::string(ig) + "/" + path.filename().string();
      eds::fhir::ValidationOptions options;
      options.declared_profiles = true;
      if (std::string p = BaseExampleProfile(path.filename().string()); ig == std::string("base") && !p.empty())
        options.profiles.push_back(p);
      auto outcome = validator.Validate(*r, options);
      for (const auto& i : outcome.issues()) warnings += i.severity == Severity::kWarning;
      if (outcome.HasErrors()) {
        ++with_errors;
        if (!known.count(name)) {
          std::string errors;
          for (const auto& i : outcome.issues())
            if (i.severity == Severity::kError) errors += "\n    " + i.expression + ": " + i.diagnostics;
          unexpected.push_back(name + errors);
        }
      } else if (known.count(name)) {
        now_valid.push_back(name);
      }
    }
    WARN("it-profiles/" << ig << ": " << store->resource_profile_count() << " resource profiles, "
                        << store->profiles().size() << " in all; " << examples << " examples validated, "
                        << with_errors << " with errors (listed with reasons), " << warnings << " warnings");
  }
  for (const auto& u : unexpected) UNSCOPED_INFO("unexpected errors: " << u);
  for (const auto& u : now_valid) UNSCOPED_INFO("listed as invalid but valid: " << u);
  CHECK(unexpected.empty());
  CHECK(now_valid.empty());
}

TEST_CASE("validator: UCUM unit expressions", "[fhir][validator]") {
  for (const char* ok : {"mg/dL", "10*9/L", "10*3/uL", "mL/min/{1.73_m2}", "/[HPF]", "%", "mm[Hg]", "{score}", "1",
                         "kg.m-2", "ug/(24.h)", "mmol/mol", "[IU]/L", "U/L", "fL", "pg", "s", "/min", "Cel", "[pH]",
                         "g/dL", "meq/L", "mosm/kg", "[in_i]", "10^-3", "ng/mL{FEU}", "cm[H2O]", "kcal"}) {
    INFO(ok);
    CHECK_FALSE(eds::fhir::UcumProblem(ok).has_value());
  }
  for (const char* bad : {"", "mg/dx", "mg/", "xyz", "kmin", "mg{abc", "(mg", "mg)", "m g", "mg//L", "mgg"}) {
    INFO(bad);
    CHECK(eds::fhir::UcumProblem(bad).has_value());
  }
}

TEST_CASE("validator: stored conformance resources win over files with their URL", "[fhir][validator]") {
  auto defs = eds::testing::R4Definitions();
  // test-fixed-patient as stored: birthDate required, gender bound to a stored value set of 'other' only
  const std::string sd =
      R"({"resourceType":"StructureDefinition","url":"http://example.org/fhir/StructureDefinition/test-fixed-patient",)"
      R"("name":"Stored","status":"active","kind":"resource","abstract":false,"type":"Patient",)"
      R"("baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",)"
      R"("differential":{"element":[{"id":"Patient.birthDate","path":"Patient.birthDate","min":1},)"
      R"({"id":"Patient.gender","path":"Patient.gender","binding":{"strength":"required","valueSet":"http://example.org/vs/other"}}]}})";
  const std::string vs =
      R"({"resourceType":"ValueSet","url":"http://example.org/vs/other","status":"active",)"
      R"("compose":{"include":[{"system":"http://hl7.org/fhir/administrative-gender","concept":[{"code":"other"}]}]}})";
  auto terminology = eds::fhir::Terminology::Load({eds::testing::DefinitionsDir()}, {vs});
  auto profiles = eds::fhir::ConformanceStore::Load(*defs, {SourceDir() + "/tests/data/profiles"}, {sd});
  const auto* p = profiles->Find("http://example.org/fhir/StructureDefinition/test-fixed-patient");
  REQUIRE(p != nullptr);
  CHECK(p->generated);
  CHECK(profiles->Find("http://example.org/fhir/StructureDefinition/test-gp-patient") != nullptr);
  eds::fhir::Validator validator(defs, terminology, profiles);
  auto r = eds::fhir::Resource::Parse(Pat(kFixedMeta + R"(,"gender":"male")"));
  REQUIRE(r.ok());
  eds::fhir::ValidationOptions options;
  options.declared_profiles = true;
  auto outcome = validator.Validate(*r, options);
  INFO(Describe(outcome));
  bool birth = false, gender = false;
  for (const auto& i : outcome.issues()) {
    birth = birth || (i.severity == Severity::kError && i.expression == "Patient.birthDate" && i.code == "required");
    gender = gender || (i.severity == Severity::kError && i.expression == "Patient.gender" && i.code == "code-invalid");
  }
  CHECK(birth);
  CHECK(gender);
  // the file's rule (gender fixed to female) is not the one in force
  for (const auto& i : outcome.issues()) CHECK(i.diagnostics.find("exactly") == std::string::npos);
}

namespace {

const std::string kVersionedUrl = "http://example.org/fhir/StructureDefinition/versioned-patient";
const std::string kVersionedVs = "http://example.org/fhir/ValueSet/versioned-gender";

// A differential-only Patient profile: version `version` of kVersionedUrl
// (none when empty) with `differential` as its elements.
std::string VersionedSd(const std::string& url, const std::string& version, const std::string& differential,
                        const std::string& base = "http://hl7.org/fhir/StructureDefinition/Patient") {
  return R"({"resourceType":"StructureDefinition","url":")" + url + R"(",)" +
         (version.empty() ? "" : R"("version":")" + version + R"(",)") +
         R"("name":"Versioned","status":"active","kind":"resource","abstract":false,"type":"Patient",)"
         R"("baseDefinition":")" + base + R"(","derivation":"constraint","differential":{"element":[)" +
         differential + "]}}";
}
std::string Required(const std::string& element) {
  return R"({"id":"Patient.)" + element + R"(","path":"Patient.)" + element + R"(","min":1})";
}
std::string GenderBinding(const std::string& value_set) {
  return R"({"id":"Patient.gender","path":"Patient.gender","binding":{"strength":"required","valueSet":")" +
         value_set + R"("}})";
}
// Version `version` of kVersionedVs: the administrative genders `codes`.
std::string VersionedVs(const std::string& version, const std::string& codes) {
  return R"({"resourceType":"ValueSet","url":")" + kVersionedVs + R"(","version":")" + version +
         R"(","status":"active","compose":{"include":[{"system":"http://hl7.org/fhir/administrative-gender","concept":[)" +
         codes + "]}]}}";
}

eds::fhir::Outcome ValidateAgainst(const eds::fhir::Validator& validator, const std::string& json,
                                   const std::vector<std::string>& profiles = {}) {
  auto r = eds::fhir::Resource::Parse(json);
  REQUIRE(r.ok());
  eds::fhir::ValidationOptions options;
  options.structure = false;
  options.declared_profiles = true;
  options.profiles = profiles;
  return validator.Validate(*r, options);
}

int CountIssues(const eds::fhir::Outcome& o, Severity severity, const std::string& expression, const std::string& code) {
  int n = 0;
  for (const auto& i : o.issues()) n += i.severity == severity && i.expression == expression && i.code == code;
  return n;
}

// The diagnostics of the first issue at `expression`.
std::string DiagnosticsAt(const eds::fhir::Outcome& o, const std::string& expression) {
  for (const auto& i : o.issues())
    if (i.expression == expression) return i.diagnostics;
  return {};
}

std::string Declaring(const std::string& profile, const std::string& body = "") {
  return Pat(R"("meta":{"profile":[")" + profile + R"("]})" + (body.empty() ? "" : "," + body));
}

}  // namespace

TEST_CASE("validator: meta.profile with |version checks that version; a bare URL the latest", "[fhir][validator]") {
  auto defs = eds::testing::R4Definitions();
  auto terminology = eds::fhir::Terminology::Load({});
  // v1.0.0 requires birthDate, v2.0.0 gender; loaded in both orders
  const std::string v1 = VersionedSd(kVersionedUrl, "1.0.0", Required("birthDate"));
  const std::string v2 = VersionedSd(kVersionedUrl, "2.0.0", Required("gender"));
  for (const auto& stored : {std::vector<std::string>{v1, v2}, std::vector<std::string>{v2, v1}}) {
    auto profiles = eds::fhir::ConformanceStore::Load(*defs, {}, stored);
    for (const auto& n : profiles->notes()) UNSCOPED_INFO(n);
    REQUIRE(profiles->Find(kVersionedUrl) != nullptr);
    CHECK(profiles->Find(kVersionedUrl)->version == "2.0.0");
    REQUIRE(profiles->Find(kVersionedUrl + "|1.0.0") != nullptr);
    CHECK(profiles->Find(kVersionedUrl + "|1.0.0")->version == "1.0.0");
    CHECK(profiles->Find(kVersionedUrl + "|1.0.0")->url == kVersionedUrl);
    CHECK(profiles->Find(kVersionedUrl + "|3.0.0") == nullptr);
    CHECK(profiles->resource_profile_count() >= 2);
    eds::fhir::Validator validator(defs, terminology, profiles);

    auto o1 = ValidateAgainst(validator, Declaring(kVersionedUrl + "|1.0.0"));
    INFO(Describe(o1));
    CHECK(CountIssues(o1, Severity::kError, "Patient.birthDate", "required") == 1);
    CHECK(CountIssues(o1, Severity::kError, "Patient.gender", "required") == 0);
    // the message names the version that asked for it
    CHECK(DiagnosticsAt(o1, "Patient.birthDate").find(kVersionedUrl + "|1.0.0") != std::string::npos);

    auto o2 = ValidateAgainst(validator, Declaring(kVersionedUrl + "|2.0.0"));
    INFO(Describe(o2));
    CHECK(CountIssues(o2, Severity::kError, "Patient.birthDate", "required") == 0);
    CHECK(CountIssues(o2, Severity::kError, "Patient.gender", "required") == 1);

    auto latest = ValidateAgainst(validator, Declaring(kVersionedUrl));
    INFO(Describe(latest));
    CHECK(CountIssues(latest, Severity::kError, "Patient.birthDate", "required") == 0);
    CHECK(CountIssues(latest, Severity::kError, "Patient.gender", "required") == 1);
    CHECK(DiagnosticsAt(latest, "Patient.gender").find(kVersionedUrl + "|2.0.0") != std::string::npos);

    // each version's rules are met by what it asks for only
    CHECK_FALSE(ValidateAgainst(validator, Declaring(kVersionedUrl + "|1.0.0", R"("birthDate":"1980-01-01")"))
                    .HasErrors());
    CHECK_FALSE(ValidateAgainst(validator, Declaring(kVersionedUrl, R"("gender":"male")")).HasErrors());

    // an unknown version is an unknown profile: a warning when declared, an
    // error when asked for ($validate profile), naming the versioned URL
    auto unknown = ValidateAgainst(validator, Declaring(kVersionedUrl + "|3.0.0"));
    INFO(Describe(unknown));
    CHECK_FALSE(unknown.HasErrors());
    REQUIRE(CountIssues(unknown, Severity::kWarning, "Patient.meta.profile[0]", "not-supported") == 1);
    CHECK(unknown.issues().back().diagnostics.find(kVersionedUrl + "|3.0.0") != std::string::npos);
    auto asked = ValidateAgainst(validator, Pat(""), {kVersionedUrl + "|3.0.0"});
    REQUIRE(!asked.issues().empty());
    CHECK(asked.issues().back().code == "not-found");
    CHECK(asked.issues().back().severity == Severity::kError);
    CHECK(asked.issues().back().diagnostics.find(kVersionedUrl + "|3.0.0") != std::string::npos);
    auto asked1 = ValidateAgainst(validator, Pat(""), {kVersionedUrl + "|1.0.0"});
    CHECK(CountIssues(asked1, Severity::kError, "Patient.birthDate", "required") == 1);
    CHECK(CountIssues(asked1, Severity::kError, "Patient.gender", "required") == 0);
  }
}

TEST_CASE("validator: versions of one profile from files and the store live side by side", "[fhir][validator]") {
  auto defs = eds::testing::R4Definitions();
  const fs::path dir = fs::temp_directory_path() / ("eds-versioned-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "StructureDefinition-versioned-patient.json")
      << VersionedSd(kVersionedUrl, "1.0.0", Required("birthDate"));
  std::ofstream(dir / "StructureDefinition-versioned-patient-old.json")
      << VersionedSd(kVersionedUrl, "0.9.0", Required("active"));
  // the stored 1.0.0 wins over the file's; 2.0.0 only stored
  auto profiles = eds::fhir::ConformanceStore::Load(
      *defs, {dir.string()},
      {VersionedSd(kVersionedUrl, "1.0.0", Required("name")), VersionedSd(kVersionedUrl, "2.0.0", Required("gender"))});
  fs::remove_all(dir);
  for (const auto& n : profiles->notes()) UNSCOPED_INFO(n);
  CHECK(profiles->notes().empty());
  eds::fhir::Validator validator(defs, eds::fhir::Terminology::Load({}), profiles);
  auto check = [&](const std::string& canonical, const std::string& required) {
    INFO(canonical);
    auto o = ValidateAgainst(validator, Declaring(canonical));
    INFO(Describe(o));
    for (const char* element : {"birthDate", "active", "name", "gender"})
      CHECK(CountIssues(o, Severity::kError, std::string("Patient.") + element, "required") ==
            (element == required ? 1 : 0));
  };
  check(kVersionedUrl + "|0.9.0", "active");
  check(kVersionedUrl + "|1.0.0", "name");
  check(kVersionedUrl + "|2.0.0", "gender");
  check(kVersionedUrl, "gender");
}

TEST_CASE("validator: baseDefinition and targetProfile with |version", "[fhir][validator]") {
  auto defs = eds::testing::R4Definitions();
  const std::string derived_url = "http://example.org/fhir/StructureDefinition/versioned-derived";
  // the derived profile builds on v1.0.0 (birthDate), not on the latest (gender)
  const std::string derived = VersionedSd(derived_url, "", Required("active"), kVersionedUrl + "|1.0.0");
  // a reference to the core Patient named with the package's FHIR version
  const std::string gp =
      VersionedSd("http://example.org/fhir/StructureDefinition/versioned-link", "",
                  R"({"id":"Patient.link.other","path":"Patient.link.other","type":[{"code":"Reference",)"
                  R"("targetProfile":["http://hl7.org/fhir/StructureDefinition/Patient|4.0.1"]}]})");
  for (const auto& stored :
       {std::vector<std::string>{derived, VersionedSd(kVersionedUrl, "1.0.0", Required("birthDate")),
                                 VersionedSd(kVersionedUrl, "2.0.0", Required("gender")), gp},
        std::vector<std::string>{gp, VersionedSd(kVersionedUrl, "2.0.0", Required("gender")), derived,
                                 VersionedSd(kVersionedUrl, "1.0.0", Required("birthDate"))}}) {
    auto profiles = eds::fhir::ConformanceStore::Load(*defs, {}, stored);
    for (const auto& n : profiles->notes()) UNSCOPED_INFO(n);
    CHECK(profiles->notes().empty());
    REQUIRE(profiles->Find(derived_url) != nullptr);
    CHECK(profiles->GeneratedSnapshot(derived_url) != nullptr);
    CHECK(profiles->GeneratedSnapshot(kVersionedUrl + "|1.0.0") != nullptr);
    eds::fhir::Validator validator(defs, eds::fhir::Terminology::Load({}), profiles);
    auto o = ValidateAgainst(validator, Declaring(derived_url));
    INFO(Describe(o));
    CHECK(CountIssues(o, Severity::kError, "Patient.active", "required") == 1);
    CHECK(CountIssues(o, Severity::kError, "Patient.birthDate", "required") == 1);
    CHECK(CountIssues(o, Severity::kError, "Patient.gender", "required") == 0);

    auto link = ValidateAgainst(
        validator, Declaring("http://example.org/fhir/StructureDefinition/versioned-link",
                             R"("link":[{"other":{"reference":"RelatedPerson/1"},"type":"seealso"}])"));
    INFO(Describe(link));
    CHECK(CountIssues(link, Severity::kError, "Patient.link[0].other", "structure") == 1);
  }
}

TEST_CASE("validator: bindings to a ValueSet with |version use that version", "[fhir][validator]") {
  auto defs = eds::testing::R4Definitions();
  const std::string g = "http://hl7.org/fhir/administrative-gender";
  const std::string vs1 = VersionedVs("1.0.0", R"({"code":"male"})");
  const std::string vs2 = VersionedVs("2.0.0", R"({"code":"female"})");
  const std::string p1 = "http://example.org/fhir/StructureDefinition/bound-v1";
  const std::string p2 = "http://example.org/fhir/StructureDefinition/bound-v2";
  const std::string latest = "http://example.org/fhir/StructureDefinition/bound-latest";
  const std::string missing = "http://example.org/fhir/StructureDefinition/bound-v9";
  auto profiles = eds::fhir::ConformanceStore::Load(
      *defs, {},
      {VersionedSd(p1, "", GenderBinding(kVersionedVs + "|1.0.0")),
       VersionedSd(p2, "", GenderBinding(kVersionedVs + "|2.0.0")), VersionedSd(latest, "", GenderBinding(kVersionedVs)),
       VersionedSd(missing, "", GenderBinding(kVersionedVs + "|9.0.0"))});
  for (const auto& stored : {std::vector<std::string>{vs1, vs2}, std::vector<std::string>{vs2, vs1}}) {
    auto terminology = eds::fhir::Terminology::Load({}, stored);
    CHECK(terminology->value_set_count() == 2);
    using M = eds::fhir::Terminology::Membership;
    CHECK(terminology->Check(kVersionedVs + "|1.0.0", g, "male") == M::kMember);
    CHECK(terminology->Check(kVersionedVs + "|1.0.0", g, "female") == M::kNotMember);
    CHECK(terminology->Check(kVersionedVs + "|2.0.0", g, "female") == M::kMember);
    CHECK(terminology->Check(kVersionedVs, g, "female") == M::kMember);
    CHECK(terminology->Check(kVersionedVs, g, "male") == M::kNotMember);
    std::string why;
    CHECK(terminology->Check(kVersionedVs + "|9.0.0", g, "male", &why) == M::kUnknown);
    CHECK(why.find(kVersionedVs + "|9.0.0") != std::string::npos);
    CHECK(terminology->SameValueSet(kVersionedVs, kVersionedVs + "|2.0.0"));
    CHECK_FALSE(terminology->SameValueSet(kVersionedVs, kVersionedVs + "|1.0.0"));
    // a value set that includes another by url|version, or by its bare url
    auto including = [&](const std::string& url, const std::string& included) {
      return R"({"resourceType":"ValueSet","url":")" + url +
             R"(","status":"active","compose":{"include":[{"valueSet":[")" + included + R"("]}]}})";
    };
    auto nested = stored;
    nested.push_back(including("http://example.org/vs/includes-v1", kVersionedVs + "|1.0.0"));
    nested.push_back(including("http://example.org/vs/includes-latest", kVersionedVs));
    auto with_nested = eds::fhir::Terminology::Load({}, nested);
    CHECK(with_nested->Check("http://example.org/vs/includes-v1", g, "male") == M::kMember);
    CHECK(with_nested->Check("http://example.org/vs/includes-v1", g, "female") == M::kNotMember);
    CHECK(with_nested->Check("http://example.org/vs/includes-latest", g, "female") == M::kMember);
    CHECK(with_nested->Check("http://example.org/vs/includes-latest", g, "male") == M::kNotMember);

    eds::fhir::Validator validator(defs, terminology, profiles);
    auto gender_error = [&](const std::string& profile, const std::string& code) {
      auto o = ValidateAgainst(validator, Declaring(profile, R"("gender":")" + code + R"(")"));
      INFO(profile << " " << code << "\n" << Describe(o));
      return CountIssues(o, Severity::kError, "Patient.gender", "code-invalid");
    };
    CHECK(gender_error(p1, "male") == 0);
    CHECK(gender_error(p1, "female") == 1);
    CHECK(gender_error(p2, "male") == 1);
    CHECK(gender_error(p2, "female") == 0);
    CHECK(gender_error(latest, "male") == 1);
    CHECK(gender_error(latest, "female") == 0);
    // a version the server does not hold: the code cannot be checked
    auto o = ValidateAgainst(validator, Declaring(missing, R"("gender":"male")"));
    INFO(Describe(o));
    CHECK_FALSE(o.HasErrors());
    CHECK(CountIssues(o, Severity::kWarning, "Patient.gender", "not-supported") >= 1);
  }
}

TEST_CASE("validator: a binding restated without its version is checked once", "[fhir][validator]") {
  // Patient.gender binds administrative-gender|4.0.1; the profile names the
  // same value set by its bare URL
  auto defs = eds::testing::R4Definitions();
  const std::string url = "http://example.org/fhir/StructureDefinition/restated-gender";
  auto profiles = eds::fhir::ConformanceStore::Load(
      *defs, {}, {VersionedSd(url, "", GenderBinding("http://hl7.org/fhir/ValueSet/administrative-gender"))});
  auto terminology = eds::fhir::Terminology::Load({eds::testing::DefinitionsDir()});
  eds::fhir::Validator validator(defs, terminology, profiles);
  auto o = ValidateAgainst(validator, Declaring(url, R"("gender":"bogus")"));
  INFO(Describe(o));
  CHECK(CountIssues(o, Severity::kError, "Patient.gender", "code-invalid") == 1);
}

TEST_CASE("terminology: an include with a system and version takes that CodeSystem version", "[fhir][validator]") {
  const std::string cs = "http://example.org/fhir/CodeSystem/versioned";
  auto code_system = [&](const std::string& version, const std::string& codes) {
    return R"({"resourceType":"CodeSystem","url":")" + cs + R"(","version":")" + version +
           R"(","status":"active","content":"complete","concept":[)" + codes + "]}";
  };
  auto value_set = [&](const std::string& url, const std::string& version) {
    return R"({"resourceType":"ValueSet","url":")" + url + R"(","status":"active","compose":{"include":[{"system":")" +
           cs + R"(")" + (version.empty() ? "" : R"(,"version":")" + version + R"(")") + "}]}}";
  };
  const std::string one = code_system("1.0.0", R"({"code":"a"})");
  const std::string two = code_system("2.0.0", R"({"code":"a"},{"code":"b"})");
  for (const auto& order : {std::vector<std::string>{one, two}, std::vector<std::string>{two, one}}) {
    auto stored = order;
    stored.push_back(value_set("http://example.org/vs/pinned", "1.0.0"));
    stored.push_back(value_set("http://example.org/vs/latest", ""));
    stored.push_back(value_set("http://example.org/vs/nowhere", "3.0.0"));
    auto t = eds::fhir::Terminology::Load({}, stored);
    CHECK(t->code_system_count() == 2);
    using M = eds::fhir::Terminology::Membership;
    CHECK(t->Check("http://example.org/vs/pinned", cs, "a") == M::kMember);
    CHECK(t->Check("http://example.org/vs/pinned", cs, "b") == M::kNotMember);
    CHECK(t->Check("http://example.org/vs/latest", cs, "b") == M::kMember);
    CHECK(t->Check("http://example.org/vs/nowhere", cs, "a") == M::kUnknown);
  }
}

TEST_CASE("terminology: core value sets named with the FHIR version resolve whatever their own version",
          "[fhir][validator]") {
  // the iso21090 extensions of the R4 package bind v3-NullFlavor|4.0.1, a
  // value set whose own version is 2018-08-12
  auto terminology = eds::fhir::Terminology::Load({eds::testing::DefinitionsDir()});
  using M = eds::fhir::Terminology::Membership;
  const std::string vs = "http://terminology.hl7.org/ValueSet/v3-NullFlavor";
  CHECK(terminology->Check(vs + "|4.0.1", "", "UNK") == M::kMember);
  CHECK(terminology->Check(vs + "|4.0.1", "", "bogus") == M::kNotMember);
  CHECK(terminology->Check(vs + "|2018-08-12", "", "UNK") == M::kMember);
  // another version of it, or the FHIR version on a value set outside the core, stays unknown
  CHECK(terminology->Check(vs + "|3.0.0", "", "UNK") == M::kUnknown);
  CHECK(terminology->Check("http://example.org/fhir/ValueSet/none|4.0.1", "", "UNK") == M::kUnknown);
}
