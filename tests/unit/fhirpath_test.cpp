// Unit tests of the FHIRPath engine: parser (precedence, errors with
// positions), navigation over choice types, primitive extensions, contained
// and Bundle resources, resolve() as search parameters use it, date and
// quantity comparisons, the result API, and the Definitions queries it uses.
#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include <string>
#include <thread>
#include <vector>

#include "fhir/definitions.hpp"
#include "fhir/fhirpath.hpp"
#include "fhir/json.hpp"
#include "test_support.hpp"

namespace eds::fhir::fhirpath {
namespace {

const Engine& TestEngine() {
  static const Engine engine(testing::R4Definitions());
  return engine;
}

Resource ParseResource(std::string_view json) {
  auto r = Resource::Parse(json);
  INFO(json);
  REQUIRE(r.ok());
  return std::move(*r);
}

Collection Eval(std::string_view expression, const Resource* resource = nullptr, const EvalOptions& options = {}) {
  auto e = Expression::Parse(expression);
  INFO(expression << (e.ok() ? "" : " -> parse error at " + std::to_string(e.error().position) + ": " +
                                        e.error().message));
  REQUIRE(e.ok());
  auto r = resource != nullptr ? TestEngine().Evaluate(*e, *resource, options) : TestEngine().Evaluate(*e, options);
  INFO((r.ok() ? "" : "evaluation error: " + r.error().message));
  REQUIRE(r.ok());
  return std::move(*r);
}

// The items as "text" strings, to compare whole results at once.
std::vector<std::string> Texts(const Collection& c) {
  std::vector<std::string> out;
  for (const auto& i : c) out.push_back(i.ToText());
  return out;
}

std::vector<std::string> TypeNames(const Collection& c) {
  std::vector<std::string> out;
  for (const auto& i : c) out.emplace_back(i.TypeName());
  return out;
}

using Strings = std::vector<std::string>;

// "true", "false" or "{}" for a Boolean expression.
std::string Truth(std::string_view expression, const Resource* resource = nullptr) {
  auto c = Eval(expression, resource);
  if (c.empty()) return "{}";
  INFO(expression);
  REQUIRE(c.size() == 1);
  REQUIRE(c[0].kind == ValueKind::kBoolean);
  return c[0].boolean ? "true" : "false";
}

Error EvalError(std::string_view expression, const Resource* resource = nullptr, const EvalOptions& options = {}) {
  auto e = Expression::Parse(expression);
  INFO(expression);
  REQUIRE(e.ok());
  auto r = resource != nullptr ? TestEngine().Evaluate(*e, *resource, options) : TestEngine().Evaluate(*e, options);
  REQUIRE_FALSE(r.ok());
  return r.error();
}

Error ParseError(std::string_view expression) {
  auto e = Expression::Parse(expression);
  INFO(expression);
  REQUIRE_FALSE(e.ok());
  return e.error();
}

constexpr std::string_view kObservation = R"({
  "resourceType": "Observation",
  "id": "o1",
  "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}], "text": "Body weight"},
  "subject": {"reference": "Patient/p1"},
  "performer": [{"reference": "Practitioner/dr1"}, {"reference": "#org"},
                {"reference": "http://example.org/fhir/Organization/o9/_history/3"},
                {"type": "RelatedPerson", "identifier": {"value": "x"}}],
  "contained": [{"resourceType": "Organization", "id": "org", "name": "Lab"}],
  "effectiveDateTime": "2019-03-01T10:30:00+01:00",
  "valueQuantity": {"value": 72.50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
  "component": [
    {"code": {"text": "a"}, "valueString": "x"},
    {"code": {"text": "b"}, "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
  ]
})";

constexpr std::string_view kPatient = R"({
  "resourceType": "Patient",
  "id": "p1",
  "active": true,
  "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", null, "James"],
            "_given": [null, {"extension": [{"url": "http://example.org/nick", "valueString": "Jim"}]}, {"id": "g3"}]}],
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean": false,
  "contact": [{"name": {"family": "du Marché"}, "telecom": [{"system": "phone", "value": "555"}]}],
  "managingOrganization": {"reference": "Organization/1"}
})";

