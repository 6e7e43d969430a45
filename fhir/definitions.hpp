// The FHIR R4 definitions the server runs on, loaded from the official
// package (hl7.fhir.r4.examples@4.0.1): resource types and the element
// structure of every resource and data type, from the StructureDefinitions.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/outcome.hpp"

namespace eds::fhir {

class Resource;

class Definitions {
 public:
  ~Definitions();
  Definitions(const Definitions&) = delete;
  Definitions& operator=(const Definitions&) = delete;

  // Loads every base StructureDefinition (kind resource, complex-type or
  // primitive-type; not profiles, not logical models) from an unpacked FHIR
  // package directory. Throws std::runtime_error when the directory is
  // missing or holds no resource definitions.
  static std::shared_ptr<const Definitions> Load(const std::string& package_dir);

  // Concrete (non-abstract) resource types, sorted by name.
  const std::vector<std::string>& resource_types() const;
  bool IsResourceType(std::string_view name) const;
  // FHIR version of the package, e.g. "4.0.1".
  const std::string& fhir_version() const;

  // Checks the element structure of a parsed resource against its
  // StructureDefinition: unknown elements, arrays where single values belong
  // and the reverse, JSON types of primitives, choice types with allowed
  // types only, primitive extensions (_element), nulls and empty values,
  // contained and nested resources. Issues carry FHIRPath-style expressions
  // such as Patient.name[0].given[1]. Returns an Outcome with no issues when
  // the structure is right.
  Outcome CheckStructure(const Resource& resource) const;

  struct Impl;  // opaque; defined in definitions.cpp

 private:
  Definitions();
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::fhir
