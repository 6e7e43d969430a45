// Transaction and batch Bundles over HTTP: atomicity, references between
// entries, processing order, per-entry answers.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <utility>
#include <vector>

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
      "{\"resourceType\":\"Observation\",\"text\":{\"status\":\"generated\",\"div\":\"<div "
      "xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><a href=\\\"urn:uuid:6a1e3c2e-0000-4000-8000-000000000001\\\">Rossi</a> "
      "by <a href='http://example.org/fhir/Practitioner/temp1'>Bianchi</a> "
      "<img src=\\\"urn:uuid:6a1e3c2e-0000-4000-8000-000000000001\\\"/> "
      "<a href=\\\"http://other.example/x\\\">elsewhere</a></div>\"},"
      "\"status\":\"final\",\"code\":{\"text\":\"glucose\"},"
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
  // the narrative's links too
  const std::string div = obs["text"]["div"].GetString();
  INFO(div);
  CHECK(div.find("<a href=\"Patient/" + patient_id + "\">Rossi</a>") != std::string::npos);
  CHECK(div.find("<a href='Practitioner/" + practitioner_id + "'>Bianchi</a>") != std::string::npos);
  CHECK(div.find("<img src=\"Patient/" + patient_id + "\"/>") != std::string::npos);
  CHECK(div.find("<a href=\"http://other.example/x\">elsewhere</a>") != std::string::npos);
  CHECK(div.find("urn:uuid") == std::string::npos);
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
  CHECK(c.Post("/fhir", Bundle("transaction", {Entry("", "GET", "Patient?birthdate=notadate", "")})).status == 400);

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

TEST_CASE("GET entries of a transaction run after its writes and see them", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix();
  REQUIRE(c.Put("/fhir/Patient/" + p + "-old", Patient(p + "-old", "Vecchio")).status == 201);
  REQUIRE(c.Put("/fhir/Patient/" + p + "-old", Patient(p + "-old", "Nuovo")).status == 200);
  const std::string uuid = "urn:uuid:7b2f0c1e-0000-4000-8000-000000000042";  // names an entry of this Bundle only
  const std::string patient = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"http://eds.test/mrn\","
                              "\"value\":\"" + p + "-mrn\"}],\"name\":[{\"family\":\"Gialli\"}]}";
  const std::string observation =
      "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":"
      "\"http://loinc.org\",\"code\":\"2345-7\"}]},\"subject\":{\"reference\":\"" + uuid + "\"}}";
  // the GET entries come first in the Bundle, yet run last
  auto body = Bundle("transaction",
                     {Entry("", "GET", "Patient?identifier=http://eds.test/mrn|" + p + "-mrn", ""),
                      Entry("", "GET", "Observation?subject=" + uuid + "&code=http://loinc.org|2345-7", ""),
                      Entry("", "GET", "Patient/" + p + "-old", ""),
                      Entry("", "GET", "Patient/" + p + "-old/_history/1", ""),
                      Entry("", "GET", "Patient/" + p + "-old/_history", ""),
                      Entry("", "HEAD", "Patient/" + p + "-old", ""),
                      Entry(uuid, "POST", "Patient", patient),
                      Entry("", "POST", "Observation", observation),
                      Entry("", "GET", uuid, "")});
  auto r = c.Post("/fhir", body);
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  REQUIRE(d["entry"].Size() == 9);
  for (const auto& e : d["entry"].GetArray()) CHECK(std::string(e["response"]["status"].GetString()).rfind("20", 0) == 0);
  const std::string patient_id = d["entry"][6]["resource"]["id"].GetString();
  const std::string observation_id = d["entry"][7]["resource"]["id"].GetString();

  const auto& by_identifier = d["entry"][0]["resource"];
  CHECK(std::string(by_identifier["type"].GetString()) == "searchset");
  REQUIRE(by_identifier["entry"].Size() == 1);
  CHECK(std::string(by_identifier["entry"][0]["resource"]["id"].GetString()) == patient_id);

  // the urn:uuid in the search is the Patient the transaction created
  const auto& by_subject = d["entry"][1]["resource"];
  REQUIRE(by_subject["entry"].Size() == 1);
  CHECK(std::string(by_subject["entry"][0]["resource"]["id"].GetString()) == observation_id);
  CHECK(std::string(by_subject["entry"][0]["resource"]["subject"]["reference"].GetString()) == "Patient/" + patient_id);

  CHECK(std::string(d["entry"][2]["resource"]["name"][0]["family"].GetString()) == "Nuovo");
  CHECK(std::string(d["entry"][2]["response"]["etag"].GetString()) == "W/\"2\"");
  CHECK(std::string(d["entry"][3]["resource"]["name"][0]["family"].GetString()) == "Vecchio");
  CHECK(std::string(d["entry"][4]["resource"]["type"].GetString()) == "history");
  CHECK(d["entry"][4]["resource"]["entry"].Size() == 2);
  CHECK_FALSE(d["entry"][5].HasMember("resource"));
  CHECK(std::string(d["entry"][5]["response"]["status"].GetString()) == "200 OK");
  // GET of an entry's fullUrl reads what that entry wrote
  CHECK(std::string(d["entry"][8]["resource"]["id"].GetString()) == patient_id);
}

