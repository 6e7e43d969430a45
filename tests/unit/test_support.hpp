// Shared helpers for the unit tests: the R4 definitions (loaded once per
// process) and small JSON accessors for checking rendered documents.
#pragma once

#include <rapidjson/document.h>

#include <memory>
#include <string>
#include <string_view>

namespace eds::fhir {
class Definitions;
}

namespace eds::testing {

// Directory of the unpacked hl7.fhir.r4.examples@4.0.1 package: $EDS_DEFINITIONS,
// else $HOME/.fhir/packages/hl7.fhir.r4.examples#4.0.1/package.
std::string DefinitionsDir();

// The R4 definitions, loaded on first use. Fails the running test when the
// package is missing (set-up always fetches it).
std::shared_ptr<const fhir::Definitions> R4Definitions();

// Parses `json` with plain RapidJSON; fails the running test when it is not valid JSON.
rapidjson::Document ParseJson(std::string_view json);

// String member `key` of `obj`, or "" when absent or not a string.
std::string StrOf(const rapidjson::Value& obj, const char* key);

}  // namespace eds::testing
