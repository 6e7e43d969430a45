// End-to-end tests of the FHIR REST interactions: a real eds process, real
// HTTP over loopback, the fixture's PostgreSQL.
#include <catch2/catch.hpp>

#include <string>

#include "support.hpp"

using namespace eds::testing;

namespace {

std::string PatientJson(const std::string& id, const std::string& family) {
  std::string id_part = id.empty() ? "" : "\"id\":\"" + id + "\",";
  return "{\"resourceType\":\"Patient\"," + id_part +
         "\"name\":[{\"family\":\"" + family + "\",\"given\":[\"Mario\"]}],\"gender\":\"male\","
         "\"birthDate\":\"1970-01-01\"}";
}

std::string IssueCode(const Reply& r) {
  auto d = r.Json();
  REQUIRE(std::string(d["resourceType"].GetString()) == "OperationOutcome");
  return d["issue"][0]["code"].GetString();
}

}  // namespace

TEST_CASE("metadata is a CapabilityStatement generated from the definitions", "[e2e]") {
  HttpClient c(SharedServer().port());
  auto r = c.Get("/fhir/metadata");
  REQUIRE(r.status == 200);
  CHECK(r.Header("content-type").find("application/fhir+json") == 0);
  auto d = r.Json();
  CHECK(std::string(d["resourceType"].GetString()) == "CapabilityStatement");
  CHECK(std::string(d["fhirVersion"].GetString()) == "4.0.1");
  const auto& resources = d["rest"][0]["resource"];
  CHECK(resources.Size() == 146);
  bool patient = false;
  for (const auto& res : resources.GetArray()) {
    if (std::string(res["type"].GetString()) != "Patient") continue;
    patient = true;
    std::vector<std::string> codes;
    for (const auto& i : res["interaction"].GetArray()) codes.emplace_back(i["code"].GetString());
    for (const char* code : {"read", "vread", "update", "delete", "history-instance", "history-type", "create"})
      CHECK(std::find(codes.begin(), codes.end(), code) != codes.end());
  }
  CHECK(patient);
  std::vector<std::string> system;
  for (const auto& i : d["rest"][0]["interaction"].GetArray()) system.emplace_back(i["code"].GetString());
  std::sort(system.begin(), system.end());
  CHECK(system == std::vector<std::string>{"batch", "history-system", "search-system", "transaction"});
}

TEST_CASE("create assigns id, version 1 and lastUpdated", "[e2e]") {
  HttpClient c(SharedServer().port());
  auto r = c.Post("/fhir/Patient", PatientJson("client-chosen", "Rossi"));
  REQUIRE(r.status == 201);
  auto d = r.Json();
  std::string id = d["id"].GetString();
  CHECK(id != "client-chosen");  // the server ignores a client id on create
  CHECK(std::string(d["meta"]["versionId"].GetString()) == "1");
  CHECK(d["meta"].HasMember("lastUpdated"));
  CHECK(r.Header("etag") == "W/\"1\"");
  CHECK(r.Header("location") == "http://127.0.0.1:" + std::to_string(SharedServer().port()) +
                                    "/fhir/Patient/" + id + "/_history/1");
  CHECK(r.Header("last-modified").find("GMT") != std::string::npos);
  CHECK(!r.Header("x-request-id").empty());

  auto read = c.Get("/fhir/Patient/" + id);
  REQUIRE(read.status == 200);
  CHECK(read.Json()["name"][0]["family"] == "Rossi");
  CHECK(read.Header("etag") == "W/\"1\"");
  CHECK(read.Header("last-modified") == r.Header("last-modified"));
}

TEST_CASE("Prefer return=minimal and return=OperationOutcome", "[e2e]") {
  HttpClient c(SharedServer().port());
  auto minimal = c.Post("/fhir/Patient", PatientJson("", "Min"), {{"Prefer", "return=minimal"}});
  CHECK(minimal.status == 201);
  CHECK(minimal.body.empty());
  CHECK(!minimal.Header("location").empty());
  auto oo = c.Post("/fhir/Patient", PatientJson("", "Oo"), {{"Prefer", "return=OperationOutcome"}});
  CHECK(oo.status == 201);
  CHECK(std::string(oo.Json()["resourceType"].GetString()) == "OperationOutcome");
}

