// Flag and environment parsing for ServerConfig.
#include "server/config.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <thread>
#include <algorithm>

namespace eds::server {
namespace {

struct Option {
  const char* flag;
  const char* env;
  const char* help;
  std::function<void(ServerConfig&, const std::string&)> set;  // empty value: a switch
  bool is_switch = false;
};

long ToNumber(const std::string& flag, const std::string& v, long min, long max) {
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || n < min || n > max)
    throw std::invalid_argument(
        fmt::format("--{}: expected a whole number from {} to {}, got '{}'", flag, min, max, v));
  return n;
}

std::string DefaultDefinitionsDir() {
  std::string root;
  if (const char* p = std::getenv("EDS_FHIR_PACKAGES")) root = p;
  else if (const char* h = std::getenv("HOME")) root = std::string(h) + "/.fhir/packages";
  else root = "/root/.fhir/packages";
  return root + "/hl7.fhir.r4.examples#4.0.1/package";
}

const std::vector<Option>& Options() {
  static const std::vector<Option> kOptions = {
      {"bind", "EDS_BIND", "address to listen on (default 127.0.0.1)",
       [](ServerConfig& c, const std::string& v) { c.bind_address = v; }},
      {"port", "EDS_PORT", "TCP port (default 8080; 0 picks a free one)",
       [](ServerConfig& c, const std::string& v) {
         c.port = static_cast<unsigned short>(ToNumber("port", v, 0, 65535));
       }},
      {"threads", "EDS_THREADS", "HTTP I/O threads, each with its own event loop (default: half the cores, at least 1)",
       [](ServerConfig& c, const std::string& v) {
         c.io_threads = static_cast<int>(ToNumber("threads", v, 0, 256));
       }},
      {"pool-size", "EDS_POOL_SIZE",
       "database connections, and threads doing database work (default 8)",
       [](ServerConfig& c, const std::string& v) {
         c.pool_size = static_cast<int>(ToNumber("pool-size", v, 1, 1024));
       }},
      {"read-connections", "EDS_READ_CONNECTIONS",
       "non-blocking database connections per I/O thread serving batched reads (default 2; 0: off)",
       [](ServerConfig& c, const std::string& v) {
         c.read_connections = static_cast<int>(ToNumber("read-connections", v, 0, 1024));
       }},
      {"database-url", "EDS_DATABASE_URL", "PostgreSQL connection URL (required)",
       [](ServerConfig& c, const std::string& v) { c.database_url = v; }},
      {"definitions", "EDS_DEFINITIONS",
       "unpacked hl7.fhir.r4.examples@4.0.1 package directory "
       "(default $EDS_FHIR_PACKAGES or ~/.fhir/packages, /hl7.fhir.r4.examples#4.0.1/package)",
       [](ServerConfig& c, const std::string& v) { c.definitions_dir = v; }},
      {"base-path", "EDS_BASE_PATH", "path prefix of the FHIR API (default /fhir)",
       [](ServerConfig& c, const std::string& v) {
         if (v.empty() || v[0] != '/' || v.back() == '/')
           throw std::invalid_argument("--base-path: must start with '/' and not end with '/'");
         c.base_path = v;
       }},
      {"public-url", "EDS_PUBLIC_URL",
       "absolute base URL used in Location headers and links (default http://<Host><base-path>)",
       [](ServerConfig& c, const std::string& v) { c.public_base_url = v; }},
      {"local-bases", "EDS_LOCAL_BASES",
       "comma-separated absolute base URLs that also name this server, besides --public-url: an "
       "absolute reference is a reference to a resource of this server only under one of them",
       [](ServerConfig& c, const std::string& v) {
         c.local_bases.clear();
         std::size_t start = 0;
         while (start <= v.size()) {
           std::size_t comma = std::min(v.find(',', start), v.size());
           std::string base = v.substr(start, comma - start);
           start = comma + 1;
           if (base.empty()) continue;
           if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0)
             throw std::invalid_argument("--local-bases: expected http:// or https:// URLs, got '" + base + "'");
           c.local_bases.push_back(std::move(base));
         }
       }},
      {"migrate", "EDS_MIGRATE", "apply database migrations at start-up",
       [](ServerConfig& c, const std::string& v) { c.migrate = v.empty() || v == "1" || v == "true"; },
       true},
      {"body-limit", "EDS_BODY_LIMIT", "largest request body in bytes (default 16 MiB)",
       [](ServerConfig& c, const std::string& v) {
         c.body_limit = static_cast<std::size_t>(ToNumber("body-limit", v, 1024, 1L << 31));
       }},
      {"max-json-depth", "EDS_MAX_JSON_DEPTH", "deepest JSON nesting accepted (default 64)",
       [](ServerConfig& c, const std::string& v) {
         c.json_max_depth = static_cast<std::size_t>(ToNumber("max-json-depth", v, 8, 1000));
       }},
      {"read-timeout", "EDS_READ_TIMEOUT", "seconds to receive a whole request (default 15)",
       [](ServerConfig& c, const std::string& v) {
         c.read_timeout = std::chrono::seconds(ToNumber("read-timeout", v, 1, 3600));
       }},
      {"idle-timeout", "EDS_IDLE_TIMEOUT", "seconds an idle keep-alive connection stays open (default 60)",
       [](ServerConfig& c, const std::string& v) {
         c.idle_timeout = std::chrono::seconds(ToNumber("idle-timeout", v, 1, 3600));
       }},
      {"max-count", "EDS_MAX_COUNT", "largest page size (_count) a client may ask for (default 1000)",
       [](ServerConfig& c, const std::string& v) {
         c.history_max_count = static_cast<int>(ToNumber("max-count", v, 1, 100000));
       }},
      {"audit", "EDS_AUDIT", "on or off: an audit row for every request (default on)",
       [](ServerConfig& c, const std::string& v) {
         if (v != "on" && v != "off") throw std::invalid_argument("--audit: expected on or off");
         c.audit = v == "on";
       }},
      {"audit-interval", "EDS_AUDIT_INTERVAL",
       "longest wait in milliseconds before queued audit rows are written (default 20; sooner at 1,000 rows)",
       [](ServerConfig& c, const std::string& v) {
         c.audit_interval_ms = static_cast<int>(ToNumber("audit-interval", v, 1, 10000));
       }},
      {"audit-retention-months", "EDS_AUDIT_RETENTION_MONTHS",
       "months of audit kept; older monthly partitions are dropped (default 0: keep all)",
       [](ServerConfig& c, const std::string& v) {
         c.audit_retention_months = static_cast<int>(ToNumber("audit-retention-months", v, 0, 1200));
       }},
      {"analytics-hash-key", "EDS_ANALYTICS_HASH_KEY",
       "key of the fiscal-code hashes in analytics tables (default: a random key made once and kept in "
       "the database); prefer the environment variable, which ps does not show",
       [](ServerConfig& c, const std::string& v) { c.analytics_hash_key = v; }},
      {"monitoring-refresh-seconds", "EDS_MONITORING_REFRESH_SECONDS",
       "seconds between refreshes of the materialised monitoring views (default 300; 0: never)",
       [](ServerConfig& c, const std::string& v) {
         c.monitoring_refresh = std::chrono::seconds(ToNumber("monitoring-refresh-seconds", v, 0, 7 * 86400));
       }},
      {"profiles", "EDS_PROFILES",
       "directory of profiles (StructureDefinitions) to validate against, besides the package's "
       "(default the profiles/ directory of the source tree)",
       [](ServerConfig& c, const std::string& v) { c.profiles_dir = v; }},
      {"validation", "EDS_VALIDATION",
       "validation on write: off, base or profiles, then Type=mode exceptions, e.g. "
       "base,Patient=profiles (default base)",
       [](ServerConfig& c, const std::string& v) { c.validation = ParseValidationPolicy(v); }},
      {"log-level", "EDS_LOG_LEVEL", "error, warn, info or debug (default info)",
       [](ServerConfig& c, const std::string& v) {
         if (v != "error" && v != "warn" && v != "info" && v != "debug")
           throw std::invalid_argument("--log-level: expected error, warn, info or debug");
         c.log_level = v;
       }},
  };
  return kOptions;
}

