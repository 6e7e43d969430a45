// Search index values: what a resource contributes to each of its search
// parameters, as typed rows (string, token, date, number, quantity,
// reference, uri), converted from the FHIR-typed nodes that the parameter's
// FHIRPath expression selects. Storage writes these rows in the same
// transaction as the resource.
//
// Besides rows under a parameter's own code:
// - "code:identifier" token rows hold Reference.identifier (system, value),
//   for the :identifier modifier;
// - "code:of-type" token rows hold an Identifier's type coding (system,
//   code) with the identifier value as text, for :of-type;
// - a composite parameter's components are rows under "code$0", "code$1",
//   ... of their own types, the rows of one tuple sharing a group number.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/local_bases.hpp"
#include "fhir/search_parameters.hpp"

namespace eds::fhir {

class JsonTree;

struct StringIndexRow {
  std::string param;
  std::string normalized;  // case- and accent-folded, whitespace collapsed
  std::string exact;
  int group = 0;  // composite parameters: rows of one component tuple share it
};

struct TokenIndexRow {
  std::string param;
  std::string system;  // empty when none
  std::string code;    // empty when only text is known
  std::string text;    // display / CodeableConcept.text / Identifier.type.text, for :text
  int group = 0;  // composite parameters: rows of one component tuple share it
};

struct DateIndexRow {
  std::string param;
  int64_t low_ms = 0;   // inclusive
  int64_t high_ms = 0;  // exclusive
  int group = 0;  // composite parameters: rows of one component tuple share it
};

struct NumberIndexRow {
  std::string param;
  std::string value;  // decimal text as written
  std::string low;    // value range implied by its precision: 1.5 -> [1.45, 1.55)
  std::string high;
  int group = 0;  // composite parameters: rows of one component tuple share it
};

struct QuantityIndexRow {
  std::string param;
  std::string value, low, high;  // as NumberIndexRow
  std::string system;
  std::string code;
  std::string unit;
  int group = 0;  // composite parameters: rows of one component tuple share it
};

struct ReferenceIndexRow {
  std::string param;
  std::string target_type;  // for relative and same-server references
  std::string target_id;
  std::string version;      // _history/[vid], when given
  std::string url;          // absolute or canonical URL (canonical version after '|' dropped)
  int group = 0;  // composite parameters: rows of one component tuple share it
};

struct UriIndexRow {
  std::string param;
  std::string value;
  int group = 0;  // composite parameters: rows of one component tuple share it
};

struct IndexRows {
  std::vector<StringIndexRow> strings;
  std::vector<TokenIndexRow> tokens;
  std::vector<DateIndexRow> dates;
  std::vector<NumberIndexRow> numbers;
  std::vector<QuantityIndexRow> quantities;
  std::vector<ReferenceIndexRow> references;
  std::vector<UriIndexRow> uris;
  std::size_t size() const;
};

class Definitions;
class Resource;

// Extracts index rows with the FHIRPath engine: each parameter's expression
// (narrowed to the resource type) is parsed once, at construction, and
// evaluated on every write. Thread-safe after construction.
class SearchIndexer {
 public:
  // An absolute reference is indexed as a reference to a resource of this
  // server (target type and id) only under one of `local_bases`; under any
  // other base it keeps its URL and the type its path names, never an id.
  SearchIndexer(std::shared_ptr<const Definitions> definitions,
                std::shared_ptr<const SearchParameterRegistry> registry, LocalBases local_bases = {});
  ~SearchIndexer();
  SearchIndexer(const SearchIndexer&) = delete;
  SearchIndexer& operator=(const SearchIndexer&) = delete;

  // The rows `resource` contributes to every indexed parameter of its type.
  // A parameter whose expression fails on this resource contributes nothing
  // (and is counted in failures(), for monitoring).
  // Parameters whose expression is a path from the resource (unions, as,
  // where, resolve and the like included) are not evaluated when the
  // resource lacks the element the path starts with.
  IndexRows Extract(const Resource& resource) const;
  // The same, every parameter evaluated: the reference for tests.
  IndexRows ExtractEvaluatingAll(const Resource& resource) const;

  // True when searches by `def` on `resource_type` are answered from the
  // index (or, for _id and _lastUpdated, from the resource table): its
  // expression parsed and its type is one the search SQL handles.
  bool IsIndexed(std::string_view resource_type, const SearchParamDef& def) const;

  const SearchParameterRegistry& registry() const;
  const LocalBases& local_bases() const;
  const std::shared_ptr<const SearchParameterRegistry>& shared_registry() const;
  const std::shared_ptr<const Definitions>& definitions() const;
  // The parameter-set generation of this indexer: the newest generation of
  // its custom parameters (0 with the package's only). Storage records it
  // per resource it indexes.
  int64_t generation() const;
  // Per resource type, the generation a resource of that type must have been
  // indexed at to be searchable by every custom parameter that applies to it
  // (types no custom parameter applies to are absent).
  std::vector<std::pair<std::string, int64_t>> RequiredGenerations() const;
  std::size_t failures() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The indexer in force: replaced when custom SearchParameters change.
// Readers take a snapshot (Current) and use it for a whole request, so the
// parameter definitions a parsed search points into stay alive.
class IndexerHolder {
 public:
  explicit IndexerHolder(std::shared_ptr<const SearchIndexer> initial) : current_(std::move(initial)) {}
  std::shared_ptr<const SearchIndexer> Current() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return current_;
  }
  void Set(std::shared_ptr<const SearchIndexer> next) {
    std::lock_guard<std::mutex> lock(mutex_);
    current_ = std::move(next);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const SearchIndexer> current_;
};

// Case- and accent-folds `s` for string search ("Élodie  D'Amico" ->
// "elodie d'amico").
std::string NormalizeForSearch(std::string_view s);

// The [low, high) range a decimal's precision implies, as decimal text:
// "1.5" -> {"1.45", "1.55"}, "100" -> {"99.5", "100.5"}. False when `s` is
// not a decimal.
bool DecimalRange(std::string_view s, std::string& low, std::string& high);

}  // namespace eds::fhir
