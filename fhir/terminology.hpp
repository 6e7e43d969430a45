// Code membership in ValueSets, expanded from the CodeSystems and ValueSets
// of the loaded FHIR packages (include/exclude with concept lists, whole
// systems, is-a and descendent-of filters over a CodeSystem's hierarchy).
// Systems the package does not define (SNOMED CT, LOINC, UCUM, BCP-47, ...)
// cannot be enumerated: codes from them come back as kUnknown.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace eds::fhir {

class Terminology {
 public:
  ~Terminology();
  Terminology(const Terminology&) = delete;
  Terminology& operator=(const Terminology&) = delete;

  // Indexes the CodeSystem-*.json and ValueSet-*.json files of `dirs`, the
  // ValueSet and CodeSystem entries of the FHIR package tarballs (*.tgz)
  // there (one that cannot be read is skipped), and
  // the ValueSet and CodeSystem resources in `stored` (JSON texts, such as
  // the ones written through the API; they win over files with their URL
  // and version) by canonical URL and version, several versions of a URL
  // side by side (directories that do not exist are skipped).
  // Expansions are computed on first use and kept. Thread-safe.
  static std::shared_ptr<const Terminology> Load(const std::vector<std::string>& dirs,
                                                 const std::vector<std::string>& stored = {});

  enum class Membership { kMember, kNotMember, kUnknown };

  // Whether `code` of `system` is in the value set `value_set` names (a
  // canonical reference: `url|version` exactly that version, a bare `url`
  // the latest; an include with a system and a version takes that version
  // of the CodeSystem). An empty `system` (elements of type code) matches the
  // code in any system of the value set. kUnknown when the value set is not
  // known (nor the version named), or the code's system is one the server
  // cannot enumerate; `why` then says what could not be checked.
  Membership Check(std::string_view value_set, std::string_view system, std::string_view code,
                   std::string* why = nullptr) const;

  // Whether two canonical references name the same value set (equal, or
  // `url` and `url|version` of its latest version).
  bool SameValueSet(std::string_view a, std::string_view b) const;

  // Number of value sets and code systems indexed (each version counts).
  std::size_t value_set_count() const;
  std::size_t code_system_count() const;

  struct Impl;

 private:
  Terminology();
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::fhir
