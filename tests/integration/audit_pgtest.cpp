// The audit trail: one row per request with what it touched, written in
// batches; rows cannot be changed; old months are dropped whole; the
// monitoring views aggregate them.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "storage/migrator.hpp"
#include "storage/pg_audit_sink.hpp"
#include "support.hpp"

using namespace eds::testing;

TEST_CASE("every request leaves one audit row with what it touched", "[e2e]") {
  const std::string dsn = CreateDatabase("eds_audit_" + UniquePrefix());
  ServerProcess server(dsn, {"--migrate"});
  HttpClient c(server.port());
  auto created = c.Post("/fhir/Patient", R"({"resourceType":"Patient","name":[{"family":"Esposito"}]})",
                        {{"X-Request-Id", "audit-create-1"}});
  REQUIRE(created.status == 201);
  const std::string pid = created.Json()["id"].GetString();
  REQUIRE(c.Post("/fhir/Observation",
                 R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/)" + pid +
                     R"("}})",
                 {{"X-Request-Id", "audit-create-2"}})
              .status == 201);
  REQUIRE(c.Send("GET", "/fhir/Patient/" + pid, {{"X-Request-Id", "audit-read-1"}}).status == 200);
  REQUIRE(c.Send("GET", "/fhir/Patient/missing", {{"X-Request-Id", "audit-read-2"}}).status == 404);
  REQUIRE(c.Send("GET", "/fhir/Observation?subject=Patient/" + pid, {{"X-Request-Id", "audit-search-1"}}).status == 200);
  REQUIRE(c.Get("/metrics").status == 200);  // operational endpoints are not audited

  const std::string select =
      "SELECT request_id, interaction, method, resource_type, resource_id, coalesce(version_id::text, ''),"
      " array_to_string(patients, ','), caller_subject, status::text, outcome_code, resources_returned::text, query,"
      " (latency_ms >= 0)::text, (bytes_out > 0)::text"
      " FROM audit_event WHERE request_id LIKE 'audit-%' ORDER BY request_id";
  auto rows = WaitRows(dsn, select, 5);
  REQUIRE(rows.size() == 5);
  using Row = std::vector<std::string>;
  // writes: recorded in their own transaction, before the answer's size is known
  CHECK(rows[0] == Row{"audit-create-1", "create", "POST", "Patient", pid, "1", "Patient/" + pid, "anonymous", "201", "",
                       "0", "", "true", ""});
  CHECK(rows[1][4].size() == 36);  // the new Observation's server-assigned id
  CHECK(rows[1] == Row{"audit-create-2", "create", "POST", "Observation", rows[1][4], "1", "Patient/" + pid, "anonymous", "201",
                       "", "0", "", "true", ""});
  CHECK(rows[2] == Row{"audit-read-1", "read", "GET", "Patient", pid, "1", "Patient/" + pid, "anonymous", "200", "", "1",
                       "", "true", "true"});
  CHECK(rows[3] == Row{"audit-read-2", "read", "GET", "Patient", "missing", "", "Patient/missing", "anonymous", "404",
                       "not-found", "0", "", "true", "true"});
  CHECK(rows[4] == Row{"audit-search-1", "search-type", "GET", "Observation", "", "", "Patient/" + pid, "anonymous",
                       "200", "", "1", "subject=Patient/" + pid, "true", "true"});
  CHECK(Sql(dsn, "SELECT count(*) FROM audit_event WHERE interaction = 'metrics'")[0][0] == "0");

  // append-only, whoever asks: the rows of writes, and the batches of the others
  CHECK(Sql(dsn, "SELECT count(*) FROM audit_event_row WHERE request_id = 'audit-create-1'")[0][0] == "1");
  CHECK(Sql(dsn, "SELECT count(*) FROM audit_event_batch")[0][0] != "0");
  CHECK_THROWS_WITH(Sql(dsn, "UPDATE audit_event_row SET status = 200 WHERE request_id = 'audit-create-1'"),
                    Catch::Contains("append-only"));
  CHECK_THROWS_WITH(Sql(dsn, "DELETE FROM audit_event_row WHERE request_id = 'audit-create-1'"),
                    Catch::Contains("append-only"));
  CHECK_THROWS_WITH(Sql(dsn, "UPDATE audit_event_batch SET row_count = 0"), Catch::Contains("append-only"));
  CHECK_THROWS_WITH(Sql(dsn, "DELETE FROM audit_event_batch"), Catch::Contains("append-only"));
  // retention drops whole old months, of both tables
  Sql(dsn, "SELECT eds_audit_partitions(0, now() - interval '24 months')");
  const std::string old_month = "to_char(now() - interval '24 months', 'YYYY_MM')";
  CHECK(Sql(dsn, "SELECT count(*) FROM pg_class WHERE relname IN ('audit_event_row_' || " + old_month +
                     ", 'audit_event_batch_' || " + old_month + ")")[0][0] == "2");
  CHECK(Sql(dsn, "SELECT eds_audit_retention(12)")[0][0] == "2");
  CHECK(Sql(dsn, "SELECT count(*) FROM audit_event WHERE request_id LIKE 'audit-%'")[0][0] == "5");

  // the monitoring views over a known workload
  auto usage = Sql(dsn,
                   "SELECT interaction, resource_type, sum(requests)::text, sum(failed)::text FROM monitoring.usage_daily"
                   " WHERE day = current_date AND interaction IN ('read', 'create') GROUP BY 1, 2 ORDER BY 1, 2");
  CHECK(usage == std::vector<std::vector<std::string>>{{"create", "Observation", "1", "0"},
                                                       {"create", "Patient", "1", "0"},
                                                       {"read", "Patient", "2", "1"}});
  auto patients = Sql(dsn, "SELECT distinct_patients::text FROM monitoring.patients_accessed_daily WHERE day = current_date");
  REQUIRE(patients.size() == 1);
  CHECK(patients[0][0] == "2");  // the patient and the missing one that was asked for
  auto feeding = Sql(dsn, "SELECT resource_type, created::text FROM monitoring.feeding_daily WHERE day = current_date"
                          " AND created > 0 ORDER BY 1");
  CHECK(feeding == std::vector<std::vector<std::string>>{{"Observation", "1"}, {"Patient", "1"}});
}

