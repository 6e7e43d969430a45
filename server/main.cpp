// eds: the EDS core executable. Wires configuration -> definitions ->
// database (migrations, store) -> FHIR API -> HTTP server.
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fhir/conformance.hpp"
#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "fhir/search_index.hpp"
#include "fhir/search_parameters.hpp"
#include "fhir/terminology.hpp"
#include "fhir/validator.hpp"
#include "server/bulk_loader.hpp"
#include "server/config.hpp"
#include "server/fhir_api.hpp"
#include "server/http_server.hpp"
#include "server/log.hpp"
#include "server/search_admin.hpp"
#include "storage/migrator.hpp"
#include "storage/pg_audit_sink.hpp"
#include "storage/pg_monitoring.hpp"
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
    "  validate  validate resource files (JSON) and print the issues; exit status 1\n"
    "            when any has errors: eds validate [--profile URL]... [--repeat N] FILE...\n"
    "  load FILE...  ingest NDJSON files (one resource or Bundle a line; a file\n"
    "            named *.json is one resource or Bundle) in batches; a load run\n"
    "            again resumes after an interruption. Flags: --batch-size N\n"
    "            (lines per transaction, default 1000), --jobs N (preparing\n"
    "            threads, default: the cores), --writers N (batches written at\n"
    "            once, each on its own connection, default 2), --report PATH (rejected lines;\n"
    "            default FILE.rejected.txt, one file only), --restart (ignore\n"
    "            the checkpoint of an earlier run)\n"
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
  indexers->Set(std::make_shared<const fhir::SearchIndexer>(defs, search_parameters, fhir::LocalBases(c.OwnBases())));
  storage::PgStoreOptions options;
  options.dsn = c.database_url;
  options.pool_size = c.pool_size;
  options.indexers = indexers;
  return options;
}

void LoadCustomSearchParameters(std::shared_ptr<const fhir::Definitions> defs, storage::ResourceStore& store,
                                fhir::IndexerHolder& indexers) {
  std::vector<std::string> notes;
  auto built = server::BuildIndexer(std::move(defs), *indexers.Current(), store, &notes);
  for (const auto& n : notes) server::Log(server::LogLevel::kWarn, "custom search parameter ignored: " + n);
  if (!built) {
    const auto& issues = built.error().outcome.issues();
    throw std::runtime_error("cannot load the custom search parameters" +
                             (issues.empty() ? std::string() : ": " + issues[0].diagnostics));
  }
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

// The validator over the package's terminology and profiles, profiles/ and,
// given a store, the StructureDefinitions, ValueSets and CodeSystems written
// through the API (which win over files with their URL). nullptr when the
// store cannot be read.
std::shared_ptr<const fhir::Validator> MakeValidator(const server::ServerConfig& c,
                                                     std::shared_ptr<const fhir::Definitions> defs,
                                                     storage::ResourceStore* store = nullptr) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> stored_terminology, stored_profiles;
  if (store != nullptr) {
    for (const char* type : {"ValueSet", "CodeSystem", "StructureDefinition"}) {
      auto contents = store->CurrentContents(type);
      if (!contents) {
        server::Log(server::LogLevel::kError,
                    fmt::format("validation: the stored {} resources could not be read; the validator is unchanged",
                                type));
        return nullptr;
      }
      auto& into = std::string_view(type) == "StructureDefinition" ? stored_profiles : stored_terminology;
      for (auto& text : *contents) into.push_back(std::move(text));
    }
  }
  auto terminology = fhir::Terminology::Load({c.definitions_dir, c.profiles_dir}, stored_terminology);
  auto profiles = fhir::ConformanceStore::Load(*defs, {c.profiles_dir, c.definitions_dir}, stored_profiles);
  for (const auto& n : profiles->notes()) server::Log(server::LogLevel::kWarn, "profile ignored: " + n);
  auto validator = std::make_shared<const fhir::Validator>(defs, terminology, profiles);
  const auto& st = validator->stats();
  server::Log(server::LogLevel::kInfo,
              fmt::format("validation: {} value sets, {} code systems, {} profiles ({} on resources, the others "
                          "on data types and extensions; {} stored conformance resources), {} invariants ({} "
                          "skipped: their expressions do not parse) in {} ms",
                          terminology->value_set_count(), terminology->code_system_count(),
                          profiles->profiles().size(), profiles->resource_profile_count(),
                          stored_terminology.size() + stored_profiles.size(), st.constraints, st.unparsed,
                          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
                              .count()));
  return validator;
}

