// Conditional entries (ifNoneExist, PUT/DELETE/PATCH Type?criteria),
// conditional references and PATCH entries in transaction and batch
// Bundles, over HTTP against PostgreSQL.
#include <catch2/catch.hpp>

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

namespace {

const std::string kSys = "http://hl7.it/sid/codiceFiscale";

std::string Entry(const std::string& full_url, const std::string& method, const std::string& url,
                  const std::string& resource, const std::string& extra_request = "") {
  std::string e = "{";
  if (!full_url.empty()) e += "\"fullUrl\":\"" + full_url + "\",";
  if (!resource.empty()) e += "\"resource\":" + resource + ",";
  e += "\"request\":{\"method\":\"" + method + "\",\"url\":\"" + url + "\"" + extra_request + "}}";
  return e;
}

std::string Bundle(const std::string& type, const std::vector<std::string>& entries) {
  std::string b = "{\"resourceType\":\"Bundle\",\"type\":\"" + type + "\",\"entry\":[";
  for (std::size_t i = 0; i < entries.size(); ++i) b += (i ? "," : "") + entries[i];
  return b + "]}";
}

std::string PatientCf(const std::string& cf, const std::string& family, const std::string& id = "") {
  return "{\"resourceType\":\"Patient\"" + (id.empty() ? std::string() : ",\"id\":\"" + id + "\"") +
         ",\"identifier\":[{\"system\":\"" + kSys + "\",\"value\":\"" + cf + "\"}],\"name\":[{\"family\":\"" + family +
         "\"}]}";
}

std::string Observation(const std::string& subject) {
  return "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"glucose\"},"
         "\"subject\":{\"reference\":\"" + subject + "\"}}";
}

std::string ByCf(const std::string& cf) { return "identifier=" + kSys + "|" + cf; }
std::string IfNoneExist(const std::string& cf) { return ",\"ifNoneExist\":\"" + ByCf(cf) + "\""; }

int CountWithCf(HttpClient& c, const std::string& cf) {
  auto d = c.Get("/fhir/Patient?identifier=" + kSys + "%7C" + cf + "&_total=accurate").Json();
  return d["total"].GetInt();
}

std::string Str(const rapidjson::Value& v) { return v.IsString() ? v.GetString() : ""; }

// "Patient/abc/_history/2" -> "abc"
std::string IdOf(const std::string& location) {
  auto first = location.find('/');
  auto second = location.find('/', first + 1);
  return location.substr(first + 1, second - first - 1);
}

// The subject reference of the Observation an entry response points to.
std::string SubjectOf(HttpClient& c, const rapidjson::Value& entry) {
  std::string location = Str(entry["response"]["location"]);
  auto obs = c.Get("/fhir/" + location.substr(0, location.find("/_history"))).Json();
  return Str(obs["subject"]["reference"]);
}

void CheckVersionFields(const rapidjson::Value& response, const std::string& status, const std::string& etag) {
  CHECK(Str(response["status"]) == status);
  CHECK(Str(response["etag"]) == etag);
  CHECK(Str(response["lastModified"]).size() >= 20);
}

}  // namespace

