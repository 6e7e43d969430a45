// History interactions (instance, type, system) with _since, _at, _count and
// paging that stays correct while new versions arrive.
#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "support.hpp"

using namespace eds::testing;

namespace {

std::string FlagJson(const std::string& id, const std::string& text) {
  return "{\"resourceType\":\"Flag\",\"id\":\"" + id +
         "\",\"status\":\"active\",\"code\":{\"text\":\"" + text +
         "\"},\"subject\":{\"reference\":\"Patient/x\"}}";
}

// Server-relative target of an absolute link.
std::string Target(const std::string& url) {
  auto pos = url.find("/fhir/");
  return url.substr(pos);
}

std::string Link(const rapidjson::Document& d, const std::string& rel) {
  if (!d.HasMember("link")) return {};
  for (const auto& l : d["link"].GetArray())
    if (rel == l["relation"].GetString()) return l["url"].GetString();
  return {};
}

std::string Key(const rapidjson::Value& entry) {
  std::string url = entry["fullUrl"].GetString();
  return url.substr(url.rfind('/') + 1) + "@" + entry["response"]["etag"].GetString();
}

std::string NowInstant(HttpClient& c) {
  // the server's clock: lastUpdated of a fresh write
  auto r = c.Post("/fhir/Basic", "{\"resourceType\":\"Basic\",\"code\":{\"text\":\"clock\"}}");
  return r.Json()["meta"]["lastUpdated"].GetString();
}

}  // namespace

TEST_CASE("instance history lists every version newest first", "[history]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-h1";
  const std::string url = "/fhir/Flag/" + id;
  REQUIRE(c.Put(url, FlagJson(id, "a")).status == 201);
  REQUIRE(c.Put(url, FlagJson(id, "b")).status == 200);
  REQUIRE(c.Send("DELETE", url).status == 200);
  REQUIRE(c.Put(url, FlagJson(id, "c")).status == 201);

  auto r = c.Get(url + "/_history");
  REQUIRE(r.status == 200);
  auto d = r.Json();
  CHECK(std::string(d["type"].GetString()) == "history");
  const auto& e = d["entry"];
  REQUIRE(e.Size() == 4);
  const char* methods[] = {"PUT", "DELETE", "PUT", "PUT"};
  const char* statuses[] = {"200 OK", "204 No Content", "200 OK", "201 Created"};
  for (rapidjson::SizeType i = 0; i < 4; ++i) {
    CHECK(std::string(e[i]["request"]["method"].GetString()) == methods[i]);
    CHECK(std::string(e[i]["request"]["url"].GetString()) == "Flag/" + id);
    CHECK(std::string(e[i]["response"]["etag"].GetString()) == "W/\"" + std::to_string(4 - i) + "\"");
    CHECK(e[i]["response"].HasMember("lastModified"));
    if (i != 1) CHECK(std::string(e[i]["resource"]["meta"]["versionId"].GetString()) == std::to_string(4 - i));
    (void)statuses;
  }
  CHECK(!e[1].HasMember("resource"));
  CHECK(std::string(e[3]["response"]["status"].GetString()) == "201 Created");
  CHECK(c.Get("/fhir/Flag/" + UniquePrefix() + "-nohist/_history").Json()["entry"].Size() == 0);
}

