// eds: the EDS core executable. Wires configuration -> definitions ->
// database (migrations, store) -> FHIR API -> HTTP server.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "fhir/definitions.hpp"
#include "fhir/search_index.hpp"
#include "fhir/search_parameters.hpp"
#include "server/config.hpp"
#include "server/fhir_api.hpp"
#include "server/http_server.hpp"
#include "server/log.hpp"
#include "storage/migrator.hpp"
#include "storage/pg_resource_store.hpp"

namespace {

using namespace eds;

constexpr const char* kUsage =
    "usage: eds <command> [flags]\n"
    "commands:\n"
    "  serve     serve the FHIR API\n"
    "  migrate   apply the database migrations and exit\n"
    "  version   print the version\n"
    "flags (each also read from its environment variable):\n";

int RequireDatabase(const server::ServerConfig& c) {
  if (c.database_url.empty()) {
    fmt::print(stderr, "eds: no database: pass --database-url or set EDS_DATABASE_URL\n");
    return 2;
  }
  return 0;
}

int Migrate(const server::ServerConfig& c) {
  if (int rc = RequireDatabase(c)) return rc;
  auto st = storage::Migrate(c.database_url);
  server::Log(server::LogLevel::kInfo,
              fmt::format("database schema at version {} (this server knows {})", st.database_version,
                          st.known_version));
  return 0;
}

int Serve(const server::ServerConfig& c) {
  if (int rc = RequireDatabase(c)) return rc;
  auto t0 = std::chrono::steady_clock::now();
  auto defs = fhir::Definitions::Load(c.definitions_dir);
  server::Log(server::LogLevel::kInfo,
              fmt::format("loaded FHIR {} definitions: {} resource types from {} in {} ms",
                          defs->fhir_version(), defs->resource_types().size(), c.definitions_dir,
                          std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - t0)
                              .count()));
  if (c.migrate) {
    Migrate(c);
  } else {
    auto st = storage::ReadSchemaStatus(c.database_url);
    if (st.database_version > st.known_version) {
      fmt::print(stderr, "eds: database schema version {} is newer than this server knows ({}); refusing to start\n",
                 st.database_version, st.known_version);
      return 1;
    }
    if (st.database_version < st.known_version) {
      fmt::print(stderr, "eds: database schema is at version {}, this server needs {}: run 'eds migrate' or pass --migrate\n",
                 st.database_version, st.known_version);
      return 1;
    }
  }
  auto search_parameters = fhir::SearchParameterRegistry::Load(c.definitions_dir, defs->resource_types());
  auto indexer = std::make_shared<const fhir::SearchIndexer>(defs, search_parameters);
  storage::PgStoreOptions store_options;
  store_options.dsn = c.database_url;
  store_options.pool_size = c.pool_size;
  store_options.indexer = indexer;
  storage::PgResourceStore store(store_options);
  server::FhirApi api(c, defs, store, indexer);
  server::HttpServer http(c, api);
  unsigned short port = http.Listen();
  fmt::print("EDS core listening on http://{}:{}{}\n", c.bind_address, port, c.base_path);
  std::fflush(stdout);
  http.Run();
  server::Log(server::LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    fmt::print("{}{}", kUsage, server::ConfigHelp());
    return args.empty() ? 2 : 0;
  }
  std::string command = args[0];
  args.erase(args.begin());
  if (command == "version" || command == "--version") {
    fmt::print("eds {}\n", EDS_VERSION);
    return 0;
  }
  try {
    auto config = server::ParseConfig(args);
    server::SetLogLevel(config.log_level);
    if (command == "serve") return Serve(config);
    if (command == "migrate") return Migrate(config);
    fmt::print(stderr, "eds: unknown command '{}'\n{}", command, kUsage);
    return 2;
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "eds: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "eds: {}\n", e.what());
    return 1;
  }
}
