// FHIRPath Patch (R4 fhirpatch.html): a Parameters resource whose
// `operation` parameters add, insert, delete, replace or move content that a
// FHIRPath expression selects.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "fhir/result.hpp"

namespace eds::fhir {

class Resource;
namespace fhirpath {
class Engine;
}

// Applies the operations of `parameters` in order to `document` (a resource
// as JSON text) and returns the patched document as JSON text; the result
// still has to be checked like any update. Errors name the operation
// (Parameters.parameter[n]):
// - kInvalid when `parameters` is not a FHIRPath Patch: not Parameters, a
//   parameter other than `operation`, an unknown operation type, a part
//   missing or of the wrong kind, a path that does not parse;
// - kUnprocessable when an operation cannot be applied to this document: its
//   path selects nothing where something is needed, or several elements, or
//   something outside the resource (resolve() to another resource, the
//   resource itself); an element the type does not have; a value whose type
//   the element does not allow; an index out of range; a non-repeating
//   element that already has a value (add).
// Deleting an element the path does not find is not an error.
Result<std::string> ApplyFhirPathPatch(const fhirpath::Engine& engine, std::string_view document,
                                       const Resource& parameters, std::size_t max_depth = 64);

}  // namespace eds::fhir
