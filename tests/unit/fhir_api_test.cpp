// Unit tests of server/fhir_api: the whole request pipeline (negotiation,
// routing, interactions, errors) over the in-memory store, without sockets.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include "fake_resource_store.hpp"
#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "fhir/primitives.hpp"
#include "server/fhir_api.hpp"
#include "test_support.hpp"

namespace eds::server {
namespace {

using testing::FakeResourceStore;
using testing::ParseJson;
using testing::R4Definitions;
using testing::StrOf;

constexpr const char* kBase = "http://example.test/fhir";
constexpr const char* kFhirJson = "application/fhir+json; charset=utf-8";

using Headers = std::vector<std::pair<std::string, std::string>>;

// A FhirApi over a store, with requests built the way the HTTP layer builds them.
struct Harness {
  explicit Harness(storage::ResourceStore* custom_store = nullptr) {
    config.public_base_url = kBase;
    api = std::make_unique<FhirApi>(config, R4Definitions(), custom_store ? *custom_store : store);
  }

  HttpResponse Send(std::string method, std::string target, std::string body = {}, Headers headers = {}) {
    HttpRequest req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    if (!req.body.empty() && std::none_of(headers.begin(), headers.end(),
                                          [](const auto& h) { return h.first == "content-type"; }))
      headers.emplace_back("content-type", "application/fhir+json");
    req.headers = std::move(headers);
    last_ctx = RequestContext{};
    last_ctx.request_id = MakeRequestId(req.Header("x-request-id"));
    return api->Handle(req, last_ctx);
  }
  HttpResponse Get(std::string target, Headers headers = {}) {
    return Send("GET", std::move(target), {}, std::move(headers));
  }

  // Creates a resource and returns its server-assigned id.
  std::string CreatePatient(const std::string& body = R"({"resourceType":"Patient","active":true})") {
    auto r = Send("POST", "/fhir/Patient", body);
    REQUIRE(r.status == 201);
    return StrOf(ParseJson(r.body), "id");
  }

  ServerConfig config;
  FakeResourceStore store;
  std::unique_ptr<FhirApi> api;
  RequestContext last_ctx;
};

// The single issue of an OperationOutcome body.
struct IssueView {
  std::string severity, code, diagnostics, expression;
};
IssueView OnlyIssue(const HttpResponse& r) {
  INFO(r.body);
  auto doc = ParseJson(r.body);
  REQUIRE(StrOf(doc, "resourceType") == "OperationOutcome");
  REQUIRE(doc["issue"].Size() == 1);
  const auto& i = doc["issue"][0];
  IssueView v{StrOf(i, "severity"), StrOf(i, "code"), StrOf(i, "diagnostics"), {}};
  if (i.HasMember("expression")) v.expression = i["expression"][0].GetString();
  return v;
}

void CheckError(const HttpResponse& r, int status, const char* code) {
  INFO(r.body);
  CHECK(r.status == status);
  CHECK(r.Header("Content-Type") == kFhirJson);
  auto issue = OnlyIssue(r);
  CHECK(issue.severity == "error");
  CHECK(issue.code == code);
  CHECK_FALSE(issue.diagnostics.empty());
}

// A store whose every operation fails with an infrastructure error.
class ThrowingStore : public storage::ResourceStore {
 public:
  static constexpr const char* kSecret = "password=hunter2 relation \"resource\" does not exist";
  storage::Result<fhir::VersionRecord> Read(const std::string&, const std::string&) override { Throw(); }
  storage::Result<fhir::VersionRecord> ReadVersion(const std::string&, const std::string&,
                                                   int64_t) override { Throw(); }
  storage::Result<storage::WriteResult> Create(fhir::Resource&) override { Throw(); }
  storage::Result<storage::WriteResult> Update(fhir::Resource&, const std::string&,
                                               std::optional<int64_t>) override { Throw(); }
  storage::Result<storage::WriteResult> Delete(const std::string&, const std::string&,
                                               std::optional<int64_t>) override { Throw(); }
  storage::Result<storage::HistoryPage> History(const storage::HistoryQuery&) override { Throw(); }
  std::optional<fhir::Error> RunTransaction(
      const std::function<std::optional<fhir::Error>(storage::TxScope&)>&) override { Throw(); }
  storage::Result<storage::SearchPage> Search(const fhir::SearchQuery&) override { Throw(); }
  storage::Result<storage::WriteResult> ConditionalCreate(fhir::Resource&, const fhir::SearchQuery&,
                                                          const std::string&) override { Throw(); }
  storage::Result<storage::WriteResult> ConditionalUpdate(fhir::Resource&, const fhir::SearchQuery&,
                                                          const std::string&) override { Throw(); }
  storage::Result<storage::WriteResult> ConditionalDelete(const fhir::SearchQuery&, const std::string&) override {
    Throw();
  }

 private:
  [[noreturn]] static void Throw() { throw storage::StorageError(kSecret); }
};

TEST_CASE("FhirApi: metadata", "[server]") {
  Harness h;
  auto r = h.Get("/fhir/metadata");
  REQUIRE(r.status == 200);
  CHECK(r.Header("content-type") == kFhirJson);
  auto doc = ParseJson(r.body);
  CHECK(StrOf(doc, "resourceType") == "CapabilityStatement");
  CHECK(StrOf(doc, "fhirVersion") == "4.0.1");
  CHECK(StrOf(doc["implementation"], "url") == kBase);
  CHECK(doc["rest"][0]["resource"].Size() == 146);
  std::set<std::string> codes;
  for (const auto& i : doc["rest"][0]["resource"][0]["interaction"].GetArray()) codes.insert(StrOf(i, "code"));
  CHECK(codes == std::set<std::string>{"create", "read", "vread", "update", "patch", "delete",
                                       "history-instance", "history-type", "search-type"});
  std::set<std::string> system;
  for (const auto& i : doc["rest"][0]["interaction"].GetArray()) system.insert(StrOf(i, "code"));
  CHECK(system == std::set<std::string>{"history-system", "transaction", "batch", "search-system"});
  CHECK(h.last_ctx.interaction == "capabilities");
  CHECK(h.Get("/fhir/metadata/").status == 200);  // trailing slash
}

TEST_CASE("FhirApi: create, read, vread", "[server]") {
  Harness h;
  h.store.SetTime(1700000000123);
  auto r = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient","id":"client-id","active":true})");
  REQUIRE(r.status == 201);
  CHECK(r.Header("Content-Type") == kFhirJson);
  auto doc = ParseJson(r.body);
  const std::string id = StrOf(doc, "id");
  CHECK_FALSE(id.empty());
  CHECK(id != "client-id");
  CHECK(StrOf(doc["meta"], "versionId") == "1");
  CHECK(StrOf(doc["meta"], "lastUpdated") == "2023-11-14T22:13:20.123Z");
  CHECK(r.Header("Location") == std::string(kBase) + "/Patient/" + id + "/_history/1");
  CHECK(r.Header("ETag") == "W/\"1\"");
  CHECK(r.Header("Last-Modified") == "Tue, 14 Nov 2023 22:13:20 GMT");
  CHECK(h.last_ctx.interaction == "create");
  CHECK(h.last_ctx.resource_type == "Patient");

