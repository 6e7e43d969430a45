// Search over HTTP on the parameters indexed today (_id, _lastUpdated, _tag,
// _profile, _security, _source): matching, OR/AND, modifiers, paging with
// cursors while writes go on, totals, and how unknown parameters are handled.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>

#include "support.hpp"

using namespace eds::testing;

namespace {

const std::string kTags = "http://eds.test/tags";

std::string Basic(const std::vector<std::string>& tags, const std::string& extra_meta = "") {
  std::string meta = "\"meta\":{\"tag\":[";
  for (std::size_t i = 0; i < tags.size(); ++i)
    meta += (i ? "," : "") + std::string("{\"system\":\"") + kTags + "\",\"code\":\"" + tags[i] + "\"}";
  meta += "]" + extra_meta + "}";
  return "{\"resourceType\":\"Basic\"," + meta + ",\"code\":{\"text\":\"search test\"}}";
}

std::set<std::string> Ids(const rapidjson::Document& bundle) {
  std::set<std::string> ids;
  if (!bundle.HasMember("entry")) return ids;
  for (const auto& e : bundle["entry"].GetArray())
    if (std::string(e["search"]["mode"].GetString()) == "match") ids.insert(e["resource"]["id"].GetString());
  return ids;
}

std::string Link(const rapidjson::Document& d, const std::string& rel) {
  for (const auto& l : d["link"].GetArray())
    if (rel == l["relation"].GetString()) return l["url"].GetString();
  return {};
}

}  // namespace

TEST_CASE("search by tag, profile, source and id", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix() + "-s";
  const std::string a = p + "a", b = p + "b";
  std::vector<std::string> ids;
  auto create = [&](const std::string& body) {
    auto r = c.Post("/fhir/Basic", body);
    REQUIRE(r.status == 201);
    ids.push_back(r.Json()["id"].GetString());
    return ids.back();
  };
  std::string a1 = create(Basic({a}));
  std::string a2 = create(Basic({a}, ",\"profile\":[\"http://eds.test/StructureDefinition/" + p + "\"]"));
  std::string ab = create(Basic({a, b}, ",\"source\":\"http://eds.test/source/" + p + "\""));
  std::string b1 = create(Basic({b}));

  auto search = [&](const std::string& query) {
    auto r = c.Get("/fhir/Basic?" + query);
    INFO(query << " -> " << r.body.substr(0, 500));
    REQUIRE(r.status == 200);
    return r.Json();
  };
  auto tag = [&](const std::string& code) { return kTags + "%7C" + code; };

  auto d = search("_tag=" + tag(a));
  CHECK(std::string(d["type"].GetString()) == "searchset");
  CHECK(Ids(d) == std::set<std::string>{a1, a2, ab});
  CHECK(Link(d, "self").find("_tag=") != std::string::npos);
  CHECK(Ids(search("_tag=" + a)) == std::set<std::string>{a1, a2, ab});                        // code only
  CHECK(Ids(search("_tag=" + tag(a) + "," + tag(b))) == std::set<std::string>{a1, a2, ab, b1});  // OR
  CHECK(Ids(search("_tag=" + tag(a) + "&_tag=" + tag(b))) == std::set<std::string>{ab});         // AND
  CHECK(Ids(search("_tag=" + tag(a) + "&_tag:not=" + tag(b))) == std::set<std::string>{a1, a2});
  CHECK(Ids(search("_tag=http://other%7C" + a)).empty());
  CHECK(Ids(search("_profile=http://eds.test/StructureDefinition/" + p)) == std::set<std::string>{a2});
  CHECK(Ids(search("_source=http://eds.test/source/" + p)) == std::set<std::string>{ab});
  CHECK(Ids(search("_id=" + a1 + "," + b1)) == std::set<std::string>{a1, b1});
  CHECK(Ids(search("_tag=" + tag(b) + "&_profile:missing=true")) == std::set<std::string>{ab, b1});
  CHECK(Ids(search("_tag=" + tag(a) + "&_lastUpdated=ge2000-01-01")) == std::set<std::string>{a1, a2, ab});
  CHECK(Ids(search("_tag=" + tag(a) + "&_lastUpdated=lt2000-01-01")).empty());

  auto total = search("_tag=" + tag(a) + "&_total=accurate");
  CHECK(total["total"].GetInt() == 3);
  auto count = search("_tag=" + tag(a) + "&_summary=count");
  CHECK(count["total"].GetInt() == 3);
  CHECK(Ids(count).empty());

  // POST _search with a form body
  auto form = c.Send("POST", "/fhir/Basic/_search", {{"Content-Type", "application/x-www-form-urlencoded"}},
                     "_tag=" + tag(b));
  REQUIRE(form.status == 200);
  CHECK(Ids(form.Json()) == std::set<std::string>{ab, b1});

  // writes keep the index current: an update drops the old tags, a delete the resource
  REQUIRE(c.Put("/fhir/Basic/" + a1, "{\"resourceType\":\"Basic\",\"id\":\"" + a1 + "\",\"code\":{\"text\":\"x\"}}").status == 200);
  REQUIRE(c.Send("DELETE", "/fhir/Basic/" + a2).status == 200);
  CHECK(Ids(search("_tag=" + tag(a))) == std::set<std::string>{ab});
}

