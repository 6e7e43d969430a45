// The key searches use the index tables' indexes, not sequential scans:
// EXPLAIN of the SQL the server generates, over a database filled with
// enough rows (60,000 resources) for PostgreSQL to prefer its indexes.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include <pqxx/pqxx>

#include "fhir/definitions.hpp"
#include "fhir/search_parameters.hpp"
#include "fhir/search_query.hpp"
#include "storage/pg_search.hpp"
#include "support.hpp"

using namespace eds;
using namespace eds::testing;

namespace {

void Fill(const std::string& dsn) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  // keys as the server gives them: one per resource, shared by its index rows
  tx.exec(R"(
    INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content, res_key)
      SELECT 'Patient', 'p' || g, 1, now(), false, '{"resourceType":"Patient"}'::json, g
      FROM generate_series(1, 20000) g;
    INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content, res_key)
      SELECT 'Observation', 'o' || g, 1, now() - g * interval '1 minute', false, '{"resourceType":"Observation"}'::json,
        100000 + g
      FROM generate_series(1, 40000) g;
    INSERT INTO search_token (res_type, res_id, param, system, code, display, res_key)
      SELECT 'Patient', 'p' || g, 'identifier', 'http://hl7.it/sid/codiceFiscale', 'CF' || g, '', g
      FROM generate_series(1, 20000) g;
    INSERT INTO search_string (res_type, res_id, param, value_norm, value_exact, res_key)
      SELECT 'Patient', 'p' || g, 'family', 'fam' || (g % 2000), 'Fam' || (g % 2000), g FROM generate_series(1, 20000) g;
    INSERT INTO search_string (res_type, res_id, param, value_norm, value_exact, res_key)
      SELECT 'Patient', 'p' || g, 'given', 'giv' || (g % 700), 'Giv' || (g % 700), g FROM generate_series(1, 20000) g;
    INSERT INTO search_reference (res_type, res_id, param, target_type, target_id, target_version, url, res_key)
      SELECT 'Observation', 'o' || g, p, 'Patient', 'p' || (g % 20000 + 1), '', '', 100000 + g
      FROM generate_series(1, 40000) g, unnest(ARRAY['subject', 'patient']) p;
    INSERT INTO search_token (res_type, res_id, param, system, code, display, res_key)
      SELECT 'Observation', 'o' || g, 'code', 'http://loinc.org', 'L' || (g % 200), '', 100000 + g
      FROM generate_series(1, 40000) g;
    INSERT INTO search_date (res_type, res_id, param, low, high, res_key)
      SELECT 'Observation', 'o' || g, 'date', now() - g * interval '1 hour', now() - g * interval '1 hour' + interval '1 second',
        100000 + g
      FROM generate_series(1, 40000) g;
    ANALYZE;
  )");
}

}  // namespace

TEST_CASE("key searches are answered from indexes (EXPLAIN)", "[search]") {
  const std::string dsn = CreateDatabase("eds_explain_" + UniquePrefix());
  { ServerProcess migrate(dsn, {"--migrate"}); }
  Fill(dsn);
  const char* dir = std::getenv("EDS_DEFINITIONS");
  REQUIRE(dir != nullptr);
  auto defs = fhir::Definitions::Load(dir);
  auto registry = fhir::SearchParameterRegistry::Load(dir, defs->resource_types());
  pqxx::connection conn(dsn);
  auto plan = [&](const std::string& type, const std::vector<std::pair<std::string, std::string>>& params) {
    auto q = fhir::ParseSearch(type, params, *registry, {});
    REQUIRE(q.ok());
    auto p = storage::ExplainSearch(conn, *q);
    REQUIRE(p.ok());
    return *p;
  };
  struct Case {
    std::string name, type;
    std::vector<std::pair<std::string, std::string>> params;
    std::vector<std::string> indexes;  // the plan must use one of these
  };
  const std::vector<Case> cases = {
      {"identifier", "Patient", {{"identifier", "http://hl7.it/sid/codiceFiscale|CF123"}}, {"search_token_code"}},
      {"family and given", "Patient", {{"family", "fam12"}, {"given", "giv3"}}, {"search_string_value"}},
      {"subject and code and date",
       "Observation",
       {{"subject", "Patient/p5"}, {"code", "http://loinc.org|L5"}, {"date", "ge2023-01-01"}},
       {"search_reference_target", "search_token_code"}},
      {"chained identifier", "Observation", {{"subject.identifier", "http://hl7.it/sid/codiceFiscale|CF77"}},
       {"search_token_code"}},
      {"code sorted by date", "Observation", {{"code", "http://loinc.org|L7"}, {"_sort", "-date"}, {"_count", "10"}},
       {"search_token_code"}},
      {"patient, read from subject's rows too", "Observation", {{"patient", "Patient/p5"}},
       {"search_reference_target"}},
      {"reverse chain", "Patient", {{"_has:Observation:patient:code", "http://loinc.org|L5"}, {"_count", "10"}},
       {"search_reference_target", "search_token_code"}},
      {"by id", "Patient", {{"_id", "p42"}}, {"resource_pkey"}},
      {"all, newest first", "Observation", {{"_sort", "-_lastUpdated"}, {"_count", "10"}}, {"resource_type_updated"}},
  };
  for (const auto& c : cases) {
    std::string p = plan(c.type, c.params);
    INFO(c.name << ":\n" << p);
    bool uses = false;
    for (const auto& index : c.indexes) uses = uses || p.find(index) != std::string::npos;
    CHECK(uses);
    CHECK(p.find("Seq Scan on search_") == std::string::npos);
    CHECK(p.find("Seq Scan on resource") == std::string::npos);
  }
}

// With several criteria the best plan depends on how many rows each value
// matches (a common code against a patient's few rows): a generic plan
// cannot know that and PostgreSQL's own choice takes it anyway, so those
// searches are planned for their values every time; one criterion reuses
// the generic plan.
TEST_CASE("searches with several criteria are planned for their values, one criterion reuses its plan",
          "[search]") {
  const std::string dsn = CreateDatabase("eds_plans_" + UniquePrefix());
  { ServerProcess migrate(dsn, {"--migrate"}); }
  Fill(dsn);
  const char* dir = std::getenv("EDS_DEFINITIONS");
  REQUIRE(dir != nullptr);
  auto defs = fhir::Definitions::Load(dir);
  auto registry = fhir::SearchParameterRegistry::Load(dir, defs->resource_types());
  pqxx::connection conn(dsn);
  auto run = [&](const std::vector<std::pair<std::string, std::string>>& params) {
    auto q = fhir::ParseSearch("Observation", params, *registry, {});
    REQUIRE(q.ok());
    pqxx::nontransaction tx(conn);
    REQUIRE(storage::RunSearchIn(tx, *q).ok());
  };
  for (int i = 0; i < 8; ++i) {
    run({{"subject", "Patient/p" + std::to_string(i + 1)}, {"code", "http://loinc.org|L5"}});
    run({{"code", "http://loinc.org|L" + std::to_string(i)}});
  }
  pqxx::nontransaction tx(conn);
  auto plans = tx.exec(
      "SELECT statement LIKE '%search_reference%', generic_plans, custom_plans FROM pg_prepared_statements"
      " WHERE statement LIKE '%search_token%' ORDER BY 1");
  REQUIRE(plans.size() == 2);
  // code alone
  CHECK(plans[0][1].as<int>() >= 7);
  CHECK(plans[0][2].as<int>() == 0);
  // subject and code
  CHECK(plans[1][1].as<int>() == 0);
  CHECK(plans[1][2].as<int>() == 8);
}