TEST_CASE("audit rows written in batches read back exactly, whatever their text holds", "[e2e]") {
  const std::string dsn = CreateDatabase("eds_audit_text_" + UniquePrefix());
  eds::storage::Migrate(dsn);
  using eds::storage::AuditRow;
  // every character the batch's literals quote or escape, and text the
  // database could not store as is (a NUL byte, malformed UTF-8)
  const std::vector<std::string> awkward = {
      "", "NULL", "null", "a b", "\"quoted\"", "back\\slash", "(paren)", "a,b", "{brace}", "tab\there",
      "line\nbreak", "caffè ✓ 𝄞", "\\\"", "\\", "\"", "end\\"};
  {
    eds::storage::AuditSink sink(dsn, 1000, std::chrono::milliseconds(5));
    for (std::size_t i = 0; i < awkward.size(); ++i) {
      AuditRow r;
      r.ts_ms = 1795000000000 + static_cast<int64_t>(i);
      r.request_id = "text-" + std::to_string(i);
      r.interaction = "search-type";
      r.method = "GET";
      r.resource_type = "Observation";
      r.query = awkward[i];
      r.caller_role = awkward[i];
      r.patients = {"Patient/p" + std::to_string(i), awkward[i]};
      r.entities = {awkward[i]};
      r.status = 200;
      r.latency_ms = 1.5;
      r.bytes_out = 10;
      r.action = "E";
      REQUIRE(sink.Offer(r));
    }
    AuditRow bad;
    bad.ts_ms = 1795000000100;
    bad.request_id = "text-bad";
    bad.interaction = "read";
    bad.method = "GET";
    bad.query = std::string("nul\0byte", 8) + "\xff\xfe" + "\xc3";
    bad.status = 200;
    bad.bytes_out_known = false;
    REQUIRE(sink.Offer(bad));
    sink.Flush();
    CHECK(sink.write_failures() == 0);
  }
  auto rows = Sql(dsn,
                  "SELECT request_id, query, caller_role, array_length(patients, 1)::text, patients[1], patients[2] IS NULL,"
                  " coalesce(patients[2], ''), entities[1], (extract(epoch FROM ts) * 1000)::bigint::text,"
                  " version_id IS NULL, bytes_out IS NULL, latency_ms::text, status::text, in_transaction::text"
                  " FROM audit_event WHERE request_id LIKE 'text-%' ORDER BY ts");
  REQUIRE(rows.size() == awkward.size() + 1);
  for (std::size_t i = 0; i < awkward.size(); ++i) {
    INFO("value " << i << ": " << awkward[i]);
    CHECK(rows[i][0] == "text-" + std::to_string(i));
    CHECK(rows[i][1] == awkward[i]);
    CHECK(rows[i][2] == awkward[i]);
    CHECK(rows[i][3] == "2");
    CHECK(rows[i][4] == "Patient/p" + std::to_string(i));
    CHECK(rows[i][5] == "f");  // "" and "NULL" stay text, not NULL
    CHECK(rows[i][6] == awkward[i]);
    CHECK(rows[i][7] == awkward[i]);
    CHECK(rows[i][8] == std::to_string(1795000000000 + static_cast<int64_t>(i)));
    CHECK(rows[i][9] == "t");
    CHECK(rows[i][10] == "f");
    CHECK(rows[i][11] == "1.5");
    CHECK(rows[i][12] == "200");
    CHECK(rows[i][13] == "false");
  }
  const auto& bad = rows.back();
  CHECK(bad[0] == "text-bad");
  CHECK(bad[1] == "nul\xEF\xBF\xBD" "byte\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // each unusable byte U+FFFD
  CHECK(bad[3] == "");  // no patients: an empty array
  CHECK(bad[10] == "t");
  // one batch holds them all, with its bounds and its patients
  auto batch = Sql(dsn, "SELECT row_count::text, (extract(epoch FROM first_ts) * 1000)::bigint::text,"
                        " (extract(epoch FROM last_ts) * 1000)::bigint::text, 'Patient/p3' = ANY(patients)::text"
                        " FROM audit_event_batch");
  REQUIRE(batch.size() == 1);
  CHECK(batch[0] == std::vector<std::string>{std::to_string(awkward.size() + 1), "1795000000000", "1795000000100", "true"});
}

TEST_CASE("the audit names a patient of this server, not another server's patient with the same id", "[e2e]") {
  const std::string dsn = CreateDatabase("eds_audit_" + UniquePrefix());
  ServerProcess server(dsn, {"--migrate", "--local-bases", "https://alias.test/fhir"});
  HttpClient c(server.port());
  const std::string own = "http://127.0.0.1:" + std::to_string(server.port()) + "/fhir";
  auto observe = [&](const std::string& request_id, const std::string& subject) {
    REQUIRE(c.Post("/fhir/Observation",
                   R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":")" +
                       subject + R"("}})",
                   {{"X-Request-Id", request_id}})
                .status == 201);
  };
  observe("foreign-1", "http://other.example/fhir/Patient/p1");
  observe("foreign-2", own + "/Patient/p2");           // this request's base
  observe("foreign-3", "https://ALIAS.test/fhir/Patient/p3");  // a configured base
  observe("foreign-4", "Patient/p4");
  auto rows = WaitRows(dsn,
                       "SELECT request_id, array_to_string(patients, ',') FROM audit_event"
                       " WHERE request_id LIKE 'foreign-%' ORDER BY request_id",
                       4);
  CHECK(rows == std::vector<std::vector<std::string>>{
                    {"foreign-1", ""}, {"foreign-2", "Patient/p2"}, {"foreign-3", "Patient/p3"}, {"foreign-4", "Patient/p4"}});
  // a search whose answer holds the foreign reference names no patient either
  REQUIRE(c.Send("GET", "/fhir/Observation?_count=10", {{"X-Request-Id", "foreign-5"}}).status == 200);
  REQUIRE(WaitRows(dsn, "SELECT 1 FROM audit_event WHERE request_id = 'foreign-5'", 1).size() == 1);
  CHECK(Sql(dsn, "SELECT string_agg(p, ',' ORDER BY p) FROM audit_event, unnest(patients) p"
                 " WHERE request_id = 'foreign-5'")[0][0] == "Patient/p2,Patient/p3,Patient/p4");
}
