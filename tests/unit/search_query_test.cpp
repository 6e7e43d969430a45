// Unit tests of the SearchParameter registry and search request parsing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>

#include "fhir/definitions.hpp"
#include "fhir/search_parameters.hpp"
#include "fhir/search_query.hpp"
#include "test_support.hpp"

namespace eds::fhir {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

const SearchParameterRegistry& Registry() {
  static auto reg = SearchParameterRegistry::Load(testing::DefinitionsDir(), testing::R4Definitions()->resource_types());
  return *reg;
}

SearchQuery Parse(const std::string& type, const Params& params, bool strict = false) {
  SearchOptions opt;
  opt.strict = strict;
  auto r = ParseSearch(type, params, Registry(), opt);
  INFO((r.ok() ? std::string() : r.error().outcome.ToJson()));
  REQUIRE(r.ok());
  return std::move(*r);
}

std::string ParseError(const std::string& type, const Params& params, bool strict = false) {
  SearchOptions opt;
  opt.strict = strict;
  auto r = ParseSearch(type, params, Registry(), opt);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::kInvalid);
  return r.error().outcome.issues()[0].diagnostics;
}

TEST_CASE("the registry holds the R4 search parameters by type and code", "[search]") {
  const auto& reg = Registry();
  CHECK(reg.size() == 1376);  // the package's 1400 less its 24 experimental ones (examples, extensions)
  const auto* family = reg.Find("Patient", "family");
  REQUIRE(family != nullptr);
  CHECK(family->type == SearchParamType::kString);
  CHECK(reg.Find("Practitioner", "family") == family);
  CHECK(reg.Find("Observation", "family") == nullptr);
  // Resource-level parameters apply to every type
  for (const char* code : {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"}) {
    INFO(code);
    CHECK(reg.Find("Observation", code) != nullptr);
    CHECK(reg.Find("Bundle", code) != nullptr);
  }
  const auto* patient = reg.Find("Observation", "patient");
  REQUIRE(patient != nullptr);
  CHECK(patient->type == SearchParamType::kReference);
  CHECK(reg.ExpressionFor(*patient, "Observation") == "Observation.subject.where(resolve() is Patient)");
  CHECK(reg.ExpressionFor(*patient, "AllergyIntolerance") == "AllergyIntolerance.patient");
  CHECK(reg.ExpressionFor(*family, "Practitioner") == "Practitioner.name.family");
  const auto* composite = reg.Find("Observation", "code-value-quantity");
  REQUIRE(composite != nullptr);
  REQUIRE(composite->components.size() == 2);
  CHECK(reg.FindByUrl(composite->components[0].definition) != nullptr);
  CHECK(reg.ForType("Patient").size() > 20);
}

TEST_CASE("top-level unions split outside parentheses and strings", "[search]") {
  CHECK(SplitTopLevelUnion("A.b | C.d") == std::vector<std::string>{"A.b", "C.d"});
  CHECK(SplitTopLevelUnion("(A.b | A.c).where(x = 'a|b') | D") ==
        std::vector<std::string>{"(A.b | A.c).where(x = 'a|b')", "D"});
}

TEST_CASE("parameters with modifiers, OR lists and prefixes", "[search]") {
  auto q = Parse("Observation", {{"code", "http://loinc.org|1234-5,http://loinc.org|789"},
                                 {"date", "ge2023-01-01"},
                                 {"date", "lt2024"},
                                 {"value-quantity", "ap5.4|http://unitsofmeasure.org|mg"},
                                 {"subject:Patient", "p1"},
                                 {"status:not", "cancelled"}});
  REQUIRE(q.criteria.size() == 6);
  const auto& code = q.criteria[0];
  REQUIRE(code.values.size() == 2);
  CHECK(code.values[0].parts == std::vector<std::string>{"http://loinc.org", "1234-5"});
  CHECK(code.values[0].has_separator);
  CHECK(q.criteria[1].values[0].prefix == Prefix::kGe);
  CHECK(q.criteria[1].values[0].text == "2023-01-01");
  CHECK(q.criteria[2].values[0].prefix == Prefix::kLt);
  const auto& qty = q.criteria[3].values[0];
  CHECK(qty.prefix == Prefix::kAp);
  CHECK(qty.parts == std::vector<std::string>{"5.4", "http://unitsofmeasure.org", "mg"});
  CHECK(q.criteria[4].modifier == "Patient");
  CHECK(q.criteria[5].modifier == "not");
  CHECK(q.count == 50);
}

TEST_CASE("escapes in values", "[search]") {
  auto q = Parse("Patient", {{"family", "a\\,b,c"}, {"identifier", "sys|with\\|bar"}});
  REQUIRE(q.criteria[0].values.size() == 2);
  CHECK(q.criteria[0].values[0].text == "a,b");
  CHECK(q.criteria[1].values[0].parts == std::vector<std::string>{"sys", "with|bar"});
  CHECK(Unescape("a\\$b\\\\c") == "a$b\\c");
}

TEST_CASE("chains and reverse chains", "[search]") {
  auto q = Parse("Observation", {{"patient.identifier", "http://hl7.it/sid/codiceFiscale|RSSMRA80A01H501U"},
                                 {"subject:Patient.name", "rossi"}});
  REQUIRE(q.criteria.size() == 2);
  const auto& c = q.criteria[0];
  REQUIRE(c.chain.size() == 1);
  CHECK(c.chain[0].param->code == "patient");
  CHECK(c.chain[0].target_type == "Patient");
  CHECK(c.resource_type == "Patient");
  CHECK(c.param->code == "identifier");
  CHECK(q.criteria[1].chain[0].target_type == "Patient");

  auto h = Parse("Patient", {{"_has:Observation:patient:code", "1234-5"}});
  REQUIRE(h.criteria.size() == 1);
  REQUIRE(h.criteria[0].reverse.size() == 1);
  CHECK(h.criteria[0].reverse[0].resource_type == "Observation");
  CHECK(h.criteria[0].resource_type == "Observation");
  CHECK(h.criteria[0].param->code == "code");

  // subject may be a Patient or a Location, each with a string `name` (Group has none): the chain follows both
  auto several = Parse("Observation", {{"subject.name", "x"}});
  REQUIRE(several.criteria[0].chain.size() == 1);
  CHECK(several.criteria[0].chain[0].target_types == std::vector<std::string>{"Patient", "Location"});
  CHECK_THAT(ParseError("Observation", {{"status.name", "x"}}), Catch::Contains("cannot be chained"));
  CHECK_THAT(ParseError("Patient", {{"_has:Observation:code:status", "final"}}), Catch::Contains("not a reference"));
}

TEST_CASE("result controls", "[search]") {
  auto q = Parse("DiagnosticReport", {{"_count", "5000"},
                                      {"_sort", "-date,_id"},
                                      {"_include", "DiagnosticReport:subject"},
                                      {"_revinclude", "Composition:entry"},
                                      {"_revinclude:iterate", "DocumentReference:related"},
                                      {"_summary", "count"},
                                      {"_total", "accurate"},
                                      {"_elements", "status,code"},
                                      {"_offset", "20"}});
  CHECK(q.count == 1000);  // clamped to the maximum
  REQUIRE(q.sort.size() == 2);
  CHECK(q.sort[0].descending);
  CHECK(q.sort[0].param->code == "date");
  CHECK(q.sort[1].code == "_id");
  REQUIRE(q.includes.size() == 1);
  CHECK(q.includes[0].param->code == "subject");
  REQUIRE(q.revincludes.size() == 2);
  CHECK_FALSE(q.revincludes[0].iterate);
  CHECK(q.revincludes[1].iterate);
  CHECK(q.revincludes[1].source_type == "DocumentReference");
  CHECK(q.summary == SummaryMode::kCount);
  CHECK(q.total == TotalMode::kAccurate);
  CHECK(q.elements == std::vector<std::string>{"status", "code"});
  CHECK(q.offset == 20);
}

TEST_CASE("unknown parameters are reported, or refused in strict mode", "[search]") {
  auto q = Parse("Patient", {{"frobnicate", "1"}, {"family", "rossi"}});
  CHECK(q.criteria.size() == 1);
  REQUIRE(q.ignored.issues().size() == 1);
  CHECK(q.ignored.issues()[0].expression == "frobnicate");
  CHECK(q.ignored.issues()[0].severity == Severity::kWarning);
  CHECK_THAT(ParseError("Patient", {{"frobnicate", "1"}}, true), Catch::Contains("frobnicate"));
}

TEST_CASE("malformed values and unsupported modifiers are errors", "[search]") {
  CHECK_THAT(ParseError("Observation", {{"date", "ge2023-13-01"}}), Catch::Contains("date"));
  CHECK_THAT(ParseError("Observation", {{"value-quantity", "lots"}}), Catch::Contains("value-quantity"));
  CHECK_THAT(ParseError("Patient", {{"family:below", "x"}}), Catch::Contains("not supported"));
  CHECK_THAT(ParseError("Patient", {{"identifier:of-type", "sys|MR"}}), Catch::Contains("system|code|value"));
  CHECK_THAT(ParseError("Observation", {{"subject:identifier", "a|b|c"}}), Catch::Contains("[system|]value"));
  CHECK_THAT(ParseError("Observation", {{"code-value-quantity", "http://loinc.org|1234-5$big"}}),
             Catch::Contains("code-value-quantity"));
  CHECK_THAT(ParseError("Patient", {{"gender:missing", "maybe"}}), Catch::Contains("true or false"));
  CHECK_THAT(ParseError("Patient", {{"_count", "-1"}}), Catch::Contains("_count"));
  CHECK_THAT(ParseError("Patient", {{"_sort", "nope"}}), Catch::Contains("nope"));
  CHECK_THAT(ParseError("Patient", {{"_summary", "maybe"}}), Catch::Contains("_summary"));
  CHECK_THAT(ParseError("Observation", {{"code-value-quantity", "1234-5"}}), Catch::Contains("'$'"));
  CHECK_THAT(ParseError("Patient", {{"_include", "Patient"}}), Catch::Contains("_include"));
  CHECK_THAT(ParseError("Patient", {{"family", ""}}), Catch::Contains("empty"));
}

TEST_CASE(":identifier, :of-type and composite values are parsed per component", "[search]") {
  auto q = Parse("Observation", {{"subject:identifier", "urn:oid:1.2|42"},
                                 {"component-code-value-quantity", "http://loinc.org|8480-6$lt60,http://loinc.org|8462-4$gt90"}});
  REQUIRE(q.criteria.size() == 2);
  CHECK(q.criteria[0].modifier == "identifier");
  CHECK(q.criteria[0].values[0].parts == std::vector<std::string>{"urn:oid:1.2", "42"});
  const auto& c = q.criteria[1];
  REQUIRE(c.components.size() == 2);
  CHECK(c.components[0]->type == SearchParamType::kToken);
  CHECK(c.components[1]->type == SearchParamType::kQuantity);
  REQUIRE(c.values.size() == 2);
  CHECK(c.values[0].components[0].parts == std::vector<std::string>{"http://loinc.org", "8480-6"});
  CHECK(c.values[0].components[1].prefix == Prefix::kLt);
  CHECK(c.values[0].components[1].text == "60");
  CHECK(c.values[1].components[1].prefix == Prefix::kGt);
  auto t = Parse("Patient", {{"identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|MR|123"}});
  CHECK(t.criteria[0].values[0].parts.size() == 3);
}

TEST_CASE("searching several types uses the parameters they share", "[search]") {
  auto q = Parse("", {{"_type", "Patient,Practitioner"}, {"name", "rossi"}, {"_id", "a"}});
  CHECK(q.types == std::vector<std::string>{"Patient", "Practitioner"});
  CHECK(q.criteria.size() == 2);
  CHECK(q.ignored.issues().empty());
  // birthdate is not a parameter of Observation: reported, not applied
  auto mixed = Parse("", {{"_type", "Patient,Observation"}, {"birthdate", "2000"}});
  CHECK(mixed.criteria.empty());
  CHECK(mixed.ignored.issues().size() == 1);
  // without _type only the parameters of every resource apply
  auto all = Parse("", {{"_lastUpdated", "ge2020"}, {"name", "x"}});
  CHECK(all.criteria.size() == 1);
  CHECK_THAT(ParseError("", {{"_type", "Nope"}}), Catch::Contains("Nope"));
}

TEST_CASE("the registry knows the compartments of the package", "[search]") {
  const auto& reg = Registry();
  CHECK(reg.IsCompartment("Patient"));
  CHECK_FALSE(reg.IsCompartment("Observation"));
  const auto& obs = reg.CompartmentParams("Patient", "Observation");
  CHECK(std::find(obs.begin(), obs.end(), "subject") != obs.end());
  CHECK(reg.CompartmentParams("Patient", "CodeSystem").empty());
  auto types = reg.CompartmentTypes("Patient");
  CHECK(std::find(types.begin(), types.end(), "Encounter") != types.end());
}

TEST_CASE("custom SearchParameters join a registry derived from the package's", "[search]") {
  const auto& reg = Registry();
  SearchParamDef def;
  std::string error;
  REQUIRE(ParseSearchParameterResource(
      R"({"resourceType":"SearchParameter","url":"http://eds.test/sp/birth-place","code":"birth-place",
          "status":"active","type":"string","base":["Patient"],
          "expression":"Patient.extension('http://hl7.org/fhir/StructureDefinition/patient-birthPlace').value"})",
      def, error));
  def.generation = 3;
  auto custom = reg.WithCustom({def});
  REQUIRE(custom->Find("Patient", "birth-place") != nullptr);
  CHECK(custom->Find("Patient", "birth-place")->generation == 3);
  CHECK(reg.Find("Patient", "birth-place") == nullptr);
  CHECK(custom->Find("Patient", "family") == reg.Find("Patient", "family"));
  CHECK(custom->size() == reg.size() + 1);
  CHECK_FALSE(ParseSearchParameterResource(R"({"resourceType":"SearchParameter","code":"x","type":"string"})", def,
                                           error));
  CHECK_THAT(error, Catch::Contains("base"));
}