TEST_CASE("search pages with a cursor return every match exactly once while writes go on", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string t = UniquePrefix() + "-page";
  std::set<std::string> created;
  for (int i = 0; i < 7; ++i) {
    auto r = c.Post("/fhir/Basic", Basic({t}));
    REQUIRE(r.status == 201);
    created.insert(r.Json()["id"].GetString());
  }
  for (const std::string sort : {"", "&_sort=-_lastUpdated", "&_sort=_lastUpdated"}) {
    std::set<std::string> seen;
    std::vector<std::string> order;
    std::string next = "/fhir/Basic?_tag=" + t + "&_count=3" + sort;
    int pages = 0;
    while (!next.empty() && pages < 10) {
      auto r = c.Get(next);
      REQUIRE(r.status == 200);
      auto d = r.Json();
      for (const auto& id : Ids(d)) CHECK(seen.insert(id).second);
      if (pages == 0)  // a write between pages
        REQUIRE(c.Post("/fhir/Basic", Basic({t + "-other"})).status == 201);
      std::string link = Link(d, "next");
      next = link.empty() ? "" : link.substr(link.find("/fhir/"));
      ++pages;
    }
    INFO("sort '" << sort << "'");
    CHECK(seen == created);
    CHECK(pages == 3);
  }
  CHECK(c.Get("/fhir/Basic?_tag=" + t + "&_cursor=zzz&_sort=_lastUpdated").status == 400);
}

TEST_CASE("unknown and unsupported search parameters", "[search]") {
  HttpClient c(SharedServer().port());
  auto lenient = c.Get("/fhir/Basic?_tag=" + UniquePrefix() + "-none&frobnicate=1");
  REQUIRE(lenient.status == 200);
  auto d = lenient.Json();
  REQUIRE(d["entry"].Size() == 1);
  CHECK(std::string(d["entry"][0]["search"]["mode"].GetString()) == "outcome");
  CHECK(std::string(d["entry"][0]["resource"]["issue"][0]["expression"][0].GetString()) == "frobnicate");
  CHECK(Link(d, "self").find("frobnicate") == std::string::npos);  // self echoes what was used

  auto strict = c.Send("GET", "/fhir/Basic?frobnicate=1", {{"Prefer", "handling=strict"}});
  CHECK(strict.status == 400);
  CHECK_THAT(strict.body, Catch::Contains("frobnicate"));
  CHECK(c.Get("/fhir/Basic?_lastUpdated=notadate").status == 400);
  CHECK(c.Get("/fhir/Basic?_count=abc").status == 400);
  CHECK(c.Get("/fhir/Unicorn?_id=1").status == 404);
}

