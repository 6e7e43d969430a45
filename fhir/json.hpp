// FHIR JSON resources: parsing with limits, canonical rendering with the
// server-owned elements (id, meta.versionId, meta.lastUpdated) set, and
// number-preserving re-serialisation (FHIR decimals keep their precision).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "fhir/result.hpp"

namespace eds::fhir {

struct JsonLimits {
  std::size_t max_depth = 64;  // nesting of objects and arrays
};

class JsonTree;  // the parsed tree; defined in fhir/json_internal.hpp

// A parsed FHIR resource. Movable, not copyable.
class Resource {
 public:
  Resource(Resource&&) noexcept;
  Resource& operator=(Resource&&) noexcept;
  ~Resource();

  // Parses text as a FHIR JSON resource. Errors (kInvalid): malformed JSON,
  // nesting deeper than limits.max_depth, duplicate keys, a root that is not
  // an object, resourceType missing or not a string, id not a string.
  static Result<Resource> Parse(std::string_view text, const JsonLimits& limits = {});

  const std::string& type() const;
  // The id in the document (or the one set by SetId), if any.
  std::optional<std::string> id() const;
  void SetId(std::string id);

  // A deep copy (for work that may have to start over from the original).
  Resource Clone() const;

  // Serialises with id, meta.versionId and meta.lastUpdated set; resourceType,
  // id and meta come first, the other elements keep their order.
  std::string Render(std::string_view version_id, std::string_view last_updated) const;

  const JsonTree& tree() const;

  // Replaces every `reference` string in the resource (contained resources
  // and extensions included) for which `map` returns a value. Returns how
  // many were replaced.
  int RewriteReferences(const std::function<std::optional<std::string>(std::string_view)>& map);
  // Calls `fn` with every `reference` string, in the same places.
  void ForEachReference(const std::function<void(std::string_view)>& fn) const;

 private:
  Resource();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Re-serialises JSON text, pretty-printed with two-space indents; numbers are
// written exactly as they appear. Returns the input unchanged when it is not
// valid JSON (it only formats text this server produced).
std::string PrettyPrintJson(std::string_view json);

// True when both texts parse to the same tree, ignoring object key order and
// comparing numbers by value and precision (1.50 equals 1.50e0, not 1.5). `ignore_server_meta` ignores
// meta.versionId and meta.lastUpdated (and a meta left empty by that).
bool JsonEquivalent(std::string_view a, std::string_view b, bool ignore_server_meta = false);

// Appends `s` to `out` as a JSON string literal, quotes included.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace eds::fhir
