// The server's own FHIR bases. An absolute reference under one of them
// names a resource of this server; any other absolute reference names a
// resource of another server, even when its last segments look like a local
// Type/id. Index rows and search values use this to tell them apart.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eds::fhir {

class LocalBases {
 public:
  LocalBases() = default;
  // Absolute base URLs such as "https://eds.example.it/fhir"; a trailing '/'
  // is ignored. Scheme and host compare case-insensitively, the path exactly.
  explicit LocalBases(const std::vector<std::string>& bases);

  // "Type/id" or "Type/id/_history/vid" when `url` is one of the bases
  // followed by that; nothing otherwise (other servers, other shapes).
  std::optional<std::string_view> Relative(std::string_view url) const;

  bool empty() const { return bases_.empty(); }
  const std::vector<std::string>& bases() const { return bases_; }

 private:
  std::vector<std::string> bases_;  // without trailing '/'
};

}  // namespace eds::fhir