TEST_CASE("update-as-create, versioning, If-Match and unchanged updates", "[e2e]") {
  HttpClient c(SharedServer().port());
  static int run = 0;  // each SECTION re-runs the case: a fresh resource each time
  const std::string id = UniquePrefix() + "-upd" + std::to_string(run++);
  const std::string url = "/fhir/Patient/" + id;

  auto created = c.Put(url, PatientJson(id, "Bianchi"));
  REQUIRE(created.status == 201);
  CHECK(created.Header("etag") == "W/\"1\"");
  CHECK(created.Header("location").find(url + "/_history/1") != std::string::npos);

  auto updated = c.Put(url, PatientJson(id, "Verdi"));
  REQUIRE(updated.status == 200);
  CHECK(updated.Header("etag") == "W/\"2\"");
  CHECK(std::string(updated.Json()["meta"]["versionId"].GetString()) == "2");

  SECTION("same content creates no version") {
    auto same = c.Put(url, PatientJson(id, "Verdi"));
    CHECK(same.status == 200);
    CHECK(same.Header("etag") == "W/\"2\"");
    CHECK(c.Get(url + "/_history").Json()["entry"].Size() == 2);
  }
  SECTION("If-Match with the current version succeeds") {
    auto ok = c.Put(url, PatientJson(id, "Neri"), {{"If-Match", "W/\"2\""}});
    CHECK(ok.status == 200);
    CHECK(ok.Header("etag") == "W/\"3\"");
  }
  SECTION("If-Match with a stale version is 412") {
    auto stale = c.Put(url, PatientJson(id, "Neri"), {{"If-Match", "W/\"1\""}});
    CHECK(stale.status == 412);
    CHECK(IssueCode(stale) == "conflict");
    CHECK(c.Get(url).Header("etag") == "W/\"2\"");
  }
  SECTION("malformed If-Match is 400") {
    CHECK(c.Put(url, PatientJson(id, "Neri"), {{"If-Match", "banana"}}).status == 400);
  }
  SECTION("body id different from the URL id is 400") {
    auto bad = c.Put(url, PatientJson("other", "Neri"));
    CHECK(bad.status == 400);
    CHECK(IssueCode(bad) == "invalid");
  }
  SECTION("body without id is 400") {
    CHECK(c.Put(url, PatientJson("", "Neri")).status == 400);
  }
  SECTION("vread of each version") {
    auto v1 = c.Get(url + "/_history/1");
    REQUIRE(v1.status == 200);
    CHECK(v1.Json()["name"][0]["family"] == "Bianchi");
    CHECK(v1.Header("etag") == "W/\"1\"");
    CHECK(c.Get(url + "/_history/2").Json()["name"][0]["family"] == "Verdi");
    CHECK(c.Get(url + "/_history/3").status == 404);
    CHECK(c.Get(url + "/_history/x").status == 404);
  }
  SECTION("If-None-Match gives 304 for the current version") {
    auto nm = c.Send("GET", url, {{"If-None-Match", "W/\"2\""}});
    CHECK(nm.status == 304);
    CHECK(nm.body.empty());
    CHECK(c.Send("GET", url, {{"If-None-Match", "W/\"1\""}}).status == 200);
    CHECK(c.Send("GET", url + "/_history/1", {{"If-None-Match", "W/\"1\""}}).status == 304);
  }
}

TEST_CASE("delete writes a tombstone; reads answer 410; re-create works", "[e2e]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-del";
  const std::string url = "/fhir/Patient/" + id;
  REQUIRE(c.Put(url, PatientJson(id, "Gialli")).status == 201);

  auto del = c.Send("DELETE", url);
  REQUIRE(del.status == 200);
  CHECK(del.Header("etag") == "W/\"2\"");
  auto gone = c.Get(url);
  CHECK(gone.status == 410);
  CHECK(IssueCode(gone) == "deleted");
  CHECK(c.Get(url + "/_history/2").status == 410);
  CHECK(c.Get(url + "/_history/1").status == 200);

  // deleting again changes nothing
  auto again = c.Send("DELETE", url, {{"Prefer", "return=minimal"}});
  CHECK(again.status == 204);
  CHECK(again.Header("etag") == "W/\"2\"");
  CHECK(c.Send("DELETE", "/fhir/Patient/" + UniquePrefix() + "-never").status == 404);
  CHECK(c.Send("DELETE", url, {{"If-Match", "W/\"1\""}}).status == 412);

  auto history = c.Get(url + "/_history").Json();
  REQUIRE(history["entry"].Size() == 2);
  CHECK(std::string(history["entry"][0]["request"]["method"].GetString()) == "DELETE");
  CHECK(!history["entry"][0].HasMember("resource"));

  // update-as-create brings it back as version 3
  auto back = c.Put(url, PatientJson(id, "Gialli"));
  CHECK(back.status == 201);
  CHECK(back.Header("etag") == "W/\"3\"");
  CHECK(c.Get(url).status == 200);
  // and create after delete works
  CHECK(c.Post("/fhir/Patient", PatientJson("", "Gialli")).status == 201);
}

