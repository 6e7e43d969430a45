// Unit tests of search index values: normalisation, decimal ranges and the
// rows each FHIR type contributes to each parameter type.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "fhir/json_internal.hpp"
#include "fhir/primitives.hpp"
#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "fhir/search_index_internal.hpp"
#include "test_support.hpp"

namespace eds::fhir {
namespace {

IndexRows Rows(SearchParamType type, std::string_view fhir_type, std::string_view json) {
  rapidjson::Document doc;
  std::string error;
  REQUIRE(ParseJsonTree(json, 64, doc, error));
  SearchParamDef def;
  def.code = "p";
  def.type = type;
  IndexRows rows;
  AddIndexValues(def, fhir_type, doc, rows);
  return rows;
}

TEST_CASE("string search values are case- and accent-folded", "[search]") {
  CHECK(NormalizeForSearch("Rossi") == "rossi");
  CHECK(NormalizeForSearch("  Niccolò   D'Àmico ") == "niccolo d'amico");
  CHECK(NormalizeForSearch("ÉLODIE Łukasz Straße") == "elodie lukasz strasse");
  CHECK(NormalizeForSearch("Ζωή") == "Ζωή");  // other scripts kept as they are
}

TEST_CASE("a decimal's precision implies its range", "[search]") {
  auto range = [](std::string_view v) {
    std::string lo, hi;
    REQUIRE(DecimalRange(v, lo, hi));
    return std::make_pair(lo, hi);
  };
  CHECK(range("1.5") == std::make_pair(std::string("1.45"), std::string("1.55")));
  CHECK(range("100") == std::make_pair(std::string("99.5"), std::string("100.5")));
  CHECK(range("0.10") == std::make_pair(std::string("0.095"), std::string("0.105")));
  CHECK(range("-2.0") == std::make_pair(std::string("-2.05"), std::string("-1.95")));
  CHECK(range("0") == std::make_pair(std::string("-0.5"), std::string("0.5")));
  CHECK(range("1.5e2") == std::make_pair(std::string("145"), std::string("155")));
  CHECK(range("1e-3") == std::make_pair(std::string("0.0005"), std::string("0.0015")));
  std::string lo, hi;
  CHECK_FALSE(DecimalRange("abc", lo, hi));
  CHECK_FALSE(DecimalRange("", lo, hi));
}

TEST_CASE("string parameters index names, addresses and primitives", "[search]") {
  auto name = Rows(SearchParamType::kString, "HumanName",
                   R"({"family":"Rossi","given":["Mario","Giuseppe"],"prefix":["Dott."]})");
  REQUIRE(name.strings.size() == 4);
  CHECK(name.strings[0].normalized == "rossi");
  CHECK(name.strings[0].exact == "Rossi");
  auto addr = Rows(SearchParamType::kString, "Address", R"({"line":["Via Roma 1"],"city":"Roma","postalCode":"00184"})");
  CHECK(addr.strings.size() == 3);
  CHECK(Rows(SearchParamType::kString, "string", R"("Città")").strings[0].normalized == "citta");
}

TEST_CASE("token parameters index codings, identifiers and codes", "[search]") {
  auto cc = Rows(SearchParamType::kToken, "CodeableConcept",
                 R"({"coding":[{"system":"http://loinc.org","code":"1234-5","display":"Glucose"}],"text":"Glicemia"})");
  REQUIRE(cc.tokens.size() == 2);  // the coding, and the text for :text
  CHECK(cc.tokens[0].system == "http://loinc.org");
  CHECK(cc.tokens[0].code == "1234-5");
  CHECK(cc.tokens[0].text == "Glucose");
  CHECK(cc.tokens[1].code.empty());
  CHECK(cc.tokens[1].text == "Glicemia");
  auto text_only = Rows(SearchParamType::kToken, "CodeableConcept", R"({"text":"Glicemia"})");
  REQUIRE(text_only.tokens.size() == 1);
  CHECK(text_only.tokens[0].text == "Glicemia");
  auto id = Rows(SearchParamType::kToken, "Identifier",
                 R"({"system":"urn:ietf:rfc:3986","value":"urn:uuid:1"})");
  REQUIRE(id.tokens.size() == 1);
  CHECK(id.tokens[0].code == "urn:uuid:1");
  CHECK(Rows(SearchParamType::kToken, "code", R"("final")").tokens[0].code == "final");
  CHECK(Rows(SearchParamType::kToken, "boolean", "true").tokens[0].code == "true");
}

TEST_CASE("date parameters index the range of dates, periods and timings", "[search]") {
  auto d = Rows(SearchParamType::kDate, "date", R"("2023-05")");
  REQUIRE(d.dates.size() == 1);
  CHECK(d.dates[0].low_ms == ParseDateTimeRange("2023-05-01")->low_ms);
  CHECK(d.dates[0].high_ms == ParseDateTimeRange("2023-05-31")->high_ms);
  auto period = Rows(SearchParamType::kDate, "Period", R"({"start":"2023-01-01","end":"2023-01-10"})");
  REQUIRE(period.dates.size() == 1);
  CHECK(period.dates[0].high_ms == ParseDateTimeRange("2023-01-10")->high_ms);
  auto open = Rows(SearchParamType::kDate, "Period", R"({"start":"2023-01-01"})");
  REQUIRE(open.dates.size() == 1);
  CHECK(open.dates[0].high_ms > ParseDateTimeRange("9999")->high_ms);
  auto timing = Rows(SearchParamType::kDate, "Timing", R"({"event":["2023-03-01","2023-01-01","2023-02-01"]})");
  REQUIRE(timing.dates.size() == 1);
  CHECK(timing.dates[0].low_ms == ParseDateTimeRange("2023-01-01")->low_ms);
  CHECK(timing.dates[0].high_ms == ParseDateTimeRange("2023-03-01")->high_ms);
}

TEST_CASE("reference parameters index type, id, version and URL", "[search]") {
  auto rel = Rows(SearchParamType::kReference, "Reference", R"({"reference":"Patient/p1/_history/3"})");
  REQUIRE(rel.references.size() == 1);
  CHECK(rel.references[0].target_type == "Patient");
  CHECK(rel.references[0].target_id == "p1");
  CHECK(rel.references[0].version == "3");
  auto abs = Rows(SearchParamType::kReference, "Reference", R"({"reference":"https://eds.example/fhir/Patient/p2"})");
  REQUIRE(abs.references.size() == 1);
  CHECK(abs.references[0].target_id == "p2");
  CHECK(abs.references[0].url == "https://eds.example/fhir/Patient/p2");
  // a contained reference is a value (for :missing) that names no target
  auto contained = Rows(SearchParamType::kReference, "Reference", R"({"reference":"#contained1"})");
  REQUIRE(contained.references.size() == 1);
  CHECK(contained.references[0].target_id.empty());
  CHECK(contained.references[0].url == "#contained1");
  CHECK(Rows(SearchParamType::kReference, "Reference", R"({"display":"only text"})").references.empty());
  auto canon = Rows(SearchParamType::kReference, "canonical", R"("http://hl7.org/fhir/StructureDefinition/Patient|4.0.1")");
  REQUIRE(canon.references.size() == 1);
  CHECK(canon.references[0].url == "http://hl7.org/fhir/StructureDefinition/Patient");
}

TEST_CASE("number and quantity parameters keep the value's precision", "[search]") {
  auto n = Rows(SearchParamType::kNumber, "integer", "3");
  REQUIRE(n.numbers.size() == 1);
  CHECK(n.numbers[0].low == "2.5");
  auto q = Rows(SearchParamType::kQuantity, "Quantity",
                R"({"value":5.40,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"})");
  REQUIRE(q.quantities.size() == 1);
  CHECK(q.quantities[0].value == "5.40");
  CHECK(q.quantities[0].low == "5.395");
  CHECK(q.quantities[0].high == "5.405");
  CHECK(q.quantities[0].code == "mg");
  CHECK(Rows(SearchParamType::kQuantity, "Quantity", R"({"unit":"mg"})").quantities.empty());
}

}  // namespace
}  // namespace eds::fhir

namespace eds::fhir {
namespace {

TEST_CASE("the indexer extracts every parameter of a resource with FHIRPath", "[search]") {
  static auto registry =
      SearchParameterRegistry::Load(testing::DefinitionsDir(), testing::R4Definitions()->resource_types());
  SearchIndexer indexer(testing::R4Definitions(), registry);
  auto patient = Resource::Parse(R"({"resourceType":"Patient","id":"p1",
      "meta":{"tag":[{"system":"http://t","code":"x"}]},
      "identifier":[{"system":"http://hl7.it/sid/codiceFiscale","value":"RSSMRA80A01H501U"}],
      "name":[{"family":"Rossi","given":["Mario"]}],"gender":"male","birthDate":"1980-01-01",
      "generalPractitioner":[{"reference":"Practitioner/d1"}]})");
  REQUIRE(patient.ok());
  auto rows = indexer.Extract(*patient);
  auto has_token = [&](const std::string& param, const std::string& code) {
    for (const auto& t : rows.tokens)
      if (t.param == param && t.code == code) return true;
    return false;
  };
  CHECK(has_token("gender", "male"));
  CHECK(has_token("identifier", "RSSMRA80A01H501U"));
  CHECK(has_token("_tag", "x"));
  bool family = false;
  for (const auto& s : rows.strings) family = family || (s.param == "family" && s.normalized == "rossi");
  CHECK(family);
  bool birthdate = false;
  for (const auto& d : rows.dates) birthdate = birthdate || d.param == "birthdate";
  CHECK(birthdate);
  bool gp = false;
  for (const auto& r : rows.references) gp = gp || (r.param == "general-practitioner" && r.target_id == "d1");
  CHECK(gp);
  CHECK(indexer.failures() == 0);
  const auto* family_def = registry->Find("Patient", "family");
  REQUIRE(family_def != nullptr);
  CHECK(indexer.IsIndexed("Patient", *family_def));
  CHECK(indexer.IsIndexed("Patient", *registry->Find("Patient", "_id")));
  CHECK(indexer.IsIndexed("Observation", *registry->Find("Observation", "code-value-quantity")));  // composite
}

TEST_CASE("a fiscal code is found by either of its two systems", "[search]") {
  for (const std::string system : {"urn:oid:2.16.840.1.113883.2.9.4.3.2", "http://hl7.it/sid/codiceFiscale"}) {
    auto rows = Rows(SearchParamType::kToken, "Identifier", R"({"system":")" + system + R"(","value":"RSSMRA80A01H501U"})");
    REQUIRE(rows.tokens.size() == 2);
    std::set<std::string> systems;
    for (const auto& t : rows.tokens) {
      CHECK(t.code == "RSSMRA80A01H501U");
      systems.insert(t.system);
    }
    CHECK(systems == std::set<std::string>{"urn:oid:2.16.840.1.113883.2.9.4.3.2", "http://hl7.it/sid/codiceFiscale"});
  }
  CHECK(Rows(SearchParamType::kToken, "Identifier", R"({"system":"urn:oid:1.2.3","value":"x"})").tokens.size() == 1);
}

TEST_CASE("composites index component tuples; references and identifiers index :identifier and :of-type", "[search]") {
  auto defs = testing::R4Definitions();
  auto registry = SearchParameterRegistry::Load(testing::DefinitionsDir(), defs->resource_types());
  SearchIndexer indexer(defs, registry);
  auto obs = Resource::Parse(R"({"resourceType":"Observation","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
    "subject":{"reference":"Patient/p1","identifier":{"system":"urn:oid:1.2","value":"CF1"}},
    "component":[
      {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":107,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
      {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":60,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]})");
  REQUIRE(obs.ok());
  auto rows = indexer.Extract(*obs);
  // component-code-value-quantity: two tuples, each code with its own value
  std::map<int, std::string> code_of_group, value_of_group;
  for (const auto& t : rows.tokens)
    if (t.param == "component-code-value-quantity$0") code_of_group[t.group] = t.code;
  for (const auto& q : rows.quantities)
    if (q.param == "component-code-value-quantity$1") value_of_group[q.group] = q.value;
  REQUIRE(code_of_group.size() == 2);
  for (const auto& [group, code] : code_of_group) {
    CHECK(group > 0);
    CHECK(value_of_group[group] == (code == "8480-6" ? "107" : "60"));
  }
  // a composite whose node lacks a component (code-value-concept: the value is a
  // Quantity here) writes no rows: nothing could match them
  for (const auto& t : rows.tokens) CHECK(t.param.rfind("code-value-concept$", 0) != 0);
  for (const auto& t : rows.tokens) CHECK(t.param.rfind("code-value-date$", 0) != 0);
  bool identifier = false;
  for (const auto& t : rows.tokens)
    identifier = identifier || (t.param == "subject:identifier" && t.system == "urn:oid:1.2" && t.code == "CF1");
  CHECK(identifier);
  auto pat = Resource::Parse(R"({"resourceType":"Patient","identifier":[{"type":{"coding":[
    {"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:oid:9","value":"123"}]})");
  REQUIRE(pat.ok());
  auto prow = indexer.Extract(*pat);
  bool of_type = false;
  for (const auto& t : prow.tokens)
    of_type = of_type || (t.param == "identifier:of-type" && t.code == "MR" && t.text == "123" &&
                          t.system == "http://terminology.hl7.org/CodeSystem/v2-0203");
  CHECK(of_type);
}

}  // namespace
}  // namespace eds::fhir

namespace eds::fhir {
namespace {

TEST_CASE("parameters that are another plus more share its rows", "[search]") {
  auto defs = testing::R4Definitions();
  auto registry = SearchParameterRegistry::Load(testing::DefinitionsDir(), defs->resource_types());
  auto shared = [&](const char* type, const char* code) {
    auto s = registry->SharedRowsOf(*registry->Find(type, code));
    if (!s) return std::string();
    std::string codes;
    for (const auto& c : s->shared) codes += (codes.empty() ? "" : ",") + c;
    return codes + " + " + s->rest;
  };
  // parameters made of others read those rows: none of their own
  CHECK(shared("Observation", "combo-code") == "code,component-code + ");
  CHECK(shared("Observation", "combo-code-value-quantity") ==
        "code-value-quantity,component-code-value-quantity + ");
  CHECK(shared("Observation", "combo-value-quantity") == "component-value-quantity,value-quantity + ");
  CHECK(shared("Observation", "combo-data-absent-reason") == "component-data-absent-reason,data-absent-reason + ");
  CHECK(shared("Observation", "code").empty());
  CHECK(shared("Observation", "subject").empty());            // references keep their own rows
  CHECK(shared("Observation", "component-code").empty());     // one branch: nothing to share
  CHECK(shared("Observation", "date").empty());

  SearchIndexer indexer(defs, registry);
  auto count = [](const IndexRows& rows, const std::string& param) {
    std::size_t n = 0;
    for (const auto& t : rows.tokens) n += t.param == param;
    for (const auto& q : rows.quantities) n += q.param == param;
    return n;
  };
  auto plain = Resource::Parse(R"({"resourceType":"Observation","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},"valueQuantity":{"value":39,"code":"Cel"}})");
  REQUIRE(plain.ok());
  auto rows = indexer.Extract(*plain);
  CHECK(count(rows, "code") == 1);
  CHECK(count(rows, "value-quantity") == 1);
  CHECK(count(rows, "code-value-quantity$0") == 0);  // the rows of code and value-quantity
  CHECK(count(rows, "code-value-quantity$1") == 0);
  CHECK(count(rows, "combo-code") == 0);  // read from code's rows
  CHECK(count(rows, "combo-value-quantity") == 0);
  CHECK(count(rows, "combo-code-value-quantity$0") == 0);
  CHECK(count(rows, "combo-code-value-quantity$1") == 0);

  auto with_components = Resource::Parse(R"({"resourceType":"Observation","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
    "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":107}}]})");
  REQUIRE(with_components.ok());
  rows = indexer.Extract(*with_components);
  CHECK(count(rows, "component-code") == 1);  // the component's code, read by combo-code too
  CHECK(count(rows, "combo-code") == 0);
  CHECK(count(rows, "component-code-value-quantity$0") == 1);
  CHECK(count(rows, "component-code-value-quantity$1") == 1);
  CHECK(count(rows, "combo-code-value-quantity$0") == 0);
  CHECK(count(rows, "code-value-quantity$0") == 0);  // no value: no tuple of the Observation itself
}

