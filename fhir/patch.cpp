// PATCH application and the checks of its result.
#include "fhir/patch.hpp"

#include "fhir/definitions.hpp"
#include "fhir/fhirpath.hpp"
#include "fhir/fhirpath_patch.hpp"
#include "fhir/json_patch.hpp"

namespace eds::fhir {

Result<Resource> PatchResource(const fhirpath::Engine& engine, std::string_view current, const std::string& type,
                               const std::string& id, const PatchDocument& patch, std::size_t max_depth) {
  Result<std::string> patched = patch.fhirpath_patch != nullptr
                                    ? ApplyFhirPathPatch(engine, current, *patch.fhirpath_patch, max_depth)
                                    : ApplyJsonPatch(current, patch.json_patch.value_or("[]"), max_depth);
  if (!patched) return std::move(patched.error());
  auto resource = Resource::Parse(*patched, JsonLimits{max_depth});
  if (!resource) return Error{ErrorKind::kUnprocessable, std::move(resource.error().outcome)};
  if (resource->type() != type || resource->id() != id)
    return MakeError(ErrorKind::kUnprocessable, "a patch must not change resourceType or id");
  auto structure = engine.definitions().CheckStructure(*resource);
  if (structure.HasErrors()) return Error{ErrorKind::kUnprocessable, std::move(structure)};
  return resource;
}

}  // namespace eds::fhir
