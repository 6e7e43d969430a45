// Bulk ingest against PostgreSQL with real `eds load` processes: 40,000
// (EDS_LOAD_TEST_LINES) generated resources with 1% broken lines, a load killed with SIGKILL and
// run again, re-runs of a finished load, searches over what was loaded,
// and $import over HTTP.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

namespace {

// What a generated file holds: line i (0-based) is a Patient p-(i/5) when
// i % 5 == 0, else an Observation of that Patient (every tenth without an
// id); lines with i % 100 == 42 are broken in one of four ways instead.
struct Generated {
  std::string path;
  int patients = 0;
  int observations = 0;
  std::set<int64_t> bad_lines;  // 1-based
};

// A directory of one test's files under /tmp, removed with its contents.
class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/eds-load-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // The path of `name` inside the directory.
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

Generated Generate(const std::string& path, int lines) {
  static const char* kFamilies[] = {"Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo"};
  static const char* kCodes[] = {"8867-4", "8480-6", "8462-4", "29463-7", "8310-5"};
  Generated g;
  g.path = path;
  std::ofstream out(path);
  for (int i = 0; i < lines; ++i) {
    const int p = i / 5;
    if (i % 100 == 42) {
      g.bad_lines.insert(i + 1);
      switch ((i / 100) % 4) {
        case 0: out << R"({"resourceType":"Observation","id":"o-)" << i << R"(","status":"fin)"; break;
        case 1: out << R"({"resourceType":"Observatio","id":"o-)" << i << R"("})"; break;
        case 2: out << R"({"resourceType":"Observation","id":"o-)" << i << R"(","status":"final","colour":"red"})"; break;
        default: out << R"({"resourceType":"Observation","id":"o )" << i << R"(","status":"final"})"; break;
      }
      out << '\n';
      continue;
    }
    if (i % 5 == 0) {
      ++g.patients;
      out << fmt::format(
          R"({{"resourceType":"Patient","id":"p-{0}","identifier":[{{"system":"http://eds.test/mrn","value":"MRN-{0}"}}],)"
          R"("name":[{{"family":"{1}","given":["Nome{0}"]}}],"gender":"{2}","birthDate":"19{3:02}-0{4}-1{5}"}})",
          p, kFamilies[p % 7], p % 2 ? "female" : "male", p % 100, p % 9 + 1, p % 10);
    } else {
      ++g.observations;
      const std::string id = i % 10 == 3 ? std::string() : fmt::format(R"("id":"o-{}",)", i);
      out << fmt::format(
          R"({{"resourceType":"Observation",{0}"status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"{1}"}}]}},)"
          R"("subject":{{"reference":"Patient/p-{2}"}},"effectiveDateTime":"2024-0{3}-1{4}T10:00:00Z",)"
          R"("valueQuantity":{{"value":{5}.{6},"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}}})",
          id, kCodes[i % 5], p, i % 9 + 1, i % 10, 60 + i % 80, i % 10);
    }
    out << '\n';
  }
  return g;
}

int64_t Count(const std::string& dsn, const std::string& sql) { return std::stoll(Sql(dsn, sql).at(0).at(0)); }

// Runs `eds load` to completion; returns its exit status and what it printed.
std::pair<int, std::string> RunLoad(const std::string& dsn, std::vector<std::string> args) {
  const ScratchDir dir;
  const std::string out = dir / "out.txt";
  std::string cmd = "exec '" + EdsBinary() + "' load --database-url '" + dsn + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " > '" + out + "' 2>&1";
  int status = WaitExit(Spawn({"/bin/sh", "-c", cmd}));
  std::ifstream f(out);
  std::stringstream text;
  text << f.rdbuf();
  return {status, text.str()};
}

std::string MigratedDatabase(const std::string& name) {
  const std::string dsn = CreateDatabase(name + "_" + UniquePrefix());
  REQUIRE(WaitExit(Spawn({EdsBinary(), "migrate", "--database-url", dsn, "--log-level", "warn"})) == 0);
  return dsn;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  return lines;
}

// The report lists every bad line once, with its line number.
void CheckReport(const Generated& g, const std::string& report) {
  auto lines = ReadLines(report);
  CHECK(lines.size() == g.bad_lines.size());
  std::set<int64_t> reported;
  for (const auto& l : lines) {
    auto at = l.find(":line ");
    REQUIRE(at != std::string::npos);
    reported.insert(std::stoll(l.substr(at + 6)));
  }
  CHECK(reported == g.bad_lines);
}