  auto read = h.Get("/fhir/Patient/" + id);
  REQUIRE(read.status == 200);
  CHECK(read.body == r.body);
  CHECK(read.Header("ETag") == "W/\"1\"");
  CHECK(read.Header("Last-Modified") == "Tue, 14 Nov 2023 22:13:20 GMT");
  CHECK(h.last_ctx.interaction == "read");
  CHECK(h.last_ctx.resource_id == id);

  auto vread = h.Get("/fhir/Patient/" + id + "/_history/1");
  REQUIRE(vread.status == 200);
  CHECK(vread.body == r.body);
  CHECK(vread.Header("ETag") == "W/\"1\"");
  CHECK(h.last_ctx.interaction == "vread");

  CheckError(h.Get("/fhir/Patient/" + id + "/_history/2"), 404, "not-found");
  CheckError(h.Get("/fhir/Patient/" + id + "/_history/0"), 404, "not-found");
  CheckError(h.Get("/fhir/Patient/" + id + "/_history/abc"), 404, "not-found");
  CheckError(h.Get("/fhir/Patient/missing"), 404, "not-found");
  CheckError(h.Get("/fhir/Observation/" + id), 404, "not-found");

  SECTION("If-None-Match") {
    auto nm = h.Get("/fhir/Patient/" + id, {{"if-none-match", "W/\"1\""}});
    CHECK(nm.status == 304);
    CHECK(nm.body.empty());
    CHECK(nm.Header("ETag") == "W/\"1\"");
    CHECK(h.Get("/fhir/Patient/" + id, {{"if-none-match", "\"1\""}}).status == 304);
    CHECK(h.Get("/fhir/Patient/" + id, {{"if-none-match", "W/\"7\", W/\"1\""}}).status == 304);
    CHECK(h.Get("/fhir/Patient/" + id, {{"if-none-match", "*"}}).status == 304);
    CHECK(h.Get("/fhir/Patient/" + id, {{"if-none-match", "W/\"2\""}}).status == 200);
    CHECK(h.Get("/fhir/Patient/" + id + "/_history/1", {{"if-none-match", "W/\"1\""}}).status == 304);
  }
  SECTION("Prefer on create") {
    auto minimal = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient"})",
                          {{"prefer", "return=minimal"}});
    CHECK(minimal.status == 201);
    CHECK(minimal.body.empty());
    CHECK_THAT(std::string(minimal.Header("Location")), Catch::StartsWith(std::string(kBase) + "/Patient/"));
    CHECK(minimal.Header("ETag") == "W/\"1\"");

    auto outcome = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient"})",
                          {{"prefer", "handling=strict, return=OperationOutcome"}});
    CHECK(outcome.status == 201);
    auto issue = OnlyIssue(outcome);
    CHECK(issue.severity == "information");
    CHECK_THAT(issue.diagnostics, Catch::Contains("created Patient/"));
    CHECK_FALSE(outcome.Header("Location").empty());

    auto repr = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient"})",
                       {{"prefer", "return=representation"}});
    CHECK(StrOf(ParseJson(repr.body), "resourceType") == "Patient");
  }
  SECTION("a create without Content-Type is read as FHIR JSON") {
    auto plain = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient"})", {{"content-type", ""}});
    CHECK(plain.status == 201);
    auto json = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient"})",
                       {{"content-type", "application/json; charset=UTF-8"}});
    CHECK(json.status == 201);
  }
}

TEST_CASE("FhirApi: update", "[server]") {
  Harness h;
  const std::string v1 = R"({"resourceType":"Patient","id":"p1","active":true})";
  auto created = h.Send("PUT", "/fhir/Patient/p1", v1);
  REQUIRE(created.status == 201);
  CHECK(created.Header("Location") == std::string(kBase) + "/Patient/p1/_history/1");
  CHECK(created.Header("ETag") == "W/\"1\"");
  CHECK(h.last_ctx.interaction == "update");

  auto updated = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1","active":false})");
  REQUIRE(updated.status == 200);
  CHECK(updated.Header("ETag") == "W/\"2\"");
  CHECK(updated.Header("Location").empty());
  CHECK(StrOf(ParseJson(updated.body)["meta"], "versionId") == "2");

  SECTION("unchanged content keeps the version") {
    auto same = h.Send("PUT", "/fhir/Patient/p1",
                       R"({"active":false,"id":"p1","resourceType":"Patient","meta":{"versionId":"1"}})");
    CHECK(same.status == 200);
    CHECK(same.Header("ETag") == "W/\"2\"");
    CHECK(same.body == updated.body);
    auto outcome = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1","active":false})",
                          {{"prefer", "return=OperationOutcome"}});
    CHECK_THAT(OnlyIssue(outcome).diagnostics, Catch::Contains("unchanged"));
    CHECK(h.store.version_count() == 2);
  }
  SECTION("If-Match") {
    auto stale = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1"})",
                        {{"if-match", "W/\"1\""}});
    CheckError(stale, 412, "conflict");
    auto bad = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1"})",
                      {{"if-match", "version-two"}});
    CheckError(bad, 400, "invalid");
    auto good = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1"})",
                       {{"if-match", "W/\"2\""}});
    CHECK(good.status == 200);
    CHECK(good.Header("ETag") == "W/\"3\"");
    auto missing = h.Send("PUT", "/fhir/Patient/p9", R"({"resourceType":"Patient","id":"p9"})",
                          {{"if-match", "W/\"1\""}});
    CheckError(missing, 412, "conflict");
  }
  SECTION("the body id must be the URL id") {
    auto other = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p2"})");
    CheckError(other, 400, "invalid");
    CHECK(OnlyIssue(other).expression == "Patient.id");
    auto none = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","active":true})");
    CheckError(none, 400, "invalid");
    CHECK(OnlyIssue(none).expression == "Patient.id");
  }
  SECTION("Prefer return=minimal") {
    auto minimal = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1","gender":"male"})",
                          {{"prefer", "return=minimal"}});
    CHECK(minimal.status == 200);
    CHECK(minimal.body.empty());
    CHECK(minimal.Header("ETag") == "W/\"3\"");
  }
}