// ---- parser -----------------------------------------------------------------------

TEST_CASE("FHIRPath parser: operator precedence", "[fhirpath]") {
  CHECK(Texts(Eval("1 + 2 * 3")) == Strings{"7"});
  CHECK(Texts(Eval("(1 + 2) * 3")) == Strings{"9"});
  CHECK(Texts(Eval("10 - 4 - 3")) == Strings{"3"});  // left associative
  CHECK(Texts(Eval("7 div 2 * 2")) == Strings{"6"});
  CHECK(Texts(Eval("'a' & 'b' + 'c'")) == Strings{"abc"});
  CHECK(Truth("1 | 2 = 1 | 2") == "true");  // | binds tighter than =
  CHECK(Truth("true or false and false") == "true");  // and before or
  CHECK(Truth("false implies false or true") == "true");  // implies is loosest
  CHECK(Truth("1 < 2 = true") == "true");  // comparison before equality
  CHECK(Truth("2 in 1 | 2 and true") == "true");  // | before in before and
  CHECK(Texts(Eval("(1 | 1 is Integer).count()")) == Strings{"2"});  // is before |
  CHECK(Texts(Eval("-(3).abs()")) == Strings{"-3"});  // '.' before unary minus
  CHECK(Texts(Eval("-2.5")) == Strings{"-2.5"});
  CHECK(Texts(Eval("2 // comment\n * 3 /* inline */ + 1")) == Strings{"7"});
  // 1 > (2 is Boolean): an Integer compared with a Boolean
  CHECK(EvalError("1 > 2 is Boolean").message.find("compare") != std::string::npos);
}

TEST_CASE("FHIRPath parser: literals", "[fhirpath]") {
  CHECK(TypeNames(Eval("@2019-01-01 | @2019-01-01T10:00 | @T10:00 | @2019T")) ==
        Strings{"Date", "DateTime", "Time", "DateTime"});
  CHECK(Texts(Eval("@2019-01-01T10:00:00.5+02:00")) == Strings{"2019-01-01T10:00:00.5+02:00"});
  CHECK(Texts(Eval("10 'mg' | 4 days | 1.50 '[lb_av]'")) == Strings{"10 'mg'", "4 days", "1.50 '[lb_av]'"});
  CHECK(Texts(Eval("'a\\'b\\u0041\\n'")) == Strings{"a'bA\n"});
  CHECK(Texts(Eval("1.0 | 0.10")) == Strings{"1.0", "0.10"});  // decimals keep their precision
  CHECK(Texts(Eval("%`vs-administrative-gender` | %`ext-patient-birthTime` | %ucum")) ==
        Strings{"http://hl7.org/fhir/ValueSet/administrative-gender",
                "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "http://unitsofmeasure.org"});
  auto p = ParseResource(kPatient);
  CHECK(Texts(Eval("`Patient`.`name`.family", &p)) == Strings{"Chalmers"});
}

TEST_CASE("FHIRPath parser: errors are values with a position", "[fhirpath]") {
  struct Case {
    std::string_view text;
    std::size_t position;
    std::string_view words;
  };
  for (const auto& c : std::vector<Case>{
           {"2 + ", 4, "end of expression"},
           {"name.where(given = 'x'", 22, "expected ')'"},
           {"'abc", 0, "unterminated string"},
           {"1 + /* open", 4, "unterminated comment"},
           {"name.frobnicate()", 5, "unknown function 'frobnicate'"},
           {"name.substring()", 5, "takes 1 to 2 argument"},
           {"@2019-13-01", 0, "invalid date"},
           {"1 +* 2", 3, "unexpected '*'"},
           {"name given", 5, "unexpected 'given'"},
           {"@T14:34:28Z", 10, "unexpected 'Z'"},  // times have no zone
           {"$that", 0, "$that"},
           {"'x'.matches('(')", 12, "invalid regular expression"},
           {"name.ofType(1)", 12, "type name"},
       }) {
    auto e = ParseError(c.text);
    INFO(c.text << " -> at " << e.position << ": " << e.message);
    CHECK(e.position == c.position);
    CHECK_THAT(e.message, Catch::Contains(std::string(c.words)));
  }
}

TEST_CASE("FHIRPath: an expression is parsed once and evaluated from several threads", "[fhirpath]") {
  auto e = Expression::Parse("Observation.component.where(value.ofType(Quantity) > 100 'mm[Hg]').code.text");
  REQUIRE(e.ok());
  auto obs = ParseResource(kObservation);
  const Engine& engine = TestEngine();
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (std::size_t t = 0; t < ok.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto r = engine.Evaluate(*e, obs);
        if (r.ok() && r->size() == 1 && (*r)[0].text == "b") ++ok[t];
      }
    });
  for (auto& t : threads) t.join();
  CHECK(ok == std::vector<int>(4, 200));
}

