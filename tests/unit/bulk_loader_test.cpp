// Unit tests of bulk ingest over the in-memory store: what each line
// contributes or why it is rejected, content-derived ids, re-runs, file
// checkpoints, and the $import operation.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "fake_resource_store.hpp"
#include "fhir/bulk.hpp"
#include "fhir/json.hpp"
#include "server/bulk_loader.hpp"
#include "server/fhir_api.hpp"
#include "test_support.hpp"

namespace eds::server {
namespace {

using testing::FakeResourceStore;
using testing::ParseJson;
using testing::R4Definitions;

const char* kLines =
    R"({"resourceType":"Patient","id":"p1","name":[{"family":"Rossi"}]})"
    "\n"
    R"({"resourceType":"Patient","name":[{"family":"Bianchi"}]})"
    "\n"
    "\n"  // blank: skipped, not rejected
    R"({"resourceType":"Patient","id":"p2",)"
    "\n"  // malformed JSON
    R"({"resourceType":"Nonsense","id":"x"})"
    "\n"
    R"({"resourceType":"Patient","id":"p3","nickname":"x"})"
    "\n"  // structure error
    R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Observation","id":"o1",)"
    R"("status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}},{"fullUrl":"urn:x"},)"
    R"({"resource":{"resourceType":"Patient","id":"p4"}}]})"
    "\n"
    R"({"resourceType":"Patient","id":"bad id!"})";  // no final newline

struct Loaded {
  LoadStats stats;
  std::vector<Rejection> rejections;
};

Loaded Load(FakeResourceStore& store, std::string_view text, int workers = 2, int batch = 2) {
  LoadOptions o;
  o.workers = workers;
  o.batch_size = batch;
  BulkLoader loader(R4Definitions(), nullptr, store, o);
  Loaded out;
  auto r = loader.LoadText(text, [&](const Rejection& rej) { out.rejections.push_back(rej); });
  REQUIRE(r);
  out.stats = *r;
  return out;
}

TEST_CASE("bulk load: good lines stored, bad lines reported with line and reason", "[server][load]") {
  FakeResourceStore store;
  auto l = Load(store, kLines);
  CHECK(l.stats.lines == 8);
  CHECK(l.stats.stored == 4);  // p1, the id-less Patient, o1, p4
  CHECK(l.stats.unchanged == 0);
  CHECK(l.stats.rejected == 5);
  REQUIRE(l.rejections.size() == 5);
  CHECK(l.rejections[0].line == 4);
  CHECK(l.rejections[1].line == 5);
  CHECK(l.rejections[1].reason.find("unknown resource type 'Nonsense'") != std::string::npos);
  CHECK(l.rejections[2].line == 6);
  CHECK(l.rejections[2].reason.find("nickname") != std::string::npos);
  CHECK(l.rejections[3].line == 7);
  CHECK(l.rejections[3].entry == std::optional<std::size_t>(1));
  CHECK(l.rejections[3].Describe() == "line 7, Bundle.entry[1]: the entry has no resource (at Bundle.entry[1])");
  CHECK(l.rejections[4].line == 8);
  CHECK(l.rejections[4].reason.find("not a valid resource id") != std::string::npos);
  CHECK(store.Read("Patient", "p1"));
  CHECK(store.Read("Observation", "o1"));
  CHECK(store.Read("Patient", "p4")->version == 1);
}

TEST_CASE("bulk load: running again stores nothing twice", "[server][load]") {
  FakeResourceStore store;
  Load(store, kLines);
  const auto versions = store.version_count();
  auto again = Load(store, kLines, 1, 1000);
  CHECK(again.stats.stored == 0);
  CHECK(again.stats.unchanged == 4);  // the id-less Patient found again under its derived id
  CHECK(again.stats.rejected == 5);
  CHECK(store.version_count() == versions);
  // a changed resource gets a new version, as with PUT
  auto changed = Load(store, R"({"resourceType":"Patient","id":"p1","name":[{"family":"Verdi"}]})");
  CHECK(changed.stats.stored == 1);
  CHECK(store.Read("Patient", "p1")->version == 2);
}

