// Bulk sources (eds load, $import): the resources a Bundle contributes, and
// the deterministic id of a resource that comes without one.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "fhir/json.hpp"
#include "fhir/result.hpp"

namespace eds::fhir {

// One Bundle.entry of a bulk source: its resource, or why it has none that
// can be used.
struct BundleEntryResource {
  std::size_t index = 0;  // position in Bundle.entry
  Result<Resource> resource;
  std::string full_url;   // entry.fullUrl, empty when absent
};

// The entry.resource items of a Bundle, in order. An entry without a
// resource, or whose resource is not a JSON object with a resourceType, is
// an error on that entry. kInvalid when `bundle` has no entry array.
Result<std::vector<BundleEntryResource>> BundleEntryResources(const Resource& bundle, const JsonLimits& limits = {});

// The id an entry's fullUrl gives its resource: the id of an absolute
// RESTful fullUrl ([base]/Type/id, Type matching the resource) when it is a
// valid id; nullopt otherwise (urn:uuid:, urn:oid:, other URLs).
std::optional<std::string> FullUrlId(std::string_view full_url, std::string_view type);

// Rewrites the references between the entries of a bulk Bundle, as a
// transaction does: a reference to another entry's fullUrl (urn:uuid:,
// urn:oid:, an absolute URL, and an absolute RESTful fullUrl also by its
// relative Type/id form) becomes Type/id of that entry's resource. Entries
// whose resource is an error, or has no id yet, are neither targets nor
// rewritten. Returns how many references were rewritten.
int RewriteBundleReferences(std::vector<BundleEntryResource>& entries);

// The id of a resource that comes without one, derived from its type and
// content (meta.versionId/lastUpdated left out; JSON layout and whitespace
// do not matter), so that loading the same resource again finds the same
// id: 32 hex digits of a 128-bit hash.
std::string ContentDerivedId(const Resource& resource);

}  // namespace eds::fhir