TEST_CASE("search on FHIRPath-indexed parameters of every type", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix() + "x";
  auto put = [&](const std::string& type, const std::string& id, const std::string& body) {
    auto r = c.Put("/fhir/" + type + "/" + id, body);
    INFO(r.body);
    REQUIRE((r.status == 201 || r.status == 200));
  };
  const std::string cf = "http://hl7.it/sid/codiceFiscale";
  put("Patient", p + "-mr",
      R"({"resourceType":"Patient","id":")" + p + R"(-mr","identifier":[{"system":")" + cf + R"(","value":")" + p +
          R"(RSSMRA80A01H501U"}],"name":[{"family":"Rossì)" + p + R"(","given":["Mario"]}],"gender":"male","birthDate":"1980-01-01"})");
  put("Patient", p + "-lb",
      R"({"resourceType":"Patient","id":")" + p + R"(-lb","name":[{"family":"Bianchi)" + p + R"(","given":["Laura"]}],"gender":"female","birthDate":"1992-06-15"})");
  auto obs = [&](const std::string& id, const std::string& patient, const std::string& code, const std::string& value,
                 const std::string& date) {
    put("Observation", id,
        R"({"resourceType":"Observation","id":")" + id + R"(","status":"final","code":{"coding":[{"system":"http://loinc.org","code":")" +
            code + R"("}]},"subject":{"reference":"Patient/)" + patient + R"("},"effectiveDateTime":")" + date +
            R"(","valueQuantity":{"value":)" + value + R"(,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}})");
  };
  obs(p + "-o1", p + "-mr", "2345-7", "95", "2023-03-01T10:00:00Z");
  obs(p + "-o2", p + "-mr", "2345-7", "130", "2024-02-01T10:00:00Z");
  obs(p + "-o3", p + "-lb", "718-7", "13.5", "2024-05-01T10:00:00Z");

  auto ids = [&](const std::string& query) {
    auto r = c.Get(query);
    INFO(query << " -> " << r.body.substr(0, 400));
    REQUIRE(r.status == 200);
    auto d = r.Json();
    for (const auto& e : d["entry"].GetArray())
      if (std::string(e["search"]["mode"].GetString()) != "match") FAIL("not indexed: " << r.body.substr(0, 400));
    return Ids(d);
  };
  using S = std::set<std::string>;
  // string: prefix, case- and accent-insensitive; :exact; :contains
  CHECK(ids("/fhir/Patient?family=rossi" + p) == S{p + "-mr"});
  CHECK(ids("/fhir/Patient?family=ROSS") .count(p + "-mr") == 1);
  CHECK(ids("/fhir/Patient?family:exact=Ross%C3%AC" + p) == S{p + "-mr"});
  CHECK(ids("/fhir/Patient?family:exact=rossi" + p).empty());
  CHECK(ids("/fhir/Patient?name:contains=anchi" + p) == S{p + "-lb"});
  CHECK(ids("/fhir/Patient?family=rossi" + p + "&given=mar") == S{p + "-mr"});
  // token: code, system|code, gender OR
  CHECK(ids("/fhir/Patient?identifier=" + cf + "%7C" + p + "RSSMRA80A01H501U") == S{p + "-mr"});
  CHECK(ids("/fhir/Patient?identifier=" + p + "RSSMRA80A01H501U") == S{p + "-mr"});
  CHECK(ids("/fhir/Patient?gender=female&_id=" + p + "-mr," + p + "-lb") == S{p + "-lb"});
  CHECK(ids("/fhir/Patient?gender=female,male&_id=" + p + "-mr," + p + "-lb") == S{p + "-mr", p + "-lb"});
  // date with prefixes
  CHECK(ids("/fhir/Patient?birthdate=1980&_id=" + p + "-mr," + p + "-lb") == S{p + "-mr"});
  CHECK(ids("/fhir/Patient?birthdate=gt1985-01-01&_id=" + p + "-mr," + p + "-lb") == S{p + "-lb"});
  CHECK(ids("/fhir/Observation?subject=Patient/" + p + "-mr&date=ge2024-01-01") == S{p + "-o2"});
  // reference: Type/id, id with type modifier, patient param narrowed to Patient
  CHECK(ids("/fhir/Observation?subject=Patient/" + p + "-mr") == S{p + "-o1", p + "-o2"});
  CHECK(ids("/fhir/Observation?subject:Patient=" + p + "-lb") == S{p + "-o3"});
  CHECK(ids("/fhir/Observation?patient=" + p + "-mr&code=http://loinc.org%7C2345-7") == S{p + "-o1", p + "-o2"});
  // quantity and number-like comparisons
  CHECK(ids("/fhir/Observation?patient=" + p + "-mr&value-quantity=gt100") == S{p + "-o2"});
  CHECK(ids("/fhir/Observation?patient=" + p + "-mr&value-quantity=95%7Chttp://unitsofmeasure.org%7Cmg/dL") == S{p + "-o1"});
  CHECK(ids("/fhir/Observation?patient=" + p + "-lb&value-quantity=13.5") == S{p + "-o3"});
  CHECK(ids("/fhir/Observation?patient=" + p + "-lb&value-quantity=13") .empty());
  // chains and reverse chains
  CHECK(ids("/fhir/Observation?patient.identifier=" + cf + "%7C" + p + "RSSMRA80A01H501U") == S{p + "-o1", p + "-o2"});
  CHECK(ids("/fhir/Observation?subject:Patient.name=bianchi" + p) == S{p + "-o3"});
  CHECK(ids("/fhir/Observation?patient.gender=female&patient.family=bianchi" + p) == S{p + "-o3"});
  CHECK(ids("/fhir/Patient?_has:Observation:patient:code=718-7&_id=" + p + "-mr," + p + "-lb") == S{p + "-lb"});
  CHECK(ids("/fhir/Patient?_has:Observation:subject:value-quantity=gt100&_id=" + p + "-mr," + p + "-lb") ==
        S{p + "-mr"});
  // the FSE app query: by fiscal code and LOINC code, newest first, paged
  {
    auto first = c.Get("/fhir/Observation?patient.identifier=" + cf + "%7C" + p +
                       "RSSMRA80A01H501U&code=http://loinc.org%7C2345-7&_sort=-date&_count=1");
    REQUIRE(first.status == 200);
    auto d1 = first.Json();
    REQUIRE(d1["entry"].Size() == 1);
    CHECK(std::string(d1["entry"][0]["resource"]["id"].GetString()) == p + "-o2");
    std::string next = Link(d1, "next");
    REQUIRE_FALSE(next.empty());
    auto d2 = c.Get(next.substr(next.find("/fhir/"))).Json();
    REQUIRE(d2["entry"].Size() == 1);
    CHECK(std::string(d2["entry"][0]["resource"]["id"].GetString()) == p + "-o1");
    auto asc = c.Get("/fhir/Observation?patient=" + p + "-mr&_sort=date").Json();
    CHECK(std::string(asc["entry"][0]["resource"]["id"].GetString()) == p + "-o1");
    auto by_family = c.Get("/fhir/Patient?_id=" + p + "-mr," + p + "-lb&_sort=family").Json();
    CHECK(std::string(by_family["entry"][0]["resource"]["id"].GetString()) == p + "-lb");
  }
  // sorted by last update, newest first
  auto r = c.Get("/fhir/Observation?patient=" + p + "-mr&_sort=-_lastUpdated");
  auto d = r.Json();
  REQUIRE(d["entry"].Size() == 2);
  CHECK(std::string(d["entry"][0]["resource"]["id"].GetString()) == p + "-o2");
}

