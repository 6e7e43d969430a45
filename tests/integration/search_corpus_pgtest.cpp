// Search end to end over the R4 example corpus: a chosen set of the
// package's example resources is stored with PUT (their own ids) in a
// database of this test's own, then queried over HTTP.
//
// Every expected result below was worked out by hand from the example JSON
// files and the R4 search rules (https://hl7.org/fhir/R4/search.html), never
// taken from the server; each carries a short note saying why those ids (and
// only those) match. Useful facts about the corpus:
//  - Patient/example: Peter James Chalmers (maiden name Windsor, usual name
//    Jim), born 1974-12-25, managed by Organization/1 "Gastroenterology";
//    its contact Bénédicte du Marché is not part of Patient.name.
//  - Patient/f001 (Pieter van de Heuvel) and Patient/f201 (Roel Bor) are the
//    Dutch patients of Organization/f001 "Burgers University Medical Center"
//    and Organization/f201 "Artis University Medical Center (AUMC)".
//  - Observations f202..f206 are all and only those about Patient/f201; none
//    has effective[x], only issued.
//  - All 40 MedicationRequests are about Patient/pat1; medrx002 is the only
//    one with a non-contained medication reference (Medication/med0316).
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

namespace {

using Ids = std::set<std::string>;
using Order = std::vector<std::string>;

// The resource types loaded from the example package.
const std::set<std::string> kLoadedTypes = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "RelatedPerson", "Location", "Group",
    "Observation", "Encounter", "Condition", "DiagnosticReport", "Procedure", "AllergyIntolerance", "Immunization",
    "Medication", "MedicationRequest", "Composition", "DocumentReference", "Specimen", "RiskAssessment",
    "MolecularSequence", "ActivityDefinition", "PlanDefinition", "Questionnaire"};

std::string DefinitionsDir() {
  const char* d = std::getenv("EDS_DEFINITIONS");
  if (d == nullptr) FAIL("EDS_DEFINITIONS is not set: run the tests through ctest");
  return d;
}

struct Corpus {
  std::unique_ptr<ServerProcess> server;
  std::map<std::string, Ids> stored;   // type -> ids stored
  std::vector<std::string> rejected;   // file: status and reason
  std::string before_load;             // an instant (UTC) before the first write
};

