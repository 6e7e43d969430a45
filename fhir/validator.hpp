// Validation of resources against the base R4 definitions and profiles:
// cardinality, primitive formats, invariants (FHIRPath), terminology
// bindings, fixed and pattern values, maxLength, reference targets, and the
// profiles' own constraints and slices. Produces an OperationOutcome with
// one issue per problem, each naming its element (Patient.name[0].given[1]).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fhir/json.hpp"
#include "fhir/outcome.hpp"
#include "fhir/result.hpp"

namespace eds::fhir {

class ConformanceStore;
class Definitions;
class Terminology;

struct ValidationOptions {
  // Include the structure checks (Definitions::CheckStructure). Writes run
  // those first on their own, so they leave this off.
  bool structure = true;
  // Also validate against each profile in meta.profile (unknown ones: a warning).
  bool declared_profiles = false;
  // Profiles to validate against besides (canonical URLs; unknown ones: an error).
  std::vector<std::string> profiles;
};

// Counts about the invariants of the loaded definitions and profiles.
struct ValidatorStats {
  std::size_t constraints = 0;          // with an expression
  std::size_t unparsed = 0;             // whose expression the FHIRPath engine rejects (skipped)
  std::vector<std::string> unparsed_keys;
};

class Validator {
 public:
  // `defs` must not be null; `terminology` and `profiles` may be (bindings,
  // profiles are then not checked). Parses every invariant once.
  Validator(std::shared_ptr<const Definitions> defs, std::shared_ptr<const Terminology> terminology,
            std::shared_ptr<const ConformanceStore> profiles = nullptr);
  ~Validator();
  Validator(const Validator&) = delete;
  Validator& operator=(const Validator&) = delete;

  // Validates a parsed resource. Never throws for any input; issues are
  // capped at a few hundred.
  Outcome Validate(const Resource& resource, const ValidationOptions& options = {}) const;

  const ValidatorStats& stats() const;
  // Invariants whose evaluation failed at run time so far (skipped, as if true).
  std::size_t evaluation_failures() const;
  const ConformanceStore* profiles() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The input of $validate: the resource (a bare resource, or the `resource`
// parameter of a Parameters), `mode` and `profile` parameters.
struct ValidateInput {
  std::optional<Resource> resource;
  std::string mode;  // create, update, delete or empty
  std::vector<std::string> profiles;
};

// Reads a $validate body already parsed. A Parameters resource (when
// `type` is not Parameters) is read for its parameters; anything else is
// the resource itself. kInvalid when a Parameters has no usable `resource`
// (and mode is not delete) or names an unknown mode.
Result<ValidateInput> ReadValidateInput(Resource body, const std::string& type);

}  // namespace eds::fhir