TEST_CASE("FhirApi: delete", "[server]") {
  Harness h;
  REQUIRE(h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1"})").status == 201);
  auto del = h.Send("DELETE", "/fhir/Patient/p1");
  REQUIRE(del.status == 200);
  CHECK(del.Header("ETag") == "W/\"2\"");
  auto issue = OnlyIssue(del);
  CHECK(issue.severity == "information");
  CHECK_THAT(issue.diagnostics, Catch::Contains("deleted Patient/p1"));
  CHECK(h.last_ctx.interaction == "delete");

  auto gone = h.Get("/fhir/Patient/p1");
  CheckError(gone, 410, "deleted");
  CHECK(gone.Header("ETag") == "W/\"2\"");
  CHECK(h.Get("/fhir/Patient/p1/_history/1").status == 200);
  CHECK(h.Get("/fhir/Patient/p1/_history/2").status == 410);

  auto again = h.Send("DELETE", "/fhir/Patient/p1");
  CHECK(again.status == 200);
  CHECK_THAT(OnlyIssue(again).diagnostics, Catch::Contains("already deleted"));
  CHECK(h.store.version_count() == 2);

  CheckError(h.Send("DELETE", "/fhir/Patient/never"), 404, "not-found");
  CheckError(h.Send("DELETE", "/fhir/Patient/p1", {}, {{"if-match", "W/\"1\""}}), 412, "conflict");
  CheckError(h.Send("DELETE", "/fhir/Patient/p1", {}, {{"if-match", "W/x"}}), 400, "invalid");

  SECTION("Prefer return=minimal answers 204") {
    REQUIRE(h.Send("PUT", "/fhir/Patient/p2", R"({"resourceType":"Patient","id":"p2"})").status == 201);
    auto minimal = h.Send("DELETE", "/fhir/Patient/p2", {}, {{"prefer", "return=minimal"}});
    CHECK(minimal.status == 204);
    CHECK(minimal.body.empty());
    CHECK(minimal.Header("ETag") == "W/\"2\"");
  }
  SECTION("an update brings a deleted resource back") {
    auto back = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1"})");
    CHECK(back.status == 201);
    CHECK(back.Header("ETag") == "W/\"3\"");
    CHECK(back.Header("Location") == std::string(kBase) + "/Patient/p1/_history/3");
    CHECK(h.Get("/fhir/Patient/p1").status == 200);
  }
}

TEST_CASE("FhirApi: PATCH with a FHIRPath Patch or a JSON Patch", "[server]") {
  Harness h;
  REQUIRE(h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1","gender":"male","active":true})").status ==
          201);
  const std::string to_female =
      R"({"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},)"
      R"({"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"female"}]}]})";
  auto patched = h.Send("PATCH", "/fhir/Patient/p1", to_female, {{"content-type", "application/fhir+json"}});
  REQUIRE(patched.status == 200);
  CHECK(patched.Header("ETag") == "W/\"2\"");
  CHECK(StrOf(ParseJson(patched.body), "gender") == "female");
  CHECK(h.last_ctx.interaction == "patch");

  CheckError(h.Send("PATCH", "/fhir/Patient/p1", to_female, {{"if-match", "W/\"1\""}}), 412, "conflict");
  CheckError(h.Send("PATCH", "/fhir/Patient/p1", R"({"resourceType":"Patient"})"), 400, "invalid");
  CheckError(h.Send("PATCH", "/fhir/Patient/p1", R"({"resourceType":"Parameters","parameter":[{"name":"x"}]})"), 400,
             "invalid");
  const std::string replace_missing =
      R"({"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},)"
      R"({"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueDate":"2000"}]}]})";
  auto unprocessable = h.Send("PATCH", "/fhir/Patient/p1", replace_missing);
  CHECK(unprocessable.status == 422);
  CHECK(OnlyIssue(unprocessable).expression == "Parameters.parameter[0]");
  CheckError(h.Send("PATCH", "/fhir/Patient/nope", to_female), 404, "not-found");

  auto json_patch = h.Send("PATCH", "/fhir/Patient/p1", R"([{"op":"remove","path":"/active"}])",
                           {{"content-type", "application/json-patch+json"}});
  CHECK(json_patch.status == 200);
  CHECK_FALSE(ParseJson(json_patch.body).HasMember("active"));
  CHECK(h.Send("PATCH", "/fhir/Patient/p1", "x", {{"content-type", "text/plain"}}).status == 415);
  CHECK(h.store.version_count() == 3);
}

