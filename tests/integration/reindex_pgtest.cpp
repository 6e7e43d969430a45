// Custom SearchParameters: usable for new writes as soon as they are
// stored, for older resources after `eds reindex` or $reindex, and a search
// says when resources have not been reindexed yet.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "support.hpp"

using namespace eds::testing;

namespace {

const char* kBirthPlace = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace";

std::string PatientBornIn(const std::string& city, const std::string& country, const std::string& tag) {
  return std::string(R"({"resourceType":"Patient","meta":{"tag":[{"system":"http://eds.test/tags","code":")") + tag +
         R"("}]},"extension":[{"url":")" + kBirthPlace + R"(","valueAddress":{"city":")" + city +
         R"(","country":")" + country + R"("}}]})";
}

std::string SearchParameter(const std::string& code, const std::string& element, const std::string& status = "active") {
  return R"({"resourceType":"SearchParameter","url":"http://eds.test/SearchParameter/)" + code + R"(","name":")" + code +
         R"(","status":")" + status + R"(","description":"birth place","code":")" + code +
         R"(","base":["Patient"],"type":"string","expression":"Patient.extension.where(url = ')" + kBirthPlace +
         "').value.ofType(Address)." + element + R"("})";
}

struct Found {
  int matches = 0;
  bool incomplete = false;  // an OperationOutcome warns of resources not reindexed
};

Found Count(HttpClient& c, const std::string& target) {
  auto r = c.Get(target);
  INFO(target << " -> " << r.body.substr(0, 600));
  REQUIRE(r.status == 200);
  Found f;
  auto d = r.Json();
  if (d.HasMember("entry"))
    for (const auto& e : d["entry"].GetArray()) {
      std::string mode = e["search"]["mode"].GetString();
      if (mode == "match") ++f.matches;
      if (mode == "outcome" && r.body.find("reindex") != std::string::npos) f.incomplete = true;
    }
  return f;
}

}  // namespace

TEST_CASE("custom SearchParameters, eds reindex and $reindex", "[search]") {
  const std::string dsn = CreateDatabase("eds_reindex_" + UniquePrefix());
  ServerProcess server(dsn, {"--migrate"});
  HttpClient c(server.port());
  const std::string t = "reindex";
  for (int i = 0; i < 12; ++i)
    REQUIRE(c.Post("/fhir/Patient", PatientBornIn(i % 3 == 0 ? "Roma" : "Milano", "IT", t)).status == 201);

  // not a parameter yet: reported, or refused when strict
  CHECK(c.Send("GET", "/fhir/Patient?birth-city=roma", {{"Prefer", "handling=strict"}}).status == 400);
  // one that cannot work is refused on write
  auto bad = c.Post("/fhir/SearchParameter", R"({"resourceType":"SearchParameter","url":"http://eds.test/sp/bad",
      "name":"bad","status":"active","description":"x","code":"bad","base":["Patient"],"type":"string","expression":"Patient.name.("})");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("expression") != std::string::npos);

  REQUIRE(c.Post("/fhir/SearchParameter", SearchParameter("birth-city", "city")).status == 201);
  // a draft is stored but never used
  REQUIRE(c.Post("/fhir/SearchParameter", SearchParameter("birth-draft", "city", "draft")).status == 201);
  CHECK(c.Send("GET", "/fhir/Patient?birth-draft=roma", {{"Prefer", "handling=strict"}}).status == 400);

  // new writes are indexed by it at once; the older ones are not, and the search says so
  REQUIRE(c.Post("/fhir/Patient", PatientBornIn("Roma", "IT", t)).status == 201);
  Found before = Count(c, "/fhir/Patient?birth-city=roma");
  CHECK(before.matches == 1);
  CHECK(before.incomplete);
  // the capability statement lists it
  CHECK(c.Get("/fhir/metadata").body.find("birth-city") != std::string::npos);

  // eds reindex, in its own process while the server keeps serving
  int pid = Spawn({EdsBinary(), "reindex", "--database-url", dsn});
  CHECK(Count(c, "/fhir/Patient?_tag=" + t).matches == 13);
  REQUIRE(WaitExit(pid) == 0);
  Found after = Count(c, "/fhir/Patient?birth-city=roma");
  CHECK(after.matches == 5);  // 4 of the first 12, and the new one
  CHECK_FALSE(after.incomplete);
  CHECK(Count(c, "/fhir/Patient?birth-city=mil").matches == 8);

  // a second parameter, reindexed with the $reindex operation
  REQUIRE(c.Post("/fhir/SearchParameter", SearchParameter("birth-country", "country")).status == 201);
  CHECK(Count(c, "/fhir/Patient?birth-country=it").incomplete);
  auto started = c.Post("/fhir/$reindex", "");
  REQUIRE(started.status == 202);
  std::string status;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto progress = c.Get("/fhir/$reindex");
    REQUIRE(progress.status == 200);
    auto d = progress.Json();
    status = d["parameter"][0]["valueCode"].GetString();
    if (status != "running") {
      INFO(progress.body);
      bool zero_left = progress.body.find(R"("name":"remaining","valueInteger":0)") != std::string::npos;
      CHECK(zero_left);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(status == "idle");
  Found country = Count(c, "/fhir/Patient?birth-country=it");
  CHECK(country.matches == 13);
  CHECK_FALSE(country.incomplete);

  // a server started later loads the custom parameters from the database
  ServerProcess second(dsn);
  HttpClient c2(second.port());
  CHECK(Count(c2, "/fhir/Patient?birth-city=roma").matches == 5);

  // deleting a SearchParameter retires it
  auto list = c.Get("/fhir/SearchParameter?code=birth-country");
  REQUIRE(list.status == 200);
  std::string id = list.Json()["entry"][0]["resource"]["id"].GetString();
  REQUIRE(c.Send("DELETE", "/fhir/SearchParameter/" + id).status < 300);
  CHECK(c.Send("GET", "/fhir/Patient?birth-country=it", {{"Prefer", "handling=strict"}}).status == 400);
}