TEST_CASE("_include and _revinclude, with :iterate", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix() + "inc";
  auto put = [&](const std::string& type, const std::string& id, const std::string& body) {
    auto r = c.Put("/fhir/" + type + "/" + id, body);
    INFO(r.body);
    REQUIRE((r.status == 201 || r.status == 200));
  };
  put("Patient", p + "-pt", R"({"resourceType":"Patient","id":")" + p + R"(-pt"})");
  put("DiagnosticReport", p + "-dr",
      R"({"resourceType":"DiagnosticReport","id":")" + p + R"(-dr","status":"final","code":{"text":"lab"},"subject":{"reference":"Patient/)" +
          p + R"(-pt"}})");
  put("Composition", p + "-co",
      R"({"resourceType":"Composition","id":")" + p + R"(-co","status":"final","type":{"text":"report"},"date":"2024-01-01","author":[{"display":"lab"}],"title":"t","section":[{"entry":[{"reference":"DiagnosticReport/)" +
          p + R"(-dr"}]}]})");
  put("DocumentReference", p + "-doc",
      R"({"resourceType":"DocumentReference","id":")" + p + R"(-doc","status":"current","content":[{"attachment":{"url":"http://x"}}],"context":{"related":[{"reference":"Composition/)" +
          p + R"(-co"}]}})");

  auto d = c.Get("/fhir/DiagnosticReport?_id=" + p + "-dr&_include=DiagnosticReport:subject"
                 "&_revinclude=Composition:entry&_revinclude:iterate=DocumentReference:related").Json();
  std::map<std::string, std::string> mode;
  for (const auto& e : d["entry"].GetArray())
    mode[std::string(e["resource"]["resourceType"].GetString()) + "/" + e["resource"]["id"].GetString()] =
        e["search"]["mode"].GetString();
  CHECK(mode["DiagnosticReport/" + p + "-dr"] == "match");
  CHECK(mode["Patient/" + p + "-pt"] == "include");
  CHECK(mode["Composition/" + p + "-co"] == "include");
  CHECK(mode["DocumentReference/" + p + "-doc"] == "include");  // reached through :iterate
  CHECK(mode.size() == 4);

  auto no_iterate = c.Get("/fhir/DiagnosticReport?_id=" + p + "-dr&_revinclude=Composition:entry"
                          "&_revinclude=DocumentReference:related").Json();
  CHECK(no_iterate["entry"].Size() == 2);  // the DocumentReference points at the Composition, not the report
}