TEST_CASE("FhirApi: PATCH entries in transactions and batches", "[server]") {
  Harness h;
  REQUIRE(h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1","active":true})").status == 201);
  REQUIRE(h.Send("PUT", "/fhir/Patient/p2", R"({"resourceType":"Patient","id":"p2","active":true})").status == 201);
  // the JSON Patch [{"op":"replace","path":"/active","value":false}] in a Binary
  const std::string binary =
      R"({"resourceType":"Binary","contentType":"application/json-patch+json",)"
      R"("data":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9hY3RpdmUiLCJ2YWx1ZSI6ZmFsc2V9XQ=="})";
  const std::string parameters =
      R"({"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},)"
      R"({"name":"path","valueString":"Patient"},{"name":"name","valueString":"gender"},{"name":"value","valueCode":"other"}]}]})";
  auto bundle = [&](const char* type, const std::string& second_url) {
    return std::string(R"({"resourceType":"Bundle","type":")") + type + R"(","entry":[)" +
           R"({"resource":)" + binary + R"(,"request":{"method":"PATCH","url":"Patient/p1"}},)" +
           R"({"resource":)" + parameters + R"(,"request":{"method":"PATCH","url":")" + second_url + R"("}}]})";
  };
  auto r = h.Send("POST", "/fhir", bundle("transaction", "Patient/p2"));
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = ParseJson(r.body);
  REQUIRE(d["entry"].Size() == 2);
  for (const auto& e : d["entry"].GetArray()) {
    CHECK(StrOf(e["response"], "status") == "200 OK");
    CHECK(StrOf(e["response"], "etag") == "W/\"2\"");
    CHECK_THAT(StrOf(e["response"], "location"), Catch::EndsWith("/_history/2"));
    CHECK_FALSE(StrOf(e["response"], "lastModified").empty());
  }
  CHECK_FALSE(d["entry"][0]["resource"]["active"].GetBool());
  CHECK(StrOf(d["entry"][1]["resource"], "gender") == "other");

  // a failing patch fails the transaction: nothing is stored
  auto failed = h.Send("POST", "/fhir", bundle("transaction", "Patient/p3"));
  CHECK(failed.status == 404);
  CHECK(OnlyIssue(failed).expression == "Bundle.entry[1]");
  CHECK(StrOf(ParseJson(h.Get("/fhir/Patient/p1").body)["meta"], "versionId") == "2");
  // in a batch, only that entry fails
  auto batch = h.Send("POST", "/fhir", bundle("batch", "Patient/p3"));
  REQUIRE(batch.status == 200);
  auto b = ParseJson(batch.body);
  CHECK(StrOf(b["entry"][0]["response"], "status") == "200 OK");
  CHECK(StrOf(b["entry"][1]["response"], "status") == "404 Not Found");

  // two entries patching one resource
  auto twice = h.Send("POST", "/fhir", bundle("transaction", "Patient/p1"));
  CheckError(twice, 400, "invalid");
  CHECK_THAT(OnlyIssue(twice).diagnostics, Catch::Contains("entries 0 and 1"));
  // a patch that is neither Parameters nor a JSON Patch Binary
  auto wrong = h.Send("POST", "/fhir",
                      R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},)"
                      R"("request":{"method":"PATCH","url":"Patient/p1"}}]})");
  CheckError(wrong, 400, "invalid");
  // conditional entries need search, which this API has not
  auto conditional = h.Send(
      "POST", "/fhir",
      R"({"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"},)"
      R"("request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=a|1"}}]})");
  REQUIRE(conditional.status == 200);
  CHECK(StrOf(ParseJson(conditional.body)["entry"][0]["response"], "status") == "501 Not Implemented");
}

