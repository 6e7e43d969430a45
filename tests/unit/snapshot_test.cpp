// Snapshot generation: hand-made differentials checked element by element,
// and the HL7 Italia profiles (../shared/testdata/it-profiles) generated
// from their differentials and compared with the reference snapshots.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "fhir/conformance.hpp"
#include "fhir/definitions.hpp"
#include "fhir/snapshot.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using eds::testing::StrOf;

namespace {

std::string ReadText(const fs::path& f) {
  std::ifstream in(f, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string SourceDir() {
  const char* d = std::getenv("EDS_SOURCE_DIR");
  return d != nullptr ? d : ".";
}

// Core StructureDefinitions from the package, by canonical URL.
class CoreSource {
 public:
  const rapidjson::Value* operator()(std::string_view url) {
    constexpr std::string_view kCore = "http://hl7.org/fhir/StructureDefinition/";
    if (url.substr(0, kCore.size()) != kCore) return nullptr;
    std::string id(url.substr(kCore.size()));
    auto& slot = docs_[id];
    if (!slot) {
      slot = std::make_unique<rapidjson::Document>();
      std::string text = ReadText(fs::path(eds::testing::DefinitionsDir()) / ("StructureDefinition-" + id + ".json"));
      slot->Parse(text.data(), text.size());
      if (slot->HasParseError()) return nullptr;
    }
    return slot.get();
  }

 private:
  std::map<std::string, std::unique_ptr<rapidjson::Document>> docs_;
};

const rapidjson::Value* ById(const rapidjson::Document& sd, const std::string& id) {
  for (const auto& e : sd["snapshot"]["element"].GetArray())
    if (StrOf(e, "id") == id) return &e;
  return nullptr;
}

std::vector<std::string> Ids(const rapidjson::Document& sd) {
  std::vector<std::string> out;
  for (const auto& e : sd["snapshot"]["element"].GetArray()) out.push_back(StrOf(e, "id"));
  return out;
}

std::string Json(const rapidjson::Value& v) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  v.Accept(w);
  return b.GetString();
}

// What the comparison looks at in one element: min, max, types (code,
// profiles, target profiles), fixed[x]/pattern[x], binding strength and
// value set.
std::string Essentials(const rapidjson::Value& e) {
  std::string out;
  if (e.HasMember("min") && e["min"].IsInt()) out += "min=" + std::to_string(e["min"].GetInt());
  out += " max=" + StrOf(e, "max") + " types=";
  if (e.HasMember("type") && e["type"].IsArray())
    for (const auto& t : e["type"].GetArray()) {
      out += StrOf(t, "code");
      for (const char* key : {"profile", "targetProfile"})
        if (t.HasMember(key) && t[key].IsArray()) {
          std::set<std::string> urls;
          for (const auto& u : t[key].GetArray()) urls.insert(u.GetString());
          out += std::string("[") + key + ":";
          for (const auto& u : urls) out += u + " ";
          out += "]";
        }
      out += ",";
    }
  for (const auto& m : e.GetObject()) {
    std::string k = m.name.GetString();
    if ((k.rfind("fixed", 0) == 0 && k.size() > 5) || (k.rfind("pattern", 0) == 0 && k.size() > 7))
      out += " " + k + "=" + Json(m.value);
  }
  if (e.HasMember("binding") && e["binding"].IsObject()) {
    std::string vs = StrOf(e["binding"], "valueSet");
    if (auto bar = vs.find('|'); bar != std::string::npos) vs.resize(bar);
    out += " binding=" + StrOf(e["binding"], "strength") + " " + vs;
  }
  return out;
}

rapidjson::Document Generate(const std::string& differential) {
  static CoreSource source;
  rapidjson::Document sd;
  sd.Parse(differential.data(), differential.size());
  REQUIRE(!sd.HasParseError());
  std::string problem;
  std::vector<std::string> skipped;
  bool ok = eds::fhir::GenerateSnapshot(
      sd, [](std::string_view url) { return source(url); }, problem, &skipped);
  INFO(problem);
  REQUIRE(ok);
  for (const auto& s : skipped) UNSCOPED_INFO("skipped: " << s);
  CHECK(skipped.empty());
  return sd;
}

}  // namespace

TEST_CASE("snapshot: differential merged onto the base, types unrolled, slices placed", "[fhir][snapshot]") {
  auto sd = Generate(R"J({"resourceType":"StructureDefinition","url":"http://example.org/obs","type":"Observation",
    "kind":"resource","derivation":"constraint","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Observation",
    "differential":{"element":[
      {"id":"Observation","path":"Observation","constraint":[{"key":"x-1","severity":"error","human":"h","expression":"status.exists()"}]},
      {"id":"Observation.status","path":"Observation.status","fixedCode":"final"},
      {"id":"Observation.category","path":"Observation.category","min":1,
       "slicing":{"discriminator":[{"type":"pattern","path":"$this"}],"rules":"open"}},
      {"id":"Observation.category:lab","path":"Observation.category","sliceName":"lab","min":1,"max":"1"},
      {"id":"Observation.category:lab.coding","path":"Observation.category.coding","min":1},
      {"id":"Observation.category:lab.coding.system","path":"Observation.category.coding.system","patternUri":"http://terminology.hl7.org/CodeSystem/observation-category"},
      {"id":"Observation.code.coding","path":"Observation.code.coding","min":1},
      {"id":"Observation.subject","path":"Observation.subject","min":1,"type":[{"code":"Reference","targetProfile":["http://hl7.org/fhir/StructureDefinition/Patient"]}]},
      {"id":"Observation.valueQuantity","path":"Observation.valueQuantity"},
      {"id":"Observation.component","path":"Observation.component","slicing":{"discriminator":[{"type":"pattern","path":"code"}],"rules":"open"}},
      {"id":"Observation.component:sys","path":"Observation.component","sliceName":"sys","max":"1"},
      {"id":"Observation.component:sys.code","path":"Observation.component.code","patternCodeableConcept":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]}}
    ]}})J");
  auto ids = Ids(sd);
  auto pos = [&](const std::string& id) {
    return static_cast<int>(std::find(ids.begin(), ids.end(), id) - ids.begin());
  };
  // the base's elements are all there
  CHECK(ById(sd, "Observation.referenceRange.low") != nullptr);
  // root constraints added to the base's
  const auto* root = ById(sd, "Observation");
  REQUIRE(root != nullptr);
  CHECK(Json((*root)["constraint"]).find("x-1") != std::string::npos);
  CHECK(Json((*root)["constraint"]).find("obs-6") != std::string::npos);
  CHECK(Essentials(*ById(sd, "Observation.status")).find("fixedCode=\"final\"") != std::string::npos);
  // the slice follows its sliced element, with the CodeableConcept unrolled below it
  CHECK(pos("Observation.category:lab") == pos("Observation.category") + 1);
  CHECK(pos("Observation.category:lab.coding") == pos("Observation.category:lab") + 3);  // id, extension, coding
  CHECK(StrOf(*ById(sd, "Observation.category:lab"), "sliceName") == "lab");
  CHECK(!ById(sd, "Observation.category:lab")->HasMember("slicing"));
  CHECK(Essentials(*ById(sd, "Observation.category:lab")).rfind("min=1 max=1", 0) == 0);
  CHECK(Essentials(*ById(sd, "Observation.category:lab.coding.system")).find("patternUri") != std::string::npos);
  CHECK(StrOf(*ById(sd, "Observation.category:lab.coding.system"), "path") == "Observation.category.coding.system");
  // a path below Observation.code unrolls CodeableConcept
  REQUIRE(ById(sd, "Observation.code.text") != nullptr);
  CHECK(pos("Observation.code.coding") == pos("Observation.code") + 3);
  CHECK(Essentials(*ById(sd, "Observation.code.coding")).rfind("min=1 max=*", 0) == 0);
  CHECK(Essentials(*ById(sd, "Observation.subject")) ==
        "min=1 max=1 types=Reference[targetProfile:http://hl7.org/fhir/StructureDefinition/Patient ],");
  // valueQuantity narrows value[x]
  CHECK(Essentials(*ById(sd, "Observation.value[x]")).find("types=Quantity,") != std::string::npos);
  // a backbone slice gets the children of its sliced element
  REQUIRE(ById(sd, "Observation.component:sys.value[x]") != nullptr);
  CHECK(pos("Observation.component:sys") > pos("Observation.component.referenceRange"));
  CHECK(Essentials(*ById(sd, "Observation.component:sys")).rfind("min=0 max=1", 0) == 0);
  CHECK(Essentials(*ById(sd, "Observation.component:sys.code")).find("patternCodeableConcept") != std::string::npos);
  CHECK(Essentials(*ById(sd, "Observation.component.code")).find("pattern") == std::string::npos);
}