// ---- navigation -------------------------------------------------------------------

TEST_CASE("FHIRPath navigation: choice types", "[fhirpath]") {
  auto obs = ParseResource(kObservation);
  auto value = Eval("Observation.value", &obs);
  REQUIRE(value.size() == 1);
  CHECK(value[0].TypeName() == "Quantity");
  CHECK(Texts(Eval("Observation.value.unit", &obs)) == Strings{"kg"});
  CHECK(Texts(Eval("Observation.value.ofType(Quantity).value", &obs)) == Strings{"72.50"});
  CHECK(Eval("Observation.value.ofType(CodeableConcept)", &obs).empty());
  CHECK(Truth("Observation.value is Quantity", &obs) == "true");
  CHECK(Truth("Observation.value.is(Period)", &obs) == "false");
  CHECK(TypeNames(Eval("Observation.effective", &obs)) == Strings{"dateTime"});
  CHECK(Texts(Eval("(Observation.effective as dateTime)", &obs)) == Strings{"2019-03-01T10:30:00+01:00"});
  CHECK(TypeNames(Eval("Observation.component.value", &obs)) == Strings{"string", "Quantity"});
  CHECK(Texts(Eval("(Observation.component.value as Quantity).code", &obs)) == Strings{"mm[Hg]"});
  // the JSON name of a variant is not a FHIRPath element
  CHECK_THAT(EvalError("Observation.valueQuantity", &obs).message, Catch::Contains("value.ofType(Quantity)"));
}

TEST_CASE("FHIRPath navigation: primitives with extensions and ids", "[fhirpath]") {
  auto p = ParseResource(kPatient);
  // a null in `given` keeps the place of an element that has only extensions
  auto given = Eval("Patient.name.given", &p);
  REQUIRE(given.size() == 3);
  CHECK(Texts(given) == Strings{"Peter", "", "James"});
  CHECK(TypeNames(given) == Strings{"string", "string", "string"});
  CHECK_FALSE(given[1].has_value);
  CHECK(Texts(Eval("Patient.name.given.select($this.hasValue())", &p)) == Strings{"true", "false", "true"});
  CHECK(Texts(Eval("Patient.name.given.extension('http://example.org/nick').value", &p)) == Strings{"Jim"});
  CHECK(Texts(Eval("Patient.name.given.id", &p)) == Strings{"g3"});
  CHECK(Texts(Eval("Patient.birthDate.extension(%`ext-patient-birthTime`).value", &p)) ==
        Strings{"1974-12-25T14:35:45-05:00"});
  CHECK(TypeNames(Eval("Patient.birthDate.extension.value", &p)) == Strings{"dateTime"});
  CHECK(Truth("Patient.birthDate.hasValue()", &p) == "true");
  CHECK(Texts(Eval("Patient.birthDate.getValue()", &p)) == Strings{"1974-12-25"});
  CHECK(TypeNames(Eval("Patient.birthDate.getValue()", &p)) == Strings{"Date"});
  CHECK(Texts(Eval("Patient.deceased", &p)) == Strings{"false"});
}