TEST_CASE("a failing GET entry fails the transaction with its status", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix();
  auto missing = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + p + "-g1", Patient(p + "-g1", "A")),
                                                        Entry("", "GET", "Patient/" + p + "-none", "")}));
  INFO(missing.body);
  CHECK(missing.status == 404);
  CHECK(std::string(missing.Json()["issue"][0]["expression"][0].GetString()) == "Bundle.entry[1]");
  CHECK(c.Get("/fhir/Patient/" + p + "-g1").status == 404);  // rolled back

  auto bad_search = c.Post("/fhir", Bundle("transaction", {Entry("", "PUT", "Patient/" + p + "-g2", Patient(p + "-g2", "A")),
                                                           Entry("", "GET", "Observation?date=yesterday", "")}));
  CHECK(bad_search.status == 400);
  CHECK(bad_search.Json()["resourceType"] == "OperationOutcome");
  CHECK(c.Get("/fhir/Patient/" + p + "-g2").status == 404);

  auto strict = c.Send("POST", "/fhir", {{"Content-Type", "application/fhir+json"}, {"Prefer", "handling=strict"}},
                       Bundle("transaction", {Entry("", "GET", "Patient?frobnicate=1", "")}));
  CHECK(strict.status == 400);
  CHECK(c.Post("/fhir", Bundle("transaction", {Entry("", "GET", "$reindex", "")})).status == 400);
  CHECK(c.Post("/fhir", Bundle("transaction", {Entry("", "GET", "Unicorn?name=x", "")})).status == 404);
  CHECK(c.Post("/fhir", Bundle("transaction", {Entry("", "GET", "", "")})).status == 400);
}

TEST_CASE("GET entries of a batch answer each on its own", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix();
  REQUIRE(c.Put("/fhir/Patient/" + p + "-b", Patient(p + "-b", "Batchini" + p)).status == 201);
  auto body = Bundle("batch", {Entry("", "GET", "Patient/" + p + "-missing", ""),
                               Entry("", "GET", "Patient?family=Batchini" + p, ""),
                               Entry("", "GET", "Observation?date=yesterday", ""),
                               Entry("", "GET", "Patient/" + p + "-b/_history/7", ""),
                               Entry("", "PUT", "Patient/" + p + "-b2", Patient(p + "-b2", "Batchini" + p)),
                               Entry("", "GET", "Patient/" + p + "-b", "")});
  auto r = c.Post("/fhir", body);
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  CHECK(std::string(d["type"].GetString()) == "batch-response");
  REQUIRE(d["entry"].Size() == 6);
  CHECK(std::string(d["entry"][0]["response"]["status"].GetString()) == "404 Not Found");
  CHECK(std::string(d["entry"][0]["response"]["outcome"]["resourceType"].GetString()) == "OperationOutcome");
  CHECK(std::string(d["entry"][1]["response"]["status"].GetString()) == "200 OK");
  CHECK(std::string(d["entry"][1]["resource"]["type"].GetString()) == "searchset");
  CHECK(d["entry"][1]["resource"]["entry"].Size() >= 1);
  CHECK(std::string(d["entry"][2]["response"]["status"].GetString()) == "400 Bad Request");
  CHECK(d["entry"][2]["response"].HasMember("outcome"));
  CHECK(std::string(d["entry"][3]["response"]["status"].GetString()) == "404 Not Found");
  CHECK(std::string(d["entry"][4]["response"]["status"].GetString()) == "201 Created");
  CHECK(std::string(d["entry"][5]["response"]["status"].GetString()) == "200 OK");
  CHECK(std::string(d["entry"][5]["resource"]["id"].GetString()) == p + "-b");
  CHECK(c.Get("/fhir/Patient/" + p + "-b2").status == 200);
}

