// Schema migrations: applied once, idempotent, safe when servers start
// together, and a newer schema is refused.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "storage/migrator.hpp"
#include "support.hpp"

using namespace eds::testing;

namespace {

// Runs `eds ARGS...` and returns its exit status.
int RunEds(std::vector<std::string> args) {
  args.insert(args.begin(), EdsBinary());
  return WaitExit(Spawn(std::move(args)));
}

// Applies the built-in migrations up to `version` in `tx`, as the migrator
// records them: a database as an older server left it.
void MigrateUpTo(pqxx::work& tx, int version) {
  tx.exec("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
          " applied_at timestamptz NOT NULL DEFAULT now())");
  for (const auto& m : eds::storage::BuiltinMigrations()) {
    if (m.version > version) break;
    tx.exec(m.sql);
    tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name);
  }
}

}  // namespace

TEST_CASE("migrate applies every migration once and is a no-op the second time", "[migrations]") {
  std::string dsn = CreateDatabase("eds_mig_once");
  CHECK(RunEds({"migrate", "--database-url", dsn}) == 0);
  auto first = Sql(dsn, "SELECT version, name FROM schema_migrations ORDER BY version");
  REQUIRE(!first.empty());
  CHECK(first[0][0] == "1");
  CHECK(first[0][1] == "0001_create_resource_tables.sql");
  CHECK(RunEds({"migrate", "--database-url", dsn}) == 0);
  auto second = Sql(dsn, "SELECT version, applied_at FROM schema_migrations ORDER BY version");
  CHECK(second.size() == first.size());
  CHECK(Sql(dsn, "SELECT to_regclass('resource') IS NOT NULL")[0][0] == "t");
}

TEST_CASE("servers migrating at the same time do not race", "[migrations]") {
  std::string dsn = CreateDatabase("eds_mig_race");
  std::vector<int> pids;
  for (int i = 0; i < 4; ++i)
    pids.push_back(Spawn({EdsBinary(), "migrate", "--database-url", dsn, "--log-level", "error"}));
  for (int pid : pids) CHECK(WaitExit(pid) == 0);
  auto rows = Sql(dsn, "SELECT count(*), count(DISTINCT version) FROM schema_migrations");
  CHECK(rows[0][0] == rows[0][1]);
}

TEST_CASE("a server refuses an unmigrated or newer schema", "[migrations]") {
  std::string dsn = CreateDatabase("eds_mig_newer");
  // not migrated and no --migrate: refuse
  CHECK(RunEds({"serve", "--database-url", dsn, "--port", std::to_string(FreePort())}) == 1);
  CHECK(RunEds({"migrate", "--database-url", dsn}) == 0);
  Sql(dsn, "INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')");
  CHECK(RunEds({"serve", "--database-url", dsn, "--port", std::to_string(FreePort())}) == 1);
  CHECK(RunEds({"migrate", "--database-url", dsn}) == 1);
  CHECK(RunEds({"serve", "--database-url", dsn, "--migrate", "--port", std::to_string(FreePort())}) == 1);
}

TEST_CASE("bad configuration is reported, not crashed on", "[migrations]") {
  CHECK(RunEds({"serve"}) == 2);                          // no database
  CHECK(RunEds({"serve", "--port", "banana"}) == 2);      // bad number
  CHECK(RunEds({"serve", "--no-such-flag", "1"}) == 2);   // unknown flag
  CHECK(RunEds({"frobnicate"}) == 2);                     // unknown command
  CHECK(RunEds({"version"}) == 0);
}

