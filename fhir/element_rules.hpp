// What an element definition says beyond structure: invariants, terminology
// binding, fixed and pattern values, length limit, reference targets. Kept
// by Definitions for every snapshot element; read by the validator.
#pragma once

#include <rapidjson/fwd.h>

#include <memory>
#include <string>
#include <vector>

#include "fhir/outcome.hpp"

namespace eds::fhir {

// One invariant (ElementDefinition.constraint).
struct Constraint {
  std::string key;         // "ele-1", "pat-1"
  Severity severity = Severity::kError;
  std::string human;       // the English rule
  std::string expression;  // FHIRPath; empty when the definition gives none
};

struct ElementRules {
  std::vector<Constraint> constraints;
  std::string binding_strength;  // required, extensible, preferred, example; empty: no binding
  std::string value_set;         // canonical reference, with the |version it names, if any
  int max_length = 0;            // 0: no limit
  std::string fixed_json;        // fixed[x] as JSON text; empty when none
  std::string pattern_json;      // pattern[x] as JSON text; empty when none
  // Reference targets: the resource types the targetProfiles name ("Patient");
  // empty: any.
  std::vector<std::string> target_types;

  bool Empty() const {
    return constraints.empty() && binding_strength.empty() && max_length == 0 && fixed_json.empty() &&
           pattern_json.empty() && target_types.empty();
  }
};

// The rules of one ElementDefinition (parsed with plain RapidJSON, as
// StructureDefinitions are read); nullptr when it has none.
std::shared_ptr<const ElementRules> ReadElementRules(const rapidjson::Value& element);

}  // namespace eds::fhir
