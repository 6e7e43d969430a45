// Migration runner.
#include "storage/migrator.hpp"

#include <pqxx/pqxx>

#include <stdexcept>

namespace eds::storage {
namespace {

// Any constant shared by all EDS servers; serialises concurrent migrators.
constexpr long long kMigrationLockKey = 0x4544535f4d494752;  // "EDS_MIGR"

constexpr const char* kCreateTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

int AppliedVersion(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  auto exists = tx.exec("SELECT to_regclass('schema_migrations') IS NOT NULL");
  if (!exists[0][0].as<bool>()) return 0;
  auto r = tx.exec("SELECT coalesce(max(version), 0) FROM schema_migrations");
  return r[0][0].as<int>();
}

int KnownVersion() {
  const auto& all = BuiltinMigrations();
  return all.empty() ? 0 : all.back().version;
}

}  // namespace

SchemaStatus ReadSchemaStatus(const std::string& dsn) {
  pqxx::connection conn(dsn);
  return {AppliedVersion(conn), KnownVersion()};
}

SchemaStatus Migrate(const std::string& dsn) {
  pqxx::connection conn(dsn);
  {
    pqxx::nontransaction tx(conn);
    tx.exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
  }
  struct Unlock {
    pqxx::connection& c;
    ~Unlock() {
      try {
        pqxx::nontransaction tx(c);
        tx.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
      } catch (...) {
        // the lock goes with the session when the connection closes
      }
    }
  } unlock{conn};
  {
    pqxx::work tx(conn);
    tx.exec(kCreateTable);
    tx.commit();
  }
  int applied = AppliedVersion(conn);
  const int known = KnownVersion();
  if (applied > known)
    throw std::runtime_error("database schema version " + std::to_string(applied) +
                             " is newer than this server knows (" + std::to_string(known) +
                             "); refusing to run on it");
  for (const auto& m : BuiltinMigrations()) {
    if (m.version <= applied) continue;
    try {
      pqxx::work tx(conn);
      tx.exec(m.sql);
      tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                     m.name);
      tx.commit();
    } catch (const std::exception& e) {
      throw std::runtime_error("migration " + m.name + " failed: " + e.what());
    }
    applied = m.version;
  }
  return {applied, known};
}

}  // namespace eds::storage
