// Concurrent writers on one resource never lose or duplicate a version.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

TEST_CASE("16 concurrent writers on one id produce versions 1..N without gaps", "[concurrency]") {
  const auto port = SharedServer().port();
  const std::string id = UniquePrefix() + "-race";
  constexpr int kWriters = 16;
  constexpr int kEach = 12;
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t)
    threads.emplace_back([&, t] {
      HttpClient c(port);
      for (int i = 0; i < kEach; ++i) {
        std::string body = "{\"resourceType\":\"Patient\",\"id\":\"" + id +
                           "\",\"name\":[{\"family\":\"w" + std::to_string(t) + "-" +
                           std::to_string(i) + "\"}]}";
        auto r = c.Put("/fhir/Patient/" + id, body);
        (r.status == 200 || r.status == 201 ? ok : failed)++;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(failed == 0);
  CHECK(ok == kWriters * kEach);

  auto rows = Sql(TestDsn(),
                  "SELECT version_id FROM resource_history WHERE res_type = 'Patient' AND res_id = $1 "
                  "ORDER BY version_id",
                  {id});
  REQUIRE(rows.size() == static_cast<std::size_t>(kWriters * kEach));
  for (std::size_t i = 0; i < rows.size(); ++i) CHECK(rows[i][0] == std::to_string(i + 1));
  auto current = Sql(TestDsn(), "SELECT version_id FROM resource WHERE res_type = 'Patient' AND res_id = $1", {id});
  CHECK(current[0][0] == std::to_string(kWriters * kEach));

  // and every write is visible through the API: history holds all versions
  HttpClient c(port);
  auto h = c.Get("/fhir/Patient/" + id + "/_history?_count=1000").Json();
  CHECK(h["entry"].Size() == static_cast<rapidjson::SizeType>(kWriters * kEach));
}

TEST_CASE("concurrent creates of one new id: one creates, the others update", "[concurrency]") {
  const auto port = SharedServer().port();
  const std::string id = UniquePrefix() + "-first";
  std::atomic<int> created{0}, updated{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      HttpClient c(port);
      auto r = c.Put("/fhir/Patient/" + id, "{\"resourceType\":\"Patient\",\"id\":\"" + id +
                                                "\",\"gender\":\"" + (t % 2 ? "male" : "female") +
                                                "\",\"name\":[{\"text\":\"" + std::to_string(t) + "\"}]}");
      (r.status == 201 ? created : r.status == 200 ? updated : other)++;
    });
  for (auto& th : threads) th.join();
  CHECK(created == 1);
  CHECK(updated == 7);
  CHECK(other == 0);
}

TEST_CASE("concurrent transactions PUTting one new id: one creates, the others update", "[concurrency]") {
  const auto port = SharedServer().port();
  const std::string id = UniquePrefix() + "-tx-first";
  std::atomic<int> created{0}, updated{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      HttpClient c(port);
      auto r = c.Post("/fhir", "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"resource\":"
                               "{\"resourceType\":\"Patient\",\"id\":\"" + id + "\",\"name\":[{\"text\":\"" +
                                   std::to_string(t) + "\"}]},\"request\":{\"method\":\"PUT\",\"url\":\"Patient/" +
                                   id + "\"}}]}");
      if (r.status != 200) {
        other++;
        return;
      }
      const std::string status = r.Json()["entry"][0]["response"]["status"].GetString();
      (status == "201 Created" ? created : status == "200 OK" ? updated : other)++;
    });
  for (auto& th : threads) th.join();
  CHECK(created == 1);
  CHECK(updated == 7);
  CHECK(other == 0);
  const auto rows = Sql(TestDsn(), "SELECT count(*), min(version_id), max(version_id) FROM resource_history"
                                   " WHERE res_type = 'Patient' AND res_id = $1", {id});
  CHECK(rows[0] == std::vector<std::string>{"8", "1", "8"});
}

TEST_CASE("transactions and single PUTs of one new id take turns: one creates, the others update", "[concurrency]") {
  const auto port = SharedServer().port();
  constexpr int kRounds = 12, kEach = 3;
  std::atomic<int> created{0}, updated{0}, other{0};
  for (int round = 0; round < kRounds; ++round) {
    const std::string id = UniquePrefix() + "-mixed-" + std::to_string(round);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2 * kEach; ++t)
      threads.emplace_back([&, t] {
        HttpClient c(port);
        const std::string patient = "{\"resourceType\":\"Patient\",\"id\":\"" + id + "\",\"name\":[{\"text\":\"" +
                                    std::to_string(t) + "\"}]}";
        ready++;
        while (ready < 2 * kEach) std::this_thread::yield();
        if (t % 2 == 0) {
          auto r = c.Put("/fhir/Patient/" + id, patient);
          (r.status == 201 ? created : r.status == 200 ? updated : other)++;
          return;
        }
        auto r = c.Post("/fhir", "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"resource\":" +
                                     patient + ",\"request\":{\"method\":\"PUT\",\"url\":\"Patient/" + id + "\"}}]}");
        if (r.status != 200) {
          other++;
          return;
        }
        const std::string status = r.Json()["entry"][0]["response"]["status"].GetString();
        (status == "201 Created" ? created : status == "200 OK" ? updated : other)++;
      });
    for (auto& th : threads) th.join();
    const auto rows = Sql(TestDsn(), "SELECT count(*), min(version_id), max(version_id) FROM resource_history"
                                     " WHERE res_type = 'Patient' AND res_id = $1", {id});
    CHECK(rows[0] == std::vector<std::string>{std::to_string(2 * kEach), "1", std::to_string(2 * kEach)});
  }
  CHECK(created == kRounds);
  CHECK(updated == kRounds * (2 * kEach - 1));
  CHECK(other == 0);
}