// Every good resource stored exactly once, with its index rows once.
void CheckStoredOnce(const std::string& dsn, const Generated& g) {
  const int64_t total = g.patients + g.observations;
  CHECK(Count(dsn, "SELECT count(*) FROM resource WHERE res_type = 'Patient'") == g.patients);
  CHECK(Count(dsn, "SELECT count(*) FROM resource WHERE res_type = 'Observation'") == g.observations);
  CHECK(Count(dsn, "SELECT count(*) FROM resource_history") == total);
  CHECK(Count(dsn, "SELECT count(*) FROM resource WHERE version_id <> 1 OR deleted") == 0);
  // each history row is the current version, whose content is the resource
  // row's alone (migration 0013); nothing was superseded
  CHECK(Count(dsn, "SELECT count(*) FROM resource_history h JOIN resource r USING (res_type, res_id)"
                   " WHERE h.content IS NULL AND h.version_id = r.version_id AND h.last_updated = r.last_updated"
                   " AND r.content IS NOT NULL") == total);
  CHECK(Count(dsn, "SELECT count(*) FROM resource_history_content") == 0);
  // one subject and one code row per Observation, one family row per Patient
  CHECK(Count(dsn, "SELECT count(*) FROM search_reference WHERE res_type = 'Observation' AND param = 'subject'"
                   " AND target_type = 'Patient'") == g.observations);
  CHECK(Count(dsn, "SELECT count(*) FROM (SELECT res_id FROM search_token WHERE res_type = 'Observation'"
                   " AND param = 'code' GROUP BY res_id HAVING count(*) <> 1) x") == 0);
  CHECK(Count(dsn, "SELECT count(DISTINCT res_id) FROM search_token WHERE res_type = 'Observation' AND param = 'code'") ==
        g.observations);
  CHECK(Count(dsn, "SELECT count(*) FROM search_string WHERE res_type = 'Patient' AND param = 'family'") == g.patients);
  CHECK(Count(dsn, "SELECT count(*) FROM search_quantity WHERE res_type = 'Observation' AND param = 'value-quantity'") ==
        g.observations);
}

}  // namespace

// Lines of the big load: 40,000 by default, to stay well under a minute on
// a busy two-core machine; EDS_LOAD_TEST_LINES=100000 runs the full size.
int BigLoadLines() {
  const char* v = std::getenv("EDS_LOAD_TEST_LINES");
  return v != nullptr && std::atoi(v) >= 1000 ? std::atoi(v) / 100 * 100 : 40000;
}

TEST_CASE("eds load: generated resources with 1% broken lines", "[load]") {
  const std::string dsn = MigratedDatabase("eds_load_big");
  const ScratchDir dir;
  const int n = BigLoadLines();
  const Generated g = Generate(dir / "big.ndjson", n);
  REQUIRE(g.bad_lines.size() == static_cast<std::size_t>(n / 100));

  auto t0 = std::chrono::steady_clock::now();
  auto [status, out] = RunLoad(dsn, {g.path});
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(out);
  REQUIRE(status == 0);
  WARN(fmt::format("eds load of {} lines: {:.1f} s", n, secs));
  CHECK(out.find(fmt::format("stored {}, unchanged 0, rejected {}", g.patients + g.observations, n / 100)) !=
        std::string::npos);
  CheckStoredOnce(dsn, g);
  CheckReport(g, g.path + ".rejected.txt");
  // each kind of problem is named
  const auto report = ReadLines(g.path + ".rejected.txt");
  CHECK(report[1].find("unknown resource type 'Observatio'") != std::string::npos);
  CHECK(report[2].find("colour") != std::string::npos);
  CHECK(report[3].find("not a valid resource id") != std::string::npos);
  CHECK(Count(dsn, fmt::format("SELECT count(*) FROM load_checkpoint WHERE complete AND committed_line = {}", n)) == 1);

  SECTION("searches find what was loaded") {
    ServerProcess server(dsn);
    HttpClient c(server.port());
    auto r = c.Get("/fhir/Observation?subject=Patient/p-7&_count=100");
    REQUIRE(r.status == 200);
    auto d = r.Json();
    REQUIRE(d.HasMember("entry"));
    CHECK(d["entry"].Size() == 4);  // lines 36-39
    r = c.Get("/fhir/Patient?identifier=http://eds.test/mrn%7CMRN-1234");
    REQUIRE(r.status == 200);
    d = r.Json();
    REQUIRE(d.HasMember("entry"));
    CHECK(d["entry"].Size() == 1);
    CHECK(std::string(d["entry"][0]["resource"]["id"].GetString()) == "p-1234");
    CHECK(std::string(d["entry"][0]["resource"]["meta"]["versionId"].GetString()) == "1");
    r = c.Get("/fhir/Observation?code=http://loinc.org%7C8480-6&subject:Patient.identifier=http://eds.test/mrn%7CMRN-3");
    REQUIRE(r.status == 200);
    CHECK(r.Json()["entry"].Size() == 1);  // line 16
    // a read of a resource that came without an id
    auto id = Sql(dsn, "SELECT res_id FROM resource WHERE res_type = 'Observation' AND res_id NOT LIKE 'o-%' LIMIT 1");
    REQUIRE(id.size() == 1);
    CHECK(c.Get("/fhir/Observation/" + id[0][0]).status == 200);
  }
}