TEST_CASE("reference parameters that are another one read its rows", "[search]") {
  auto defs = testing::R4Definitions();
  auto registry = SearchParameterRegistry::Load(testing::DefinitionsDir(), defs->resource_types());
  auto shared = [&](const char* type, const char* code) {
    auto s = registry->SharedReferencesOf(type, *registry->Find(type, code));
    return s ? s->code + "/" + s->target_type : std::string();
  };
  CHECK(shared("Observation", "patient") == "subject/Patient");  // subject.where(resolve() is Patient)
  CHECK(shared("Condition", "patient") == "subject/Patient");
  CHECK(shared("Encounter", "patient") == "subject/Patient");
  CHECK(shared("Coverage", "patient") == "beneficiary/");  // the same expression: the first code writes
  CHECK(shared("Coverage", "beneficiary").empty());
  CHECK(shared("Observation", "subject").empty());
  CHECK(shared("AllergyIntolerance", "patient").empty());  // its own element
  CHECK(shared("Observation", "performer").empty());

  auto roots = [&](const char* type, const char* code) {
    std::string out;
    for (const auto* p : registry->RootComponentsOf(type, *registry->Find(type, code)))
      out += (out.empty() ? "" : ",") + p->code;
    return out;
  };
  CHECK(roots("Observation", "code-value-quantity") == "code,value-quantity");
  CHECK(roots("Observation", "code-value-concept") == "code,value-concept");
  CHECK(roots("Observation", "code-value-date") == "code,value-date");
  // value-string also holds valueCodeableConcept.text, which the component does not
  CHECK(roots("Observation", "code-value-string").empty());
  CHECK(roots("Observation", "combo-code-value-quantity").empty());  // components of components too
  CHECK(roots("Observation", "component-code-value-quantity").empty());

  SearchIndexer indexer(defs, registry);
  auto refs = [&](const char* json) {
    auto r = Resource::Parse(json);
    REQUIRE(r.ok());
    std::string out;
    for (const auto& x : indexer.Extract(*r).references)
      out += (out.empty() ? "" : " ") + x.param + "=" + x.target_type + "/" + x.target_id;
    return out;
  };
  // the patient's rows are the subject's of type Patient: left out
  CHECK(refs(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
    "subject":{"reference":"Patient/p1"}})") == "subject=Patient/p1");
  // another server's Patient: its type, never a local id
  CHECK(refs(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
    "subject":{"reference":"http://other.example/fhir/Patient/p2"}})") == "subject=Patient/");
  CHECK(refs(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
    "subject":{"reference":"Group/g1"}})") == "subject=Group/g1");
  CHECK(refs(R"({"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},
    "subject":{"reference":"Patient/p1"}})") == "subject=Patient/p1");
  // Coverage: patient is beneficiary
  CHECK(refs(R"({"resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/p1"},
    "payor":[{"reference":"Organization/o1"}]})") == "beneficiary=Patient/p1 payor=Organization/o1");
  // identifier-only references keep their :identifier rows under both codes
  auto r = Resource::Parse(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},
    "subject":{"type":"Patient","identifier":{"system":"urn:oid:1","value":"42"}}})");
  REQUIRE(r.ok());
  auto rows = indexer.Extract(*r);
  std::string idents;
  for (const auto& t : rows.tokens)
    if (t.param.find(":identifier") != std::string::npos) idents += t.param + " ";
  CHECK(idents == "patient:identifier subject:identifier ");
}

}  // namespace
}  // namespace eds::fhir