TEST_CASE("a database with audit rows keeps them through the move to audit batches (migration 10)", "[migrations]") {
  const std::string dsn = CreateDatabase("eds_mig_audit_" + UniquePrefix());
  // the schema as version 9 left it
  {
    pqxx::connection conn(dsn);
    pqxx::work tx(conn);
    MigrateUpTo(tx, 9);
    tx.exec("INSERT INTO audit_event (ts, request_id, interaction, method, resource_type, resource_id, patients,"
            " caller_region, purpose_of_use, status, latency_ms, bytes_in, bytes_out, resources_returned, event_id,"
            " action) VALUES"
            " (now(), 'old-read', 'read', 'GET', 'Patient', 'p1', '{Patient/p1}', 'R1', 'BTG', 200, 1, 0, 10, 1,"
            "  'e1', 'R'),"
            " (now(), 'old-denied', 'read', 'GET', 'Patient', 'p2', '{Patient/p2}', 'R1', '', 403, 1, 0, 10, 0,"
            "  'e2', 'R')");
    tx.exec("INSERT INTO patient_region (patient, rda) VALUES ('Patient/p1', 'R2')");
    tx.commit();
  }
  REQUIRE(eds::storage::Migrate(dsn).database_version >= 10);
  // the rows, now in audit_event_row, are still audit_event's
  CHECK(Sql(dsn, "SELECT request_id FROM audit_event ORDER BY request_id") ==
        std::vector<std::vector<std::string>>{{"old-denied"}, {"old-read"}});
  CHECK(Sql(dsn, "SELECT count(*) FROM audit_event_row")[0][0] == "2");
  CHECK(Sql(dsn, "SELECT count(*) FROM pg_class WHERE relname ~ '^audit_event_[0-9]{4}_'")[0][0] == "0");
  // the monitoring views read the view, batches included
  Sql(dsn, "INSERT INTO audit_event_batch (first_ts, last_ts, row_count, patients, records)"
           " SELECT now(), now(), 1, '{Patient/p3}', ARRAY[ROW(now(), 'new-read', 'read', 'GET', 'Patient', 'p3', NULL,"
           " '{Patient/p3}', 'anonymous', '', '', 'R1', 'BTG', '', 200, '', 1, 0, 10, 1, '', 'e3', 'R', '{}', false,"
           " '')::audit_record]::text");
  CHECK(Sql(dsn, "SELECT string_agg(request_id, ',' ORDER BY request_id) FROM monitoring.break_glass_access")[0][0] ==
        "new-read,old-read");
  CHECK(Sql(dsn, "SELECT count(*) FROM monitoring.denied_access")[0][0] == "1");
  CHECK(Sql(dsn, "SELECT patient FROM monitoring.cross_region_access")[0][0] == "Patient/p1");
  CHECK(Sql(dsn, "SELECT eds_monitoring_refresh()")[0][0] == "t");
  CHECK(Sql(dsn, "SELECT sum(requests)::text FROM monitoring.usage_category_daily_mv")[0][0] == "3");
}

TEST_CASE("the key columns compare in byte order, rows written before included (migration 12)", "[migrations]") {
  // a database whose default collation is linguistic (ICU, English)
  const std::string name = "eds_mig_collate_" + UniquePrefix();
  {
    pqxx::connection c(TestDsn());
    pqxx::nontransaction tx(c);
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name) + " WITH (FORCE)");
    tx.exec("CREATE DATABASE " + tx.quote_name(name) +
            " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'");
  }
  const std::string dsn = DsnWithDatabase(TestDsn(), name);
  {
    pqxx::connection conn(dsn);
    pqxx::work tx(conn);
    MigrateUpTo(tx, 11);
    tx.exec("INSERT INTO search_token (res_type, res_id, param, system, code, display)"
            " VALUES ('Observation', 'o1', 'code', 'http://loinc.org', '718-7', ''),"
            "        ('Observation', 'o2', 'code', 'http://loinc.org', 'Z-1', ''),"
            "        ('Observation', 'o3', 'code', 'http://loinc.org', 'a-1', '')");
    tx.commit();
  }
  // linguistic order before: case is a tie-breaker
  REQUIRE(Sql(dsn, "SELECT string_agg(code, ',' ORDER BY code) FROM search_token")[0][0] == "718-7,a-1,Z-1");
  REQUIRE(eds::storage::Migrate(dsn).database_version >= 12);
  // every text column of the search index tables but the free text (display,
  // unit), and the resource tables' keys
  CHECK(Sql(dsn, "SELECT string_agg(c.relname || '.' || a.attname, ',' ORDER BY c.relname, a.attname)"
                 " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                 " WHERE (c.relname LIKE 'search\\_%' OR c.relname IN ('resource', 'resource_history'))"
                 "   AND c.relkind = 'r' AND a.attnum > 0 AND a.atttypid = 'text'::regtype"
                 "   AND a.attcollation <> 'pg_catalog.\"C\"'::regcollation")[0][0] ==
        "resource_history.method,search_quantity.unit,search_token.display");
  // byte order after: upper case before lower case
  CHECK(Sql(dsn, "SELECT string_agg(code, ',' ORDER BY code) FROM search_token")[0][0] == "718-7,Z-1,a-1");
  CHECK(Sql(dsn, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                 " WHERE c.relname = 'search_token_code' AND i.indisvalid")[0][0] == "1");
}