TEST_CASE("eds load killed midway and run again stores everything exactly once", "[load]") {
  const std::string dsn = MigratedDatabase("eds_load_kill");
  const ScratchDir dir;
  const Generated g = Generate(dir / "kill.ndjson", 20000);

  // small batches, one preparing thread: long enough to be killed midway
  int pid = Spawn({EdsBinary(), "load", "--database-url", dsn, "--batch-size", "100", "--jobs", "1", g.path});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int64_t committed = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto rows = Sql(dsn, "SELECT committed_line FROM load_checkpoint");
    if (!rows.empty() && (committed = std::stoll(rows[0][0])) >= 3000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  CHECK(WaitExit(pid) == -1);
  INFO("killed after line " << committed);
  REQUIRE(committed >= 3000);
  REQUIRE(Count(dsn, "SELECT count(*) FROM load_checkpoint WHERE NOT complete") == 1);
  const int64_t before = Count(dsn, "SELECT count(*) FROM resource");
  CHECK(before > 0);
  CHECK(before < g.patients + g.observations);

  auto [status, out] = RunLoad(dsn, {"--batch-size", "100", g.path});
  INFO(out);
  REQUIRE(status == 0);
  CHECK(out.find("resumed after line") != std::string::npos);
  CheckStoredOnce(dsn, g);
  CheckReport(g, g.path + ".rejected.txt");

  SECTION("running a finished load again changes nothing") {
    auto [again_status, again] = RunLoad(dsn, {g.path});
    INFO(again);
    CHECK(again_status == 0);
    CHECK(again.find("already loaded") != std::string::npos);
    auto [restart_status, restarted] = RunLoad(dsn, {"--restart", g.path});
    INFO(restarted);
    CHECK(restart_status == 0);
    CHECK(restarted.find(fmt::format("stored 0, unchanged {}, rejected 200", g.patients + g.observations)) !=
          std::string::npos);
    CheckStoredOnce(dsn, g);
    CheckReport(g, g.path + ".rejected.txt");
  }
}

TEST_CASE("eds load: a Bundle file, a missing file, exit status", "[load]") {
  const std::string dsn = MigratedDatabase("eds_load_misc");
  const ScratchDir dir;
  {
    std::ofstream f(dir / "bundle.json");
    f << "{\n  \"resourceType\": \"Bundle\", \"type\": \"transaction\",\n  \"entry\": [\n"
         "    {\"resource\": {\"resourceType\": \"Patient\", \"id\": \"b1\"}, \"request\": {\"method\": \"PUT\", \"url\": \"Patient/b1\"}},\n"
         "    {\"resource\": {\"resourceType\": \"Patient\", \"active\": \"yes\"}},\n"
         "    {\"resource\": {\"resourceType\": \"Patient\", \"active\": true}}\n  ]\n}\n";
  }
  auto [status, out] = RunLoad(dsn, {dir / "bundle.json"});
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("stored 2, unchanged 0, rejected 1") != std::string::npos);
  CHECK(out.find("line 1, Bundle.entry[1]") != std::string::npos);
  CHECK(Count(dsn, "SELECT count(*) FROM resource WHERE res_type = 'Patient'") == 2);

  auto [missing_status, missing] = RunLoad(dsn, {dir / "missing.ndjson"});
  INFO(missing);
  CHECK(missing_status == 1);
  CHECK(missing.find("cannot open") != std::string::npos);
}

