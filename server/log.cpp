// Logging implementation: whole lines written with one call, so lines from
// different threads never interleave.
#include "server/log.hpp"

#include <unistd.h>

#include <atomic>
#include <string>

#include "fhir/primitives.hpp"

namespace eds::server {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
}

void SetLogLevel(std::string_view level) {
  LogLevel l = level == "error"  ? LogLevel::kError
               : level == "warn" ? LogLevel::kWarn
               : level == "debug" ? LogLevel::kDebug
                                  : LogLevel::kInfo;
  g_level.store(static_cast<int>(l));
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed); }

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled(level)) return;
  static constexpr const char* kNames[] = {"ERROR", "WARN", "INFO", "DEBUG"};
  std::string line = fhir::FormatInstant(fhir::NowMs());
  line += ' ';
  line += kNames[static_cast<int>(level)];
  line += ' ';
  line += message;
  line += '\n';
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace eds::server

namespace eds::server {

void AccessLog(std::string_view json_object_fields) {
  if (!LogEnabled(LogLevel::kInfo)) return;
  std::string line = "{\"ts\":\"" + fhir::FormatInstant(fhir::NowMs()) + "\",";
  line += json_object_fields;
  line += "}\n";
  [[maybe_unused]] auto n = ::write(STDOUT_FILENO, line.data(), line.size());
}

}  // namespace eds::server