namespace eds::fhir {
namespace {

std::string Dump(const IndexRows& r) {
  std::string out;
  auto g = [](int group) { return "#" + std::to_string(group) + "\n"; };
  for (const auto& x : r.strings) out += "s " + x.param + "|" + x.normalized + "|" + x.exact + g(x.group);
  for (const auto& x : r.tokens) out += "t " + x.param + "|" + x.system + "|" + x.code + "|" + x.text + g(x.group);
  for (const auto& x : r.dates)
    out += "d " + x.param + "|" + std::to_string(x.low_ms) + "|" + std::to_string(x.high_ms) + g(x.group);
  for (const auto& x : r.numbers) out += "n " + x.param + "|" + x.value + g(x.group);
  for (const auto& x : r.quantities) out += "q " + x.param + "|" + x.value + "|" + x.code + g(x.group);
  for (const auto& x : r.references)
    out += "r " + x.param + "|" + x.target_type + "/" + x.target_id + "|" + x.url + g(x.group);
  for (const auto& x : r.uris) out += "u " + x.param + "|" + x.value + g(x.group);
  return out;
}

TEST_CASE("leaving out parameters whose first element is absent changes no row of any R4 example",
          "[search]") {
  auto defs = testing::R4Definitions();
  auto registry = SearchParameterRegistry::Load(testing::DefinitionsDir(), defs->resource_types());
  SearchIndexer indexer(defs, registry);
  std::size_t resources = 0, rows = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testing::DefinitionsDir())) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto r = Resource::Parse(text);
    if (!r.ok()) continue;
    auto fast = indexer.Extract(*r);
    auto all = indexer.ExtractEvaluatingAll(*r);
    INFO(entry.path().filename().string());
    CHECK(Dump(fast) == Dump(all));
    ++resources;
    rows += all.size();
  }
  CHECK(resources > 1000);
  CHECK(rows > 10000);
}

}  // namespace
}  // namespace eds::fhir

