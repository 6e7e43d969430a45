// Snapshot generation: a constraining StructureDefinition that ships only
// its differential gets the snapshot its base's snapshot and the
// differential make (https://hl7.org/fhir/R4/profiling.html#snapshot).
#pragma once

#include <rapidjson/fwd.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace eds::fhir {

// Finds the StructureDefinition (with its snapshot) a canonical reference
// names ("http://hl7.org/fhir/StructureDefinition/Observation", or with a
// |version: exactly that version; a bare URL: the latest); nullptr when
// unknown or when it has no snapshot.
using SnapshotSource = std::function<const rapidjson::Value*(std::string_view url)>;

// Writes `snapshot.element` into `sd` (a StructureDefinition with a
// differential and a baseDefinition that `source` knows), replacing any
// snapshot it had:
// - the base snapshot is copied, and each differential element is merged
//   onto the element with its id (or path and sliceName): what it states
//   replaces the base's, constraints and conditions are added;
// - a new slice starts as a copy of its sliced element with that element's
//   children, and goes after the sliced element's last slice;
// - a path below a data type the base does not unroll
//   (Observation.code.coding under Observation.code) unrolls the type's
//   elements first, from the element's type profile when it names one
//   (whose own snapshot `source` then gives), else from the base type;
//   a choice of several types unrolls what they share (id, extension), a
//   content reference (Composition.section.section) the referenced
//   element's children;
// - type-specific names of choice elements (Extension.valueAddress) address
//   value[x] narrowed to that type.
// Returns false with `problem` set when the base is unknown; differential
// elements that address nothing are skipped and listed in `skipped`.
bool GenerateSnapshot(rapidjson::Document& sd, const SnapshotSource& source, std::string& problem,
                      std::vector<std::string>* skipped = nullptr);

}  // namespace eds::fhir
