// Subsets of resources for _summary and _elements (R4 search page 3.1.1.5.7
// and .9): the elements a client asked for, plus what must always be there
// (resourceType, id, meta and mandatory elements), marked SUBSETTED.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fhir/search_query.hpp"

namespace eds::fhir {

class Definitions;

// True when `mode`/`elements` ask for less than the whole resource.
bool WantsSubset(SummaryMode mode, const std::vector<std::string>& elements);

// The subset of `content` (a stored resource's JSON) that `mode` (true, text,
// data) or `elements` (top-level element names; choice elements by their
// name without [x]) select, with a SUBSETTED meta.tag. `content` unchanged
// when it is not a resource the definitions know.
std::string SubsetResource(std::string_view content, SummaryMode mode, const std::vector<std::string>& elements,
                           const Definitions& definitions);

}  // namespace eds::fhir