TEST_CASE("FHIRPath navigation: resource roots, backbone elements, content references", "[fhirpath]") {
  auto p = ParseResource(kPatient);
  CHECK(TypeNames(Eval("Patient", &p)) == Strings{"Patient"});
  CHECK(Texts(Eval("Resource.id | DomainResource.id", &p)) == Strings{"p1"});
  CHECK(TypeNames(Eval("Resource.id", &p)) == Strings{"id"});
  CHECK(Eval("Observation.status", &p).empty());  // another type's name selects nothing
  CHECK(TypeNames(Eval("Patient.contact", &p)) == Strings{"BackboneElement"});
  CHECK(TypeNames(Eval("Patient.contact.name | Patient.contact.telecom", &p)) == Strings{"HumanName", "ContactPoint"});
  CHECK(Texts(Eval("Patient.contact.name.family", &p)) == Strings{"du Marché"});
  CHECK(Texts(Eval("Patient.children().ofType(HumanName).family", &p)) == Strings{"Chalmers"});
  CHECK(Texts(Eval("Patient.descendants().ofType(ContactPoint).value", &p)) == Strings{"555"});

  auto q = ParseResource(R"({"resourceType": "Questionnaire", "status": "draft",
    "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string",
              "item": [{"linkId": "1.1.1", "type": "string"}]}]}]})");
  CHECK(Texts(Eval("Questionnaire.item.item.item.linkId", &q)) == Strings{"1.1.1"});
  CHECK(Texts(Eval("Questionnaire.repeat(item).linkId", &q)) == Strings{"1", "1.1", "1.1.1"});
  CHECK(TypeNames(Eval("Questionnaire.item.item.type", &q)) == Strings{"code"});
}

TEST_CASE("FHIRPath navigation: contained resources and Bundle entries", "[fhirpath]") {
  auto obs = ParseResource(kObservation);
  CHECK(TypeNames(Eval("Observation.contained", &obs)) == Strings{"Organization"});
  CHECK(Texts(Eval("Observation.contained.ofType(Organization).name", &obs)) == Strings{"Lab"});
  CHECK(Texts(Eval("Observation.contained.where($this is Organization).id", &obs)) == Strings{"org"});

  auto bundle = ParseResource(R"({"resourceType": "Bundle", "type": "collection", "entry": [
    {"fullUrl": "http://example.org/fhir/Patient/1",
     "resource": {"resourceType": "Patient", "id": "1", "name": [{"family": "One"}]}},
    {"fullUrl": "urn:uuid:7f1c", "resource": {"resourceType": "Patient", "name": [{"family": "Uuid"}]}},
    {"fullUrl": "http://example.org/fhir/Observation/2",
     "resource": {"resourceType": "Observation", "id": "2", "status": "final", "code": {"text": "x"},
                  "subject": {"reference": "Patient/1"}, "performer": [{"reference": "urn:uuid:7f1c"}]}}]})");
  CHECK(TypeNames(Eval("Bundle.entry.resource", &bundle)) == Strings{"Patient", "Patient", "Observation"});
  CHECK(Texts(Eval("Bundle.entry.resource.ofType(Patient).name.family", &bundle)) == Strings{"One", "Uuid"});
  CHECK(Texts(Eval("Bundle.entry.resource.ofType(Observation).subject.resolve().name.family", &bundle)) ==
        Strings{"One"});
  CHECK(Texts(Eval("Bundle.entry.resource.ofType(Observation).performer.resolve().name.family", &bundle)) ==
        Strings{"Uuid"});
}

TEST_CASE("FHIRPath resolve() in search parameter expressions", "[fhirpath]") {
  auto obs = ParseResource(kObservation);
  auto subject = Eval("Observation.subject.where(resolve() is Patient)", &obs);
  REQUIRE(subject.size() == 1);
  CHECK(subject[0].TypeName() == "Reference");
  REQUIRE(subject[0].node != nullptr);
  CHECK(subject[0].node->IsObject());
  CHECK(Eval("Observation.subject.where(resolve() is Group)", &obs).empty());

  // a reference target outside the document is known by its type only
  auto target = Eval("Observation.subject.resolve()", &obs);
  REQUIRE(target.size() == 1);
  CHECK(target[0].TypeName() == "Patient");
  CHECK(target[0].IsReferenceTarget());
  CHECK(Eval("Observation.subject.resolve().name", &obs).empty());

  // contained (#id), absolute with history, and Reference.type without a reference
  CHECK(TypeNames(Eval("Observation.performer.resolve()", &obs)) ==
        Strings{"Practitioner", "Organization", "Organization", "RelatedPerson"});
  CHECK(Texts(Eval("Observation.performer.resolve().ofType(Organization).name", &obs)) == Strings{"Lab"});
  CHECK(Eval("Observation.performer.where(resolve() is Organization)", &obs).size() == 2);
  CHECK(Eval("Observation.performer.where(resolve() is Resource)", &obs).size() == 4);
  // references to no known resource type resolve to nothing
  CHECK(Eval("'urn:oid:1.2.3'.resolve() | 'Foo/1'.resolve()").empty());
}

