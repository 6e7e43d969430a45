// Conditional create, update and delete: search criteria pick the target,
// and identical concurrent requests never create twice.
#include <catch2/catch.hpp>

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

namespace {

const std::string kSys = "http://hl7.it/sid/codiceFiscale";

std::string PatientWithCf(const std::string& cf, const std::string& family, const std::string& id = "") {
  return "{\"resourceType\":\"Patient\"" + (id.empty() ? std::string() : ",\"id\":\"" + id + "\"") +
         ",\"identifier\":[{\"system\":\"" + kSys + "\",\"value\":\"" + cf + "\"}],\"name\":[{\"family\":\"" + family +
         "\"}]}";
}

int CountWithCf(HttpClient& c, const std::string& cf) {
  auto d = c.Get("/fhir/Patient?identifier=" + kSys + "%7C" + cf + "&_total=accurate").Json();
  return d["total"].GetInt();
}

}  // namespace

TEST_CASE("conditional create: If-None-Exist", "[conditional]") {
  HttpClient c(SharedServer().port());
  const std::string cf = UniquePrefix() + "CF1";
  const std::pair<std::string, std::string> ine{"If-None-Exist", "identifier=" + kSys + "|" + cf};
  auto first = c.Post("/fhir/Patient", PatientWithCf(cf, "Rossi"), {ine});
  REQUIRE(first.status == 201);
  std::string id = first.Json()["id"].GetString();
  auto second = c.Post("/fhir/Patient", PatientWithCf(cf, "Other"), {ine});
  CHECK(second.status == 200);
  CHECK(std::string(second.Json()["id"].GetString()) == id);
  CHECK(second.Json()["name"][0]["family"] == "Rossi");  // the existing one, untouched
  CHECK(CountWithCf(c, cf) == 1);

  // two matches: 412
  REQUIRE(c.Post("/fhir/Patient", PatientWithCf(cf, "Dup")).status == 201);
  CHECK(c.Post("/fhir/Patient", PatientWithCf(cf, "Third"), {ine}).status == 412);
  // criteria the server does not understand are refused, never widened
  CHECK(c.Post("/fhir/Patient", PatientWithCf(cf, "X"), {{"If-None-Exist", "frobnicate=1"}}).status == 400);
}

TEST_CASE("16 identical concurrent conditional creates make exactly one resource", "[conditional]") {
  const auto port = SharedServer().port();
  const std::string cf = UniquePrefix() + "RACE";
  std::atomic<int> created{0}, found{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&] {
      HttpClient c(port);
      auto r = c.Post("/fhir/Patient", PatientWithCf(cf, "Race"), {{"If-None-Exist", "identifier=" + kSys + "|" + cf}});
      (r.status == 201 ? created : r.status == 200 ? found : other)++;
    });
  for (auto& th : threads) th.join();
  CHECK(created == 1);
  CHECK(found == 15);
  CHECK(other == 0);
  HttpClient c(port);
  CHECK(CountWithCf(c, cf) == 1);
}

TEST_CASE("conditional update and delete", "[conditional]") {
  HttpClient c(SharedServer().port());
  const std::string cf = UniquePrefix() + "CF2";
  const std::string criteria = "/fhir/Patient?identifier=" + kSys + "%7C" + cf;
  // no match: creates
  auto created = c.Put(criteria, PatientWithCf(cf, "Verdi"));
  REQUIRE(created.status == 201);
  std::string id = created.Json()["id"].GetString();
  // one match: updates it
  auto updated = c.Put(criteria, PatientWithCf(cf, "Neri"));
  CHECK(updated.status == 200);
  CHECK(updated.Header("etag") == "W/\"2\"");
  CHECK(std::string(updated.Json()["id"].GetString()) == id);
  CHECK(c.Put(criteria, PatientWithCf(cf, "Neri", "another-id")).status == 400);
  CHECK(c.Put("/fhir/Patient", PatientWithCf(cf, "X")).status == 400);  // no criteria
  // delete by criteria
  auto deleted = c.Send("DELETE", criteria);
  CHECK(deleted.status == 200);
  CHECK(c.Get("/fhir/Patient/" + id).status == 410);
  CHECK(c.Send("DELETE", criteria).status == 404);
  // several matches: 412, nothing changed
  REQUIRE(c.Post("/fhir/Patient", PatientWithCf(cf, "A")).status == 201);
  REQUIRE(c.Post("/fhir/Patient", PatientWithCf(cf, "B")).status == 201);
  CHECK(c.Put(criteria, PatientWithCf(cf, "C")).status == 412);
  CHECK(c.Send("DELETE", criteria).status == 412);
  CHECK(CountWithCf(c, cf) == 2);
}

TEST_CASE("conditional writes that change nothing do not wait for locks", "[conditional]") {
  HttpClient c(SharedServer().port());
  const std::string cf = UniquePrefix() + "CFW";
  const std::string criteria = "identifier=" + kSys + "|" + cf;
  const std::string url = "/fhir/Patient?identifier=" + kSys + "%7C" + cf;
  auto first = c.Put(url, PatientWithCf(cf, "Rossi"));
  REQUIRE(first.status == 201);
  const std::string id = first.Json()["id"].GetString();

  // (declared before the holder: should a check fail, the holder's
  // transaction ends first and the requests waiting for it return)
  std::future<Reply> same, found, changed;
  // another transaction holds the row and the criteria's lock (lock space
  // "EDSC"), as a conditional write through them would
  pqxx::connection holder(TestDsn());
  pqxx::work held(holder);
  held.exec_params("SELECT 1 FROM resource WHERE res_type = 'Patient' AND res_id = $1 FOR UPDATE", id);
  held.exec_params("SELECT pg_advisory_xact_lock(1162105667, hashtext($1))", "Patient?" + criteria);
  auto in_thread = [&](auto fn) {
    return std::async(std::launch::async, [&, fn] {
      HttpClient own(SharedServer().port());
      return fn(own);
    });
  };
  same = in_thread([&](HttpClient& own) { return own.Put(url, PatientWithCf(cf, "Rossi")); });
  REQUIRE(same.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto r = same.get();
  CHECK(r.status == 200);
  CHECK(r.Header("etag") == "W/\"1\"");
  found = in_thread([&](HttpClient& own) {
    return own.Post("/fhir/Patient", PatientWithCf(cf, "Bianchi"), {{"If-None-Exist", criteria}});
  });
  REQUIRE(found.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  r = found.get();
  CHECK(r.status == 200);
  CHECK(std::string(r.Json()["id"].GetString()) == id);

  changed = in_thread([&](HttpClient& own) {
    return own.Put(url, PatientWithCf(cf, "Rossi Verdi"));
  });
  CHECK(changed.wait_for(std::chrono::milliseconds(700)) == std::future_status::timeout);
  held.commit();
  REQUIRE(changed.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  r = changed.get();
  CHECK(r.status == 200);
  CHECK(r.Header("etag") == "W/\"2\"");
  CHECK(CountWithCf(c, cf) == 1);
}