namespace eds::fhir {
namespace {

TEST_CASE("absolute references name local resources only under the server's own bases", "[search]") {
  LocalBases bases({"https://EDS.example.it/fhir/", "http://localhost:8080/fhir"});
  CHECK(bases.bases().size() == 2);
  CHECK(bases.Relative("https://eds.example.it/fhir/Patient/p1") == std::optional<std::string_view>("Patient/p1"));
  CHECK(bases.Relative("https://eds.example.it/fhir/Patient/p1/_history/3") ==
        std::optional<std::string_view>("Patient/p1/_history/3"));
  CHECK(bases.Relative("http://LOCALHOST:8080/fhir/Observation/o-1") ==
        std::optional<std::string_view>("Observation/o-1"));
  CHECK_FALSE(bases.Relative("https://eds.example.it/FHIR/Patient/p1"));       // paths compare exactly
  CHECK_FALSE(bases.Relative("https://eds.example.it/fhir2/Patient/p1"));      // not the base plus '/'
  CHECK_FALSE(bases.Relative("https://eds.example.it/fhir/x/Patient/p1"));     // more than Type/id
  CHECK_FALSE(bases.Relative("https://eds.example.it/fhir/Patient/p1/extra"));
  CHECK_FALSE(bases.Relative("https://eds.example.it/fhir/Patient/bad id"));
  CHECK_FALSE(bases.Relative("https://other.example/fhir/Patient/p1"));
  CHECK_FALSE(bases.Relative("Patient/p1"));
  CHECK(LocalBases({"not a url", ""}).empty());

  auto defs = testing::R4Definitions();
  auto registry = SearchParameterRegistry::Load(testing::DefinitionsDir(), defs->resource_types());
  SearchIndexer indexer(defs, registry, bases);
  CHECK(indexer.local_bases().bases().size() == 2);
  auto refs = [&](const std::string& subject) {
    auto r = Resource::Parse(R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":")" +
                             subject + R"("}})");
    REQUIRE(r.ok());
    std::string out;
    for (const auto& x : indexer.Extract(*r).references)
      out += (out.empty() ? "" : " ") + x.param + "=" + x.target_type + "/" + x.target_id + "@" + x.version + " " +
             x.url;
    return out;
  };
  CHECK(refs("https://eds.example.it/fhir/Patient/p1") == "subject=Patient/p1@ https://eds.example.it/fhir/Patient/p1");
  CHECK(refs("http://localhost:8080/fhir/Patient/p1/_history/2") ==
        "subject=Patient/p1@2 http://localhost:8080/fhir/Patient/p1/_history/2");
  CHECK(refs("https://other.example/fhir/Patient/p1/_history/2") ==
        "subject=Patient/@ https://other.example/fhir/Patient/p1/_history/2");
  CHECK(refs("Patient/p1") == "subject=Patient/p1@ ");
}

}  // namespace
}  // namespace eds::fhir