TEST_CASE("FhirApi: GET and HEAD entries in transactions and batches", "[server]") {
  Harness h;
  REQUIRE(h.Send("PUT", "/fhir/Patient/g1", R"({"resourceType":"Patient","id":"g1","active":true})").status == 201);
  REQUIRE(h.Send("PUT", "/fhir/Patient/g1", R"({"resourceType":"Patient","id":"g1","active":false})").status == 200);
  auto entry = [](const char* method, const std::string& url, const std::string& resource = {}) {
    return std::string(R"({)") + (resource.empty() ? "" : R"("resource":)" + resource + ",") +
           R"("request":{"method":")" + method + R"(","url":")" + url + R"("}})";
  };
  auto bundle = [](const char* type, const std::vector<std::string>& entries) {
    std::string b = std::string(R"({"resourceType":"Bundle","type":")") + type + R"(","entry":[)";
    for (std::size_t i = 0; i < entries.size(); ++i) b += (i ? "," : "") + entries[i];
    return b + "]}";
  };
  // the GETs come first in the Bundle but run after the write
  auto r = h.Send("POST", "/fhir",
                  bundle("transaction", {entry("GET", "Patient/g1"), entry("GET", "Patient/g1/_history/1"),
                                         entry("GET", "Patient/g1/_history"), entry("HEAD", "Patient/g1"),
                                         entry("GET", "http://elsewhere.test/fhir/Patient/g1"),
                                         entry("PUT", "Patient/g1", R"({"resourceType":"Patient","id":"g1","gender":"other"})")}));
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = ParseJson(r.body);
  REQUIRE(d["entry"].Size() == 6);
  CHECK(StrOf(d["entry"][0]["response"], "status") == "200 OK");
  CHECK(StrOf(d["entry"][0]["resource"], "gender") == "other");
  CHECK(StrOf(d["entry"][0]["response"], "etag") == "W/\"3\"");
  CHECK(d["entry"][1]["resource"]["active"].GetBool());
  CHECK(StrOf(d["entry"][1]["response"], "etag") == "W/\"1\"");
  CHECK(StrOf(d["entry"][2]["resource"], "type") == "history");
  CHECK(d["entry"][2]["resource"]["entry"].Size() == 3);
  CHECK_FALSE(d["entry"][3].HasMember("resource"));
  CHECK(StrOf(d["entry"][3]["response"], "etag") == "W/\"3\"");
  CHECK(StrOf(d["entry"][4]["resource"], "id") == "g1");

  // a failing GET fails a transaction with its status, naming the entry
  auto missing = h.Send("POST", "/fhir",
                        bundle("transaction", {entry("PUT", "Patient/g2", R"({"resourceType":"Patient","id":"g2"})"),
                                               entry("GET", "Patient/nope")}));
  CheckError(missing, 404, "not-found");
  CHECK(OnlyIssue(missing).expression == "Bundle.entry[1]");
  CHECK(h.Get("/fhir/Patient/g2").status == 404);
  // only reads, searches and history run inside a Bundle
  CheckError(h.Send("POST", "/fhir", bundle("transaction", {entry("GET", "$reindex")})), 400, "invalid");
  CheckError(h.Send("POST", "/fhir", bundle("transaction", {entry("GET", "Unicorn/1")})), 404, "not-found");
  CheckError(h.Send("POST", "/fhir", bundle("transaction", {entry("GET", "Patient/g1/_history/x")})), 404, "not-found");

  // in a batch each GET answers on its own
  auto batch = h.Send("POST", "/fhir",
                      bundle("batch", {entry("GET", "Patient/nope"), entry("GET", "Patient/g1/_history/9"),
                                       entry("GET", "Patient/g1"), entry("GET", "Patient?name=x")}));
  REQUIRE(batch.status == 200);
  auto b = ParseJson(batch.body);
  CHECK(StrOf(b["entry"][0]["response"], "status") == "404 Not Found");
  CHECK(StrOf(b["entry"][0]["response"]["outcome"], "resourceType") == "OperationOutcome");
  CHECK(StrOf(b["entry"][1]["response"], "status") == "404 Not Found");
  CHECK(StrOf(b["entry"][2]["response"], "status") == "200 OK");
  CHECK(StrOf(b["entry"][2]["resource"], "id") == "g1");
  CHECK(StrOf(b["entry"][3]["response"], "status") == "501 Not Implemented");  // the in-memory store cannot search
}

TEST_CASE("FhirApi: routing errors", "[server]") {
  Harness h;
  SECTION("unknown resource type") {
    CheckError(h.Get("/fhir/Foo/1"), 404, "not-found");
    CheckError(h.Get("/fhir/Foo"), 404, "not-found");
    CheckError(h.Send("POST", "/fhir/Foo", R"({"resourceType":"Foo"})"), 404, "not-found");
    CheckError(h.Get("/fhir/DomainResource/1"), 404, "not-found");
    CHECK_THAT(OnlyIssue(h.Get("/fhir/Foo/1")).diagnostics, Catch::Contains("Foo"));
  }
  SECTION("unknown path") {
    CheckError(h.Get("/"), 404, "not-found");
    CheckError(h.Get("/other/Patient/1"), 404, "not-found");
    CheckError(h.Get("/fhirx/metadata"), 404, "not-found");
    CheckError(h.Get("/fhir/Patient/1/foo"), 404, "not-found");
    CheckError(h.Get("/fhir/Patient/1/_history/1/x"), 404, "not-found");
    CheckError(h.Get("/fhir/patient/1"), 404, "not-found");
  }
  SECTION("wrong method: 405 with Allow") {
    auto r = h.Send("POST", "/fhir/Patient/1", R"({"resourceType":"Patient"})");
    CheckError(r, 405, "not-supported");
    CHECK(r.Header("Allow") == "GET, PUT, DELETE, PATCH");
    auto post_type = h.Send("PATCH", "/fhir/Patient");
    CheckError(post_type, 405, "not-supported");
    CHECK(post_type.Header("Allow") == "GET, POST, PUT, DELETE");
    auto meta = h.Send("POST", "/fhir/metadata", R"({"resourceType":"Patient"})");
    CHECK(meta.status == 405);
    CHECK(meta.Header("Allow") == "GET");
    auto hist = h.Send("DELETE", "/fhir/_history");
    CHECK(hist.status == 405);
    CHECK(hist.Header("Allow") == "GET");
  }
  SECTION("invalid id") {
    CheckError(h.Get("/fhir/Patient/" + std::string(65, 'a')), 400, "invalid");
    CheckError(h.Get("/fhir/Patient/a!b"), 400, "invalid");
    CheckError(h.Get("/fhir/Patient/a%20b"), 400, "invalid");
    CheckError(h.Send("PUT", "/fhir/Patient/a_b", R"({"resourceType":"Patient","id":"a_b"})"), 400, "invalid");
    CheckError(h.Send("DELETE", "/fhir/Patient/a%2Fb"), 400, "invalid");
    CHECK(h.Get("/fhir/Patient/" + std::string(64, 'a')).status == 404);
  }
  SECTION("malformed target") { CheckError(h.Get("no-leading-slash"), 400, "invalid"); }
  SECTION("URL longer than url_limit") {
    CheckError(h.Get("/fhir/Patient?x=" + std::string(h.config.url_limit, 'a')), 414, "too-long");
    CHECK(h.Get("/fhir/Patient/1?x=" + std::string(h.config.url_limit - 100, 'a')).status == 404);
  }
}

TEST_CASE("FhirApi: request bodies", "[server]") {
  Harness h;
  SECTION("malformed JSON") {
    CheckError(h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient",)"), 400, "invalid");
    CheckError(h.Send("POST", "/fhir/Patient", "[]"), 400, "invalid");
    CheckError(h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient","a":1,"a":2})"), 400, "invalid");
    CheckError(h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient","x":)" + std::string(1000, '[')),
               400, "invalid");
  }
  SECTION("missing body") {
    CheckError(h.Send("POST", "/fhir/Patient", ""), 400, "invalid");
    CheckError(h.Send("PUT", "/fhir/Patient/p1", ""), 400, "invalid");
  }
  SECTION("resourceType mismatch") {
    auto r = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Observation","status":"final"})");
    CheckError(r, 400, "invalid");
    CHECK(OnlyIssue(r).expression == "resourceType");
    CheckError(h.Send("PUT", "/fhir/Patient/o1", R"({"resourceType":"Observation","id":"o1"})"), 400,
               "invalid");
  }
  SECTION("an empty id is a structure error") {
    auto r = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient","id":""})");
    CheckError(r, 400, "structure");
    CHECK(OnlyIssue(r).expression == "Patient.id");
  }
  SECTION("unsupported Content-Type") {
    CheckError(h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient"})",
                      {{"content-type", "application/fhir+xml"}}),
               415, "not-supported");
    CheckError(h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1"})",
                      {{"content-type", "text/plain"}}),
               415, "not-supported");
  }
  SECTION("structure errors carry the element's expression") {
    auto r = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient","name":[{"family":"x","foo":1}]})");
    REQUIRE(r.status == 400);
    auto doc = ParseJson(r.body);
    REQUIRE(doc["issue"].Size() == 1);
    CHECK(StrOf(doc["issue"][0], "code") == "structure");
    CHECK(std::string(doc["issue"][0]["expression"][0].GetString()) == "Patient.name[0].foo");

    auto two = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1","active":"yes","x":1})");
    REQUIRE(two.status == 400);
    CHECK(ParseJson(two.body)["issue"].Size() == 2);
    CHECK(h.store.version_count() == 0);
  }
}