TEST_CASE("$import over HTTP", "[load]") {
  const std::string dsn = MigratedDatabase("eds_load_import");
  ServerProcess server(dsn);
  HttpClient c(server.port());
  const std::string body =
      R"({"resourceType":"Patient","id":"imp-1","name":[{"family":"Importato"}]})"
      "\n"
      R"({"resourceType":"Patient","id":"imp-2","gender":12})"
      "\n"
      R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/imp-1"}})"
      "\n";
  auto r = c.Post("/fhir/$import", body, {{"Content-Type", "application/fhir+ndjson"}});
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = r.Json();
  CHECK(d["parameter"][0]["valueInteger"].GetInt() == 2);
  CHECK(d["parameter"][2]["valueInteger"].GetInt() == 1);
  CHECK(d["parameter"][3]["part"][0]["valueInteger"].GetInt() == 2);
  CHECK(c.Get("/fhir/Patient?family=importato").body.find("imp-1") != std::string::npos);
  CHECK(c.Get("/fhir/Observation?subject=Patient/imp-1").Json()["entry"].Size() == 1);
  // the same body again: nothing new
  r = c.Post("/fhir/$import", body, {{"Content-Type", "application/x-ndjson"}});
  REQUIRE(r.status == 200);
  CHECK(r.Json()["parameter"][1]["valueInteger"].GetInt() == 2);
  CHECK(Count(dsn, "SELECT count(*) FROM resource_history") == 2);
  CHECK(c.Post("/fhir/$import", body, {{"Content-Type", "application/fhir+json"}}).status == 415);
}