TEST_CASE("the index rows a transaction writes are searchable at once, and an update's old ones gone",
          "[transaction]") {
  // the rows of a transaction's resources are written together before its
  // commit (and before any search inside it): every index table, new and
  // replaced resources
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix();
  auto count = [&](const std::string& query) {
    auto r = c.Get("/fhir/" + query + (query.find('?') == std::string::npos ? "?" : "&") + "_summary=count");
    INFO(query << " -> " << r.body);
    REQUIRE(r.status == 200);
    return r.Json()["total"].GetInt();
  };
  auto observation = [&](const std::string& id, const std::string& code, const std::string& value,
                         const std::string& date) {
    return "{\"resourceType\":\"Observation\",\"id\":\"" + id + "\",\"status\":\"final\"," +
           "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"" + code + "\"}]}," +
           "\"subject\":{\"reference\":\"Patient/" + p + "-ix\"},\"effectiveDateTime\":\"" + date + "\"," +
           "\"valueQuantity\":{\"value\":" + value + ",\"system\":\"http://unitsofmeasure.org\",\"code\":\"mg/dL\"}}";
  };
  auto first = Bundle(
      "transaction",
      {Entry("", "PUT", "Patient/" + p + "-ix", Patient(p + "-ix", p + "Ixfamily")),
       Entry("", "PUT", "Observation/" + p + "-o1", observation(p + "-o1", p + "-c1", "101", "2021-03-04")),
       Entry("", "PUT", "Observation/" + p + "-o2", observation(p + "-o2", p + "-c2", "202", "2022-05-06")),
       Entry("", "PUT", "ValueSet/" + p + "-vs",
             "{\"resourceType\":\"ValueSet\",\"id\":\"" + p + "-vs\",\"status\":\"draft\",\"url\":\"http://example.org/vs/" +
                 p + "\"}")});
  auto r = c.Post("/fhir", first);
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(count("Patient?family=" + p + "Ixfamily") == 1);                              // string
  CHECK(count("Observation?code=http://loinc.org%7C" + p + "-c1") == 1);                // token
  CHECK(count("Observation?subject=Patient/" + p + "-ix") == 2);                       // reference
  CHECK(count("Observation?subject=Patient/" + p + "-ix&date=2022-05-06") == 1);      // date
  CHECK(count("Observation?subject=Patient/" + p + "-ix&value-quantity=202") == 1);   // quantity
  CHECK(count("ValueSet?url=http://example.org/vs/" + p) == 1);                        // uri

  // the second transaction changes o1's code and date and deletes o2
  auto second = Bundle(
      "transaction",
      {Entry("", "PUT", "Observation/" + p + "-o1", observation(p + "-o1", p + "-c3", "303", "2023-07-08")),
       Entry("", "DELETE", "Observation/" + p + "-o2", "")});
  r = c.Post("/fhir", second);
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(count("Observation?code=http://loinc.org%7C" + p + "-c1") == 0);
  CHECK(count("Observation?code=http://loinc.org%7C" + p + "-c3") == 1);
  CHECK(count("Observation?code=http://loinc.org%7C" + p + "-c2") == 0);
  CHECK(count("Observation?subject=Patient/" + p + "-ix") == 1);
  CHECK(count("Observation?subject=Patient/" + p + "-ix&date=2021-03-04") == 0);
  CHECK(count("Observation?subject=Patient/" + p + "-ix&date=2023-07-08") == 1);
  CHECK(count("Observation?subject=Patient/" + p + "-ix&value-quantity=101") == 0);
  CHECK(count("Observation?subject=Patient/" + p + "-ix&value-quantity=303") == 1);
}