TEST_CASE("transaction: ifNoneExist creates once, and references to its fullUrl follow the match", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string cf = UniquePrefix() + "TXC1";
  const std::string body =
      Bundle("transaction", {Entry("urn:uuid:2f6f0c1e-0000-4000-8000-00000000000a", "POST", "Patient", PatientCf(cf, "Rossi"),
                                   IfNoneExist(cf)),
                             Entry("", "POST", "Observation", Observation("urn:uuid:2f6f0c1e-0000-4000-8000-00000000000a"))});
  auto first = c.Post("/fhir", body);
  INFO(first.body);
  REQUIRE(first.status == 200);
  auto d1 = first.Json();
  CheckVersionFields(d1["entry"][0]["response"], "201 Created", "W/\"1\"");
  const std::string location = Str(d1["entry"][0]["response"]["location"]);
  CHECK(location.rfind("Patient/", 0) == 0);
  CHECK(location.find("/_history/1") != std::string::npos);
  const std::string id = IdOf(location);
  CHECK(SubjectOf(c, d1["entry"][1]) == "Patient/" + id);

  // the same bundle again: no new Patient; the match answers 200 with its location
  auto second = c.Post("/fhir", Bundle("transaction", {Entry("urn:uuid:2f6f0c1e-0000-4000-8000-00000000000a", "POST",
                                                              "Patient", PatientCf(cf, "Other"), IfNoneExist(cf)),
                                                        Entry("", "POST", "Observation",
                                                              Observation("urn:uuid:2f6f0c1e-0000-4000-8000-00000000000a"))}));
  INFO(second.body);
  REQUIRE(second.status == 200);
  auto d2 = second.Json();
  CheckVersionFields(d2["entry"][0]["response"], "200 OK", "W/\"1\"");
  CHECK(Str(d2["entry"][0]["response"]["location"]) == location);
  CHECK(Str(d2["entry"][0]["resource"]["name"][0]["family"]) == "Rossi");  // the existing one, untouched
  CHECK(Str(d2["entry"][1]["response"]["status"]) == "201 Created");
  CHECK(SubjectOf(c, d2["entry"][1]) == "Patient/" + id);
  CHECK(CountWithCf(c, cf) == 1);

  // the criteria may name the type
  auto typed = c.Post("/fhir", Bundle("transaction", {Entry("", "POST", "Patient", PatientCf(cf, "X"),
                                                            ",\"ifNoneExist\":\"Patient?" + ByCf(cf) + "\"")}));
  CHECK(Str(typed.Json()["entry"][0]["response"]["status"]) == "200 OK");
  // two matches: the transaction fails with 412, naming the entry
  REQUIRE(c.Post("/fhir/Patient", PatientCf(cf, "Dup")).status == 201);
  auto ambiguous = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + UniquePrefix() + "-amb",
                                                                PatientCf("z", "Z", UniquePrefix() + "-amb")),
                                                          Entry("", "POST", "Patient", PatientCf(cf, "Third"), IfNoneExist(cf))}));
  CHECK(ambiguous.status == 412);
  CHECK(Str(ambiguous.Json()["issue"][0]["expression"][0]) == "Bundle.entry[1]");
  CHECK(c.Get("/fhir/Patient/" + UniquePrefix() + "-amb").status == 404);
  CHECK(CountWithCf(c, cf) == 2);
}

TEST_CASE("transaction: concurrent identical conditional creates make exactly one resource", "[transaction]") {
  const auto port = SharedServer().port();
  const std::string cf = UniquePrefix() + "TXRACE";
  const std::string bundle =
      Bundle("transaction", {Entry("urn:uuid:7d3b5a10-0000-4000-8000-000000000001", "POST", "Patient", PatientCf(cf, "Race"),
                                   IfNoneExist(cf)),
                             Entry("", "POST", "Observation", Observation("urn:uuid:7d3b5a10-0000-4000-8000-000000000001"))});
  std::atomic<int> created{0}, found{0}, other{0};
  std::mutex mutex;
  std::set<std::string> patient_ids, observation_locations;
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t)
    threads.emplace_back([&, t] {
      HttpClient c(port);
      if (t % 3 == 2) {  // single conditional creates take the same lock
        auto r = c.Post("/fhir/Patient", PatientCf(cf, "Race"), {{"If-None-Exist", ByCf(cf)}});
        (r.status == 201 ? created : r.status == 200 ? found : other)++;
        if (r.status == 200 || r.status == 201) {
          std::lock_guard lock(mutex);
          patient_ids.insert(Str(r.Json()["id"]));
        }
        return;
      }
      auto r = c.Post("/fhir", bundle);
      if (r.status != 200) {
        other++;
        return;
      }
      auto d = r.Json();
      std::string status = Str(d["entry"][0]["response"]["status"]);
      (status == "201 Created" ? created : status == "200 OK" ? found : other)++;
      std::lock_guard lock(mutex);
      patient_ids.insert(IdOf(Str(d["entry"][0]["response"]["location"])));
      observation_locations.insert(Str(d["entry"][1]["response"]["location"]));
    });
  for (auto& th : threads) th.join();
  CHECK(created == 1);
  CHECK(found == 11);
  CHECK(other == 0);
  CHECK(patient_ids.size() == 1);
  HttpClient c(port);
  CHECK(CountWithCf(c, cf) == 1);
  CHECK(observation_locations.size() == 8);
  for (const auto& loc : observation_locations) {
    auto obs = c.Get("/fhir/" + loc.substr(0, loc.find("/_history"))).Json();
    CHECK(Str(obs["subject"]["reference"]) == "Patient/" + *patient_ids.begin());
  }
}

