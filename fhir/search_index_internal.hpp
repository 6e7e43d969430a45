// Conversion of FHIR-typed JSON nodes into search index rows (fhir/ only:
// it names the RapidJSON tree type).
#pragma once

#include <string_view>

#include "fhir/json_internal.hpp"
#include "fhir/search_index.hpp"

namespace eds::fhir {

// Appends the rows that `node`, of FHIR type `fhir_type` (e.g. "HumanName",
// "CodeableConcept", "dateTime", "Reference"), contributes to parameter
// `def`. Nodes whose type the parameter's type cannot index add nothing.
void AddIndexValues(const SearchParamDef& def, std::string_view fhir_type, const JsonValue& node,
                    IndexRows& out);

}  // namespace eds::fhir