// eds validate [--profile URL]... [--repeat N] [config flags] FILE...
int ValidateFiles(std::vector<std::string> args) {
  std::vector<std::string> files, profiles, config_args;
  long repeat = 1;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--profile" || a == "--repeat") && i + 1 < args.size()) {
      if (a == "--profile") profiles.push_back(args[++i]);
      else repeat = std::max(1L, std::strtol(args[++i].c_str(), nullptr, 10));
    } else if (a.rfind("--", 0) == 0) {
      config_args.push_back(a);
      if (a.find('=') == std::string::npos && a != "--migrate" && i + 1 < args.size()) config_args.push_back(args[++i]);
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    fmt::print(stderr, "eds validate: no files given\n");
    return 2;
  }
  auto c = server::ParseConfig(config_args);
  server::SetLogLevel(c.log_level == "info" ? "warn" : c.log_level);
  auto defs = fhir::Definitions::Load(c.definitions_dir);
  auto validator = MakeValidator(c, defs);
  fhir::ValidationOptions options;
  options.declared_profiles = true;
  options.profiles = profiles;
  bool errors = false;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "{}: cannot read the file\n", f);
      errors = true;
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    auto resource = fhir::Resource::Parse(text);
    if (!resource) {
      for (const auto& i : resource.error().outcome.issues()) fmt::print("{}: error: {}\n", f, i.diagnostics);
      errors = true;
      continue;
    }
    fhir::Outcome outcome;
    auto t0 = std::chrono::steady_clock::now();
    for (long n = 0; n < repeat; ++n) outcome = validator->Validate(*resource, options);
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int n_errors = 0, n_warnings = 0;
    for (const auto& i : outcome.issues()) {
      fmt::print("{}: {}: {} [{}]{}\n", f, fhir::SeverityCode(i.severity), i.diagnostics, i.code,
                 i.expression.empty() ? std::string() : " at " + i.expression);
      n_errors += i.severity == fhir::Severity::kError || i.severity == fhir::Severity::kFatal;
      n_warnings += i.severity == fhir::Severity::kWarning;
    }
    fmt::print("{}: {} error(s), {} warning(s)\n", f, n_errors, n_warnings);
    if (repeat > 1)
      fmt::print("{}: {} validations in {:.3f} s: {:.0f} per second, {:.1f} us each\n", f, repeat, elapsed,
                 repeat / elapsed, elapsed * 1e6 / repeat);
    errors = errors || n_errors > 0;
  }
  return errors ? 1 : 0;
}

// Flags of `eds load` and its files, taken out of `args` before the
// server configuration is parsed from the rest.
struct LoadArgs {
  std::vector<std::string> files;
  server::LoadOptions options;
  server::FileLoadOptions file_options;
};

LoadArgs TakeLoadArgs(std::vector<std::string>& args) {
  LoadArgs out;
  out.options.workers = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  // PostgreSQL's work on the index rows is most of a load: two connections use two cores for it
  out.options.writers = 2;
  std::vector<std::string> rest;
  auto number = [](const std::string& flag, const std::string& v, int max) {
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 1 || n > max)
      throw std::invalid_argument(fmt::format("--{}: expected a whole number from 1 to {}, got '{}'", flag, max, v));
    return static_cast<int>(n);
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], value;
    const bool has_value = a.rfind("--", 0) == 0 && a.find('=') != std::string::npos;
    if (has_value) {
      value = a.substr(a.find('=') + 1);
      a.resize(a.find('='));
    }
    auto take = [&]() {
      if (has_value) return value;
      if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
      return args[++i];
    };
    if (a == "--batch-size") out.options.batch_size = number("batch-size", take(), 1000000);
    else if (a == "--jobs") out.options.workers = number("jobs", take(), 256);
    else if (a == "--writers") out.options.writers = number("writers", take(), 64);
    else if (a == "--report") out.file_options.report_path = take();
    else if (a == "--restart") out.file_options.restart = true;
    else if (a.rfind("--", 0) != 0) out.files.push_back(a);
    else {
      rest.push_back(args[i]);
      // a server flag's value follows it (every server flag but --migrate takes one)
      if (!has_value && a != "--migrate" && i + 1 < args.size()) rest.push_back(args[++i]);
    }
  }
  args = std::move(rest);
  return out;
}