ValidationMode ParseMode(const std::string& text) {
  if (text == "off") return ValidationMode::kOff;
  if (text == "base") return ValidationMode::kBase;
  if (text == "profiles") return ValidationMode::kProfiles;
  throw std::invalid_argument("--validation: unknown mode '" + text + "' (off, base or profiles)");
}

}  // namespace

ValidationMode ValidationPolicy::For(const std::string& type) const {
  for (const auto& [t, m] : by_type)
    if (t == type) return m;
  return default_mode;
}

ValidationPolicy ParseValidationPolicy(const std::string& text) {
  ValidationPolicy p;
  std::size_t start = 0;
  bool first = true;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (auto eq = part.find('='); eq != std::string::npos) {
      std::string type = part.substr(0, eq);
      if (type.empty() || type[0] < 'A' || type[0] > 'Z')
        throw std::invalid_argument("--validation: '" + part + "' should be Type=mode");
      p.by_type.emplace_back(type, ParseMode(part.substr(eq + 1)));
    } else if (first) {
      p.default_mode = ParseMode(part);
    } else {
      throw std::invalid_argument("--validation: only the first part may be a mode on its own, got '" + part + "'");
    }
    first = false;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return p;
}

ServerConfig ParseConfig(const std::vector<std::string>& args) {
  ServerConfig c;
  c.definitions_dir = DefaultDefinitionsDir();
  c.profiles_dir = EDS_PROFILES_DIR;
  for (const auto& o : Options())
    if (const char* v = std::getenv(o.env)) o.set(c, v);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + a + "'");
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    const Option* opt = nullptr;
    for (const auto& o : Options())
      if (name == o.flag) opt = &o;
    if (opt == nullptr) throw std::invalid_argument("unknown flag --" + name);
    if (!has_value && !opt->is_switch) {
      if (i + 1 >= args.size()) throw std::invalid_argument("--" + name + " needs a value");
      value = args[++i];
    }
    opt->set(c, value);
  }
  if (c.io_threads == 0)
    c.io_threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2));
  return c;
}

std::vector<std::string> ServerConfig::OwnBases() const {
  std::vector<std::string> out;
  if (!public_base_url.empty()) out.push_back(public_base_url);
  out.insert(out.end(), local_bases.begin(), local_bases.end());
  return out;
}

std::string ConfigHelp() {
  std::string out;
  for (const auto& o : Options())
    out += fmt::format("  --{:<20} {:<22} {}\n", o.flag + std::string(o.is_switch ? "" : " V"), o.env,
                       o.help);
  return out;
}

}  // namespace eds::server
