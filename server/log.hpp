// Minimal leveled logging to stderr, one line per message.
#pragma once

#include <string_view>

namespace eds::server {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(std::string_view level);
bool LogEnabled(LogLevel level);
void Log(LogLevel level, std::string_view message);

// One access-log line on stdout: a JSON object with "ts" followed by
// `json_object_fields` (already JSON: "\"a\":1,\"b\":\"x\""). Written at
// level info and above, one write per line.
void AccessLog(std::string_view json_object_fields);

}  // namespace eds::server
