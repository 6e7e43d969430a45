// RapidJSON-backed tree shared by the fhir/ sources. Only fhir/*.cpp include
// this header. Numbers are kept as their source text: a string value whose
// first byte is kNumberMark holds a JSON number.
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <string_view>

namespace eds::fhir {

inline constexpr char kNumberMark = '\x01';

using JsonValue = rapidjson::Value;

class JsonTree {
 public:
  rapidjson::Document doc;
};

inline bool IsNumber(const JsonValue& v) {
  return v.IsString() && v.GetStringLength() > 0 && v.GetString()[0] == kNumberMark;
}
inline bool IsString(const JsonValue& v) { return v.IsString() && !IsNumber(v); }
inline std::string_view StringOf(const JsonValue& v) {
  return {v.GetString(), v.GetStringLength()};
}
inline std::string_view NumberText(const JsonValue& v) {
  return {v.GetString() + 1, v.GetStringLength() - 1};
}

// Serialises a value (numbers as written).
std::string SerializeJson(const JsonValue& value);

// Parses `text` into `doc`; on failure returns false and sets `error`.
bool ParseJsonTree(std::string_view text, std::size_t max_depth, rapidjson::Document& doc,
                   std::string& error);

}  // namespace eds::fhir
