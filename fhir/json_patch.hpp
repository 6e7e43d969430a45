// JSON Patch (RFC 6902) over FHIR JSON documents, with JSON Pointers
// (RFC 6901). Numbers keep their text.
#pragma once

#include <string>
#include <string_view>

#include "fhir/result.hpp"

namespace eds::fhir {

// Applies `patch` (a JSON array of operations: add, remove, replace, move,
// copy, test) to `document` and returns the patched document as JSON text.
// Errors: kInvalid when the patch is malformed (not an array, unknown op,
// missing fields, bad pointer syntax); kUnprocessable when it cannot be
// applied to this document (a path that does not exist, a failed test).
// The issue names the operation: "patch[2]".
Result<std::string> ApplyJsonPatch(std::string_view document, std::string_view patch, std::size_t max_depth = 64);

}  // namespace eds::fhir