TEST_CASE("transaction: two conditional creates per Bundle race single ones and each makes one resource",
          "[transaction]") {
  const auto port = SharedServer().port();
  const std::string cf = UniquePrefix() + "TXRACE2";
  const std::string org_sys = "urn:test:org";
  const std::string org = "{\"resourceType\":\"Organization\",\"identifier\":[{\"system\":\"" + org_sys +
                          "\",\"value\":\"" + cf + "\"}],\"name\":\"Lab\"}";
  const std::string org_criteria = "identifier=" + org_sys + "|" + cf;
  // the Organization's criteria sort before the Patient's: the locks are
  // taken in one order whatever the Bundle's
  const std::string bundle = Bundle(
      "transaction",
      {Entry("urn:uuid:7d3b5a10-0000-4000-8000-000000000002", "POST", "Patient", PatientCf(cf, "Race"), IfNoneExist(cf)),
       Entry("urn:uuid:7d3b5a10-0000-4000-8000-000000000003", "POST", "Organization", org,
             ",\"ifNoneExist\":\"" + org_criteria + "\""),
       Entry("", "POST", "Observation", Observation("urn:uuid:7d3b5a10-0000-4000-8000-000000000002"))});
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t)
    threads.emplace_back([&, t] {
      HttpClient c(port);
      if (t % 4 == 1) {
        auto r = c.Post("/fhir/Patient", PatientCf(cf, "Race"), {{"If-None-Exist", ByCf(cf)}});
        if (r.status != 200 && r.status != 201) other++;
        return;
      }
      if (t % 4 == 3) {
        auto r = c.Post("/fhir/Organization", org, {{"If-None-Exist", org_criteria}});
        if (r.status != 200 && r.status != 201) other++;
        return;
      }
      auto r = c.Post("/fhir", bundle);
      if (r.status != 200) other++;
    });
  for (auto& th : threads) th.join();
  CHECK(other == 0);
  HttpClient c(port);
  CHECK(CountWithCf(c, cf) == 1);
  CHECK(c.Get("/fhir/Organization?identifier=" + org_sys + "%7C" + cf + "&_total=accurate").Json()["total"].GetInt() ==
        1);
  CHECK(c.Get("/fhir/Observation?subject.identifier=" + kSys + "%7C" + cf + "&_total=accurate")
            .Json()["total"]
            .GetInt() == 6);
}

