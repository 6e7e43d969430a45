// The audit trail: one row per request with what it touched, written in
// batches; rows cannot be changed; old months are dropped whole; the
// monitoring views aggregate them.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

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

  // append-only, whoever asks
  CHECK_THROWS(Sql(dsn, "UPDATE audit_event SET status = 200 WHERE request_id = 'audit-read-2'"));
  CHECK_THROWS(Sql(dsn, "DELETE FROM audit_event WHERE request_id = 'audit-read-2'"));
  // retention drops whole old months
  Sql(dsn, "SELECT eds_audit_partitions(0, now() - interval '24 months')");
  CHECK(Sql(dsn, "SELECT eds_audit_retention(12)")[0][0] == "1");
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