TEST_CASE("errors are OperationOutcomes with the right status", "[e2e]") {
  HttpClient c(SharedServer().port());
  const std::string json = "application/fhir+json";
  auto check = [](const Reply& r, int status, const std::string& code) {
    INFO(r.body);
    CHECK(r.status == status);
    if (!code.empty()) CHECK(IssueCode(r) == code);
    CHECK(!r.Header("x-request-id").empty());
  };
  check(c.Post("/fhir/Patient", "{\"resourceType\":\"Patient\","), 400, "invalid");
  check(c.Post("/fhir/Patient", "[1,2]"), 400, "invalid");
  check(c.Post("/fhir/Patient", "{\"name\":[]}"), 400, "invalid");
  check(c.Post("/fhir/Patient", "{\"resourceType\":\"Observation\"}"), 400, "invalid");
  check(c.Post("/fhir/Patient", "{\"resourceType\":\"Patient\",\"foo\":1}"), 400, "structure");
  check(c.Post("/fhir/Patient", ""), 400, "invalid");
  check(c.Get("/fhir/Patient/bad_id!"), 400, "invalid");
  check(c.Get("/fhir/Patient/" + std::string(65, 'a')), 400, "invalid");
  check(c.Get("/fhir/Unicorn/1"), 404, "not-found");
  check(c.Post("/fhir/Unicorn", "{\"resourceType\":\"Unicorn\"}"), 404, "not-found");
  check(c.Get("/fhir/Patient/" + UniquePrefix() + "-missing"), 404, "not-found");
  check(c.Get("/elsewhere"), 404, "not-found");
  check(c.Send("POST", "/fhir/Patient", {{"Content-Type", "text/plain"}}, "{}"), 415, "not-supported");
  check(c.Send("POST", "/fhir/Patient", {{"Content-Type", "application/fhir+xml"}}, "<Patient/>"), 415, "");
  check(c.Send("GET", "/fhir/metadata", {{"Accept", "application/fhir+xml"}}), 406, "not-supported");
  check(c.Get("/fhir/metadata?_format=xml"), 406, "not-supported");
  auto patch = c.Send("PATCH", "/fhir/Patient", {{"Content-Type", json}}, "[]");
  check(patch, 405, "");
  CHECK(patch.Header("allow") == "GET, POST, PUT, DELETE");
  check(c.Send("DELETE", "/fhir/Patient"), 400, "invalid");  // a conditional delete needs criteria

  // 100,000 nested arrays: a 400, not a crash
  check(c.Post("/fhir/Patient", std::string(100000, '[')), 400, "invalid");
  check(c.Post("/fhir/Patient", "{\"resourceType\":\"Patient\",\"a\":" + std::string(5000, '[') +
                                    std::string(5000, ']') + "}"),
        400, "invalid");
  CHECK(c.Get("/fhir/metadata").status == 200);  // still serving
}

TEST_CASE("content negotiation: _format, _pretty, application/json", "[e2e]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-fmt";
  REQUIRE(c.Put("/fhir/Patient/" + id, PatientJson(id, "Blu")).status == 201);
  auto plain = c.Send("GET", "/fhir/Patient/" + id, {{"Accept", "application/json"}});
  CHECK(plain.Header("content-type").find("application/json") == 0);
  auto fmt = c.Get("/fhir/Patient/" + id + "?_format=application/fhir%2Bjson");
  CHECK(fmt.status == 200);
  CHECK(fmt.Header("content-type").find("application/fhir+json") == 0);
  auto pretty = c.Get("/fhir/Patient/" + id + "?_pretty=true");
  CHECK(pretty.status == 200);
  CHECK(pretty.body.find("\n  ") != std::string::npos);
  CHECK(pretty.Json()["name"][0]["family"] == "Blu");
  auto json_ct = c.Send("PUT", "/fhir/Patient/" + id, {{"Content-Type", "application/json"}},
                        PatientJson(id, "Azzurro"));
  CHECK(json_ct.status == 200);
  auto rid = c.Send("GET", "/fhir/Patient/" + id, {{"X-Request-Id", "trace-123"}});
  CHECK(rid.Header("x-request-id") == "trace-123");
}