// ---- values --------------------------------------------------------------------------

TEST_CASE("FHIRPath dates: precision, time zones, arithmetic", "[fhirpath]") {
  CHECK(Truth("@2019-01-01 < @2019-01-02") == "true");
  CHECK(Truth("@2019-01 = @2019-01-01") == "{}");           // different precision: unknown
  CHECK(Truth("@2019-01 < @2019-02-15") == "true");          // decided before the precision ends
  CHECK(Truth("@2019-01-01 ~ @2019-01-01T00:00:00") == "false");
  CHECK(Truth("@2019-01-01T10:00:00Z = @2019-01-01T12:00:00+02:00") == "true");
  CHECK(Truth("@2019-01-01T10:00:00Z = @2019-01-01T10:00:00") == "{}");  // one time zone missing
  CHECK(Truth("@2019-01-01T10:00:00 = @2019-01-01T10:00:00.000") == "true");
  CHECK(Truth("@T10:00 < @T10:00:01") == "{}");
  CHECK(Texts(Eval("@2019-01-31 + 1 month")) == Strings{"2019-02-28"});
  CHECK(Texts(Eval("@2020-02-29 + 1 year")) == Strings{"2021-02-28"});
  CHECK(Texts(Eval("@2019-12-31T23:30:00Z + 45 minutes")) == Strings{"2020-01-01T00:15:00Z"});
  CHECK(Texts(Eval("@2019-01-10 - 2 'wk'")) == Strings{"2018-12-27"});
  CHECK(EvalError("@2019-01-10 + 1 'mo'").message.find("calendar") != std::string::npos);

  auto p = ParseResource(kPatient);
  CHECK(Truth("Patient.birthDate < @1975", &p) == "true");
  CHECK(Truth("Patient.birthDate = @1974-12-25", &p) == "true");
  CHECK(Truth("Patient.birthDate.extension.value > @1974-12-25T19:00:00Z", &p) == "true");
}

TEST_CASE("FHIRPath quantities and decimals", "[fhirpath]") {
  CHECK(Truth("4.0000 'g' = 4000.0 'mg'") == "true");
  CHECK(Truth("1 'kg' > 900 'g'") == "true");
  CHECK(Truth("10 'mg' < 1 'g'") == "true");
  CHECK(Truth("1 'cm' = 1 's'") == "false");
  CHECK(Truth("1 'cm' < 1 's'") == "{}");          // not comparable
  CHECK(Truth("7 days = 1 'wk'") == "true");      // calendar weeks and days are exact
  CHECK(Truth("1 year = 1 'a'") == "{}");          // calendar years are not UCUM years
  CHECK(Truth("1 year ~ 1 'a'") == "true");
  CHECK(Truth("2 '[in_i]' < 6 'cm'") == "true");
  CHECK(Texts(Eval("2 'mg' + 3 'mg'")) == Strings{"5 'mg'"});
  CHECK(Texts(Eval("1 'g' + 500 'mg'")) == Strings{"1.5 'g'"});
  CHECK(Truth("0.1 + 0.2 = 0.3") == "true");      // decimal, not binary floating point
  CHECK(Texts(Eval("1.8 - 1.2 | 1.2 * 1.8 | 1.0 + 2")) == Strings{"0.6", "2.16", "3.0"});
  CHECK(Truth("1.10 = 1.1") == "true");
  CHECK(Truth("3.14159 ~ 3.14") == "true");       // equivalent at the lesser precision

  auto obs = ParseResource(kObservation);
  CHECK(Truth("Observation.value > 70 'kg'", &obs) == "true");
  CHECK(Truth("Observation.value = 72500 'g'", &obs) == "true");
  CHECK(Truth("Observation.component.value.ofType(Quantity) ~ 120 'mm[Hg]'", &obs) == "true");
}