TEST_CASE("query strings and conditional criteria", "[search]") {
  auto q = ParseQueryString("Patient?identifier=http://x|a%20b&name=Ros%C3%AC&flag");
  REQUIRE(q.ok());
  CHECK(*q == Params{{"identifier", "http://x|a b"}, {"name", "Ros\xC3\xAC"}, {"flag", ""}});
  CHECK_FALSE(ParseQueryString("a=%zz").ok());
  CHECK(ParseQueryString("")->empty());
  // one canonical text whatever the order, without _format/_pretty
  CHECK(CanonicalCriteria({{"name", "b"}, {"_format", "json"}, {"identifier", "a|1"}}) == "identifier=a|1&name=b");
  CHECK(CanonicalCriteria({{"identifier", "a|1"}, {"name", "b"}}) == "identifier=a|1&name=b");

  auto all = [](std::string_view, const SearchParamDef&) { return true; };
  auto ok = ParseConditionalCriteria("Patient", {{"identifier", "a|1"}, {"_format", "json"}}, Registry(), all);
  REQUIRE(ok.ok());
  CHECK(ok->criteria.size() == 1);
  CHECK(ParseConditionalCriteria("Patient", {{"_format", "json"}}, Registry(), all).error().kind == ErrorKind::kInvalid);
  CHECK(ParseConditionalCriteria("Patient", {{"frobnicate", "1"}}, Registry(), all).error().kind == ErrorKind::kInvalid);
  for (const char* control : {"_count", "_sort", "_include", "_revinclude:iterate", "_summary", "_total"}) {
    auto r = ParseConditionalCriteria("Patient", {{"identifier", "a|1"}, {control, "1"}}, Registry(), all);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == ErrorKind::kInvalid);
  }
}

}  // namespace
}  // namespace eds::fhir
