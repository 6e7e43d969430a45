// The server rides out a database restart: requests during the outage get
// 503 (never 500, never a crash), and service comes back by itself.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "support.hpp"

using namespace eds::testing;

namespace {

int RestartDatabase() {
  const char* script = std::getenv("EDS_PG_FIXTURE");
  const char* dsn_file = std::getenv("EDS_TEST_DSN_FILE");
  if (script == nullptr || dsn_file == nullptr) FAIL("EDS_PG_FIXTURE / EDS_TEST_DSN_FILE not set: run through ctest");
  std::string state_dir(dsn_file);
  state_dir.resize(state_dir.rfind('/'));
  return WaitExit(Spawn({"/bin/bash", script, "restart", state_dir}));
}

}  // namespace

TEST_CASE("a database restart costs at most a few 503s, then service resumes", "[resilience]") {
  ServerProcess server(TestDsn(), {"--migrate", "--pool-size", "4"});
  const std::string id = UniquePrefix() + "-res";
  const std::string url = "/fhir/Patient/" + id;
  {
    HttpClient c(server.port());
    REQUIRE(c.Put(url, "{\"resourceType\":\"Patient\",\"id\":\"" + id + "\",\"active\":true}").status == 201);
    for (int i = 0; i < 20; ++i) REQUIRE(c.Get(url).status == 200);  // every connection has been used
    // and has prepared the search's statement
    for (int i = 0; i < 20; ++i) REQUIRE(c.Get("/fhir/Patient?_id=" + id).status == 200);
  }
  REQUIRE(RestartDatabase() == 0);

  // Right after the restart every pooled connection is dead: each is
  // replaced on first use, so the requests succeed or, at worst, get 503.
  int ok = 0, unavailable = 0, other = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int consecutive_ok = 0;
  while (consecutive_ok < 30 && std::chrono::steady_clock::now() < deadline) {
    HttpClient c(server.port());
    auto r = c.Get(url);
    if (r.status == 200) {
      ++ok;
      ++consecutive_ok;
    } else {
      consecutive_ok = 0;
      (r.status == 503 ? unavailable : other)++;
      INFO(r.status << " " << r.body);
      CHECK(r.status == 503);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  CHECK(consecutive_ok >= 30);
  CHECK(other == 0);
  WARN("after the restart: " << ok << " reads answered, " << unavailable << " answered 503");
  HttpClient c(server.port());
  auto w = c.Put(url, "{\"resourceType\":\"Patient\",\"id\":\"" + id + "\",\"active\":false}");
  CHECK(w.status == 200);
  CHECK(c.Get(url).Json()["active"].GetBool() == false);
  // the reopened connections prepare the search again
  for (int i = 0; i < 20; ++i) {
    auto found = c.Get("/fhir/Patient?_id=" + id);
    REQUIRE(found.status == 200);
    CHECK(found.Json()["entry"].Size() == 1);
  }
  CHECK(server.Running());
}