TEST_CASE("eds load of changed resources writes new versions as PUT does", "[load]") {
  const std::string dsn = MigratedDatabase("eds_load_versions");
  const ScratchDir dir;
  auto write = [&](const std::string& name, const std::vector<std::string>& lines) {
    std::ofstream f(dir / name);
    for (const auto& l : lines) f << l << '\n';
    return dir / name;
  };
  auto patient = [](const std::string& id, const std::string& family) {
    return R"({"resourceType":"Patient","id":")" + id + R"(","name":[{"family":")" + family + R"("}]})";
  };
  auto observation = [](const std::string& subject) {
    return R"({"resourceType":"Observation","id":"v-o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/)" +
           subject + R"("}})";
  };
  auto [s1, out1] =
      RunLoad(dsn, {write("v1.ndjson", {patient("v-a", "Alfa"), patient("v-b", "Beta"), patient("v-c", "Gamma"),
                                        observation("v-a")})});
  INFO(out1);
  REQUIRE(s1 == 0);
  CHECK(out1.find("stored 4, unchanged 0") != std::string::npos);

  ServerProcess server(dsn);
  HttpClient c(server.port());
  REQUIRE(c.Send("DELETE", "/fhir/Patient/v-c").status == 200);

  // changed, unchanged, deleted then loaded again, a reference moved, one id twice in a batch
  auto [s2, out2] = RunLoad(dsn, {write("v2.ndjson", {patient("v-a", "Delta"), patient("v-b", "Beta"),
                                                      patient("v-c", "Gamma"), observation("v-b"),
                                                      patient("v-d", "Epsilon"), patient("v-d", "Zeta")})});
  INFO(out2);
  REQUIRE(s2 == 0);
  CHECK(out2.find("stored 5, unchanged 1") != std::string::npos);

  auto a = c.Get("/fhir/Patient/v-a");
  REQUIRE(a.status == 200);
  CHECK(a.Header("etag") == "W/\"2\"");
  CHECK(a.body.find("Delta") != std::string::npos);
  CHECK(c.Get("/fhir/Patient/v-b").Header("etag") == "W/\"1\"");
  auto revived = c.Get("/fhir/Patient/v-c");
  CHECK(revived.status == 200);
  CHECK(revived.Header("etag") == "W/\"3\"");
  auto d = c.Get("/fhir/Patient/v-d");
  CHECK(d.Header("etag") == "W/\"2\"");
  CHECK(d.body.find("Zeta") != std::string::npos);
  CHECK(c.Get("/fhir/Patient/v-d/_history").Json()["entry"].Size() == 2);
  CHECK(c.Get("/fhir/Patient/v-d/_history/1").body.find("Epsilon") != std::string::npos);

  // the index follows the current versions only
  auto matches = [&](const std::string& target) {
    auto r = c.Get(target);
    REQUIRE(r.status == 200);
    auto j = r.Json();
    return j.HasMember("entry") ? static_cast<int>(j["entry"].Size()) : 0;
  };
  CHECK(matches("/fhir/Patient?family=alfa") == 0);
  CHECK(matches("/fhir/Patient?family=delta") == 1);
  CHECK(matches("/fhir/Patient?family=gamma") == 1);
  CHECK(matches("/fhir/Patient?family=epsilon") == 0);
  CHECK(matches("/fhir/Patient?family=zeta") == 1);
  CHECK(matches("/fhir/Observation?subject=Patient/v-a") == 0);
  CHECK(matches("/fhir/Observation?subject=Patient/v-b") == 1);
  CHECK(Count(dsn, "SELECT count(*) FROM search_string WHERE res_id = 'v-d' AND param = 'family'") == 1);
  // every index row carries its resource's key (a reloaded resource's new
  // one), and keys are unique
  for (const char* table : {"search_string", "search_token", "search_reference"})
    CHECK(Count(dsn, std::string("SELECT count(*) FROM ") + table +
                         " s LEFT JOIN resource r ON r.res_key = s.res_key AND r.res_type = s.res_type"
                         " AND r.res_id = s.res_id WHERE r.res_id IS NULL") == 0);
  CHECK(Count(dsn, "SELECT count(*) - count(DISTINCT res_key) FROM resource") == 0);
  CHECK(Count(dsn, "SELECT count(*) FROM resource_history") == 4 + 1 + 5);  // loads and the deletion
  CHECK(Count(dsn, "SELECT count(*) FROM resource r JOIN resource_history h USING (res_type, res_id, version_id)"
                   " WHERE h.last_updated = r.last_updated") == 5);
  // superseded versions read back: archived when the load (v-a, v-o1) or the
  // deletion (v-c) superseded them, kept in the history row when superseded
  // in the same batch (v-d); current versions' content is the resource row's
  CHECK(c.Get("/fhir/Patient/v-a/_history/1").body.find("Alfa") != std::string::npos);
  CHECK(c.Get("/fhir/Patient/v-c/_history/1").body.find("Gamma") != std::string::npos);
  CHECK(c.Get("/fhir/Observation/v-o1/_history/1").body.find("Patient/v-a") != std::string::npos);
  CHECK(c.Get("/fhir/Patient/v-a/_history").body.find("Alfa") != std::string::npos);
  CHECK(Sql(dsn, "SELECT string_agg(res_id || '/' || version_id, ',' ORDER BY res_id) FROM resource_history_content")[0][0] ==
        "v-a/1,v-c/1,v-o1/1");
  CHECK(Sql(dsn, "SELECT string_agg(res_id || '/' || version_id, ',' ORDER BY res_id) FROM resource_history"
                 " WHERE content IS NOT NULL")[0][0] == "v-d/1");
}

