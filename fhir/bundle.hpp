// Versions of resources and the Bundles that list them (history).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eds::fhir {

enum class WriteMethod { kCreate, kUpdate, kDelete };

// One stored version of a resource. `content` is its JSON text, empty for a
// deletion (tombstone).
struct VersionRecord {
  std::string type;
  std::string id;
  int64_t version = 0;
  int64_t last_updated_ms = 0;
  WriteMethod method = WriteMethod::kCreate;
  bool deleted = false;
  std::string content;
};

struct BundleLink {
  std::string relation;  // self, next, previous, first
  std::string url;
};

// A Bundle of type "history": entries newest first as given, each with
// fullUrl, resource (absent for deletions), request and response. Stored
// JSON text is embedded as is, without re-parsing.
std::string BuildHistoryBundle(std::string_view base_url, const std::vector<VersionRecord>& entries,
                               const std::vector<BundleLink>& links,
                               std::optional<int64_t> total = std::nullopt);

class Resource;
class Outcome;

// The rules R4 sets for a Bundle of type document (bdl-9: an identifier
// with system and value; bdl-10: a timestamp; bdl-11: a Composition as the
// first entry's resource; every entry with a resource and a fullUrl). No
// issues for other Bundle types.
Outcome CheckDocumentBundle(const Resource& bundle);

// The weak ETag of a version: W/"3".
std::string VersionETag(int64_t version);

}  // namespace eds::fhir
