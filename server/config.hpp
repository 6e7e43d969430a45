// Server configuration from command-line flags and EDS_* environment
// variables (flags win).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace eds::server {

// What a write is validated against, beyond structure: nothing, the base
// definitions, or the base definitions and the profiles in meta.profile.
enum class ValidationMode { kOff, kBase, kProfiles };

// A mode for every resource type, with exceptions by type.
struct ValidationPolicy {
  ValidationMode default_mode = ValidationMode::kBase;
  std::vector<std::pair<std::string, ValidationMode>> by_type;
  ValidationMode For(const std::string& type) const;
};

// Parses "MODE[,Type=MODE...]" (modes off, base, profiles). Throws
// std::invalid_argument naming the bad part.
ValidationPolicy ParseValidationPolicy(const std::string& text);

struct ServerConfig {
  std::string bind_address = "127.0.0.1";
  unsigned short port = 8080;
  int io_threads = 0;               // 0: half the cores (at least 1)
  int pool_size = 8;                // database connections = database worker threads
  int read_connections = 2;         // per I/O thread: non-blocking connections for batched reads
  std::string database_url;         // libpq URL or key=value string
  std::string definitions_dir;      // unpacked hl7.fhir.r4.examples package
  std::string base_path = "/fhir";
  std::string public_base_url;      // absolute base for Location and links; default from Host
  // Other absolute bases this server answers at (aliases, former names):
  // references under them, or under public_base_url, name local resources.
  std::vector<std::string> local_bases;
  // public_base_url (when set) and local_bases.
  std::vector<std::string> OwnBases() const;
  bool migrate = false;             // apply migrations at start-up
  std::size_t body_limit = 16 * 1024 * 1024;
  std::size_t header_limit = 64 * 1024;
  std::size_t url_limit = 8 * 1024;
  std::size_t json_max_depth = 64;
  std::chrono::seconds read_timeout{15};   // whole request (headers + body)
  std::chrono::seconds idle_timeout{60};   // keep-alive wait for the next request
  std::chrono::seconds shutdown_grace{10};
  int history_default_count = 50;
  int history_max_count = 1000;
  std::string log_level = "info";   // error, warn, info, debug
  bool audit = true;                // an audit row per request
  int audit_retention_months = 0;   // 0: keep every month
  int audit_interval_ms = 20;       // longest wait before queued audit rows are written
  // Key of the fiscal-code hashes in analytics tables (HMAC-SHA256); empty:
  // the key kept in the database (analytics_key), made once at random.
  std::string analytics_hash_key;
  std::chrono::seconds monitoring_refresh{300};  // materialised monitoring views; 0: never
  std::string profiles_dir;         // StructureDefinitions (profiles) to validate against
  ValidationPolicy validation;      // validation on write
};

// Parses `args` (after the subcommand) over the environment defaults.
// Throws std::invalid_argument with a message naming the bad flag.
ServerConfig ParseConfig(const std::vector<std::string>& args);

// Help text listing every flag and its environment variable.
std::string ConfigHelp();

}  // namespace eds::server
