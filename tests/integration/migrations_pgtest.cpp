// Schema migrations: applied once, idempotent, safe when servers start
// together, and a newer schema is refused.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

namespace {

// Runs `eds ARGS...` and returns its exit status.
int RunEds(std::vector<std::string> args) {
  args.insert(args.begin(), EdsBinary());
  return WaitExit(Spawn(std::move(args)));
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