TEST_CASE("transaction: conditional update and delete entries", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string cf = UniquePrefix() + "TXC2";
  const std::string by_cf = "Patient?" + ByCf(cf);
  // no match: the update creates
  auto created = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", by_cf, PatientCf(cf, "Verdi"))}));
  INFO(created.body);
  REQUIRE(created.status == 200);
  auto e0 = created.Json();
  CheckVersionFields(e0["entry"][0]["response"], "201 Created", "W/\"1\"");
  const std::string id = IdOf(Str(e0["entry"][0]["response"]["location"]));
  // one match: updated in place, wherever a fullUrl reference to it points
  auto updated = c.Post("/fhir", Bundle("transaction", {Entry("urn:uuid:11111111-0000-4000-8000-000000000002", "PUT", by_cf,
                                                              PatientCf(cf, "Neri")),
                                                        Entry("", "POST", "Observation",
                                                              Observation("urn:uuid:11111111-0000-4000-8000-000000000002"))}));
  REQUIRE(updated.status == 200);
  auto e1 = updated.Json();
  CheckVersionFields(e1["entry"][0]["response"], "200 OK", "W/\"2\"");
  CHECK(Str(e1["entry"][0]["response"]["location"]) == "Patient/" + id + "/_history/2");
  CHECK(SubjectOf(c, e1["entry"][1]) == "Patient/" + id);
  CHECK(c.Get("/fhir/Patient/" + id).Json()["name"][0]["family"] == "Neri");
  // a body id other than the match's
  auto other_id = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", by_cf, PatientCf(cf, "X", "another-id"))}));
  CHECK(other_id.status == 400);
  CHECK(Str(other_id.Json()["issue"][0]["expression"][0]) == "Bundle.entry[0].resource.id");

  // delete by criteria: one match deleted; none is fine
  auto deleted = c.Post("/fhir", Bundle("transaction", {Entry("", "DELETE", by_cf, "")}));
  REQUIRE(deleted.status == 200);
  CheckVersionFields(deleted.Json()["entry"][0]["response"], "200 OK", "W/\"3\"");
  CHECK(c.Get("/fhir/Patient/" + id).status == 410);
  auto nothing = c.Post("/fhir", Bundle("transaction", {Entry("", "DELETE", by_cf, "")}));
  REQUIRE(nothing.status == 200);
  auto n = nothing.Json();
  CHECK(Str(n["entry"][0]["response"]["status"]) == "204 No Content");
  CHECK_FALSE(n["entry"][0]["response"].HasMember("etag"));

  // several matches: 412 for update and delete, nothing written
  REQUIRE(c.Post("/fhir/Patient", PatientCf(cf, "A")).status == 201);
  REQUIRE(c.Post("/fhir/Patient", PatientCf(cf, "B")).status == 201);
  const std::string side = UniquePrefix() + "-side";
  for (const char* method : {"PUT", "DELETE"}) {
    auto r = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + side, PatientCf("s", "S", side)),
                                                    Entry("", method, by_cf, std::string(method) == "PUT" ? PatientCf(cf, "C") : "")}));
    CHECK(r.status == 412);
    CHECK(Str(r.Json()["issue"][0]["expression"][0]) == "Bundle.entry[1]");
    CHECK(c.Get("/fhir/Patient/" + side).status == 404);
  }
  CHECK(CountWithCf(c, cf) == 2);
}

TEST_CASE("transaction: two entries resolving to one resource are refused, naming both", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string cf = UniquePrefix() + "TXC3";
  const std::string id = UniquePrefix() + "-same";
  REQUIRE(c.Put("/fhir/Patient/" + id, PatientCf(cf, "Uno", id)).status == 201);

  auto two_puts = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + id, PatientCf(cf, "A", id)),
                                                         Entry("", "PUT", "Patient/" + id, PatientCf(cf, "B", id))}));
  CHECK(two_puts.status == 400);
  CHECK_THAT(two_puts.body, Catch::Contains("entries 0 and 1 both write Patient/" + id));

  auto conditional_and_plain =
      c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + id, PatientCf(cf, "A", id)),
                                             Entry("", "PUT", "Patient?" + ByCf(cf), PatientCf(cf, "B"))}));
  CHECK(conditional_and_plain.status == 400);
  CHECK_THAT(conditional_and_plain.body, Catch::Contains("entries 0 and 1 both write Patient/" + id));

  auto create_and_delete = c.Post(
      "/fhir", Bundle("transaction", {Entry("", "POST", "Patient", PatientCf(cf, "C"), IfNoneExist(cf)),
                                      Entry("", "DELETE", "Patient/" + id, "")}));
  CHECK(create_and_delete.status == 400);
  CHECK_THAT(create_and_delete.body, Catch::Contains("both write Patient/" + id));

  auto two_conditionals =
      c.Post("/fhir", Bundle("transaction", {Entry("", "PATCH", "Patient?" + ByCf(cf),
                                                   "{\"resourceType\":\"Binary\",\"contentType\":\"application/json-patch+json\","
                                                   "\"data\":\"W3sib3AiOiJhZGQiLCJwYXRoIjoiL2FjdGl2ZSIsInZhbHVlIjp0cnVlfV0=\"}"),
                                             Entry("", "DELETE", "Patient?" + ByCf(cf), "")}));
  CHECK(two_conditionals.status == 400);
  CHECK_THAT(two_conditionals.body, Catch::Contains("both write Patient/" + id));
  CHECK(c.Get("/fhir/Patient/" + id).Header("etag") == "W/\"1\"");  // nothing written
}

