// Transaction and batch Bundles over HTTP: atomicity, references between
// entries, processing order, per-entry answers.
#include <catch2/catch.hpp>

#include <string>

#include "support.hpp"

using namespace eds::testing;

namespace {

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

std::string Patient(const std::string& id, const std::string& family) {
  return "{\"resourceType\":\"Patient\"" + (id.empty() ? std::string() : ",\"id\":\"" + id + "\"") +
         ",\"name\":[{\"family\":\"" + family + "\"}]}";
}

}  // namespace

TEST_CASE("a transaction stores every entry and rewrites references between them", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix();
  std::string observation =
      "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"glucose\"},"
      "\"subject\":{\"reference\":\"urn:uuid:6a1e3c2e-0000-4000-8000-000000000001\"},"
      "\"performer\":[{\"reference\":\"http://example.org/fhir/Practitioner/temp1\"}],"
      "\"specimen\":{\"reference\":\"#s1\"},"
      "\"contained\":[{\"resourceType\":\"Specimen\",\"id\":\"s1\",\"subject\":{\"reference\":\"urn:uuid:6a1e3c2e-0000-4000-8000-000000000001\"}}],"
      "\"extension\":[{\"url\":\"http://x\",\"valueReference\":{\"reference\":\"Practitioner/temp1\"}}]}";
  auto body = Bundle("transaction",
                     {Entry("urn:uuid:6a1e3c2e-0000-4000-8000-000000000001", "POST", "Patient", Patient("", "Rossi")),
                      Entry("", "POST", "Observation", observation),
                      Entry("http://example.org/fhir/Practitioner/temp1", "POST", "Practitioner",
                            "{\"resourceType\":\"Practitioner\",\"name\":[{\"family\":\"Bianchi\"}]}"),
                      Entry("", "PUT", "Patient/" + p + "-tx1", Patient(p + "-tx1", "Verdi"))});
  auto r = c.Post("/fhir", body);
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  CHECK(std::string(d["type"].GetString()) == "transaction-response");
  REQUIRE(d["entry"].Size() == 4);
  for (const auto& e : d["entry"].GetArray()) {
    CHECK(std::string(e["response"]["status"].GetString()) == "201 Created");
    CHECK(std::string(e["response"]["location"].GetString()).find("/_history/1") != std::string::npos);
  }
  std::string patient_id = d["entry"][0]["resource"]["id"].GetString();
  std::string practitioner_id = d["entry"][2]["resource"]["id"].GetString();
  CHECK(patient_id != "6a1e3c2e-0000-4000-8000-000000000001");

  std::string obs_location = d["entry"][1]["response"]["location"].GetString();
  auto obs = c.Get("/fhir/" + obs_location.substr(0, obs_location.find("/_history"))).Json();
  CHECK(std::string(obs["subject"]["reference"].GetString()) == "Patient/" + patient_id);
  CHECK(std::string(obs["performer"][0]["reference"].GetString()) == "Practitioner/" + practitioner_id);
  CHECK(std::string(obs["contained"][0]["subject"]["reference"].GetString()) == "Patient/" + patient_id);
  CHECK(std::string(obs["extension"][0]["valueReference"]["reference"].GetString()) == "Practitioner/" + practitioner_id);
  CHECK(c.Get("/fhir/Patient/" + patient_id).status == 200);
  CHECK(c.Get("/fhir/Patient/" + p + "-tx1").status == 200);
}

TEST_CASE("a transaction with a failing entry stores nothing", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix();
  REQUIRE(c.Put("/fhir/Patient/" + p + "-v", Patient(p + "-v", "A")).status == 201);
  auto body = Bundle("transaction", {Entry("", "PUT", "Patient/" + p + "-new", Patient(p + "-new", "B")),
                                     Entry("", "PUT", "Patient/" + p + "-v", Patient(p + "-v", "C"),
                                           ",\"ifMatch\":\"W/\\\"7\\\"\"")});
  auto r = c.Post("/fhir", body);
  CHECK(r.status == 412);
  auto oo = r.Json();
  CHECK(std::string(oo["issue"][0]["expression"][0].GetString()) == "Bundle.entry[1]");
  CHECK(c.Get("/fhir/Patient/" + p + "-new").status == 404);  // rolled back
  CHECK(c.Get("/fhir/Patient/" + p + "-v").Json()["name"][0]["family"] == "A");

  auto missing = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + p + "-n2", Patient(p + "-n2", "B")),
                                                        Entry("", "DELETE", "Patient/" + p + "-nothing", "")}));
  CHECK(missing.status == 404);
  CHECK(c.Get("/fhir/Patient/" + p + "-n2").status == 404);
}