TEST_CASE("decimal precision and unicode survive a round trip", "[e2e]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-dec";
  std::string body =
      "{\"resourceType\":\"Observation\",\"id\":\"" + id +
      "\",\"status\":\"final\",\"code\":{\"text\":\"Glicemia \\u00e8 alta \xe2\x82\xac\"},"
      "\"valueQuantity\":{\"value\":1.50,\"unit\":\"mg\"},"
      "\"component\":[{\"code\":{\"text\":\"c\"},\"valueQuantity\":{\"value\":1.000E+3}}]}";
  REQUIRE(c.Put("/fhir/Observation/" + id, body).status == 201);
  auto r = c.Get("/fhir/Observation/" + id);
  REQUIRE(r.status == 200);
  CHECK(r.body.find("\"value\":1.50,") != std::string::npos);
  CHECK(r.body.find("\"value\":1.000E+3") != std::string::npos);  // precision of the exponent form kept
  // stored as written: resourceType, id and meta first
  CHECK(r.body.rfind("{\"resourceType\":\"Observation\",\"id\":\"" + id + "\",\"meta\":{", 0) == 0);
  CHECK(std::string(r.Json()["code"]["text"].GetString()) == "Glicemia \xc3\xa8 alta \xe2\x82\xac");

  // an update stores the text as rendered too (not as jsonb would print it),
  // through a single PUT and a transaction's; the superseded versions as well
  auto amended = body;
  amended.replace(amended.find("\"final\""), 7, "\"amended\"");
  REQUIRE(c.Put("/fhir/Observation/" + id, amended).status == 200);
  auto corrected = body;
  corrected.replace(corrected.find("\"final\""), 7, "\"corrected\"");
  REQUIRE(c.Post("/fhir", "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"resource\":" + corrected +
                              ",\"request\":{\"method\":\"PUT\",\"url\":\"Observation/" + id + "\"}}]}")
              .status == 200);
  for (const std::string& target : {"/fhir/Observation/" + id, "/fhir/Observation/" + id + "/_history/2",
                                   "/fhir/Observation/" + id + "/_history/1"}) {
    auto v = c.Get(target);
    INFO(target << " -> " << v.body);
    REQUIRE(v.status == 200);
    CHECK(v.body.find("\"value\":1.50,") != std::string::npos);
    CHECK(v.body.find("\"value\":1.000E+3") != std::string::npos);
    CHECK(v.body.rfind("{\"resourceType\":\"Observation\",\"id\":\"" + id + "\",\"meta\":{", 0) == 0);
  }
  CHECK(c.Get("/fhir/Observation/" + id).body.find("\"corrected\"") != std::string::npos);
}

TEST_CASE("PATCH with a JSON Patch makes a new version", "[e2e]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-patch";
  const std::string url = "/fhir/Patient/" + id;
  const std::pair<std::string, std::string> ct{"Content-Type", "application/json-patch+json"};
  REQUIRE(c.Put(url, PatientJson(id, "Rossi")).status == 201);

  auto r = c.Send("PATCH", url, {ct}, R"([{"op":"replace","path":"/name/0/family","value":"Russo"},
                                          {"op":"add","path":"/active","value":true}])");
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(r.Header("etag") == "W/\"2\"");
  auto d = c.Get(url).Json();
  CHECK(d["name"][0]["family"] == "Russo");
  CHECK(d["active"].GetBool());

  CHECK(c.Send("PATCH", url, {ct, {"If-Match", "W/\"1\""}}, R"([{"op":"remove","path":"/active"}])").status == 412);
  CHECK(c.Send("PATCH", url, {ct, {"If-Match", "W/\"2\""}}, R"([{"op":"remove","path":"/active"}])").status == 200);
  CHECK(c.Send("PATCH", url, {ct}, R"([{"op":"remove","path":"/nothing"}])").status == 422);
  CHECK(c.Send("PATCH", url, {ct}, R"([{"op":"add","path":"/foo","value":1}])").status == 422);  // not a Patient element
  CHECK(c.Send("PATCH", url, {ct}, R"([{"op":"replace","path":"/id","value":"other"}])").status == 422);
  CHECK(c.Send("PATCH", url, {ct}, R"({"op":"add"})").status == 400);
  CHECK(c.Send("PATCH", url, {{"Content-Type", "text/plain"}}, "[]").status == 415);
  CHECK(c.Send("PATCH", url, {{"Content-Type", "application/fhir+json"}}, R"({"resourceType":"Parameters"})").status == 400);
  CHECK(c.Send("PATCH", "/fhir/Patient/" + UniquePrefix() + "-none", {ct}, "[]").status == 404);
  CHECK(c.Get(url).Header("etag") == "W/\"3\"");  // only the two successful patches wrote versions
}