TEST_CASE("FHIRPath semantics: empty collections, logic, singletons", "[fhirpath]") {
  CHECK(Truth("{} = 1") == "{}");
  CHECK(Truth("{} ~ {}") == "true");
  CHECK(Truth("true and {}") == "{}");
  CHECK(Truth("false and {}") == "false");
  CHECK(Truth("{} or true") == "true");
  CHECK(Truth("{} implies false") == "{}");
  CHECK(Texts(Eval("{} & 'x'")) == Strings{"x"});
  CHECK(Texts(Eval("(1 | 2 | 2 | 3).count() | (1 | 2).combine(2).count()")) == Strings{"3"});
  CHECK_THAT(EvalError("(1 | 2) + 1").message, Catch::Contains("single item"));
  CHECK_THAT(EvalError("(1 | 2).not()").message, Catch::Contains("single Boolean"));
  CHECK_THAT(EvalError("'a' < 1").message, Catch::Contains("cannot compare"));

  auto p = ParseResource(kPatient);
  CHECK(Eval("Patient.name.given1", &p).empty());
  EvalOptions strict;
  strict.strict = true;
  auto e = EvalError("Patient.name.given1", &p, strict);
  CHECK(e.position == 13);
  CHECK_THAT(e.message, Catch::Contains("not an element of HumanName"));
  CHECK_THAT(EvalError("Encounter.status", &p, strict).message, Catch::Contains("not the type of the context"));
}

TEST_CASE("FHIRPath functions over strings and collections", "[fhirpath]") {
  CHECK(Texts(Eval("'Chalmers'.substring(2, 3) | 'abc'.upper() | 'a,b'.replace(',', ';')")) ==
        Strings{"alm", "ABC", "a;b"});
  CHECK(Truth("'Peter'.matches('^P.t')") == "true");
  CHECK(Texts(Eval("'2019-01-01'.replaceMatches('(\\\\d+)-(\\\\d+)-(\\\\d+)', '$3/$2/$1')")) ==
        Strings{"01/01/2019"});
  CHECK(Texts(Eval("'Müller'.length() | 'Müller'.indexOf('l')")) == Strings{"6", "2"});
  CHECK(Texts(Eval("(3 | 1 | 2).sort() | ('b' | 'a').sort(-$this)")) == Strings{"1", "2", "3", "b", "a"});
  CHECK(Texts(Eval("(1 | 2 | 3).aggregate($this + $total, 0)")) == Strings{"6"});
  CHECK(Texts(Eval("(1 | 2 | 3).where($this > 1).select($this * 10)")) == Strings{"20", "30"});
  CHECK(Texts(Eval("'x'.iif($this = 'x', 'yes', 'no')")) == Strings{"yes"});
  CHECK(Texts(Eval("'a b'.split(' ').join('+') | 'dGVzdA=='.decode('base64')")) == Strings{"a+b", "test"});

  EvalOptions options;
  options.variables = {{"system", "http://loinc.org"}};
  std::vector<std::string> traced;
  options.trace = [&](std::string_view name, const std::vector<Item>& items) {
    traced.push_back(std::string(name) + ":" + std::to_string(items.size()));
  };
  auto obs = ParseResource(kObservation);
  CHECK(Texts(Eval("Observation.code.coding.where(system = %system).trace('codes').code", &obs, options)) ==
        Strings{"29463-7"});
  CHECK(traced == Strings{"codes:1"});
}

// ---- the result API for search indexing --------------------------------------------------

