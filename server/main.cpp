// eds: the EDS core executable. Wires configuration -> definitions ->
// database (migrations, store) -> FHIR API -> HTTP server.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "fhir/definitions.hpp"
#include "fhir/search_index.hpp"
#include "fhir/search_parameters.hpp"
#include "server/config.hpp"
#include "server/fhir_api.hpp"
#include "server/http_server.hpp"
#include "server/log.hpp"
#include "server/search_admin.hpp"
#include "storage/migrator.hpp"
#include "storage/pg_audit_sink.hpp"
#include "storage/pg_resource_store.hpp"

namespace {

using namespace eds;

constexpr const char* kUsage =
    "usage: eds <command> [flags]\n"
    "commands:\n"
    "  serve     serve the FHIR API\n"
    "  migrate   apply the database migrations and exit\n"
    "  reindex   re-extract the search index of resources indexed before the\n"
    "            custom SearchParameters now active, in batches, and exit\n"
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

// The store, with an indexer of the package's search parameters plus the
// active SearchParameter resources stored in the database.
storage::PgStoreOptions StoreOptions(const server::ServerConfig& c, std::shared_ptr<const fhir::Definitions> defs,
                                     const std::shared_ptr<fhir::IndexerHolder>& indexers) {
  auto search_parameters = fhir::SearchParameterRegistry::Load(c.definitions_dir, defs->resource_types());
  indexers->Set(std::make_shared<const fhir::SearchIndexer>(defs, search_parameters));
  storage::PgStoreOptions options;
  options.dsn = c.database_url;
  options.pool_size = c.pool_size;
  options.indexers = indexers;
  return options;
}

void LoadCustomSearchParameters(std::shared_ptr<const fhir::Definitions> defs, storage::ResourceStore& store,
                                fhir::IndexerHolder& indexers) {
  std::vector<std::string> notes;
  auto built = server::BuildIndexer(std::move(defs), indexers.Current()->registry(), store, &notes);
  for (const auto& n : notes) server::Log(server::LogLevel::kWarn, "custom search parameter ignored: " + n);
  if (!built) throw std::runtime_error("cannot load the custom search parameters");
  indexers.Set(*built);
  if (auto n = indexers.Current()->registry().Custom().size())
    server::Log(server::LogLevel::kInfo, fmt::format("{} custom search parameter(s) active, index generation {}", n,
                                                     indexers.Current()->generation()));
}

int CheckSchema(const server::ServerConfig& c) {
  auto st = storage::ReadSchemaStatus(c.database_url);
  if (st.database_version != st.known_version) {
    fmt::print(stderr, "eds: database schema is at version {}, this program knows {}\n", st.database_version,
               st.known_version);
    return 1;
  }
  return 0;
}

int Reindex(const server::ServerConfig& c) {
  if (int rc = RequireDatabase(c)) return rc;
  if (int rc = CheckSchema(c)) return rc;
  auto defs = fhir::Definitions::Load(c.definitions_dir);
  auto indexers = std::make_shared<fhir::IndexerHolder>(nullptr);
  storage::PgResourceStore store(StoreOptions(c, defs, indexers));
  LoadCustomSearchParameters(defs, store, *indexers);
  int64_t total = 0;
  int idle = 0;
  for (;;) {
    auto r = store.ReindexBatch(500);
    if (!r) {
      fmt::print(stderr, "eds: reindex failed: {}\n", r.error().outcome.ToJson());
      return 1;
    }
    total += r->reindexed;
    fmt::print("reindexed {} resource(s), {} remaining\n", total, r->remaining);
    std::fflush(stdout);
    if (r->remaining == 0) break;
    idle = r->reindexed == 0 ? idle + 1 : 0;
    if (idle > 100) {
      fmt::print(stderr, "eds: {} resource(s) stayed locked by writers; run reindex again\n", r->remaining);
      return 1;
    }
    if (idle > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  fmt::print("reindex complete at generation {}\n", indexers->Current()->generation());
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
  auto indexers = std::make_shared<fhir::IndexerHolder>(nullptr);
  storage::PgResourceStore store(StoreOptions(c, defs, indexers));
  server::FhirApi api(c, defs, store, indexers);
  LoadCustomSearchParameters(defs, store, *indexers);
  std::unique_ptr<storage::AuditSink> audit;
  if (c.audit) {
    audit = std::make_unique<storage::AuditSink>(c.database_url, 100000, std::chrono::milliseconds(20),
                                                 c.audit_retention_months);
    api.SetAuditSink(audit.get());
  }
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
    if (command == "reindex") return Reindex(config);
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