TEST_CASE("eds load rewrites references between a Bundle's entries to the ids they get", "[load]") {
  const std::string dsn = MigratedDatabase("eds_load_refs");
  const ScratchDir dir;
  const std::string path = dir / "bundles.ndjson";
  {
    std::ofstream f(path);
    // a transaction Bundle with urn:uuid: fullUrls and no ids
    f << R"({"resourceType":"Bundle","type":"transaction","entry":[)"
         R"({"fullUrl":"urn:uuid:9c1d0a52-0000-4000-8000-000000000001","resource":{"resourceType":"Patient",)"
         R"("identifier":[{"system":"http://eds.test/mrn","value":"REF-1"}]},"request":{"method":"POST","url":"Patient"}},)"
         R"({"fullUrl":"urn:uuid:9c1d0a52-0000-4000-8000-000000000002","resource":{"resourceType":"Observation",)"
         R"("status":"final","code":{"text":"glucose"},"subject":{"reference":"urn:uuid:9c1d0a52-0000-4000-8000-000000000001"},)"
         R"("hasMember":[{"reference":"urn:uuid:9c1d0a52-0000-4000-8000-000000000003"}]},"request":{"method":"POST","url":"Observation"}},)"
         R"({"fullUrl":"urn:uuid:9c1d0a52-0000-4000-8000-000000000003","resource":{"resourceType":"Observation",)"
         R"("status":"final","code":{"text":"insulin"},"subject":{"reference":"urn:uuid:9c1d0a52-0000-4000-8000-000000000001"}},)"
         R"("request":{"method":"POST","url":"Observation"}}]})"
      << '\n';
    // a collection Bundle with absolute RESTful fullUrls, referenced in both forms,
    // and a reference to an entry that is refused (left as it is)
    f << R"({"resourceType":"Bundle","type":"collection","entry":[)"
         R"({"fullUrl":"http://other.test/fhir/Patient/ext-1","resource":{"resourceType":"Patient","name":[{"family":"Esterno"}]}},)"
         R"({"fullUrl":"http://other.test/fhir/Observation/ext-o1","resource":{"resourceType":"Observation","status":"final",)"
         R"("code":{"text":"x"},"subject":{"reference":"Patient/ext-1"},"performer":[{"reference":"http://other.test/fhir/Patient/ext-1"},)"
         R"({"reference":"urn:uuid:9c1d0a52-0000-4000-8000-0000000000ff"}]}},)"
         R"({"fullUrl":"urn:uuid:9c1d0a52-0000-4000-8000-0000000000ff","resource":{"resourceType":"Practitioner","id":"bad id"}}]})"
      << '\n';
  }
  auto [status, out] = RunLoad(dsn, {path});
  INFO(out);
  REQUIRE(status == 0);
  CHECK(out.find("stored 5, unchanged 0, rejected 1") != std::string::npos);
  CHECK(out.find("line 2, Bundle.entry[2]") != std::string::npos);

  auto patient = Sql(dsn, "SELECT res_id FROM resource WHERE res_type = 'Patient' AND content::text LIKE '%REF-1%'");
  REQUIRE(patient.size() == 1);
  const std::string patient_id = patient[0][0];
  CHECK(patient_id.find("uuid") == std::string::npos);
  // both Observations point at the Patient by its id, in the content and in the index
  CHECK(Count(dsn, "SELECT count(*) FROM resource WHERE res_type = 'Observation' AND content::text LIKE "
                   "'%\"subject\":{\"reference\":\"Patient/" + patient_id + "\"}%'") == 2);
  CHECK(Count(dsn, "SELECT count(*) FROM search_reference WHERE res_type = 'Observation' AND param = 'subject'"
                   " AND target_type = 'Patient' AND target_id = '" + patient_id + "'") == 2);
  auto insulin = Sql(dsn, "SELECT res_id FROM resource WHERE res_type = 'Observation' AND content::text LIKE '%insulin%'");
  REQUIRE(insulin.size() == 1);
  CHECK(Count(dsn, "SELECT count(*) FROM search_reference WHERE param = 'has-member' AND target_type = 'Observation'"
                   " AND target_id = '" + insulin[0][0] + "'") == 1);
  CHECK(Count(dsn, "SELECT count(*) FROM resource WHERE content::text LIKE '%urn:uuid:9c1d0a52-0000-4000-8000-00000000000%'") == 0);

  // the RESTful fullUrl gave the Patient its id; both forms of reference point at it
  CHECK(Count(dsn, "SELECT count(*) FROM resource WHERE res_type = 'Patient' AND res_id = 'ext-1'") == 1);
  CHECK(Count(dsn, "SELECT count(*) FROM search_reference WHERE res_type = 'Observation' AND res_id = 'ext-o1'"
                   " AND param IN ('subject', 'performer') AND target_type = 'Patient' AND target_id = 'ext-1'") == 2);
  // the refused entry is no target: its reference stays as it was
  CHECK(Count(dsn, "SELECT count(*) FROM resource WHERE res_id = 'ext-o1' AND content::text LIKE "
                   "'%urn:uuid:9c1d0a52-0000-4000-8000-0000000000ff%'") == 1);

  // the same file again (from the start): the same ids, nothing new
  auto [again_status, again] = RunLoad(dsn, {"--restart", path});
  INFO(again);
  CHECK(again_status == 0);
  CHECK(again.find("stored 0, unchanged 5, rejected 1") != std::string::npos);
  CHECK(Count(dsn, "SELECT count(*) FROM resource") == 5);
}