TEST_CASE("snapshot: extension slices unroll the extension's definition", "[fhir][snapshot]") {
  auto sd = Generate(R"J({"resourceType":"StructureDefinition","url":"http://example.org/pat","type":"Patient",
    "kind":"resource","derivation":"constraint","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient",
    "differential":{"element":[
      {"id":"Patient.extension:birthPlace","path":"Patient.extension","sliceName":"birthPlace",
       "type":[{"code":"Extension","profile":["http://hl7.org/fhir/StructureDefinition/patient-birthPlace"]}]},
      {"id":"Patient.extension:birthPlace.valueAddress","path":"Patient.extension.valueAddress","min":1},
      {"path":"Patient.name.text","min":1}
    ]}})J");
  const auto* slice = ById(sd, "Patient.extension:birthPlace");
  REQUIRE(slice != nullptr);
  // the cardinality is the profile's (the extension definition's root is not applied)
  CHECK(Essentials(*slice).rfind("min=0 max=* ", 0) == 0);
  const auto* url = ById(sd, "Patient.extension:birthPlace.url");
  REQUIRE(url != nullptr);
  CHECK(Essentials(*url).find("fixedUri=\"http://hl7.org/fhir/StructureDefinition/patient-birthPlace\"") !=
        std::string::npos);
  const auto* value = ById(sd, "Patient.extension:birthPlace.value[x]");
  REQUIRE(value != nullptr);
  CHECK(Essentials(*value).rfind("min=1 max=1 types=Address,", 0) == 0);
  // an element without id: its path
  REQUIRE(ById(sd, "Patient.name.text") != nullptr);
  CHECK(Essentials(*ById(sd, "Patient.name.text")).rfind("min=1", 0) == 0);
}