TEST_CASE("bulk load with several writers keeps the versions of one resource in source order", "[server][load]") {
  FakeResourceStore store;
  std::string text;
  for (const char* family : {"A", "B", "C", "D"}) {
    text += std::string(R"({"resourceType":"Patient","id":"same","name":[{"family":")") + family + "\"}]}\n";
    text += std::string(R"({"resourceType":"Patient","id":"other-)") + family + "\"}\n";
  }
  LoadOptions o;
  o.batch_size = 1;
  o.workers = 3;
  o.writers = 3;
  BulkLoader loader(R4Definitions(), nullptr, store, o);
  auto r = loader.LoadText(text, {});
  REQUIRE(r);
  CHECK(r->stored == 8);
  auto cur = store.Read("Patient", "same");
  REQUIRE(cur);
  CHECK(cur->version == 4);
  CHECK(cur->content.find(R"("family":"D")") != std::string::npos);
  for (int v = 1; v <= 4; ++v) {
    auto old = store.ReadVersion("Patient", "same", v);
    REQUIRE(old);
    CHECK(old->content.find(std::string(R"("family":")") + char('A' + v - 1)) != std::string::npos);
  }
}

TEST_CASE("content-derived ids ignore layout and follow content", "[fhir][load]") {
  auto a = fhir::Resource::Parse(R"({"resourceType":"Patient","active":true,"gender":"male"})");
  auto b = fhir::Resource::Parse("{ \"resourceType\" : \"Patient\",\n \"active\": true, \"gender\":\"male\" }");
  auto c = fhir::Resource::Parse(R"({"resourceType":"Patient","active":true,"gender":"female"})");
  REQUIRE((a && b && c));
  const std::string id = fhir::ContentDerivedId(*a);
  CHECK(id.size() == 32);
  CHECK(fhir::ContentDerivedId(*b) == id);
  CHECK(fhir::ContentDerivedId(*c) != id);
}

TEST_CASE("bulk load of a file: report, checkpoint, nothing to do once complete", "[server][load]") {
  char dir_template[] = "/tmp/eds-load-unit.XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template, path = dir + "/data.ndjson";
  {
    std::ofstream f(path);
    f << kLines;
  }
  FakeResourceStore store;
  LoadOptions o;
  o.batch_size = 3;
  o.writers = 2;
  BulkLoader loader(R4Definitions(), nullptr, store, o);
  auto r = loader.LoadFile(path, {});
  REQUIRE(r);
  CHECK(r->run.stored == 4);
  CHECK(r->run.rejected == 5);
  CHECK(r->report_path == path + ".rejected.txt");
  std::ifstream report(r->report_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(report, line);) lines.push_back(line);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0].rfind(path + ":line 4: ", 0) == 0);

  auto again = loader.LoadFile(path, {});
  REQUIRE(again);
  CHECK(again->already_complete);
  CHECK(again->total_stored == 4);
  CHECK(again->total_rejected == 5);

  auto restarted = loader.LoadFile(path, {"", true});
  REQUIRE(restarted);
  CHECK(restarted->run.unchanged == 4);
  CHECK(restarted->run.stored == 0);

  CHECK_FALSE(loader.LoadFile(dir + "/missing.ndjson", {}));
  std::remove(r->report_path.c_str());
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("$import loads an NDJSON body and lists the rejected lines", "[server][load]") {
  FakeResourceStore store;
  ServerConfig config;
  config.public_base_url = "http://example.test/fhir";
  FhirApi api(config, R4Definitions(), store);
  auto send = [&](std::string body, std::string content_type) {
    HttpRequest req;
    req.method = "POST";
    req.target = "/fhir/$import";
    req.body = std::move(body);
    req.headers = {{"content-type", std::move(content_type)}};
    RequestContext ctx;
    return api.Handle(req, ctx);
  };
  auto r = send(kLines, "application/fhir+ndjson");
  REQUIRE(r.status == 200);
  auto d = ParseJson(r.body);
  CHECK(std::string(d["resourceType"].GetString()) == "Parameters");
  CHECK(d["parameter"][0]["valueInteger"].GetInt() == 4);  // stored
  CHECK(d["parameter"][2]["valueInteger"].GetInt() == 5);  // rejected
  CHECK(d["parameter"].Size() == 3 + 5);
  CHECK(d["parameter"][3]["part"][0]["valueInteger"].GetInt() == 4);

  CHECK(send(kLines, "application/fhir+json").status == 415);
  CHECK(send("", "application/x-ndjson").status == 400);
  auto again = send(kLines, "application/x-ndjson");
  REQUIRE(again.status == 200);
  CHECK(ParseJson(again.body)["parameter"][1]["valueInteger"].GetInt() == 4);  // unchanged
}

}  // namespace
}  // namespace eds::server
