// Schema migrations: the numbered SQL files of migrations/, compiled into the
// binary, applied in order, each in its own transaction, under an advisory
// lock, recorded in schema_migrations.
#pragma once

#include <string>
#include <vector>

namespace eds::storage {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// The migrations built into this binary, ordered by version.
const std::vector<Migration>& BuiltinMigrations();

struct SchemaStatus {
  int database_version = 0;  // highest applied, 0 for an empty database
  int known_version = 0;     // highest this binary knows
};

// Applies the missing migrations. Throws std::runtime_error when the
// database schema is newer than this binary knows, or a migration fails
// (that migration is rolled back; earlier ones stay applied).
SchemaStatus Migrate(const std::string& dsn);

// Reads the schema version without changing anything; throws when the
// database cannot be reached.
SchemaStatus ReadSchemaStatus(const std::string& dsn);

}  // namespace eds::storage