TEST_CASE("transaction input errors name the entry", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix();
  auto dup = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + p + "-d", Patient(p + "-d", "A")),
                                                    Entry("", "DELETE", "Patient/" + p + "-d", "")}));
  CHECK(dup.status == 400);
  CHECK_THAT(dup.body, Catch::Contains("entries 0 and 1"));

  auto invalid = c.Post("/fhir", Bundle("transaction", {Entry("", "POST", "Patient", Patient("", "A")),
                                                        Entry("", "POST", "Patient", "{\"resourceType\":\"Patient\",\"foo\":1}")}));
  CHECK(invalid.status == 400);
  CHECK_THAT(invalid.body, Catch::Contains("Bundle.entry[1].resource.foo"));

  auto mismatch = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + p + "-m", Patient("other", "A"))}));
  CHECK(mismatch.status == 400);
  CHECK_THAT(mismatch.body, Catch::Contains("Bundle.entry[0].resource.id"));

  auto misplaced = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + p + "-i", Patient(p + "-i", "A"),
                                                                ",\"ifNoneExist\":\"identifier=x|1\"")}));
  CHECK(misplaced.status == 400);
  CHECK_THAT(misplaced.body, Catch::Contains("Bundle.entry[0].request.ifNoneExist"));
  CHECK(c.Post("/fhir", Bundle("transaction", {Entry("", "POST", "Patient", Patient("", "A"),
                                                     ",\"ifNoneExist\":\"Observation?identifier=x|1\"")}))
            .status == 400);
  CHECK(c.Post("/fhir", Bundle("transaction", {Entry("", "POST", "Patient", Patient("", "A"),
                                                     ",\"ifNoneExist\":\"frobnicate=1\"")}))
            .status == 400);  // criteria the server does not understand are refused, never widened
  CHECK(c.Post("/fhir", Bundle("transaction", {Entry("", "DELETE", "Patient?_count=1", "")})).status == 400);
  CHECK(c.Post("/fhir", Bundle("transaction", {Entry("", "GET", "Patient?name=x", "")})).status == 501);

  CHECK(c.Post("/fhir", "{\"resourceType\":\"Bundle\",\"type\":\"collection\"}").status == 400);
  CHECK(c.Post("/fhir", "{\"resourceType\":\"Patient\"}").status == 400);
}

TEST_CASE("a batch answers every entry on its own", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix();
  auto body = Bundle("batch", {Entry("", "PUT", "Patient/" + p + "-b1", Patient(p + "-b1", "A")),
                               Entry("", "GET", "Patient/" + p + "-nope", ""),
                               Entry("", "POST", "Patient", Patient("", "B")),
                               Entry("", "POST", "Unicorn", "{\"resourceType\":\"Unicorn\"}")});
  auto r = c.Post("/fhir", body);
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  CHECK(std::string(d["type"].GetString()) == "batch-response");
  REQUIRE(d["entry"].Size() == 4);
  CHECK(std::string(d["entry"][0]["response"]["status"].GetString()) == "201 Created");
  CHECK(std::string(d["entry"][1]["response"]["status"].GetString()) == "404 Not Found");
  CHECK(d["entry"][1]["response"].HasMember("outcome"));
  CHECK(std::string(d["entry"][2]["response"]["status"].GetString()) == "201 Created");
  CHECK(std::string(d["entry"][3]["response"]["status"].GetString()).rfind("4", 0) == 0);
  CHECK(c.Get("/fhir/Patient/" + p + "-b1").status == 200);

  auto minimal = c.Send("POST", "/fhir", {{"Content-Type", "application/fhir+json"}, {"Prefer", "return=minimal"}},
                        Bundle("batch", {Entry("", "GET", "Patient/" + p + "-b1", "")}));
  auto m = minimal.Json();
  CHECK_FALSE(m["entry"][0].HasMember("resource"));
  CHECK(std::string(m["entry"][0]["response"]["etag"].GetString()) == "W/\"1\"");
}