std::string UtcSeconds(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// One database and one server for every test case of this file, loaded once.
Corpus& TheCorpus() {
  static Corpus corpus = [] {
    namespace fs = std::filesystem;
    Corpus c;
    const std::string dsn = CreateDatabase("eds_corpus_" + UniquePrefix());
    // the corpus is the R4 examples as they are, a few invalid under
    // the base definitions (tests/data/invalid_examples.txt): stored unvalidated
    c.server = std::make_unique<ServerProcess>(dsn, std::vector<std::string>{"--migrate", "--validation", "off"});
    c.before_load = UtcSeconds(std::chrono::system_clock::now() - std::chrono::seconds(2));
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(DefinitionsDir()))
      if (e.path().extension() == ".json" && e.path().filename() != "package.json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    HttpClient http(c.server->port());
    for (const auto& path : files) {
      std::ifstream in(path, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      rapidjson::Document d;
      d.Parse(text.data(), text.size());
      if (d.HasParseError() || !d.IsObject() || !d.HasMember("resourceType") || !d.HasMember("id")) continue;
      const std::string type = d["resourceType"].GetString();
      const std::string id = d["id"].GetString();
      if (!kLoadedTypes.count(type)) continue;
      auto put = http.Put("/fhir/" + type + "/" + id, text);
      if (put.status == 200 || put.status == 201)
        c.stored[type].insert(id);
      else
        c.rejected.push_back(path.filename().string() + ": " + std::to_string(put.status) + " " + put.body.substr(0, 300));
    }
    return c;
  }();
  return corpus;
}

struct Found {
  Order matches;                 // ids of search.mode = match, in order
  Ids included;                  // Type/id of search.mode = include
  std::optional<long> total;
  std::string next;              // the next link, from /fhir/ on
  bool outcome = false;          // an OperationOutcome entry (a parameter was ignored)
};

Found Parse(const Reply& r) {
  Found f;
  auto d = r.Json();
  if (d.HasMember("total")) f.total = d["total"].GetInt64();
  if (d.HasMember("link"))
    for (const auto& l : d["link"].GetArray())
      if (std::string(l["relation"].GetString()) == "next") {
        std::string url = l["url"].GetString();
        f.next = url.substr(url.find("/fhir/"));
      }
  if (d.HasMember("entry"))
    for (const auto& e : d["entry"].GetArray()) {
      const std::string mode = e["search"]["mode"].GetString();
      const auto& res = e["resource"];
      if (mode == "match") f.matches.push_back(res["id"].GetString());
      else if (mode == "include") f.included.insert(std::string(res["resourceType"].GetString()) + "/" + res["id"].GetString());
      else if (mode == "outcome") f.outcome = true;
    }
  return f;
}

class Searcher {
 public:
  Searcher() : corpus_(TheCorpus()), http_(corpus_.server->port()) {}

  // GET /fhir/<query>; the search must succeed and use every parameter.
  Found Get(const std::string& query) {
    auto r = http_.Get("/fhir/" + query);
    INFO("GET /fhir/" << query << " -> " << r.status << " " << r.body.substr(0, 600));
    CHECK(r.status == 200);
    if (r.status != 200) return {};
    Found f = Parse(r);
    CHECK_FALSE(f.outcome);
    return f;
  }

  Ids Matches(const std::string& query) {
    Found f = Get(query);
    Ids ids(f.matches.begin(), f.matches.end());
    CHECK(ids.size() == f.matches.size());  // no match twice
    return ids;
  }

  Reply Raw(const std::string& target) { return http_.Get(target); }
  const Corpus& corpus() const { return corpus_; }

 private:
  Corpus& corpus_;
  HttpClient http_;
};

}  // namespace

// The expected ids of `query`, order aside.
#define EXPECT_IDS(query, ...)                  \
  do {                                          \
    INFO("query: " << (query));                 \
    CHECK(s.Matches(query) == Ids __VA_ARGS__); \
  } while (0)

// The expected ids of `query` in this order.
#define EXPECT_ORDER(query, ...)                     \
  do {                                               \
    INFO("query: " << (query));                      \
    CHECK(s.Get(query).matches == Order __VA_ARGS__); \
  } while (0)

TEST_CASE("corpus: the chosen examples load", "[corpus]") {
  const Corpus& c = TheCorpus();
  for (const auto& r : c.rejected) UNSCOPED_INFO(r);
  CHECK(c.rejected.empty());
  std::size_t n = 0;
  for (const auto& [type, ids] : c.stored) n += ids.size();
  WARN("corpus examples stored: " << n);
  // counts of the package's examples of these types
  CHECK(c.stored.at("Patient").size() == 22);
  CHECK(c.stored.at("Observation").size() == 64);
  CHECK(c.stored.at("MedicationRequest").size() == 40);
}

TEST_CASE("corpus: string parameters", "[corpus]") {
  Searcher s;
  // starts-with on any part of a HumanName, case-insensitive
  EXPECT_IDS("Patient?family=solo", {"infant-mom", "infant-twin-1", "infant-twin-2"});  // family Solo
  EXPECT_IDS("Patient?family=SOLO", {"infant-mom", "infant-twin-1", "infant-twin-2"});  // case folded
  EXPECT_IDS("Patient?name=leia", {"infant-mom"});  // given Leia; the twins' mother contact (Leia Organa) is no Patient.name
  EXPECT_IDS("Patient?name=peter", {"example"});    // Patient/animal's contact is Peter: contacts do not count
  EXPECT_IDS("Patient?given=jim", {"example"});     // the usual name of Patient/example
  EXPECT_IDS("Patient?family=organa", {"infant-mom"});  // maiden name of infant-mom
  EXPECT_IDS("Patient?family=windsor", {"example"});    // a former (maiden) name counts too
  EXPECT_IDS("Patient?name=roel", {"f201"});        // name.text "Roel", given "Roelof Olaf"
  EXPECT_IDS("Patient?name=drs", {"f201"});         // prefix "Drs."
  EXPECT_IDS("Patient?name=msc", {"f001"});         // suffix "MSc"
  // Address: any part, starts-with
  EXPECT_IDS("Patient?address=erewhon", {});                  // line "534 Erewhon St", text "534 Erewhon ...": no part starts so
  EXPECT_IDS("Patient?address:contains=erewhon", {"example"});  // ... but contains it
  EXPECT_IDS("Patient?address=534", {"example"});             // the line and the text start with 534
  EXPECT_IDS("Patient?address-city=amsterdam", {"f001", "f201"});
  EXPECT_IDS("Patient?address-postalcode=1055", {"f201"});    // 1055RW (f001's is 1024 RJ)
  EXPECT_IDS("Patient?address=nld", {"f001", "f201"});        // country NLD
  // accents: du Marché
  EXPECT_IDS("RelatedPerson?name=du%20march", {"benedicte"});          // accent-insensitive starts-with
  EXPECT_IDS("RelatedPerson?name=march", {});                          // "du Marché" does not start with it
  EXPECT_IDS("RelatedPerson?name:contains=MARCH", {"benedicte"});      // contains, case-insensitive
  EXPECT_IDS("RelatedPerson?name:exact=du%20March%C3%A9", {"benedicte"});  // exact, with the accent
  EXPECT_IDS("RelatedPerson?name:exact=du%20Marche", {});              // exact needs the accent
  EXPECT_IDS("Practitioner?family:exact=van%20den%20Berk", {"f006"});
  EXPECT_IDS("Practitioner?family:exact=Van%20den%20Berk", {});        // exact is case-sensitive
  // f001 "van den broek", f006 "van den Berk", f203 text "Juri van Gelder"
  EXPECT_IDS("Practitioner?name:contains=van", {"f001", "f006", "f203"});
  EXPECT_IDS("Practitioner?name=van", {"f001", "f006"});               // starts-with: not "Juri van Gelder"
  EXPECT_IDS("Practitioner?address-city=den%20b", {"f001", "f002", "f006", "f007"});  // Den Burg (not Den helder)
  // Organization.name | Organization.alias
  EXPECT_IDS("Organization?name=burgers", {"f001", "f002", "f003"});
  EXPECT_IDS("Organization?name=abc", {"2"});                          // alias "ABC Insurance"
  EXPECT_IDS("Organization?name:contains=medical", {"f001", "f201"});  // "... University Medical Center"
  EXPECT_IDS("Location?name=main", {"2"});                             // alias "Main Wing OR 2"
  // value as string | value as CodeableConcept .text
  EXPECT_IDS("Observation?value-string=a", {"bloodgroup", "rhstatus"});  // valueCodeableConcept.text "A"
  EXPECT_IDS("Observation?value-string:exact=a", {});
  EXPECT_IDS("Observation?value-string=mother", {"trachcare"});         // valueString "Mother is trained ..."
  EXPECT_IDS("Condition?onset-info=approx", {"example2"});              // onsetString "approximately November 2012"
  EXPECT_IDS("Condition?abatement-string=around", {"f201"});            // abatementString "around April 9, 2013"
  EXPECT_IDS("Immunization?lot-number=aajn", {"example", "subpotent"}); // lotNumber AAJN11K
  EXPECT_IDS("Composition?title=consult", {"example"});                 // "Consultation Note"
}

TEST_CASE("corpus: token parameters", "[corpus]") {
  Searcher s;
  // Identifier: system|value, value, system|, |value
  EXPECT_IDS("Patient?identifier=urn:oid:1.2.36.146.595.217.0.1%7C12345", {"example"});
  EXPECT_IDS("Patient?identifier=12345", {"example", "xcda"});  // xcda: 12345 in urn:oid:2.16.840.1.113883.19.5
  EXPECT_IDS("Patient?identifier=urn:oid:1.2.36.146.595.217.0.1%7C", {"example", "ch-example"});
  EXPECT_IDS("Patient?identifier=%7CAB60001", {"ihe-pcd"});     // the one identifier without a system
  EXPECT_IDS("Patient?identifier=http://hl7.org/fhir/sid/us-ssn%7C444222222", {"genetics-example1", "mom"});
  // code, :not (includes resources without a value), :missing
  EXPECT_IDS("Patient?gender=other", {"pat2"});
  EXPECT_IDS("Patient?gender:not=male&_id=ihe-pcd,dicom,pat2,pat4", {"ihe-pcd", "pat2", "pat4"});  // ihe-pcd has no gender
  EXPECT_IDS("Patient?active:missing=true",
             {"infant-fetal", "infant-mom", "infant-twin-1", "infant-twin-2", "newborn"});
  // ContactPoint: phone and email cover Patient.telecom only, not contact.telecom
  EXPECT_IDS("Patient?phone=%2B31201234567", {"f201"});  // infant-* contacts share the number
  EXPECT_IDS("Patient?email=p.heuvel@gmail.com", {"f001"});
  EXPECT_IDS("Patient?telecom=phone%7C0648352638", {"f001"});
  // CodeableConcept: code matches exactly (nl-NL is not nl), :text on the display
  EXPECT_IDS("Patient?language=nl", {"f001"});
  EXPECT_IDS("Patient?language:text=dutch", {"f001", "f201"});
  // Observation.code: system|code, OR list, wrong system
  EXPECT_IDS("Observation?code=http://loinc.org%7C85354-9", {"blood-pressure", "blood-pressure-cancel", "blood-pressure-dar"});
  EXPECT_IDS("Observation?code=85354-9,8867-4",
             {"blood-pressure", "blood-pressure-cancel", "blood-pressure-dar", "heart-rate"});
  EXPECT_IDS("Observation?code=http://snomed.info/sct%7C85354-9", {});
  // AND across parameters: map-sitting has the code too but category laboratory
  EXPECT_IDS("Observation?category=vital-signs&code=http://loinc.org%7C8478-0", {"mbp"});
  // code | component.code: diastolic 8462-4 is a component of the three blood pressures only
  EXPECT_IDS("Observation?combo-code=8462-4", {"blood-pressure", "blood-pressure-cancel", "blood-pressure-dar"});
  // |code: a Coding without system (component value "Pathogenic" of example-genetics-2)
  EXPECT_IDS("Observation?component-value-concept=%7CLA6669-1", {"example-genetics-2"});
  EXPECT_IDS("Observation?component-value-concept=http://loinc.org%7CLA6669-1", {});
  EXPECT_IDS("Observation?value-concept=http://snomed.info/sct%7C10828004",
             {"example-genetics-1", "example-genetics-2", "vp-oyster"});  // "Positive"
  EXPECT_IDS("Observation?subject=Patient/f201&status:not=final", {"f202"});  // entered-in-error
  // dataAbsentReason on the observation (unsat) or on a component (the two blood pressures)
  EXPECT_IDS("Observation?combo-data-absent-reason:missing=false", {"blood-pressure-cancel", "blood-pressure-dar", "unsat"});
  EXPECT_IDS("Observation?data-absent-reason:missing=false", {"unsat"});
  // display "Blood pressure panel with all children optional" ("Mean blood pressure" does not start so)
  EXPECT_IDS("Observation?code:text=blood%20pressure", {"blood-pressure", "blood-pressure-cancel", "blood-pressure-dar"});
  EXPECT_IDS("Condition?code:text=asthma", {"example2"});     // CodeableConcept with text only
  EXPECT_IDS("Condition?code:text=ischemic", {"stroke"});     // display "Ischemic stroke (disorder)"
  EXPECT_IDS("Encounter?class=HH", {"home"});
  EXPECT_IDS("Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode%7CIMP", {"emerg", "example", "f203"});
  // code | reaction.substance
  EXPECT_IDS("AllergyIntolerance?code=http://www.nlm.nih.gov/research/umls/rxnorm%7C1160593", {"example"});
  EXPECT_IDS("AllergyIntolerance?criticality=high&category=food", {"example"});  // "medication" is high too, but not food
  EXPECT_IDS("Medication?lot-number=12345", {"med0306", "med0307"});
  EXPECT_IDS("Medication?code:text=amox", {"medicationexample1"});
  EXPECT_IDS("Medication?ingredient-code=http://snomed.info/sct%7C387253001", {"med0319"});
  EXPECT_IDS("Specimen?accession=http://lab.acme.org/specimens/2011%7CX352356", {"101"});
  EXPECT_IDS("Specimen?accession=X352356", {"101", "vma-urine"});  // vma-urine: the same value in .../2015
  EXPECT_IDS("Practitioner?identifier=https://www.bigregister.nl/%7C", {"f202", "f203"});
  EXPECT_IDS("Immunization?target-disease=40468003", {"protocol"});
  EXPECT_IDS("Group?code:text=horse", {"101"});
  // _id, _profile, _security, _tag
  EXPECT_IDS("Patient?_id=pat1,pat2,no-such-patient", {"pat1", "pat2"});
  EXPECT_IDS("Questionnaire?_profile=http://hl7.org/fhir/StructureDefinition/cqf-questionnaire", {"phq-9-questionnaire"});
  // vital signs observations that do not claim the vitalsigns profile
  EXPECT_IDS("Observation?category=vital-signs&_profile:missing=true", {"bmi-using-related", "example", "f202", "mbp"});
  EXPECT_IDS("Condition?_security=http://terminology.hl7.org/CodeSystem/v3-ActCode%7CTBOO", {"f202"});
  EXPECT_IDS("Condition?subject=Patient/f201&_security:not=TBOO", {"f201", "f203", "f204", "f205"});
  EXPECT_IDS("Patient?_tag:missing=false", {});  // no Patient example has a tag
}

TEST_CASE("corpus: date parameters", "[corpus]") {
  Searcher s;
  EXPECT_IDS("Patient?birthdate=1974-12-25", {"ch-example", "example"});
  EXPECT_IDS("Patient?birthdate=2017", {"infant-twin-1", "infant-twin-2", "newborn"});
  EXPECT_IDS("Patient?birthdate=gt2017-05-15", {"newborn"});  // 2017-09-05; the twins are born on the day
  EXPECT_IDS("Patient?birthdate=ge2017-05-15", {"infant-twin-1", "infant-twin-2", "newborn"});
  EXPECT_IDS("Patient?birthdate=lt1940", {"glossy", "xcda"});  // 1932-09-24
  EXPECT_IDS("Patient?birthdate=le1944-11-17", {"f001", "glossy", "xcda"});
  // Organization/1's patients: ch-example and example born 1974-12-25; dicom, pat1, pat2 without a birth date
  EXPECT_IDS("Patient?birthdate=ne1974-12-25&organization=Organization/1", {"pat3", "pat4"});
  EXPECT_IDS("Patient?birthdate=ap1973-05", {"genetics-example1", "mom"});  // 1973-05-31
  EXPECT_IDS("Patient?birthdate:missing=true", {"dicom", "ihe-pcd", "infant-fetal", "pat1", "pat2"});
  EXPECT_IDS("Patient?death-date=2015-02-14", {"pat3"});  // 2015-02-14T13:42:00+10:00 is the 14th in UTC too
  // Encounter.period: home 2015-01-17T16:00..16:30+10:00, f203 2013-03-11..2013-03-20,
  // emerg from 2017-02-01T07:15+10:00 with no end
  EXPECT_IDS("Encounter?date=2015-01-17", {"home"});
  EXPECT_IDS("Encounter?date=2013-03", {"f203"});
  EXPECT_IDS("Encounter?date=2013-03-15", {});          // eq: the day does not contain the 10-day period
  EXPECT_IDS("Encounter?date=ap2013-03-15", {"f203"});  // ap: it overlaps
  EXPECT_IDS("Encounter?date=gt2020-01-01", {"emerg"}); // an open end goes on for ever
  EXPECT_IDS("Encounter?date=sa2016", {"emerg"});       // starts after 2016
  EXPECT_IDS("Encounter?date=eb2015-01-17T17:00:00%2B10:00", {"f203", "home"});
  EXPECT_IDS("Encounter?date=ge2015-01-17T16:15:00%2B10:00", {"emerg", "home"});  // home ends 16:30
  // Procedure.performed: f001 2011-06-26..27, f002 2013-03-08, f004 2013-03-22, f003 2013-03-24,
  // example 2013-04-05, ob 2012-06-02, ...
  EXPECT_IDS("Procedure?date=2013-03", {"f002", "f003", "f004"});
  EXPECT_IDS("Procedure?date=ge2013-03-22&date=lt2013-04", {"f003", "f004"});  // AND of two dates
  EXPECT_IDS("Procedure?date=eb2012", {"f001"});
  EXPECT_IDS("Procedure?date=ne2013&subject=Patient/f001", {"f001"});  // f002..f004 are in 2013
  // Condition onset: stroke 2010-07-18, f002 2011-05-05, f001 2011-08-05, f003 2012-02-27, example 2012-05-24
  EXPECT_IDS("Condition?onset-date=lt2011-06", {"f002", "stroke"});
  EXPECT_IDS("Condition?onset-date=2012", {"example", "f003"});  // example2's onset is a string
  // AllergyIntolerance/example: lastOccurrence 2012-06 (month precision)
  EXPECT_IDS("AllergyIntolerance?last-date=2012-06-15", {});
  EXPECT_IDS("AllergyIntolerance?last-date=ap2012-06-15", {"example"});
  // recordedDate 2015-08-06T15:37:31-06:00 (21:37 UTC, still the 6th)
  EXPECT_IDS("AllergyIntolerance?date=2015-08-06", {"fishallergy", "nka", "nkda", "nkla"});
  EXPECT_IDS("Immunization?date=2013-01-10", {"example", "notGiven"});
  EXPECT_IDS("Immunization?date:missing=true", {"historical"});  // occurrenceString "January 2012" is no date
  // batch.expirationDate: 2019-10-31 (med0306, med0307), 2020-07-31 (med0308)
  EXPECT_IDS("Medication?expiration-date=gt2018", {"med0306", "med0307", "med0308"});
  EXPECT_IDS("Observation?subject=Patient/f201&date:missing=true", {"f202", "f203", "f204", "f205", "f206"});
  EXPECT_IDS("Observation?subject=Patient/f201&date:missing=false", {});
  // dosageInstruction.timing.event 2015-01-15T22:00:00+11:00 (11:00 UTC)
  EXPECT_IDS("MedicationRequest?date=2015-01-15", {"medrx0323"});
  EXPECT_IDS("Specimen?collected=2015-08-16", {"isolate", "sst"});
  // _lastUpdated is the server's: glossy's file says 2014-11-13, but it was stored now
  EXPECT_IDS("Patient?_lastUpdated=lt2015-01-01", {});
  {
    const std::string q = "Patient?_lastUpdated=gt" + s.corpus().before_load;  // every Patient, all stored just now
    INFO("query: " << q);
    CHECK(s.Matches(q) == s.corpus().stored.at("Patient"));
  }
}

TEST_CASE("corpus: number and quantity parameters", "[corpus]") {
  Searcher s;
  // RiskAssessment.prediction.probability: cardiac 0.02; riskexample 0.000368;
  // genetic 0.000168, 0.000368, 0.000594, ..., 0.001663
  EXPECT_IDS("RiskAssessment?probability=0.02", {"cardiac"});
  EXPECT_IDS("RiskAssessment?probability=0.0004", {"genetic", "riskexample"});  // [0.00035, 0.00045) holds 0.000368
  EXPECT_IDS("RiskAssessment?probability=gt0.01", {"cardiac"});
  EXPECT_IDS("RiskAssessment?probability=lt0.0002", {"genetic"});  // 0.000168
  EXPECT_IDS("RiskAssessment?probability=ne0.02", {"genetic", "riskexample"});  // breastcancer-risk, prognosis: no value
  EXPECT_IDS("RiskAssessment?probability=ap0.0004", {"genetic", "riskexample"});
  // MolecularSequence windows: coord-0-base 0..8, coord-1-base 1..8, graphic-example-2 0..8,
  // graphic-example-3/5 128273732..128273736, graphic-example-4 128273736..128273740,
  // sequence-complex-variant 128273724..128273754
  EXPECT_IDS("MolecularSequence?window-start=0", {"coord-0-base", "graphic-example-2"});
  EXPECT_IDS("MolecularSequence?window-end=8", {"coord-0-base", "coord-1-base", "graphic-example-2"});
  EXPECT_IDS("MolecularSequence?window-start=ge128273732", {"graphic-example-3", "graphic-example-4", "graphic-example-5"});
  EXPECT_IDS("MolecularSequence?window-end=sa128273736", {"graphic-example-4", "sequence-complex-variant"});
  EXPECT_IDS("MolecularSequence?window-start=eb1", {"coord-0-base", "graphic-example-2"});
  EXPECT_IDS("MolecularSequence?variant-start=le2", {"coord-0-base", "coord-1-base"});
  // Observation.valueQuantity: f001 6.3 mmol/L, f002 12.6 mmol/L, f003 6.2 kPa, f004 4.12, f005 7.2,
  // 1minute-apgar 0, bmd 0.887, herd1 0.2, satO2 95 %, f202 39 Cel, body-temperature 36.5 Cel,
  // f203 28 (snomed 258813002), f204 122, example 185 [lb_av], 656 820
  EXPECT_IDS("Observation?value-quantity=6", {"f001", "f003"});  // 6 means [5.5, 6.5)
  EXPECT_IDS("Observation?value-quantity=6.2", {"f003"});        // [6.15, 6.25)
  EXPECT_IDS("Observation?value-quantity=lt1", {"1minute-apgar-score", "bmd", "herd1"});
  EXPECT_IDS("Observation?value-quantity=ge122", {"656", "example", "f204"});
  EXPECT_IDS("Observation?value-quantity=12.6%7Chttp://unitsofmeasure.org%7Cmmol/L", {"f002"});
  EXPECT_IDS("Observation?value-quantity=lt10%7C%7Cmmol/L", {"f001"});  // code only; f002 is 12.6
  EXPECT_IDS("Observation?value-quantity=gt38%7Chttp://unitsofmeasure.org%7CCel", {"f202"});  // not 36.5
  EXPECT_IDS("Observation?value-quantity=28%7Chttp://snomed.info/sct%7C258813002", {"f203"});
  EXPECT_IDS("Observation?value-quantity=185%7Chttp://unitsofmeasure.org%7C%5Blb_av%5D", {"example"});  // body weight
  EXPECT_IDS("Observation?value-quantity=ap100", {"satO2"});  // 95 is within 10 %
  EXPECT_IDS("Observation?value-quantity=eb0.5", {"1minute-apgar-score", "herd1"});
  EXPECT_IDS("Observation?value-quantity=sa500", {"656"});
  // the five Apgar scores are 10, 0, 10, 5, 10; date-lastmp (survey too) has no quantity
  EXPECT_IDS("Observation?category=survey&value-quantity=ne10", {"1minute-apgar-score", "2minute-apgar-score"});
  // components: blood-pressure diastolic 60, f205 two GFR components of 60 (one ">60")
  EXPECT_IDS("Observation?component-value-quantity=60", {"blood-pressure", "f205"});
  EXPECT_IDS("Observation?combo-value-quantity=60", {"blood-pressure", "f205", "map-sitting"});  // map-sitting: value 60
  // Observation/decimal components: 1.0, 1.00, 1.0, 1E-22, 1e18, 1.0E-245, -1.0E+245
  EXPECT_IDS("Observation?component-value-quantity=1.00", {"decimal"});
  EXPECT_IDS("Observation?component-value-quantity=lt-1e200", {"decimal"});
  // Encounter.length: f001 140 min, f002 140 min, f003 90 min, f202 56 min
  EXPECT_IDS("Encounter?length=140", {"f001", "f002"});
  EXPECT_IDS("Encounter?length=lt100%7Chttp://unitsofmeasure.org%7Cmin", {"f003", "f202"});
  EXPECT_IDS("Encounter?length=le56", {"f202"});
  // Condition/f202: onsetAge 52 a, abatementAge 54 a
  EXPECT_IDS("Condition?onset-age=52%7Chttp://unitsofmeasure.org%7Ca", {"f202"});
  EXPECT_IDS("Condition?abatement-age=gt53", {"f202"});
}

TEST_CASE("corpus: reference and uri parameters", "[corpus]") {
  Searcher s;
  EXPECT_IDS("Observation?subject=Patient/f201", {"f202", "f203", "f204", "f205", "f206"});
  EXPECT_IDS("Observation?subject=f201", {"f202", "f203", "f204", "f205", "f206"});  // id alone: any type
  EXPECT_IDS("Observation?subject:Group=herd1", {"herd1"});
  EXPECT_IDS("Observation?performer:Patient=PatientId-patientId", {"656"});
  EXPECT_IDS("Observation?has-member=Observation/heart-rate", {"vitals-panel"});
  EXPECT_IDS("Observation?specimen=Specimen/pooled-serum", {"herd1"});
  EXPECT_IDS("Observation?device=DeviceMetric/example", {"satO2"});
  EXPECT_IDS("Observation?focus=Patient/infant-mom", {"trachcare"});
  EXPECT_IDS("Observation?encounter=Encounter/example", {"abdo-tender", "clinical-gender", "example", "map-sitting"});
  EXPECT_IDS("Patient?general-practitioner:Practitioner=21B", {"infant-mom"});  // the target need not exist
  EXPECT_IDS("Patient?link=Patient/pat2", {"pat1"});
  EXPECT_IDS("Patient?link:RelatedPerson=newborn-mom", {"mom"});
  EXPECT_IDS("Encounter?diagnosis=Condition/stroke", {"f203"});
  EXPECT_IDS("Encounter?part-of=Encounter/f203", {"f203"});  // part of itself
  EXPECT_IDS("Procedure?location=Location/1", {"ambulation", "colon-biopsy", "colonoscopy"});
  EXPECT_IDS("Procedure?part-of=Procedure/colonoscopy", {"colon-biopsy"});
  EXPECT_IDS("Procedure?instantiates-canonical=PlanDefinition/KDN5", {"f201"});
  EXPECT_IDS("MedicationRequest?medication=Medication/med0316", {"medrx002"});  // the others' are contained
  EXPECT_IDS("MedicationRequest?intended-dispenser=Organization/f001", {"medrx0303", "medrx0339"});
  EXPECT_IDS("Composition?entry=Condition/stroke", {"example"});  // a section entry
  // uri: exact by default, :below (prefix) and :above (the stored uri is a prefix of the value)
  const std::string protocol = "http://example.org/protocol-for-hypertension-during-pregnancy";
  EXPECT_IDS("Procedure?instantiates-uri=" + protocol, {"ambulation"});
  EXPECT_IDS("Procedure?instantiates-uri=http://example.org", {});
  EXPECT_IDS("Procedure?instantiates-uri:below=http://example.org", {"ambulation"});
  EXPECT_IDS("Procedure?instantiates-uri:above=" + protocol + "/v2", {"ambulation"});
  // the same canonical url in two versions
  EXPECT_IDS("ActivityDefinition?url=http://motivemi.com/artifacts/ActivityDefinition/referralPrimaryCareMentalHealth",
             {"referralPrimaryCareMentalHealth", "referralPrimaryCareMentalHealth-initial"});
  EXPECT_IDS("ActivityDefinition?url:below=http://example.org/ActivityDefinition/",
             {"administer-zika-virus-exposure-assessment", "provide-mosquito-prevention-advice", "serum-dengue-virus-igm",
              "serum-zika-dengue-virus-igm"});
  EXPECT_IDS("DocumentReference?location:below=http://example.org/xds/mhd", {"example"});
  EXPECT_IDS("Questionnaire?url=http://hl7.org/fhir/Questionnaire/gcs", {"gcs"});
  EXPECT_IDS("Questionnaire?url:above=http://hl7.org/fhir/Questionnaire/bb/_history/1", {"bb"});
}

TEST_CASE("corpus: chains and reverse chains", "[corpus]") {
  Searcher s;
  // the chain follows the stored target: glossy's managingOrganization displays "Good Health Clinic"
  // but Organization/2 is "XYZ Insurance" (alias "ABC Insurance")
  EXPECT_IDS("Patient?organization.name=good", {"xcda"});
  EXPECT_IDS("Patient?organization.name=abc", {"glossy", "xds"});
  EXPECT_IDS("Observation?patient.family=bor", {"f202", "f203", "f204", "f205", "f206"});
  EXPECT_IDS("Observation?performer:Practitioner.family=maas", {"f203", "f204", "f205", "f206"});  // f202: Bronsig
  EXPECT_IDS("Procedure?performer:Practitioner.given=eric", {"f003"});
  EXPECT_IDS("Condition?encounter.class=IMP", {"f203", "f204"});  // both in Encounter/f203
  // two levels
  EXPECT_IDS("Observation?subject:Patient.organization.name=artis", {"f202", "f203", "f204", "f205", "f206"});
  EXPECT_IDS("DiagnosticReport?subject:Patient.organization.name=gastro", {"102", "ultrasound"});  // pat2, example
  EXPECT_IDS("Encounter?subject.organization.name=burgers", {"f001", "f002", "f003"});
  EXPECT_IDS("MedicationRequest?encounter.service-provider.name=artis", {"medrx0301"});  // Encounter/f201
  // _has, one and two levels
  EXPECT_IDS("Patient?_has:Observation:patient:code=http://loinc.org%7C8310-5", {"example", "f201"});
  EXPECT_IDS("Patient?_has:Condition:patient:clinical-status=resolved", {"f201"});  // Conditions f201, f202
  EXPECT_IDS("Practitioner?_has:Encounter:practitioner:class=IMP", {"f201"});  // f203's participant
  EXPECT_IDS("Organization?_has:Patient:organization:gender=other", {"1"});
  EXPECT_IDS("Medication?_has:MedicationRequest:medication:status=active", {"med0316"});
  // Condition/f001 (severity 6736007) is in Encounter/f001 of Patient/f001
  EXPECT_IDS("Patient?_has:Encounter:patient:_has:Condition:encounter:severity=http://snomed.info/sct%7C6736007", {"f001"});
}

TEST_CASE("corpus: _include and _revinclude", "[corpus]") {
  Searcher s;
  auto check = [&](const std::string& query, const Ids& matches, const Ids& included) {
    INFO("query: " << query);
    Found f = s.Get(query);
    CHECK(Ids(f.matches.begin(), f.matches.end()) == matches);
    CHECK(f.included == included);
  };
  check("Observation?_id=f202&_include=Observation:subject&_include=Observation:performer", {"f202"},
        {"Patient/f201", "Practitioner/f201"});
  check("MedicationRequest?_id=medrx002&_include=MedicationRequest:encounter", {"medrx002"}, {"Encounter/f001"});
  // Encounter/f001's serviceProvider is reached only by iterating
  check("MedicationRequest?_id=medrx002&_include=MedicationRequest:encounter&_include:iterate=Encounter:service-provider",
        {"medrx002"}, {"Encounter/f001", "Organization/f001"});
  // every reference parameter of Condition/f201: subject, encounter, asserter, evidence-detail
  check("Condition?_id=f201&_include=*", {"f201"},
        {"Patient/f201", "Encounter/f201", "Practitioner/f201", "Observation/f202"});
  // diagnosis of Encounter/f203: Condition/stroke and Condition/f201, restricted by target type
  check("Encounter?_id=f203&_include=Encounter:diagnosis:Condition", {"f203"}, {"Condition/f201", "Condition/stroke"});
  check("Encounter?_id=f203&_include=Encounter:diagnosis:Procedure", {"f203"}, {});
  check("Patient?_id=f201&_revinclude=Condition:subject", {"f201"},
        {"Condition/f201", "Condition/f202", "Condition/f203", "Condition/f204", "Condition/f205"});
  check("Patient?_id=f001&_revinclude=Encounter:*", {"f001"}, {"Encounter/f001", "Encounter/f002", "Encounter/f003"});
  // Encounters served by Organization/f001, then the Procedures in them
  check("Organization?_id=f001&_revinclude=Encounter:service-provider&_revinclude:iterate=Procedure:encounter", {"f001"},
        {"Encounter/f001", "Encounter/f002", "Encounter/f003", "Procedure/f001", "Procedure/f002", "Procedure/f003",
         "Procedure/f004"});
}

TEST_CASE("corpus: sorting, paging and totals", "[corpus]") {
  Searcher s;
  // Procedures of Patient/f001: f001 2011-06-26, f002 2013-03-08, f004 2013-03-22, f003 2013-03-24
  EXPECT_ORDER("Procedure?subject=Patient/f001&_sort=date", {"f001", "f002", "f004", "f003"});
  EXPECT_ORDER("Procedure?subject=Patient/f001&_sort=-date", {"f003", "f004", "f002", "f001"});
  // recordedDate: f201 and f205 2013-04-04, f203 and f204 2013-03-11, f202 2012-12-01; ties by id
  EXPECT_ORDER("Condition?subject=Patient/f201&_sort=-recorded-date,_id", {"f201", "f205", "f203", "f204", "f202"});
  // twins born the same day, then their mother (1995); ties by id descending
  EXPECT_ORDER("Patient?family=solo&_sort=-birthdate,-_id", {"infant-twin-2", "infant-twin-1", "infant-mom"});
  // Amsterdam practitioners: Versteegh (f003), Briet (f004), Anne (f005)
  EXPECT_ORDER("Practitioner?address-city=amsterdam&_sort=family", {"f005", "f004", "f003"});
  EXPECT_ORDER("Practitioner?address-city=amsterdam&_sort=-family", {"f003", "f004", "f005"});
  EXPECT_ORDER("Encounter?length:missing=false&_sort=-length,_id", {"f001", "f002", "f003", "f202"});

  // paging a sorted search: the 12 procedures with a performed date, 3 a page
  {
    const Order expected = {"f001",    "ob",        "f201",      "f002",            "f004",             "f003",
                            "example", "biopsy",    "education", "example-implant", "physical-therapy", "HCBS"};
    Order seen;
    std::string next = "Procedure?date:missing=false&_sort=date,_id&_count=3";
    int pages = 0;
    while (!next.empty() && pages < 10) {
      Found f = s.Get(next.rfind("/fhir/", 0) == 0 ? next.substr(6) : next);
      CHECK(f.matches.size() <= 3);
      seen.insert(seen.end(), f.matches.begin(), f.matches.end());
      next = f.next;
      ++pages;
    }
    CHECK(seen == expected);
    CHECK(pages == 4);
  }
  // paging by id: all 40 MedicationRequests are about Patient/pat1, each comes exactly once
  {
    Ids seen;
    std::string next = "MedicationRequest?subject=Patient/pat1&_count=7";
    int pages = 0;
    while (!next.empty() && pages < 20) {
      Found f = s.Get(next.rfind("/fhir/", 0) == 0 ? next.substr(6) : next);
      CHECK(f.matches.size() <= 7);
      for (const auto& id : f.matches) CHECK(seen.insert(id).second);
      next = f.next;
      ++pages;
    }
    CHECK(seen == s.corpus().stored.at("MedicationRequest"));
    CHECK(pages == 6);
  }
  // totals: three blood pressure panels; five on-hold requests; nine active conditions
  {
    Found f = s.Get("Observation?code=http://loinc.org%7C85354-9&_total=accurate&_count=1");
    REQUIRE(f.total);
    CHECK(*f.total == 3);
    CHECK(f.matches.size() == 1);
    CHECK_FALSE(f.next.empty());
  }
  {
    Found f = s.Get("MedicationRequest?status=on-hold&_total=accurate");
    REQUIRE(f.total);
    CHECK(*f.total == 5);
    CHECK(Ids(f.matches.begin(), f.matches.end()) ==
          Ids{"medrx0325", "medrx0326", "medrx0329", "medrx0334", "medrx0335"});
  }
  {
    Found f = s.Get("Observation?code=http://loinc.org%7C85354-9&_total=estimate");
    CHECK(f.total.has_value());  // an estimate: any number, but there
    CHECK(f.matches.size() == 3);
  }
  {
    // resolved: f201, f202; inactive: f204; the other nine are active
    Found f = s.Get("Condition?clinical-status=active&_summary=count");
    REQUIRE(f.total);
    CHECK(*f.total == 9);
    CHECK(f.matches.empty());
  }
}

// Composite parameters, the :identifier and :of-type modifiers, _elements
// and _summary=true|text|data, system-level and compartment search, and
// edge cases: computed booleans, example parameters of the package,
// CodeableConcept.text and contained references.
TEST_CASE("corpus: composites, :identifier, :of-type, subsets, searches across types and compartments, edge cases", "[corpus]") {
  Searcher s;
  // composite: code$value
  EXPECT_IDS("Observation?code-value-quantity=http://loinc.org%7C8310-5$gt38", {"f202"});  // 39 Cel; body-temperature 36.5
  // systolic 107 in blood-pressure and blood-pressure-dar; blood-pressure-cancel has no values
  EXPECT_IDS("Observation?component-code-value-quantity=http://loinc.org%7C8480-6$107",
             {"blood-pressure", "blood-pressure-dar"});
  // code | component.code with its own value: only blood-pressure has diastolic 60 (map-sitting's 60 is 8478-0)
  EXPECT_IDS("Observation?combo-code-value-quantity=http://loinc.org%7C8462-4$60", {"blood-pressure"});
  EXPECT_IDS("Observation?code-value-concept=http://loinc.org%7C883-9$http://snomed.info/sct%7C112144000",
             {"bloodgroup", "rhstatus"});  // ABO group, Blood group A
  // :identifier: context.related has an identifier besides its reference
  EXPECT_IDS("DocumentReference?related:identifier=urn:ietf:rfc:3986%7Curn:oid:1.3.6.1.4.1.21367.2005.3.7.2345",
             {"example"});
  // :of-type: MR identifiers with value 12345 (example in 1.2.36..., xcda in 2.16.840...)
  EXPECT_IDS("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203%7CMR%7C12345", {"example", "xcda"});

  // _elements and _summary on Patient/example (it has text, name, gender, birthDate, address, contact)
  auto only = [&](const std::string& query) {
    auto r = s.Raw("/fhir/" + query);
    INFO("GET /fhir/" << query << " -> " << r.status << " " << r.body.substr(0, 600));
    std::set<std::string> members;
    CHECK(r.status == 200);
    if (r.status != 200) return members;
    auto d = r.Json();
    CHECK(Parse(r).matches == Order{"example"});
    for (const auto& e : d["entry"].GetArray())
      if (std::string(e["search"]["mode"].GetString()) == "match")
        for (const auto& m : e["resource"].GetObject()) members.insert(m.name.GetString());
    return members;
  };
  {
    auto m = only("Patient?_id=example&_elements=gender,birthDate");
    CHECK(m.count("gender") == 1);
    CHECK(m.count("birthDate") == 1);
    CHECK(m.count("name") == 0);
    CHECK(m.count("address") == 0);
  }
  {
    auto m = only("Patient?_id=example&_summary=true");  // name is a summary element, contact and text are not
    CHECK(m.count("name") == 1);
    CHECK(m.count("contact") == 0);
    CHECK(m.count("text") == 0);
  }
  {
    auto m = only("Patient?_id=example&_summary=text");  // text, id, meta and mandatory elements only
    CHECK(m.count("text") == 1);
    CHECK(m.count("id") == 1);
    CHECK(m.count("name") == 0);
    CHECK(m.count("gender") == 0);
  }
  {
    auto m = only("Patient?_id=example&_summary=data");  // everything but text
    CHECK(m.count("text") == 0);
    CHECK(m.count("contact") == 1);
  }
  // system-level search: Patient.name and Practitioner.name starting with "van"
  {
    auto r = s.Raw("/fhir?_type=Patient,Practitioner&name=van");
    INFO(r.status << " " << r.body.substr(0, 600));
    CHECK(r.status == 200);
    Ids found;
    auto d = r.status == 200 ? r.Json() : rapidjson::Document();
    if (r.status == 200 && d.HasMember("entry"))
      for (const auto& e : d["entry"].GetArray())
        found.insert(std::string(e["resource"]["resourceType"].GetString()) + "/" + e["resource"]["id"].GetString());
    CHECK(found == Ids{"Patient/f001", "Practitioner/f001", "Practitioner/f006"});
  }
  // compartment search
  EXPECT_IDS("Patient/f201/Observation", {"f202", "f203", "f204", "f205", "f206"});
  EXPECT_IDS("Patient/f201/Condition?clinical-status=active", {"f203", "f205"});  // f201, f202 resolved, f204 inactive

  // Patient.deceased's expression ("deceased.exists() and deceased != false") yields a
  // computed boolean with no node in the resource, indexed as a token. Expected: pat3
  // (deceasedDateTime), pat4 (deceasedBoolean true).
  EXPECT_IDS("Patient?deceased=true", {"pat3", "pat4"});
  // The package's example SearchParameter "example-reference" (code subject, base Condition, target
  // Organization) must not replace the core Condition-subject (targets Group, Patient).
  EXPECT_IDS("Patient?_has:Condition:subject:clinical-status=resolved", {"f201"});  // Conditions f201, f202
  EXPECT_IDS("Condition?subject:Patient=f201", {"f201", "f202", "f203", "f204", "f205"});
  EXPECT_IDS("Condition?subject.name=bor", {"f201", "f202", "f203", "f204", "f205"});  // Group has no name parameter
  // :text matches CodeableConcept.text as well as Coding.display.
  EXPECT_IDS("Condition?code:text=burnt", {"example"});            // text "Burnt Ear", display "Burn of ear"
  EXPECT_IDS("AllergyIntolerance?code:text=nkda", {"nkda"});       // text "NKDA"
  EXPECT_IDS("Patient?language:text=neder", {"f001"});             // text "Nederlands", display "Dutch"
  // A reference to a contained resource is a value: the five Apgar scores, whose subject is
  // "#newborn", are not missing one. Expected: decimal and vp-oyster only.
  EXPECT_IDS("Observation?subject:missing=true", {"decimal", "vp-oyster"});
}