TEST_CASE("FhirApi: content negotiation", "[server]") {
  Harness h;
  const std::string id = h.CreatePatient();
  const std::string target = "/fhir/Patient/" + id;
  SECTION("XML is not acceptable") {
    CheckError(h.Get(target, {{"accept", "application/fhir+xml"}}), 406, "not-supported");
    CheckError(h.Get(target + "?_format=xml"), 406, "not-supported");
    CheckError(h.Get(target + "?_format=application/fhir%2Bxml"), 406, "not-supported");
    CheckError(h.Get("/fhir/metadata", {{"accept", "text/html"}}), 406, "not-supported");
    CheckError(h.Get(target, {{"accept", "application/fhir+json;q=0"}}), 406, "not-supported");
  }
  SECTION("JSON variants") {
    CHECK(h.Get(target, {{"accept", "application/fhir+json"}}).Header("Content-Type") == kFhirJson);
    CHECK(h.Get(target, {{"accept", "*/*"}}).status == 200);
    CHECK(h.Get(target, {{"accept", "application/fhir+xml, application/fhir+json;q=0.9"}}).status == 200);
    auto plain = h.Get(target, {{"accept", "application/json"}});
    CHECK(plain.status == 200);
    CHECK(plain.Header("Content-Type") == "application/json; charset=utf-8");
    CHECK(h.Get(target + "?_format=json").Header("Content-Type") == kFhirJson);
    CHECK(h.Get(target + "?_format=application/json").Header("Content-Type") ==
          "application/json; charset=utf-8");
    // _format wins over Accept
    CHECK(h.Get(target + "?_format=json", {{"accept", "application/fhir+xml"}}).status == 200);
    // errors use the negotiated media type too
    CHECK(h.Get("/fhir/Patient/missing", {{"accept", "application/json"}}).Header("Content-Type") ==
          "application/json; charset=utf-8");
  }
  SECTION("_pretty") {
    auto compact = h.Get(target);
    auto pretty = h.Get(target + "?_pretty=true");
    REQUIRE(pretty.status == 200);
    CHECK(compact.body.find('\n') == std::string::npos);
    CHECK_THAT(pretty.body, Catch::StartsWith("{\n  \"resourceType\": \"Patient\",\n"));
    CHECK(fhir::JsonEquivalent(compact.body, pretty.body));
    CHECK(h.Get(target + "?_pretty=false").body == compact.body);
    auto pretty_error = h.Get("/fhir/Patient/missing?_pretty=true");
    CHECK(pretty_error.status == 404);
    CHECK_THAT(pretty_error.body, Catch::Contains("\n  \"issue\""));
  }
}

