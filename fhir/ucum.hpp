// UCUM unit expressions (https://ucum.org/ucum): the syntax of the case
// sensitive form, with the atoms and prefixes of the UCUM tables, so that a
// value set including all of UCUM (ucum-units) can be checked without a
// UCUM service.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace eds::fhir {

constexpr std::string_view kUcumSystem = "http://unitsofmeasure.org";

// Why `code` is not a valid UCUM expression ("mg/dL", "10*9/L",
// "mL/min/{1.73_m2}", "/[HPF]"); nullopt when it is one. Checks the grammar,
// the unit atoms (UCUM's base, SI, customary, clinical and other tables),
// and that prefixes go only on metric atoms.
std::optional<std::string> UcumProblem(std::string_view code);

}  // namespace eds::fhir