TEST_CASE("references to other servers indexed the old way are reindexed (migration 14, eds reindex)",
          "[migrations]") {
  const std::string dsn = CreateDatabase("eds_mig_foreign_" + UniquePrefix());
  {
    pqxx::connection conn(dsn);
    pqxx::work tx(conn);
    MigrateUpTo(tx, 13);
    // what the indexer wrote before: the other server's Patient/p1 as the local one
    for (const auto& [id, ref] : std::vector<std::pair<std::string, std::string>>{
             {"o-foreign", "http://other.example/fhir/Patient/p1"}, {"o-local", "Patient/p1"}}) {
      const std::string content = R"({"resourceType":"Observation","id":")" + id +
                                  R"(","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z"},)"
                                  R"("status":"final","code":{"text":"x"},"subject":{"reference":")" +
                                  ref + R"("}})";
      tx.exec_params("INSERT INTO resource (res_type, res_id, version_id, last_updated, content)"
                     " VALUES ('Observation', $1, 1, '2026-01-01T00:00:00Z', $2::json)",
                     id, content);
      tx.exec_params("INSERT INTO search_reference (res_type, res_id, param, target_type, target_id, target_version,"
                     " url, grp) VALUES ('Observation', $1, 'subject', 'Patient', 'p1', '', $2, 0)",
                     id, ref.find("://") == std::string::npos ? std::string() : ref);
    }
    tx.commit();
  }
  REQUIRE(eds::storage::Migrate(dsn).database_version >= 14);
  CHECK(Sql(dsn, "SELECT string_agg(res_id || '=' || index_gen, ',' ORDER BY res_id) FROM resource")[0][0] ==
        "o-foreign=-1,o-local=0");
  CHECK(RunEds({"reindex", "--database-url", dsn}) == 0);
  CHECK(Sql(dsn, "SELECT string_agg(res_id || '=' || index_gen, ',' ORDER BY res_id) FROM resource")[0][0] ==
        "o-foreign=0,o-local=0");
  CHECK(Sql(dsn, "SELECT string_agg(res_id || ':' || target_type || '/' || target_id, ',' ORDER BY res_id)"
                 " FROM search_reference WHERE param = 'subject'")[0][0] == "o-foreign:Patient/,o-local:Patient/p1");
}

TEST_CASE("resource content is compressed with lz4 where PostgreSQL has it (migration 15)", "[migrations]") {
  const std::string dsn = CreateDatabase("eds_mig_lz4_" + UniquePrefix());
  REQUIRE(eds::storage::Migrate(dsn).database_version >= 15);
  if (Sql(dsn, "SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")[0][0] != "t") {
    WARN("this PostgreSQL has no lz4: content keeps pglz");
    return;
  }
  CHECK(Sql(dsn, "SELECT string_agg(c.relname || '.' || a.attname || '=' || a.attcompression::text, ',' ORDER BY c.relname)"
                 " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                 " WHERE c.relname IN ('resource', 'resource_history', 'resource_history_content')"
                 "   AND a.attname = 'content'")[0][0] ==
        "resource.content=l,resource_history.content=l,resource_history_content.content=l");
  // a large resource stored through the server is compressed with it
  ServerProcess server(dsn);
  HttpClient c(server.port());
  std::string items;
  for (int i = 0; i < 400; ++i)
    items += std::string(i ? "," : "") + R"({"linkId":"q)" + std::to_string(i) + R"(","text":"Domanda numero )" +
             std::to_string(i) + R"(","type":"string"})";
  auto r = c.Put("/fhir/Questionnaire/lz4", R"({"resourceType":"Questionnaire","id":"lz4","status":"active","item":[)" +
                                                 items + "]}");
  INFO(r.body.substr(0, 300));
  REQUIRE(r.status == 201);
  CHECK(Sql(dsn, "SELECT pg_column_compression(content) FROM resource WHERE res_type = 'Questionnaire'"
                 " AND res_id = 'lz4'")[0][0] == "lz4");
}