TEST_CASE("FhirApi: X-Request-Id", "[server]") {
  Harness h;
  auto echoed = h.Get("/fhir/metadata", {{"x-request-id", "abc-123_X.y"}});
  CHECK(echoed.Header("X-Request-Id") == "abc-123_X.y");
  auto generated = h.Get("/fhir/metadata");
  CHECK(generated.Header("X-Request-Id").size() == 16);
  auto unsafe = h.Get("/fhir/Patient/x", {{"x-request-id", "bad id\r\nX-Evil: 1"}});
  CHECK(unsafe.Header("X-Request-Id") != "bad id\r\nX-Evil: 1");
  CHECK(unsafe.Header("X-Request-Id").size() == 16);

  CHECK(MakeRequestId("a") == "a");
  CHECK(MakeRequestId(std::string(64, 'r')) == std::string(64, 'r'));
  for (const std::string& bad : {std::string(), std::string(65, 'r'), std::string("a b"), std::string("a/b"),
                                std::string("é"), std::string("a\"b")}) {
    const std::string id = MakeRequestId(bad);
    CHECK(id != bad);
    CHECK(id.size() == 16);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  CHECK(MakeRequestId("") != MakeRequestId(""));
}

// Follows `next` links from `target`, collecting "type/id/version" of every entry.
std::vector<std::string> WalkHistory(Harness& h, std::string target, int* pages = nullptr) {
  std::vector<std::string> seen;
  for (int page = 0; page < 100; ++page) {
    auto r = h.Get(target);
    INFO(target << "\n" << r.body);
    REQUIRE(r.status == 200);
    auto doc = ParseJson(r.body);
    REQUIRE(StrOf(doc, "type") == "history");
    for (const auto& e : doc["entry"].GetArray())
      seen.push_back(StrOf(e["request"], "url") + "@" + StrOf(e["response"], "etag") + "@" +
                     StrOf(e, "fullUrl"));
    std::string next;
    for (const auto& l : doc["link"].GetArray())
      if (StrOf(l, "relation") == "next") next = StrOf(l, "url");
    if (pages) *pages = page + 1;
    if (next.empty()) return seen;
    CHECK_THAT(next, Catch::Contains("_cursor="));
    REQUIRE(next.rfind("http://example.test", 0) == 0);
    target = next.substr(std::string("http://example.test").size());
  }
  FAIL("history paging did not end");
  return seen;
}

TEST_CASE("FhirApi: history", "[server]") {
  Harness h;
  int64_t now = 1'700'000'000'000;
  h.store.SetClock([&now] { return now; });
  auto put = [&](const std::string& type, const std::string& id, int n) {
    auto r = h.Send("PUT", fmt::format("/fhir/{}/{}", type, id),
                    fmt::format(R"({{"resourceType":"{}","id":"{}","extension":[{{"url":"http://x","valueInteger":{}}}]}})",
                                type, id, n));
    REQUIRE((r.status == 200 || r.status == 201));
    now += 1000;
  };
  for (int v = 1; v <= 5; ++v) put("Patient", "a", v);  // 5 versions
  put("Patient", "b", 1);
  put("Organization", "o", 1);
  put("Organization", "o", 2);
  REQUIRE(h.Send("DELETE", "/fhir/Patient/a").status == 200);  // version 6 of Patient/a
  now += 1000;
  const int64_t total = h.store.version_count();
  REQUIRE(total == 9);

  SECTION("instance history lists every version, newest first") {
    auto r = h.Get("/fhir/Patient/a/_history");
    REQUIRE(r.status == 200);
    CHECK(h.last_ctx.interaction == "history-instance");
    auto doc = ParseJson(r.body);
    CHECK(StrOf(doc, "resourceType") == "Bundle");
    const auto& e = doc["entry"];
    REQUIRE(e.Size() == 6);
    CHECK(StrOf(e[0]["request"], "method") == "DELETE");
    CHECK_FALSE(e[0].HasMember("resource"));
    CHECK(StrOf(e[0]["response"], "etag") == "W/\"6\"");
    CHECK(StrOf(e[1]["request"], "method") == "PUT");
    CHECK(StrOf(e[1]["response"], "etag") == "W/\"5\"");
    CHECK(StrOf(e[1]["resource"]["meta"], "versionId") == "5");
    CHECK(StrOf(e[5]["response"], "status") == "201 Created");
    CHECK(StrOf(e[5], "fullUrl") == std::string(kBase) + "/Patient/a");
    REQUIRE(doc["link"].Size() == 1);
    CHECK(StrOf(doc["link"][0], "relation") == "self");
    CHECK(StrOf(doc["link"][0], "url") == std::string(kBase) + "/Patient/a/_history?_count=50");
  }
  SECTION("paging with _count visits every version exactly once") {
    struct Case {
      std::string target;
      std::size_t expected;
    };
    for (const auto& c : {Case{"/fhir/Patient/a/_history?_count=2", 6}, Case{"/fhir/Patient/_history?_count=3", 7},
                          Case{"/fhir/_history?_count=4", 9}, Case{"/fhir/_history?_count=1", 9},
                          Case{"/fhir/_history?_count=9", 9}, Case{"/fhir/_history?_count=8", 9}}) {
      INFO(c.target);
      int pages = 0;
      auto seen = WalkHistory(h, c.target, &pages);
      CHECK(seen.size() == c.expected);
      CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == c.expected);
      const int count = std::stoi(c.target.substr(c.target.find("_count=") + 7));
      CHECK(pages == static_cast<int>((c.expected + static_cast<std::size_t>(count) - 1) / static_cast<std::size_t>(count)));
    }
  }
  SECTION("next and first links") {
    auto first = ParseJson(h.Get("/fhir/_history?_count=4").body);
    REQUIRE(first["entry"].Size() == 4);
    std::string next;
    for (const auto& l : first["link"].GetArray())
      if (StrOf(l, "relation") == "next") next = StrOf(l, "url");
    CHECK_THAT(next, Catch::StartsWith(std::string(kBase) + "/_history?_count=4&_cursor="));
    auto second_resp = h.Get(next.substr(std::string("http://example.test").size()));
    auto second = ParseJson(second_resp.body);
    REQUIRE(second["entry"].Size() == 4);
    std::map<std::string, std::string> links;
    for (const auto& l : second["link"].GetArray()) links[StrOf(l, "relation")] = StrOf(l, "url");
    CHECK(links["self"] == next);
    CHECK(links["first"] == std::string(kBase) + "/_history?_count=4");
    // the second page starts right after the first one ends
    CHECK(StrOf(first["entry"][3], "fullUrl") == std::string(kBase) + "/Patient/b");
    CHECK(StrOf(second["entry"][0]["response"], "etag") == "W/\"5\"");
    CHECK(StrOf(second["entry"][0], "fullUrl") == std::string(kBase) + "/Patient/a");
  }
  SECTION("type history only lists that type") {
    auto seen = WalkHistory(h, "/fhir/Organization/_history");
    CHECK(seen.size() == 2);
    for (const auto& s : seen) CHECK_THAT(s, Catch::Contains("/fhir/Organization/o"));
    CHECK(h.last_ctx.interaction == "history-type");
  }
  SECTION("_count=0 and large counts") {
    auto zero = ParseJson(h.Get("/fhir/_history?_count=0").body);
    CHECK(zero["entry"].Size() == 0);
    auto big = h.Get("/fhir/_history?_count=999999");
    REQUIRE(big.status == 200);
    CHECK(ParseJson(big.body)["entry"].Size() == 9);
    CHECK_THAT(big.body, Catch::Contains("_count=1000"));  // capped at history_max_count
  }
  SECTION("_since") {
    const int64_t t0 = 1'700'000'000'000;
    auto since = [&](const std::string& value) {
      auto r = h.Get("/fhir/_history?_since=" + value);
      INFO(r.body);
      REQUIRE(r.status == 200);
      return ParseJson(r.body)["entry"].Size();
    };
    CHECK(since(fhir::FormatInstant(t0)) == 9);
    // Patient/a 5, Patient/b, Organization/o 1 and 2, the deletion of Patient/a
    CHECK(since(fhir::FormatInstant(t0 + 4000)) == 5);
    CHECK(since(fhir::FormatInstant(t0 + 4001)) == 4);
    CHECK(since(fhir::FormatInstant(t0 + 100'000)) == 0);
    CHECK(since("2000") == 9);
    // +01:00 as raw '+', as an encoded %2B and as the space a raw '+' decodes to
    const std::string local = "2023-11-14T23:13:24.000";  // = t0 + 4000 in UTC+1
    CHECK(since(local + "%2B01:00") == 5);
    CHECK(since(local + "+01:00") == 5);
    auto r = h.Get("/fhir/Patient/a/_history?_since=" + fhir::FormatInstant(t0 + 3000) + "&_count=1");
    auto doc = ParseJson(r.body);
    REQUIRE(doc["entry"].Size() == 1);
    std::string next;
    for (const auto& l : doc["link"].GetArray())
      if (StrOf(l, "relation") == "next") next = StrOf(l, "url");
    CHECK_THAT(next, Catch::Contains("_since=2023-11-14T22:13:23.000Z"));
    auto seen = WalkHistory(h, next.substr(std::string("http://example.test").size()));
    CHECK(seen.size() == 2);  // versions 5 and 4 (version 6 was on the first page)
  }
  SECTION("bad parameters") {
    for (const char* q : {"_count=abc", "_count=-1", "_count=1.5", "_count=", "_since=2024-13",
                          "_since=yesterday", "_since=2024-02-30", "_at=x", "_cursor=0", "_cursor=abc"}) {
      INFO(q);
      CheckError(h.Get(std::string("/fhir/_history?") + q), 400, "invalid");
    }
  }
}

TEST_CASE("FhirApi: a throwing store gives a generic 500", "[server]") {
  ThrowingStore throwing;
  Harness h(&throwing);
  for (auto [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/fhir/Patient/1"}, {"GET", "/fhir/Patient/1/_history/1"}, {"DELETE", "/fhir/Patient/1"},
           {"GET", "/fhir/_history"}}) {
    INFO(method << " " << target);
    auto r = h.Send(method, target, {}, {{"x-request-id", "req-42"}});
    CheckError(r, 500, "exception");
    CHECK(r.body.find("hunter2") == std::string::npos);
    CHECK(r.body.find("does not exist") == std::string::npos);
    CHECK_THAT(r.body, Catch::Contains("req-42"));
    CHECK(r.Header("X-Request-Id") == "req-42");
  }
  auto create = h.Send("POST", "/fhir/Patient", R"({"resourceType":"Patient"})");
  CheckError(create, 500, "exception");
  auto update = h.Send("PUT", "/fhir/Patient/p1", R"({"resourceType":"Patient","id":"p1"})");
  CheckError(update, 500, "exception");
  CHECK(update.body.find("hunter2") == std::string::npos);
  // requests refused before the store are unaffected
  CHECK(h.Get("/fhir/metadata").status == 200);
  CHECK(h.Get("/fhir/Foo/1").status == 404);
}

TEST_CASE("FhirApi: base URL from Host when no public URL is configured", "[server]") {
  ServerConfig config;
  config.bind_address = "10.0.0.1";
  FakeResourceStore store;
  FhirApi api(config, R4Definitions(), store);
  auto post = [&](std::string host) {
    HttpRequest req{"POST", "/fhir/Patient", {{"host", std::move(host)}, {"content-type", "application/fhir+json"}},
                    R"({"resourceType":"Patient"})"};
    RequestContext ctx;
    ctx.request_id = MakeRequestId({});
    return api.Handle(req, ctx);
  };
  CHECK_THAT(std::string(post("myhost:8080").Header("Location")), Catch::StartsWith("http://myhost:8080/fhir/Patient/"));
  CHECK_THAT(std::string(post("evil\"host/x").Header("Location")), Catch::StartsWith("http://10.0.0.1/fhir/Patient/"));
  CHECK_THAT(std::string(post("").Header("Location")), Catch::StartsWith("http://10.0.0.1/fhir/Patient/"));
}

TEST_CASE("FhirApi: another base path", "[server]") {
  ServerConfig config;
  config.base_path = "/api/r4";
  config.public_base_url = "https://example.test/api/r4";
  FakeResourceStore store;
  FhirApi api(config, R4Definitions(), store);
  RequestContext ctx;
  HttpRequest meta{"GET", "/api/r4/metadata", {}, {}};
  CHECK(api.Handle(meta, ctx).status == 200);
  CHECK(api.IsCheap(meta));
  HttpRequest old{"GET", "/fhir/metadata", {}, {}};
  CHECK(api.Handle(old, ctx).status == 404);
  HttpRequest partial{"GET", "/api/metadata", {}, {}};
  CHECK(api.Handle(partial, ctx).status == 404);
}

TEST_CASE("FhirApi: Reject, IsCheap and HttpStatusOf", "[server]") {
  Harness h;
  RequestContext ctx;
  ctx.request_id = "r1";
  auto r = h.api->Reject(fhir::ErrorKind::kPayloadTooLarge, "body too large", ctx);
  CheckError(r, 413, "too-long");
  CHECK(OnlyIssue(r).diagnostics == "body too large");
  CHECK(r.Header("X-Request-Id") == "r1");

  CHECK(h.api->IsCheap(HttpRequest{"GET", "/fhir/metadata", {}, {}}));
  CHECK(h.api->IsCheap(HttpRequest{"GET", "/fhir/metadata?_pretty=true", {}, {}}));
  CHECK_FALSE(h.api->IsCheap(HttpRequest{"POST", "/fhir/metadata", {}, {}}));
  CHECK_FALSE(h.api->IsCheap(HttpRequest{"GET", "/fhir/Patient/1", {}, {}}));
  CHECK_FALSE(h.api->IsCheap(HttpRequest{"GET", "/fhir/metadataX", {}, {}}));
  CHECK_FALSE(h.api->IsCheap(HttpRequest{"GET", "/fhir/_history", {}, {}}));

  using fhir::ErrorKind;
  const std::pair<ErrorKind, int> statuses[] = {
      {ErrorKind::kInvalid, 400},          {ErrorKind::kNotFound, 404},
      {ErrorKind::kGone, 410},             {ErrorKind::kMethodNotAllowed, 405},
      {ErrorKind::kNotAcceptable, 406},    {ErrorKind::kConflict, 409},
      {ErrorKind::kPreconditionFailed, 412}, {ErrorKind::kPayloadTooLarge, 413},
      {ErrorKind::kUriTooLong, 414},       {ErrorKind::kUnsupportedMediaType, 415},
      {ErrorKind::kUnprocessable, 422},    {ErrorKind::kNotSupported, 501},
      {ErrorKind::kUnavailable, 503},      {ErrorKind::kInternal, 500},
  };
  for (const auto& [kind, status] : statuses) CHECK(HttpStatusOf(kind) == status);
}

TEST_CASE("HttpRequest and HttpResponse headers", "[server]") {
  HttpRequest req{"GET", "/", {{"accept", "a"}, {"accept", "b"}}, {}};
  CHECK(req.Header("accept") == "a");
  CHECK(req.HasHeader("accept"));
  CHECK_FALSE(req.HasHeader("host"));
  CHECK(req.Header("host").empty());

  HttpResponse r;
  r.SetHeader("ETag", "1");
  r.SetHeader("etag", "2");
  REQUIRE(r.headers.size() == 1);
  CHECK(r.Header("ETAG") == "2");
  CHECK(r.Header("Location").empty());
  CHECK(r.Header("ETa").empty());
}

}  // namespace
}  // namespace eds::server

namespace eds::server {
namespace {

TEST_CASE("FhirApi: planned reads answer like Handle", "[server]") {
  Harness h;
  std::string id = h.CreatePatient();
  RequestContext ctx;
  ctx.request_id = "plan-1";

  HttpRequest read{"GET", "/fhir/Patient/" + id + "?_pretty=true", {{"accept", "application/json"}}, {}};
  auto plan = h.api->PlanRead(read, ctx);
  REQUIRE(plan.has_value());
  CHECK(plan->type == "Patient");
  CHECK(plan->id == id);
  CHECK(plan->pretty);
  CHECK(plan->content_type.find("application/json") == 0);
  CHECK(ctx.interaction == "read");

  auto planned = h.api->CompleteRead(read, *plan, h.store.Read("Patient", id), ctx);
  auto handled = h.api->Handle(read, ctx);
  CHECK(planned.status == 200);
  CHECK(planned.body == handled.body);
  CHECK(planned.Header("ETag") == handled.Header("ETag"));
  CHECK(planned.Header("Content-Type") == handled.Header("Content-Type"));
  CHECK(planned.Header("X-Request-Id") == "plan-1");

  auto missing = h.api->CompleteRead(read, *plan, h.store.Read("Patient", "nope"), ctx);
  CHECK(missing.status == 404);

  // anything but a valid plain read is left to Handle
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/fhir/Patient/" + id + "/_history/1"},
           {"GET", "/fhir/Patient/_history"},
           {"GET", "/fhir/metadata"},
           {"PUT", "/fhir/Patient/" + id},
           {"GET", "/fhir/Patient/bad_id"},
           {"GET", "/fhir/Unicorn/1"}}) {
    HttpRequest r{method, target, {}, {}};
    INFO(method << " " << target);
    CHECK_FALSE(h.api->PlanRead(r, ctx).has_value());
  }
  HttpRequest xml{"GET", "/fhir/Patient/" + id, {{"accept", "application/fhir+xml"}}, {}};
  CHECK_FALSE(h.api->PlanRead(xml, ctx).has_value());
}

}  // namespace
}  // namespace eds::server