TEST_CASE("a transaction's PUTs create new ids, update existing ones and revive deleted ones", "[transaction]") {
  // the targets of the PUTs are locked with one statement, and the new ones
  // written with the creates in one more
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix() + "-lock";
  REQUIRE(c.Put("/fhir/Patient/" + p + "-old", Patient(p + "-old", "Vecchio")).status == 201);
  REQUIRE(c.Put("/fhir/Patient/" + p + "-gone", Patient(p + "-gone", "Andato")).status == 201);
  REQUIRE(c.Send("DELETE", "/fhir/Patient/" + p + "-gone").status == 200);
  auto body = Bundle("transaction", {Entry("", "PUT", "Patient/" + p + "-new", Patient(p + "-new", p + "Nuovo")),
                                     Entry("", "PUT", "Patient/" + p + "-old", Patient(p + "-old", p + "Rinnovato")),
                                     Entry("", "PUT", "Patient/" + p + "-gone", Patient(p + "-gone", p + "Tornato")),
                                     Entry("urn:uuid:" + std::string("5d0c9b6e-0000-4000-8000-00000000abcd"), "POST",
                                           "Patient", Patient("", p + "Creato"))});
  auto r = c.Post("/fhir", body);
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  auto status = [&](int i) { return std::string(d["entry"][i]["response"]["status"].GetString()); };
  auto etag = [&](int i) { return std::string(d["entry"][i]["response"]["etag"].GetString()); };
  CHECK(status(0) == "201 Created");
  CHECK(etag(0) == "W/\"1\"");
  CHECK(status(1) == "200 OK");
  CHECK(etag(1) == "W/\"2\"");
  CHECK(status(2) == "201 Created");
  CHECK(etag(2) == "W/\"3\"");
  CHECK(status(3) == "201 Created");
  const std::string created = d["entry"][3]["response"]["location"].GetString();
  const std::string created_id = created.substr(created.find("Patient/") + 8, created.find("/_history") -
                                                                                  created.find("Patient/") - 8);
  // what the database holds: current versions, history rows with their methods
  const std::string dsn = TestDsn();
  std::set<std::string> history;
  for (const auto& row : Sql(dsn,
                             "SELECT res_id || ':' || version_id || ':' || method FROM resource_history"
                             " WHERE res_type = 'Patient' AND res_id IN ($1, $2, $3, $4)",
                             {p + "-new", p + "-old", p + "-gone", created_id}))
    history.insert(row[0]);
  CHECK(history == std::set<std::string>{p + "-new:1:PUT", p + "-old:1:PUT", p + "-old:2:PUT", p + "-gone:1:PUT",
                                         p + "-gone:2:DELETE", p + "-gone:3:PUT", created_id + ":1:POST"});
  CHECK(Sql(dsn, "SELECT count(*) FROM resource WHERE res_type = 'Patient' AND res_id IN ($1, $2, $3, $4) AND NOT deleted",
            {p + "-new", p + "-old", p + "-gone", created_id})[0][0] == "4");
  for (const char* family : {"Nuovo", "Rinnovato", "Tornato", "Creato"}) {
    auto s = c.Get("/fhir/Patient?family=" + p + family + "&_summary=count");
    REQUIRE(s.status == 200);
    CHECK(s.Json()["total"].GetInt() == 1);
  }
  CHECK(c.Get("/fhir/Patient?family=Vecchio&_id=" + p + "-old&_summary=count").Json()["total"].GetInt() == 0);
  // the versions the transaction superseded (its updates were written with
  // one statement) read back, and so do the new ones
  for (const auto& [path, family] : std::vector<std::pair<std::string, std::string>>{
           {p + "-old/_history/1", "Vecchio"}, {p + "-old/_history/2", p + "Rinnovato"},
           {p + "-gone/_history/1", "Andato"}, {p + "-gone/_history/3", p + "Tornato"}}) {
    auto v = c.Get("/fhir/Patient/" + path);
    INFO(path << ": " << v.body);
    REQUIRE(v.status == 200);
    CHECK(std::string(v.Json()["name"][0]["family"].GetString()) == family);
  }
  CHECK(c.Get("/fhir/Patient/" + p + "-gone/_history/2").status == 410);
  // the same Bundle again: the PUTs change nothing, the POST creates one more
  auto again = c.Post("/fhir", body);
  REQUIRE(again.status == 200);
  auto a = again.Json();
  for (int i = 0; i < 3; ++i) {
    CHECK(std::string(a["entry"][i]["response"]["status"].GetString()) == "200 OK");
    CHECK(std::string(a["entry"][i]["response"]["etag"].GetString()) == etag(i));
  }
  CHECK(Sql(dsn, "SELECT count(*) FROM resource_history WHERE res_type = 'Patient' AND res_id IN ($1, $2, $3)",
            {p + "-new", p + "-old", p + "-gone"})[0][0] == "6");
}