TEST_CASE("transaction: conditional references are resolved by search", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string cf = UniquePrefix() + "TXC4";
  const std::string id = UniquePrefix() + "-refd";
  REQUIRE(c.Put("/fhir/Patient/" + id, PatientCf(cf, "Ref", id)).status == 201);
  const std::string ref = "Patient?" + ByCf(cf);

  auto r = c.Post("/fhir", Bundle("transaction", {Entry("", "POST", "Observation", Observation(ref)),
                                                  Entry("", "PUT", "Observation/" + UniquePrefix() + "-o2",
                                                        "{\"resourceType\":\"Observation\",\"id\":\"" + UniquePrefix() +
                                                            "-o2\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                                                            "\"subject\":{\"reference\":\"" + ref + "\"},"
                                                            "\"performer\":[{\"reference\":\"" + ref + "\"}]}")}));
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  CHECK(SubjectOf(c, d["entry"][0]) == "Patient/" + id);
  auto o2 = c.Get("/fhir/Observation/" + UniquePrefix() + "-o2").Json();
  CHECK(Str(o2["subject"]["reference"]) == "Patient/" + id);
  CHECK(Str(o2["performer"][0]["reference"]) == "Patient/" + id);
  // the index follows the resolved reference
  auto found = c.Get("/fhir/Observation?subject=Patient/" + id + "&_total=accurate").Json();
  CHECK(found["total"].GetInt() == 2);

  const std::string side = UniquePrefix() + "-refside";
  auto none = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + side, PatientCf("s", "S", side)),
                                                     Entry("", "POST", "Observation", Observation("Patient?" + ByCf(cf + "-nobody")))}));
  CHECK(none.status == 404);
  auto oo = none.Json();
  CHECK(Str(oo["issue"][0]["expression"][0]) == "Bundle.entry[1].resource");
  CHECK_THAT(Str(oo["issue"][0]["diagnostics"]), Catch::Contains("matches no Patient"));
  CHECK(c.Get("/fhir/Patient/" + side).status == 404);

  auto bad = c.Post("/fhir", Bundle("transaction", {Entry("", "POST", "Observation", Observation("Patient?frobnicate=1"))}));
  CHECK(bad.status == 400);
  CHECK(Str(bad.Json()["issue"][0]["expression"][0]) == "Bundle.entry[0].resource");

  REQUIRE(c.Post("/fhir/Patient", PatientCf(cf, "Twin")).status == 201);
  auto ambiguous = c.Post("/fhir", Bundle("transaction", {Entry("", "POST", "Observation", Observation(ref))}));
  CHECK(ambiguous.status == 412);
  CHECK_THAT(ambiguous.body, Catch::Contains("matches more than one Patient"));

  // only transactions resolve them; a batch refuses that entry alone
  auto batch = c.Post("/fhir", Bundle("batch", {Entry("", "POST", "Observation", Observation(ref)),
                                                Entry("", "PUT", "Patient/" + side, PatientCf("s", "S", side))}));
  REQUIRE(batch.status == 200);
  auto b = batch.Json();
  CHECK(Str(b["entry"][0]["response"]["status"]) == "400 Bad Request");
  CHECK(Str(b["entry"][1]["response"]["status"]) == "201 Created");
}