TEST_CASE("every version reads back while the current one's content is stored once", "[history]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-once";
  const std::string url = "/fhir/Flag/" + id;
  REQUIRE(c.Put(url, FlagJson(id, "uno")).status == 201);
  REQUIRE(c.Put(url, FlagJson(id, "due")).status == 200);
  {
    // unchanged: no version; the answer is the stored version 2
    auto same = c.Put(url, FlagJson(id, "due"));
    REQUIRE(same.status == 200);
    CHECK(same.Header("etag") == "W/\"2\"");
    CHECK(std::string(same.Json()["meta"]["versionId"].GetString()) == "2");
    CHECK(same.body.find("due") != std::string::npos);
    // the same in a transaction
    auto tx = c.Post("/fhir", "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"resource\":" +
                                  FlagJson(id, "due") + ",\"request\":{\"method\":\"PUT\",\"url\":\"Flag/" + id +
                                  "\"}}]}");
    REQUIRE(tx.status == 200);
    CHECK(std::string(tx.Json()["entry"][0]["response"]["etag"].GetString()) == "W/\"2\"");
    // the same content with its keys in another order is unchanged too
    auto reordered = c.Put(url, "{\"subject\":{\"reference\":\"Patient/x\"},\"code\":{\"text\":\"due\"},"
                                "\"status\":\"active\",\"id\":\"" + id + "\",\"resourceType\":\"Flag\"}");
    REQUIRE(reordered.status == 200);
    CHECK(reordered.Header("etag") == "W/\"2\"");
  }
  REQUIRE(c.Send("DELETE", url).status == 200);
  REQUIRE(c.Put(url, FlagJson(id, "tre")).status == 201);
  // a transaction's update
  REQUIRE(c.Post("/fhir", "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"resource\":" +
                              FlagJson(id, "quattro") + ",\"request\":{\"method\":\"PUT\",\"url\":\"Flag/" + id +
                              "\"}}]}")
              .status == 200);
  const char* texts[] = {"uno", "due", nullptr, "tre", "quattro"};
  for (int v = 1; v <= 5; ++v) {
    auto r = c.Get(url + "/_history/" + std::to_string(v));
    INFO("version " << v << ": " << r.body);
    if (texts[v - 1] == nullptr) {
      CHECK(r.status == 410);  // the deletion
      continue;
    }
    REQUIRE(r.status == 200);
    CHECK(std::string(r.Json()["code"]["text"].GetString()) == texts[v - 1]);
  }
  auto h = c.Get(url + "/_history").Json();
  REQUIRE(h["entry"].Size() == 5);
  for (rapidjson::SizeType i = 0; i < 5; ++i) {
    const int v = 5 - static_cast<int>(i);
    if (texts[v - 1] == nullptr) CHECK_FALSE(h["entry"][i].HasMember("resource"));
    else CHECK(std::string(h["entry"][i]["resource"]["code"]["text"].GetString()) == texts[v - 1]);
  }
  // in the database: no history row holds content, the superseded versions'
  // is archived, the current one's is the resource row's
  const std::string dsn = TestDsn();
  CHECK(Sql(dsn, "SELECT count(*) FROM resource_history WHERE res_type = 'Flag' AND res_id = $1 AND content IS NOT NULL",
            {id})[0][0] == "0");
  CHECK(Sql(dsn, "SELECT string_agg(version_id::text, ',' ORDER BY version_id) FROM resource_history_content"
                 " WHERE res_type = 'Flag' AND res_id = $1",
            {id})[0][0] == "1,2,4");
  CHECK(Sql(dsn, "SELECT version_id FROM resource WHERE res_type = 'Flag' AND res_id = $1", {id})[0][0] == "5");
}

TEST_CASE("a decimal written with another precision is a new version", "[history]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-precision";
  const std::string url = "/fhir/Observation/" + id;
  auto observation = [&](const std::string& value) {
    return "{\"resourceType\":\"Observation\",\"id\":\"" + id +
           "\",\"status\":\"final\",\"code\":{\"text\":\"glucose\"},\"valueQuantity\":{\"value\":" + value +
           ",\"unit\":\"mmol/L\"}}";
  };
  auto transaction = [&](const std::string& value) {
    return c.Post("/fhir", "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"resource\":" +
                               observation(value) + ",\"request\":{\"method\":\"PUT\",\"url\":\"Observation/" + id +
                               "\"}}]}");
  };
  REQUIRE(c.Put(url, observation("5.5")).status == 201);
  // 5.50 states one more significant digit than 5.5: a change, as FHIR's
  // decimal keeps its precision
  auto more = c.Put(url, observation("5.50"));
  REQUIRE(more.status == 200);
  CHECK(more.Header("etag") == "W/\"2\"");
  CHECK(more.body.find("5.50") != std::string::npos);
  // the same value with the same precision is not
  CHECK(c.Put(url, observation("5.50")).Header("etag") == "W/\"2\"");
  CHECK(c.Put(url, observation("5.50e0")).Header("etag") == "W/\"2\"");
  // and a transaction judges alike
  auto tx = transaction("5.50");
  REQUIRE(tx.status == 200);
  CHECK(std::string(tx.Json()["entry"][0]["response"]["etag"].GetString()) == "W/\"2\"");
  tx = transaction("5.5");
  REQUIRE(tx.status == 200);
  CHECK(std::string(tx.Json()["entry"][0]["response"]["etag"].GetString()) == "W/\"3\"");
  auto current = c.Get(url);
  REQUIRE(current.status == 200);
  CHECK(current.body.find("5.5,") != std::string::npos);
  auto v2 = c.Get(url + "/_history/2");
  REQUIRE(v2.status == 200);
  CHECK(v2.body.find("5.50") != std::string::npos);
}