TEST_CASE("a transaction's DELETE entries: each answered, all or none", "[transaction]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix() + "-dels";
  const std::string dsn = TestDsn();
  for (const char* n : {"a", "b", "c", "d"})
    REQUIRE(c.Put("/fhir/Patient/" + p + n, Patient(p + n, "Delfino")).status == 201);
  REQUIRE(c.Put("/fhir/Patient/" + p + "b", Patient(p + "b", "Delfini")).status == 200);  // version 2
  REQUIRE(c.Send("DELETE", "/fhir/Patient/" + p + "c").status == 200);                    // already deleted
  auto family = [&] {
    auto found = c.Get("/fhir/Patient?name=Delfin&_id=" + p + "a," + p + "b," + p + "c," + p + "d");
    REQUIRE(found.status == 200);
    auto b = found.Json();
    return b.HasMember("entry") ? b["entry"].Size() : 0u;
  };
  REQUIRE(family() == 3);

  // one missing resource: nothing deleted
  auto missing = c.Post("/fhir", Bundle("transaction", {Entry("", "DELETE", "Patient/" + p + "a", ""),
                                                        Entry("", "DELETE", "Patient/" + p + "zz", "")}));
  CHECK(missing.status == 404);
  CHECK(missing.body.find("Bundle.entry[1]") != std::string::npos);
  // a version If-Match does not expect: nothing deleted either
  auto stale = c.Post("/fhir", Bundle("transaction", {Entry("", "DELETE", "Patient/" + p + "a", ""),
                                                      Entry("", "DELETE", "Patient/" + p + "b", "",
                                                            ",\"ifMatch\":\"W/\\\"1\\\"\"")}));
  CHECK(stale.status == 412);
  CHECK(c.Get("/fhir/Patient/" + p + "a").status == 200);
  CHECK(family() == 3);

  auto r = c.Post("/fhir", Bundle("transaction", {Entry("", "DELETE", "Patient/" + p + "b", "",
                                                        ",\"ifMatch\":\"W/\\\"2\\\"\""),
                                                  Entry("", "DELETE", "Patient/" + p + "c", ""),
                                                  Entry("", "DELETE", "Patient/" + p + "a", "")}));
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  REQUIRE(d["entry"].Size() == 3);
  // b's deletion is its version 3, c was deleted already (version 2), a's is version 2
  const char* etags[] = {"W/\"3\"", "W/\"2\"", "W/\"2\""};
  for (rapidjson::SizeType i = 0; i < 3; ++i) {
    CHECK(std::string(d["entry"][i]["response"]["status"].GetString()) == "200 OK");
    CHECK(std::string(d["entry"][i]["response"]["etag"].GetString()) == etags[i]);
  }
  for (const char* n : {"a", "b", "c"}) CHECK(c.Get("/fhir/Patient/" + p + n).status == 410);
  CHECK(c.Get("/fhir/Patient/" + p + "d").status == 200);
  CHECK(c.Get("/fhir/Patient/" + p + "b/_history/2").status == 200);
  CHECK(family() == 1);
  CHECK(Sql(dsn, "SELECT count(*) FROM search_string WHERE res_type = 'Patient' AND res_id = ANY($1::text[])",
            {"{" + p + "a," + p + "b," + p + "c}"})[0][0] == "0");
  CHECK(Sql(dsn, "SELECT count(*) FROM resource_history WHERE res_id = ANY($1::text[]) AND method = 'DELETE'",
            {"{" + p + "a," + p + "b," + p + "c}"})[0][0] == "3");
}