TEST_CASE("index rows written before resource keys are found and replaced through them (migration 16)",
          "[migrations]") {
  const std::string dsn = CreateDatabase("eds_mig_keys_" + UniquePrefix());
  {
    pqxx::connection conn(dsn);
    pqxx::work tx(conn);
    MigrateUpTo(tx, 15);
    // two Observations as the server stored them before, with their index rows
    for (const std::string id : {"k1", "k2"}) {
      const std::string content = R"({"resourceType":"Observation","id":")" + id +
                                  R"(","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z"},)"
                                  R"("status":"final","code":{"coding":[{"system":"http://loinc.org","code":"718-7"}]},)"
                                  R"("subject":{"reference":"Patient/p1"}})";
      tx.exec_params("INSERT INTO resource (res_type, res_id, version_id, last_updated, content)"
                     " VALUES ('Observation', $1, 1, '2026-01-01T00:00:00Z', $2::json)",
                     id, content);
      tx.exec_params("INSERT INTO resource_history (res_type, res_id, version_id, last_updated, method)"
                     " VALUES ('Observation', $1, 1, '2026-01-01T00:00:00Z', 'PUT')",
                     id);
      tx.exec_params("INSERT INTO search_reference (res_type, res_id, param, target_type, target_id, target_version,"
                     " url, grp) VALUES ('Observation', $1, 'subject', 'Patient', 'p1', '', '', 0)",
                     id);
      tx.exec_params("INSERT INTO search_token (res_type, res_id, param, system, code, display, grp)"
                     " VALUES ('Observation', $1, 'code', 'http://loinc.org', '718-7', '', 0)",
                     id);
    }
    tx.commit();
  }
  REQUIRE(eds::storage::Migrate(dsn).database_version >= 16);
  // one key per resource, unique, the same in its index rows
  CHECK(Sql(dsn, "SELECT count(*) FROM search_reference s JOIN resource r ON r.res_key = s.res_key"
                 " AND r.res_type = s.res_type AND r.res_id = s.res_id")[0][0] == "2");
  CHECK(Sql(dsn, "SELECT count(*) FROM search_token s JOIN resource r ON r.res_key = s.res_key"
                 " AND r.res_type = s.res_type AND r.res_id = s.res_id")[0][0] == "2");
  CHECK(Sql(dsn, "SELECT count(DISTINCT res_key) FROM resource")[0][0] == "2");
  // the index tables are found by key, no longer by (res_type, res_id)
  CHECK(Sql(dsn, "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes"
                 " WHERE tablename LIKE 'search\\_%' AND indexdef LIKE '%(res_key, res_id)'")[0][0] ==
        "search_date_res_key,search_number_res_key,search_quantity_res_key,search_reference_res_key,"
        "search_string_res_key,search_token_res_key,search_uri_res_key");
  CHECK(Sql(dsn, "SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'search\\_%' AND indexname LIKE '%\\_res'")[0][0] ==
        "0");
  ServerProcess server(dsn);
  HttpClient c(server.port());
  auto count = [&](const std::string& query) {
    auto r = c.Get("/fhir/Observation?" + query + "&_total=accurate");
    INFO(query << ": " << r.body);
    REQUIRE(r.status == 200);
    return r.Json()["total"].GetInt();
  };
  CHECK(count("subject=Patient/p1") == 2);
  CHECK(count("code=http%3A%2F%2Floinc.org%7C718-7&subject=Patient/p1") == 2);
  // an update replaces the old rows, found by the migrated key
  auto r = c.Put("/fhir/Observation/k1", R"({"resourceType":"Observation","id":"k1","status":"final",)"
                                          R"("code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},)"
                                          R"("subject":{"reference":"Patient/p2"}})");
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(Sql(dsn, "SELECT string_agg(target_id, ',') FROM search_reference WHERE res_id = 'k1'")[0][0] == "p2");
  CHECK(Sql(dsn, "SELECT string_agg(code, ',') FROM search_token WHERE res_id = 'k1' AND param = 'code'")[0][0] ==
        "2345-7");
  CHECK(count("subject=Patient/p1") == 1);
  CHECK(count("subject=Patient/p2") == 1);
  // a deletion removes them the same way
  REQUIRE(c.Send("DELETE", "/fhir/Observation/k2").status == 200);
  CHECK(Sql(dsn, "SELECT count(*) FROM search_reference WHERE res_id = 'k2'")[0][0] == "0");
  CHECK(Sql(dsn, "SELECT count(*) FROM search_token WHERE res_id = 'k2'")[0][0] == "0");
}
