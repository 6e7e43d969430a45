// PATCH: a JSON Patch or a FHIRPath Patch applied to the stored version of a
// resource, the result checked like an update.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "fhir/json.hpp"
#include "fhir/result.hpp"

namespace eds::fhir {

namespace fhirpath {
class Engine;
}

// The body of a patch: one of the two kinds.
struct PatchDocument {
  std::optional<std::string> json_patch;    // RFC 6902 text
  const Resource* fhirpath_patch = nullptr;  // a Parameters resource (FHIRPath Patch)
};

// Applies `patch` to `current` (the stored JSON of type/id) and returns the
// patched resource. Errors: those of the patch (kInvalid for a malformed
// patch, kUnprocessable for one that does not apply); kUnprocessable when the
// result changes resourceType or id, or breaks the structure rules (with
// every structure issue).
Result<Resource> PatchResource(const fhirpath::Engine& engine, std::string_view current, const std::string& type,
                               const std::string& id, const PatchDocument& patch, std::size_t max_depth = 64);

}  // namespace eds::fhir