TEST_CASE("PATCH with a FHIRPath Patch makes a new version", "[e2e]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-fhirpatch";
  const std::string url = "/fhir/Patient/" + id;
  const std::pair<std::string, std::string> ct{"Content-Type", "application/fhir+json"};
  REQUIRE(c.Put(url, "{\"resourceType\":\"Patient\",\"id\":\"" + id +
                         "\",\"name\":[{\"family\":\"Rossi\",\"given\":[\"Mario\"]}],"
                         "\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"},{\"system\":\"urn:b\",\"value\":\"2\"}]}")
              .status == 201);
  auto op = [](const std::string& type, const std::string& path, const std::string& more) {
    return R"({"name":"operation","part":[{"name":"type","valueCode":")" + type + R"("},{"name":"path","valueString":")" +
           path + "\"}" + more + "]}";
  };
  const std::string patch =
      R"({"resourceType":"Parameters","parameter":[)" +
      op("replace", "Patient.name[0].family", R"(,{"name":"value","valueString":"Russo"})") + "," +
      op("add", "Patient", R"(,{"name":"name","valueString":"birthDate"},{"name":"value","valueDate":"1970-02-03"})") + "," +
      op("insert", "Patient.name[0].given", R"(,{"name":"index","valueInteger":0},{"name":"value","valueString":"Ugo"})") + "," +
      op("delete", "Patient.identifier.where(system='urn:a')", "") + "," +
      op("add", "Patient", R"(,{"name":"name","valueString":"contact"},{"name":"value","part":[)"
                           R"({"name":"name","valueHumanName":{"family":"Verdi"}},{"name":"gender","valueCode":"female"}]})") +
      "]}";
  auto r = c.Send("PATCH", url, {ct}, patch);
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(r.Header("etag") == "W/\"2\"");
  auto d = c.Get(url).Json();
  CHECK(d["name"][0]["family"] == "Russo");
  CHECK(d["name"][0]["given"][0] == "Ugo");
  CHECK(d["name"][0]["given"][1] == "Mario");
  CHECK(d["birthDate"] == "1970-02-03");
  REQUIRE(d["identifier"].Size() == 1);
  CHECK(d["identifier"][0]["system"] == "urn:b");
  CHECK(d["contact"][0]["name"]["family"] == "Verdi");
  // the search index follows the patched content
  auto found = c.Get("/fhir/Patient?family=Russo&birthdate=1970-02-03&_id=" + id).Json();
  CHECK(found["entry"].Size() == 1);

  const std::string add_gender = R"({"resourceType":"Parameters","parameter":[)" +
                                 op("add", "Patient", R"(,{"name":"name","valueString":"gender"},{"name":"value","valueCode":"male"})") + "]}";
  CHECK(c.Send("PATCH", url, {ct, {"If-Match", "W/\"1\""}}, add_gender).status == 412);
  auto bad_type = c.Send("PATCH", url, {ct}, R"({"resourceType":"Parameters","parameter":[)" +
                                                 op("replace", "Patient.birthDate", R"(,{"name":"value","valueBoolean":true})") + "]}");
  CHECK(bad_type.status == 422);
  CHECK(std::string(bad_type.Json()["issue"][0]["expression"][0].GetString()) == "Parameters.parameter[0]");
  CHECK(c.Send("PATCH", url, {ct}, R"({"resourceType":"Parameters","parameter":[)" + op("explode", "Patient", "") + "]}").status ==
        400);
  CHECK(c.Send("PATCH", url, {ct}, R"({"resourceType":"Patient"})").status == 400);
  CHECK(c.Send("PATCH", url, {ct}, add_gender).status == 200);
  CHECK(c.Send("PATCH", url, {ct}, add_gender).status == 422);  // gender is there now: add does not replace
  CHECK(c.Get(url).Header("etag") == "W/\"3\"");
}