TEST_CASE("snapshot: an unknown base or element is reported", "[fhir][snapshot]") {
  CoreSource source;
  rapidjson::Document sd;
  std::string text = R"({"resourceType":"StructureDefinition","baseDefinition":"http://example.org/none",
    "differential":{"element":[{"id":"Patient","path":"Patient"}]}})";
  sd.Parse(text.data(), text.size());
  std::string problem;
  CHECK_FALSE(eds::fhir::GenerateSnapshot(
      sd, [&](std::string_view url) { return source(url); }, problem));
  CHECK(problem.find("http://example.org/none") != std::string::npos);

  text = R"({"resourceType":"StructureDefinition","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient",
    "differential":{"element":[{"id":"Patient.nothing","path":"Patient.nothing"},{"id":"Patient.active","path":"Patient.active","min":1}]}})";
  rapidjson::Document sd2;
  sd2.Parse(text.data(), text.size());
  std::vector<std::string> skipped;
  REQUIRE(eds::fhir::GenerateSnapshot(
      sd2, [&](std::string_view url) { return source(url); }, problem, &skipped));
  CHECK(skipped == std::vector<std::string>{"Patient.nothing"});
  CHECK(Essentials(*ById(sd2, "Patient.active")).rfind("min=1", 0) == 0);
}

TEST_CASE("snapshot: HL7 Italia profiles match the reference snapshots (../shared/testdata/it-profiles)",
          "[fhir][snapshot]") {
  const fs::path dir = fs::path(SourceDir()) / ".." / "shared" / "testdata" / "it-profiles";
  if (!fs::is_directory(dir / "snapshots-generated")) {
    std::cout << "SKIPPED: HL7 Italia snapshot comparison (../shared/testdata/it-profiles absent)" << std::endl;
    WARN("SKIPPED: HL7 Italia snapshot comparison (../shared/testdata/it-profiles absent)");
    return;
  }
  auto defs = eds::testing::R4Definitions();
  int compared = 0, elements = 0;
  std::vector<std::string> differences;
  for (const char* ig : {"base", "lab-report"}) {
    auto store = eds::fhir::ConformanceStore::Load(*defs, {(dir / ig).string()});
    for (const auto& n : store->notes()) UNSCOPED_INFO(ig << ": " << n);
    for (const auto& f : fs::directory_iterator(dir / "snapshots-generated" / ig)) {
      rapidjson::Document ref;
      std::string text = ReadText(f.path());
      ref.Parse(text.data(), text.size());
      REQUIRE(!ref.HasParseError());
      std::string url = StrOf(ref, "url");
      const std::string* generated = store->GeneratedSnapshot(url);
      if (generated == nullptr) {
        differences.push_back(url + ": no snapshot generated");
        continue;
      }
      rapidjson::Document gen;
      gen.Parse(generated->data(), generated->size());
      REQUIRE(!gen.HasParseError());
      ++compared;
      auto ref_ids = Ids(ref), gen_ids = Ids(gen);
      std::set<std::string> ref_set(ref_ids.begin(), ref_ids.end()), gen_set(gen_ids.begin(), gen_ids.end());
      for (const auto& id : ref_ids)
        if (!gen_set.count(id)) differences.push_back(url + ": missing element " + id);
      for (const auto& id : gen_ids)
        if (!ref_set.count(id)) differences.push_back(url + ": extra element " + id);
      // the common elements in the same order
      std::vector<std::string> ref_common, gen_common;
      for (const auto& id : ref_ids)
        if (gen_set.count(id)) ref_common.push_back(id);
      for (const auto& id : gen_ids)
        if (ref_set.count(id)) gen_common.push_back(id);
      if (ref_common != gen_common) differences.push_back(url + ": elements in another order");
      for (const auto& id : ref_ids) {
        const auto* r = ById(ref, id);
        const auto* g = ById(gen, id);
        if (g == nullptr) continue;
        ++elements;
        std::string re = Essentials(*r), ge = Essentials(*g);
        if (re != ge) differences.push_back(url + " " + id + ":\n    reference " + re + "\n    generated " + ge);
      }
    }
  }
  for (const auto& d : differences) UNSCOPED_INFO(d);
  CHECK(differences.empty());
  CHECK(compared == 47);
  WARN("it-profiles: " << compared << " generated snapshots compared with the reference, " << elements
                       << " elements, " << differences.size() << " differences");
}