TEST_CASE("_since and _at select versions by time", "[history]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-h2";
  const std::string url = "/fhir/Flag/" + id;
  REQUIRE(c.Put(url, FlagJson(id, "v1")).status == 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::string mid = NowInstant(c);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(c.Put(url, FlagJson(id, "v2")).status == 200);

  auto since = c.Get(url + "/_history?_since=" + mid).Json();
  REQUIRE(since["entry"].Size() == 1);
  CHECK(std::string(since["entry"][0]["response"]["etag"].GetString()) == "W/\"2\"");

  // at `mid` version 1 was current
  auto at = c.Get(url + "/_history?_at=" + mid).Json();
  REQUIRE(at["entry"].Size() == 1);
  CHECK(std::string(at["entry"][0]["response"]["etag"].GetString()) == "W/\"1\"");
  // during the whole year both were current at some point
  auto year = c.Get(url + "/_history?_at=" + mid.substr(0, 4)).Json();
  CHECK(year["entry"].Size() == 2);

  CHECK(c.Get(url + "/_history?_since=yesterday").status == 400);
  CHECK(c.Get(url + "/_history?_count=-1").status == 400);
  CHECK(c.Get(url + "/_history?_count=abc").status == 400);
  // a zone offset whose '+' arrived unescaped (as a space)
  CHECK(c.Get(url + "/_history?_since=2000-01-01T00:00:00+01:00").status == 200);
}

TEST_CASE("type and system history page with stable cursors while writes go on", "[history]") {
  HttpClient c(SharedServer().port());
  const std::string p = UniquePrefix() + "-h3-";
  std::string since = NowInstant(c);
  std::set<std::string> written;
  for (int i = 0; i < 7; ++i) {
    std::string id = p + std::to_string(i % 3);
    auto r = c.Put("/fhir/Flag/" + id, FlagJson(id, "n" + std::to_string(i)));
    REQUIRE((r.status == 200 || r.status == 201));
    written.insert(id + "@" + r.Header("etag"));
  }
  int late = 0;
  for (const std::string base : {"/fhir/Flag/_history", "/fhir/_history"}) {
    std::set<std::string> seen;
    std::vector<std::string> order;
    std::string next = base + "?_count=3&_since=" + since;
    int pages = 0;
    while (!next.empty() && pages < 20) {
      auto r = c.Get(next);
      REQUIRE(r.status == 200);
      auto d = r.Json();
      CHECK(d["entry"].Size() <= 3);
      for (const auto& e : d["entry"].GetArray()) {
        std::string k = Key(e);
        if (k.rfind(p, 0) != 0) continue;  // other tests' writes in system history
        CHECK(seen.insert(k).second);  // never twice
        order.push_back(k);
      }
      if (pages == 0) {
        // new versions arriving after the first page must not disturb paging
        for (int i = 0; i < 3; ++i) {
          std::string id = p + "late" + std::to_string(late++);
          (void)i;
          REQUIRE(c.Put("/fhir/Flag/" + id, FlagJson(id, "late")).status == 201);
        }
      }
      std::string link = Link(d, "next");
      next = link.empty() ? "" : Target(link);
      ++pages;
    }
    // everything written before paging began, exactly once
    for (const auto& w : written) CHECK(seen.count(w) == 1);
    // newest first: versions of one resource appear in descending order
    for (std::size_t i = 0; i < order.size(); ++i)
      for (std::size_t j = i + 1; j < order.size(); ++j) {
        auto id_i = order[i].substr(0, order[i].find('@'));
        auto id_j = order[j].substr(0, order[j].find('@'));
        if (id_i == id_j) CHECK(order[i] > order[j]);
      }
  }
  auto self = c.Get("/fhir/Flag/_history?_count=2").Json();
  CHECK(Link(self, "self").find("_count=2") != std::string::npos);
  CHECK(self["entry"].Size() == 2);
}
