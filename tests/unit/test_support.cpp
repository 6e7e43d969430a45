// Shared helpers for the unit tests.
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

#include "fhir/definitions.hpp"

namespace eds::testing {

std::string DefinitionsDir() {
  if (const char* dir = std::getenv("EDS_DEFINITIONS"); dir != nullptr && *dir != '\0') return dir;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/root") +
         "/.fhir/packages/hl7.fhir.r4.examples#4.0.1/package";
}

std::shared_ptr<const fhir::Definitions> R4Definitions() {
  static std::shared_ptr<const fhir::Definitions> defs;
  if (!defs) {
    const std::string dir = DefinitionsDir();
    if (!std::filesystem::is_directory(dir))
      FAIL("FHIR R4 definitions not found at " << dir
                                               << " (set EDS_DEFINITIONS or run deploy/fetch_definitions.sh)");
    defs = fhir::Definitions::Load(dir);
  }
  return defs;
}

rapidjson::Document ParseJson(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  INFO("JSON: " << json);
  REQUIRE_FALSE(doc.HasParseError());
  return doc;
}

std::string StrOf(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

}  // namespace eds::testing