TEST_CASE("batch: conditional entries each answer on their own", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string two = UniquePrefix() + "TXB2";
  const std::string fresh = UniquePrefix() + "TXBF";
  REQUIRE(c.Post("/fhir/Patient", PatientCf(two, "A")).status == 201);
  REQUIRE(c.Post("/fhir/Patient", PatientCf(two, "B")).status == 201);
  const std::string add_active =
      "{\"resourceType\":\"Binary\",\"contentType\":\"application/json-patch+json\","
      "\"data\":\"W3sib3AiOiJhZGQiLCJwYXRoIjoiL2FjdGl2ZSIsInZhbHVlIjp0cnVlfV0=\"}";
  // processed DELETE, POST, PUT/PATCH: the conditional PATCH finds what the POST created
  auto r = c.Post("/fhir", Bundle("batch", {Entry("", "PATCH", "Patient?" + ByCf(fresh), add_active),
                                            Entry("", "PUT", "Patient?" + ByCf(two), PatientCf(two, "C")),
                                            Entry("", "DELETE", "Patient?" + ByCf(fresh + "-none"), ""),
                                            Entry("", "POST", "Patient", PatientCf(fresh, "New"), IfNoneExist(fresh))}));
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  CheckVersionFields(d["entry"][0]["response"], "200 OK", "W/\"2\"");
  CHECK(Str(d["entry"][1]["response"]["status"]) == "412 Precondition Failed");
  CHECK(d["entry"][1]["response"].HasMember("outcome"));
  CHECK(Str(d["entry"][2]["response"]["status"]) == "204 No Content");
  CheckVersionFields(d["entry"][3]["response"], "201 Created", "W/\"1\"");
  const std::string id = IdOf(Str(d["entry"][3]["response"]["location"]));
  CHECK(Str(d["entry"][0]["response"]["location"]) == "Patient/" + id + "/_history/2");
  CHECK(c.Get("/fhir/Patient/" + id).Json()["active"].GetBool());
  CHECK(CountWithCf(c, two) == 2);
}

TEST_CASE("transaction: PATCH entries, with references to other entries", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-tpatch";
  const std::string cf = UniquePrefix() + "TXP";
  REQUIRE(c.Put("/fhir/Patient/" + id, PatientCf(cf, "Patched", id)).status == 201);
  const std::string add_gp =
      "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"operation\",\"part\":["
      "{\"name\":\"type\",\"valueCode\":\"add\"},{\"name\":\"path\",\"valueString\":\"Patient\"},"
      "{\"name\":\"name\",\"valueString\":\"generalPractitioner\"},"
      "{\"name\":\"value\",\"valueReference\":{\"reference\":\"urn:uuid:33333333-0000-4000-8000-000000000003\"}}]}]}";
  auto r = c.Post("/fhir", Bundle("transaction", {Entry("", "PATCH", "Patient/" + id, add_gp),
                                                  Entry("urn:uuid:33333333-0000-4000-8000-000000000003", "POST", "Practitioner",
                                                        "{\"resourceType\":\"Practitioner\",\"name\":[{\"family\":\"Gp\"}]}")}));
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  CheckVersionFields(d["entry"][0]["response"], "200 OK", "W/\"2\"");
  CHECK(Str(d["entry"][0]["response"]["location"]) == "Patient/" + id + "/_history/2");
  const std::string practitioner = IdOf(Str(d["entry"][1]["response"]["location"]));
  auto p = c.Get("/fhir/Patient/" + id).Json();
  CHECK(Str(p["generalPractitioner"][0]["reference"]) == "Practitioner/" + practitioner);

  // a conditional PATCH; then one that does not apply rolls the whole back
  const std::string set_family =
      "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"operation\",\"part\":["
      "{\"name\":\"type\",\"valueCode\":\"replace\"},{\"name\":\"path\",\"valueString\":\"Patient.name.family\"},"
      "{\"name\":\"value\",\"valueString\":\"Changed\"}]}]}";
  auto cond = c.Post("/fhir", Bundle("transaction", {Entry("", "PATCH", "Patient?" + ByCf(cf), set_family, ",\"ifMatch\":\"W/\\\"2\\\"\"")}));
  REQUIRE(cond.status == 200);
  CheckVersionFields(cond.Json()["entry"][0]["response"], "200 OK", "W/\"3\"");
  const std::string side = UniquePrefix() + "-pside";
  const std::string bad_patch =
      "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"operation\",\"part\":["
      "{\"name\":\"type\",\"valueCode\":\"replace\"},{\"name\":\"path\",\"valueString\":\"Patient.birthDate\"},"
      "{\"name\":\"value\",\"valueDate\":\"2000\"}]}]}";
  auto failed = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + side, PatientCf("s", "S", side)),
                                                       Entry("", "PATCH", "Patient/" + id, bad_patch)}));
  CHECK(failed.status == 422);
  CHECK(c.Get("/fhir/Patient/" + side).status == 404);
  auto stale = c.Post("/fhir", Bundle("transaction", {Entry("", "PATCH", "Patient/" + id, set_family, ",\"ifMatch\":\"W/\\\"1\\\"\"")}));
  CHECK(stale.status == 412);
  CHECK(c.Get("/fhir/Patient/" + id).Header("etag") == "W/\"3\"");
}

