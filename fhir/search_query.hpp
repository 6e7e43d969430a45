// Parsing of FHIR search requests (R4 search page) into a typed query:
// parameters resolved against the SearchParameter registry, modifiers,
// OR-lists and prefixes, chains and reverse chains (_has), and the result
// controls (_count, _sort, _include, _revinclude, _summary, _elements,
// _total, _offset). Values stay text here; each comparison is built where
// the type is known (storage).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fhir/local_bases.hpp"
#include "fhir/outcome.hpp"
#include "fhir/result.hpp"
#include "fhir/search_parameters.hpp"

namespace eds::fhir {

enum class Prefix { kEq, kNe, kGt, kLt, kGe, kLe, kSa, kEb, kAp };
const char* PrefixCode(Prefix p);

// One value of an OR-list, with its comparison prefix (number, date,
// quantity) and its parts split at unescaped separators, unescaped:
// token "system|code" -> {"system", "code"} (has_separator true);
// quantity "5.4|http://unitsofmeasure.org|mg" -> {"5.4", "http://...", "mg"};
// composite "code$value" -> {"code", "value"}.
struct SearchValue {
  Prefix prefix = Prefix::kEq;
  std::string text;                // without prefix, unescaped
  std::vector<std::string> parts;  // see above; one element when no separator
  bool has_separator = false;      // token: a '|' was present
  // composite: one value per component, each parsed as its component's type
  // (with its own prefix: "http://loinc.org|8480-6$lt60")
  std::vector<SearchValue> components;
  // reference: the absolute URL asked for when it is under one of the
  // server's bases (SearchOptions::local_bases); `text` is then its
  // Type/id, and rows holding the URL itself match too
  std::string url;
};

// Rows of a reference parameter that another parameter's rows hold
// (SearchParameterRegistry::SharedReferencesOf): those of `code` whose
// target is of `target_type` (any when empty), for resources of
// `resource_types` (empty: the type the parameter is searched on).
struct SharedReferenceRows {
  std::string code;
  std::string target_type;
  std::vector<std::string> resource_types;
};

// A step of a chain: `param` (a reference parameter) of `resource_type`,
// leading to resources of `target_type`.
struct ChainLink {
  std::string resource_type;
  const SearchParamDef* param = nullptr;
  std::vector<SharedReferenceRows> shared_references;
  std::string target_type;
  // When the reference may lead to several types that all have the next
  // parameter alike (Observation?subject.identifier=...): all of them.
  std::vector<std::string> target_types;
};

// _has:Type:reference:...: resources of `resource_type` whose `param`
// references the resource being searched.
struct ReverseLink {
  std::string resource_type;
  const SearchParamDef* param = nullptr;
  std::vector<SharedReferenceRows> shared_references;
};

struct SearchCriterion {
  std::string name;                   // as sent, e.g. "subject:Patient.identifier"
  std::vector<ReverseLink> reverse;   // _has steps, outermost first
  std::vector<ChainLink> chain;       // forward chain, in order
  std::string resource_type;          // type `param` applies to (after the links)
  const SearchParamDef* param = nullptr;
  // the codes of parameters whose index rows `param` shares
  // (SearchParameterRegistry::SharedRowsOf): their rows are read too
  std::vector<std::string> shared_rows;
  // a reference parameter: the rows of others it shares
  std::vector<SharedReferenceRows> shared_references;
  // a composite: per component, every code whose rows it reads ("code$k",
  // those of the composites it shares, and the parameters of
  // SearchParameterRegistry::RootComponentsOf)
  std::vector<std::vector<std::string>> component_rows;
  std::string modifier;               // missing exact contains text not above below identifier of-type, or a type
  std::vector<SearchValue> values;    // OR
  std::vector<const SearchParamDef*> components;  // composite: the component parameters, in order
};

struct SortKey {
  const SearchParamDef* param = nullptr;  // nullptr for _id / _lastUpdated handled by code
  std::vector<std::string> shared_rows;   // as SearchCriterion::shared_rows
  std::vector<SharedReferenceRows> shared_references;  // as SearchCriterion::shared_references
  std::string code;
  bool descending = false;
};

struct IncludeSpec {
  std::string source_type;                // type holding the reference ("*" allowed in target only)
  const SearchParamDef* param = nullptr;  // nullptr with wildcard
  std::vector<SharedReferenceRows> shared_references;  // as SearchCriterion::shared_references
  // wildcard with a source type (`Observation:*`): its reference parameters
  std::vector<std::string> wildcard_params;
  std::string target_type;                // optional restriction
  bool iterate = false;
  bool wildcard = false;                  // _include=*
};

enum class TotalMode { kNone, kEstimate, kAccurate };

// Compartment search (GET [base]/Patient/[id]/[type]): matches must link to
// the compartment's resource through one of the parameters the
// CompartmentDefinition names for their type.
struct CompartmentFilter {
  std::string type;  // "Patient"
  std::string id;
  std::vector<std::pair<std::string, std::vector<std::string>>> params_by_type;
};
enum class SummaryMode { kFalse, kTrue, kCount, kData, kText };

struct SearchQuery {
  std::string resource_type;                // empty for system search (_type)
  std::vector<std::string> types;           // _type for system search
  std::vector<SearchCriterion> criteria;    // AND
  std::vector<IncludeSpec> includes;
  std::vector<IncludeSpec> revincludes;
  std::vector<SortKey> sort;
  std::optional<int> count;
  std::optional<long> offset;
  std::optional<std::string> cursor;
  TotalMode total = TotalMode::kNone;
  SummaryMode summary = SummaryMode::kFalse;
  std::vector<std::string> elements;
  std::optional<CompartmentFilter> compartment;
  // Parameters the server ignored (unknown or unsupported), one issue each;
  // reported in the result Bundle's OperationOutcome.
  Outcome ignored;
  // The parameters actually used, in a canonical form for the self link.
  std::vector<std::pair<std::string, std::string>> used;
  // Keeps the parameter definitions the query points into alive (custom
  // parameters can be replaced while a request runs).
  std::shared_ptr<const void> definitions_owner;
};

struct SearchOptions {
  bool strict = false;  // Prefer: handling=strict: unknown parameters are errors
  // Parameters the server can answer; others are reported (or, strict,
  // refused) like unknown ones. Empty: all.
  std::function<bool(std::string_view resource_type, const SearchParamDef&)> supported;
  int default_count = 50;
  int max_count = 1000;
  // The server's own bases: a reference value under one of them names a
  // local resource (Type/id); any other absolute URL is matched as a URL.
  LocalBases local_bases;
};

// Parses `params` (decoded name/value pairs in request order) for a search
// on `resource_type` (empty: all types, or those _type lists; criteria are
// then limited to parameters every one of those types has alike). kInvalid errors name
// the offending parameter: malformed values, modifiers the parameter's type
// does not allow, and (strict) unknown parameters.
Result<SearchQuery> ParseSearch(const std::string& resource_type,
                                const std::vector<std::pair<std::string, std::string>>& params,
                                const SearchParameterRegistry& registry, const SearchOptions& options);

// The criteria of a conditional interaction (conditional create, update,
// delete, patch, and conditional references in transactions): filters only,
// every one understood (unknown parameters would widen the match), at least
// one. kInvalid otherwise, naming the parameter; _format and _pretty are
// ignored. Reference values under `local_bases` name local resources.
Result<SearchQuery> ParseConditionalCriteria(
    const std::string& resource_type, const std::vector<std::pair<std::string, std::string>>& params,
    const SearchParameterRegistry& registry,
    const std::function<bool(std::string_view resource_type, const SearchParamDef&)>& supported,
    const LocalBases& local_bases = LocalBases());

// Parameters of a query string ("identifier=a|b&x=1", or "Patient?..." whose
// part before '?' is skipped), percent-decoded, in order; lenient about
// characters clients leave unencoded in headers and bundles, such as '|'.
// kInvalid for a malformed percent escape.
Result<std::vector<std::pair<std::string, std::string>>> ParseQueryString(std::string_view query);

// The criteria of a conditional interaction in one canonical text (sorted
// "name=value" pairs joined by '&', _format and _pretty left out), so the
// same criteria written in another order serialize with each other.
std::string CanonicalCriteria(const std::vector<std::pair<std::string, std::string>>& params);

// Splits at unescaped `sep` (the escapes \, \$ \| \\ are kept).
std::vector<std::string> SplitEscaped(std::string_view s, char sep);
// Removes the escaping backslashes.
std::string Unescape(std::string_view s);

}  // namespace eds::fhir