// eds load: exit status 0 when every file was loaded (rejected lines
// included), 1 when a file could not be loaded.
int Load(LoadArgs load, const server::ServerConfig& c) {
  if (load.files.empty()) {
    fmt::print(stderr, "eds: load needs at least one file\n");
    return 2;
  }
  if (!load.file_options.report_path.empty() && load.files.size() > 1) {
    fmt::print(stderr, "eds: --report names the report of one file; without it each FILE gets FILE.rejected.txt\n");
    return 2;
  }
  if (int rc = RequireDatabase(c)) return rc;
  if (int rc = CheckSchema(c)) return rc;
  auto defs = fhir::Definitions::Load(c.definitions_dir);
  auto indexers = std::make_shared<fhir::IndexerHolder>(nullptr);
  auto options = StoreOptions(c, defs, indexers);
  options.pool_size = load.options.writers;
  options.statement_timeout = std::chrono::milliseconds(600000);
  storage::PgResourceStore store(options);
  LoadCustomSearchParameters(defs, store, *indexers);
  load.options.max_json_depth = c.json_max_depth;
  load.options.progress = ::isatty(STDERR_FILENO) == 1;
  server::BulkLoader loader(defs, indexers, store, load.options);
  int status = 0;
  int64_t stored = 0;
  for (const auto& file : load.files) {
    auto r = loader.LoadFile(file, load.file_options);
    if (!r) {
      const auto& issues = r.error().outcome.issues();
      fmt::print(stderr, "eds: {}: {}\n", file, issues.empty() ? std::string("failed") : issues[0].diagnostics);
      if (r.error().kind != fhir::ErrorKind::kNotFound)
        fmt::print(stderr, "eds: {}: what was committed stays; run the same command again to resume\n", file);
      status = 1;
      continue;
    }
    const auto& run = r->run;
    stored += run.stored;
    if (r->already_complete) {
      fmt::print("{}: already loaded ({} lines: stored {}, unchanged {}, rejected {}); nothing to do\n", file,
                 r->resumed_at_line, r->total_stored, r->total_unchanged, r->total_rejected);
      continue;
    }
    const double rate = run.seconds > 0 ? double(run.stored + run.unchanged) / run.seconds : 0;
    fmt::print("{}: stored {}, unchanged {}, rejected {} in {:.2f} s ({:.0f} resources/s){}\n", file, run.stored,
               run.unchanged, run.rejected, run.seconds, rate,
               r->resumed_at_line > 0
                   ? fmt::format("; resumed after line {} (all runs: stored {}, unchanged {}, rejected {})",
                                 r->resumed_at_line, r->total_stored, r->total_unchanged, r->total_rejected)
                   : std::string());
    for (const auto& rej : r->first_rejections) fmt::print("  rejected {}\n", rej.Describe());
    if (run.rejected > static_cast<int64_t>(r->first_rejections.size()))
      fmt::print("  ... {} more\n", run.rejected - static_cast<int64_t>(r->first_rejections.size()));
    if (r->total_rejected > 0) fmt::print("  every rejected line: {}\n", r->report_path);
    if (run.search_parameters > 0)
      fmt::print("  {} SearchParameter resource(s) loaded: running servers pick them up with POST [base]/$reindex\n",
                 run.search_parameters);
    std::fflush(stdout);
  }
  // searches right after a load are planned with statistics of what it wrote
  if (stored > 0) store.RefreshStatistics();
  return status;
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
  // fiscal codes in analytics tables are hashed under the configured key, else under the database's own
  server::ServerConfig config = c;
  if (config.analytics_hash_key.empty())
    config.analytics_hash_key = storage::LoadAnalyticsKey(c.database_url);
  else if (config.analytics_hash_key.size() < 16)
    server::Log(server::LogLevel::kWarn, "--analytics-hash-key is shorter than 16 characters: a short key can be "
                                         "guessed, and with it every fiscal-code hash reversed");
  storage::MonitoringMaintenance monitoring(c.database_url, c.monitoring_refresh, [](const std::string& message) {
    server::Log(server::LogLevel::kWarn, message);
  });
  auto indexers = std::make_shared<fhir::IndexerHolder>(nullptr);
  storage::PgResourceStore store(StoreOptions(c, defs, indexers));
  auto validator = MakeValidator(c, defs, &store);
  if (!validator) return 1;
  server::FhirApi api(config, defs, store, indexers, validator);
  api.SetValidatorFactory([&c, defs, &store] { return MakeValidator(c, defs, &store); });
  LoadCustomSearchParameters(defs, store, *indexers);
  std::unique_ptr<storage::AuditSink> audit;
  if (c.audit) {
    audit = std::make_unique<storage::AuditSink>(c.database_url, 100000, std::chrono::milliseconds(c.audit_interval_ms),
                                                 c.audit_retention_months);
    api.SetAuditSink(audit.get());
  }
  server::HttpServer http(config, api);
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
  std::optional<LoadArgs> load;
  if (command == "version" || command == "--version") {
    fmt::print("eds {}\n", EDS_VERSION);
    return 0;
  }
  try {
    if (command == "validate") return ValidateFiles(args);
    if (command == "load") load = TakeLoadArgs(args);
    auto config = server::ParseConfig(args);
    server::SetLogLevel(config.log_level);
    if (command == "serve") return Serve(config);
    if (command == "migrate") return Migrate(config);
    if (command == "reindex") return Reindex(config);
    if (command == "load") return Load(std::move(*load), config);
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