TEST_CASE("transaction: conditional PUTs that change nothing do not wait for each other", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string cf = UniquePrefix() + "-shared";
  auto document = [&](const std::string& family) {
    return Bundle("transaction", {Entry("urn:uuid:0b6c6d1e-0000-4000-8000-00000000000a", "PUT", "Patient?" + ByCf(cf),
                                        PatientCf(cf, family)),
                                  Entry("", "POST", "Observation",
                                        Observation("urn:uuid:0b6c6d1e-0000-4000-8000-00000000000a"))});
  };
  auto first = c.Post("/fhir", document("Rossi"));
  INFO(first.body);
  REQUIRE(first.status == 200);
  const std::string id = IdOf(Str(first.Json()["entry"][0]["response"]["location"]));

  // (declared before the holder: should a check fail, the holder's
  // transaction ends first and the requests waiting for it return)
  std::future<Reply> same, found, changed;
  // another transaction holds the Patient's row, as a document being
  // written with it would
  pqxx::connection holder(TestDsn());
  pqxx::work held(holder);
  held.exec_params("SELECT 1 FROM resource WHERE res_type = 'Patient' AND res_id = $1 FOR UPDATE", id);
  // and the lock of the criteria, as a transaction writing through them would
  // (lock space "EDSC", the type and the criteria in canonical form)
  held.exec_params("SELECT pg_advisory_xact_lock(1162105667, hashtext($1))", "Patient?" + ByCf(cf));

  // the same Patient again: nothing to write, no wait
  same = std::async(std::launch::async, [&] {
    HttpClient own(SharedServer().port());
    return own.Post("/fhir", document("Rossi"));
  });
  REQUIRE(same.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto r = same.get();
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  CheckVersionFields(d["entry"][0]["response"], "200 OK", "W/\"1\"");
  CHECK(SubjectOf(c, d["entry"][1]) == "Patient/" + id);

  // a conditional create that finds the Patient does not wait either
  found = std::async(std::launch::async, [&] {
    HttpClient own(SharedServer().port());
    return own.Post("/fhir", Bundle("transaction", {Entry("urn:uuid:0b6c6d1e-0000-4000-8000-00000000000b", "POST",
                                                          "Patient", PatientCf(cf, "Verdi"), IfNoneExist(cf)),
                                                    Entry("", "POST", "Observation",
                                                          Observation("urn:uuid:0b6c6d1e-0000-4000-8000-00000000000b"))}));
  });
  REQUIRE(found.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto f = found.get();
  INFO(f.body);
  REQUIRE(f.status == 200);
  d = f.Json();
  CHECK(Str(d["entry"][0]["response"]["status"]) == "200 OK");
  CHECK(SubjectOf(c, d["entry"][1]) == "Patient/" + id);

  // a changed Patient waits for the locks, then writes version 2
  changed = std::async(std::launch::async, [&] {
    HttpClient own(SharedServer().port());
    return own.Post("/fhir", document("Rossi Bianchi"));
  });
  CHECK(changed.wait_for(std::chrono::milliseconds(700)) == std::future_status::timeout);
  held.commit();
  REQUIRE(changed.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto w = changed.get();
  INFO(w.body);
  REQUIRE(w.status == 200);
  d = w.Json();
  CheckVersionFields(d["entry"][0]["response"], "200 OK", "W/\"2\"");
  CHECK(SubjectOf(c, d["entry"][1]) == "Patient/" + id);
  CHECK(CountWithCf(c, cf) == 1);
  CHECK(Str(c.Get("/fhir/Patient/" + id).Json()["name"][0]["family"]) == "Rossi Bianchi");
}
