// CapabilityStatement generated from the loaded definitions and the
// interactions the server's routes really implement.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace eds::fhir {

class Definitions;

struct ServerCapabilities {
  std::string base_url;
  std::string software_name;
  std::string software_version;
  std::string date;                              // FHIR dateTime of server start
  std::vector<std::string> type_interactions;    // TypeRestfulInteraction codes
  std::vector<std::string> system_interactions;  // SystemRestfulInteraction codes
  struct SearchParam {
    std::string name, type, definition;
  };
  bool conditional = false;  // conditional create, update and delete
  // Types the server records itself (AuditEvent): read, vread and search only.
  std::vector<std::string> read_only_types;
  // The search parameters supported on a resource type (may be empty).
  std::function<std::vector<SearchParam>(const std::string& type)> search_params_for;
};

std::string BuildCapabilityStatement(const Definitions& defs, const ServerCapabilities& caps);

}  // namespace eds::fhir
