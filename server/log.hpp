// Minimal leveled logging to stderr, one line per message.
#pragma once

#include <string_view>

namespace eds::server {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(std::string_view level);
bool LogEnabled(LogLevel level);
void Log(LogLevel level, std::string_view message);

}  // namespace eds::server