TEST_CASE("FHIRPath results: typed items pointing into the resource", "[fhirpath]") {
  auto p = ParseResource(kPatient);
  auto names = Eval("Patient.name", &p);
  REQUIRE(names.size() == 1);
  CHECK(names[0].TypeName() == "HumanName");
  CHECK_FALSE(names[0].IsSystem());
  REQUIRE(names[0].node != nullptr);
  REQUIRE(names[0].node->IsObject());
  CHECK(testing::StrOf(*names[0].node, "family") == "Chalmers");

  auto birth = Eval("Patient.birthDate", &p);
  REQUIRE(birth.size() == 1);
  CHECK(birth[0].TypeName() == "date");
  CHECK(birth[0].kind == ValueKind::kDate);
  CHECK(birth[0].text == "1974-12-25");
  REQUIRE(birth[0].extension != nullptr);  // the _birthDate object
  CHECK(birth[0].extension->IsObject());

  auto computed = Eval("Patient.birthDate.toString() | 1 'mg'", &p);
  REQUIRE(computed.size() == 2);
  CHECK(computed[0].IsSystem());
  CHECK(computed[0].TypeName() == "String");
  CHECK(computed[0].node == nullptr);
  CHECK(computed[1].TypeName() == "Quantity");
  CHECK(computed[1].text == "1");
  CHECK(computed[1].unit == "mg");

  // the items stay valid after the expression is gone
  Collection kept;
  {
    auto e = Expression::Parse("'kept' | Patient.name.family.upper()");
    REQUIRE(e.ok());
    kept = std::move(*TestEngine().Evaluate(*e, p));
  }
  CHECK(Texts(kept) == Strings{"kept", "CHALMERS"});
}

// ---- Definitions queries ----------------------------------------------------------------

TEST_CASE("Definitions: element and type queries", "[fhirpath]") {
  auto defs = testing::R4Definitions();
  const ElementInfo* value = defs->FindElement("Observation", "value");
  REQUIRE(value != nullptr);
  CHECK(value->choice);
  CHECK(value->path == "Observation.value");
  CHECK_FALSE(value->many);
  CHECK(value->types.size() == 11);
  REQUIRE(value->ChoiceType("valueQuantity") != nullptr);
  CHECK(value->ChoiceType("valueQuantity")->name == "Quantity");
  CHECK(value->ChoiceType("valueDateTime")->name == "dateTime");
  CHECK(value->ChoiceType("valueFoo") == nullptr);
  CHECK(defs->FindElement("Observation", "valueQuantity") == value);

  const ElementInfo* family = defs->FindElement("Patient", "contact.name.family");
  REQUIRE(family != nullptr);
  CHECK(family->path == "HumanName.family");
  const ElementInfo* given = defs->FindElement("Patient", "name.given");
  REQUIRE(given != nullptr);
  CHECK(given->many);
  CHECK(given->max == "*");
  CHECK(given->types.front()->name == "string");
  const ElementInfo* status = defs->FindElement("Observation", "status");
  REQUIRE(status != nullptr);
  CHECK(status->min == 1);
  CHECK(defs->FindElement("Questionnaire", "item.item.item.linkId") != nullptr);
  CHECK(defs->FindElement("Patient", "nonsense") == nullptr);
  CHECK(defs->FindElement("Nonsense", "id") == nullptr);
  CHECK(defs->FindElement("Patient", "id")->types.front()->name == "id");
  CHECK(defs->FindElement("Extension", "url")->types.front()->name == "uri");

  const TypeInfo* code = defs->FindType("code");
  const TypeInfo* age = defs->FindType("Age");
  const TypeInfo* patient = defs->FindType("Patient");
  REQUIRE(code != nullptr);
  REQUIRE(age != nullptr);
  REQUIRE(patient != nullptr);
  CHECK(code->kind == TypeKind::kPrimitive);
  CHECK(code->IsA(*defs->FindType("string")));
  CHECK_FALSE(code->IsA(*defs->FindType("uri")));
  CHECK(age->IsA(*defs->FindType("Quantity")));
  CHECK(patient->kind == TypeKind::kResource);
  CHECK(patient->base->name == "DomainResource");
  CHECK(patient->base->base->name == "Resource");
  CHECK(defs->FindType("Resource")->abstract);
  CHECK(defs->IsPrimitiveType("dateTime"));
  CHECK_FALSE(defs->IsPrimitiveType("HumanName"));
  CHECK(patient->Element("name") != nullptr);
  CHECK(FindElementIn(*defs->FindType("string")->elements, "value") == nullptr);  // not a FHIRPath child
}

}  // namespace
}  // namespace eds::fhir::fhirpath
