// The SearchParameters the server knows: the R4 definitions from the FHIR
// package, by resource type and code, with each parameter's FHIRPath
// expression narrowed to the branch that applies to a given resource type.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eds::fhir {

enum class SearchParamType { kNumber, kDate, kString, kToken, kReference, kComposite, kQuantity, kUri, kSpecial };

// Parses a SearchParameter.type code; false when unknown.
bool ParseSearchParamType(std::string_view code, SearchParamType& out);
const char* SearchParamTypeCode(SearchParamType type);

struct SearchParamComponent {
  std::string definition;  // canonical URL of the component's SearchParameter
  std::string expression;  // relative to the composite's expression
};

struct SearchParamDef {
  std::string url;
  std::string code;
  SearchParamType type = SearchParamType::kToken;
  std::vector<std::string> base;     // resource types, or Resource / DomainResource
  std::string expression;            // the whole FHIRPath expression (may be empty: special)
  std::string status;                // draft | active | retired | unknown
  std::vector<std::string> targets;  // reference target types
  std::vector<std::string> modifiers;
  std::vector<std::string> comparators;
  std::vector<std::string> chains;
  std::vector<SearchParamComponent> components;
  // Index generation at which a custom parameter (a SearchParameter resource
  // stored on this server) took effect; 0 for the package's own.
  int64_t generation = 0;
};

// Reads a SearchParameter resource (JSON text) into a definition; false
// (with `error` set) when it lacks what a search needs: code, a known type,
// base types, and an expression unless special.
bool ParseSearchParameterResource(std::string_view json, SearchParamDef& out, std::string& error);

class SearchParameterRegistry {
 public:
  ~SearchParameterRegistry();
  SearchParameterRegistry(const SearchParameterRegistry&) = delete;
  SearchParameterRegistry& operator=(const SearchParameterRegistry&) = delete;

  // Loads every SearchParameter-*.json of an unpacked FHIR package
  // directory. `resource_types` are the concrete resource types (parameters
  // on Resource and DomainResource apply to them all). Throws
  // std::runtime_error when the directory holds no SearchParameter.
  static std::shared_ptr<const SearchParameterRegistry> Load(const std::string& package_dir,
                                                            const std::vector<std::string>& resource_types);

  // The parameter `code` of `resource_type` (its own, or inherited from
  // Resource/DomainResource); nullptr when there is none.
  const SearchParamDef* Find(std::string_view resource_type, std::string_view code) const;
  // By canonical URL (composite components); nullptr when unknown.
  const SearchParamDef* FindByUrl(std::string_view url) const;
  // Every parameter that applies to `resource_type`, sorted by code.
  std::vector<const SearchParamDef*> ForType(std::string_view resource_type) const;
  // The branches of `def.expression` that can match `resource_type`, joined
  // with " | " (e.g. "Observation.subject.where(resolve() is Patient)" out of
  // the 31 branches of clinical-patient). Empty when none applies.
  std::string ExpressionFor(const SearchParamDef& def, std::string_view resource_type) const;

  // Parameters that are others put together, such as Observation's
  // combo-code (code | component.code, the rows of code and component-code)
  // or combo-code-value-quantity (code-value-quantity | component-code-
  // value-quantity): their rows for those parts would repeat the other
  // parameters' rows. For such a parameter of one resource type, `shared`
  // holds the others' codes (none of which shares rows itself) and `rest`
  // the branches of its expression none of them has; the indexer writes
  // rows for `rest` only, and a search reads the rows of every code.
  // nullopt for every other parameter (several types, dates and references,
  // which sort walks and includes read by code alone).
  struct SharedRows {
    std::vector<std::string> shared;
    std::string rest;
  };
  std::optional<SharedRows> SharedRowsOf(const SearchParamDef& def) const;

  // Reference parameters that select what another reference parameter of
  // the type selects, or the part of it that leads to one type:
  // Observation's `patient` (Observation.subject.where(resolve() is
  // Patient)) is `subject` limited to Patient targets; Encounter's `patient`
  // and `subject` are one expression. For such a parameter, `code` is the
  // other's code (a parameter that shares nothing itself) and `target_type`
  // the type its rows are limited to (empty: none). The indexer drops the
  // parameter's reference rows that the other's rows repeat; a search reads
  // its own rows and the other's (of that target type). Its `:identifier`
  // rows are its own.
  struct SharedReferences {
    std::string code;
    std::string target_type;
  };
  std::optional<SharedReferences> SharedReferencesOf(std::string_view resource_type,
                                                     const SearchParamDef& def) const;

  // A composite parameter whose expression is the resource itself
  // (Observation's code-value-quantity: the Observation's code and value)
  // and whose components are parameters the type has on their own (code,
  // value-quantity, each sharing nothing): those parameters, in component
  // order. The indexer drops the composite's rows when each component's
  // rows repeat that parameter's; a search reads those parameters' rows
  // too (group 0, so the two parts of one match come from the same
  // resource root). Empty for every other parameter.
  std::vector<const SearchParamDef*> RootComponentsOf(std::string_view resource_type,
                                                      const SearchParamDef& def) const;

  std::size_t size() const;

  // A registry with the package's parameters plus `custom` ones (a custom
  // parameter with the code of a package one on the same type replaces it).
  std::shared_ptr<const SearchParameterRegistry> WithCustom(std::vector<SearchParamDef> custom) const;
  // The custom parameters this registry holds.
  std::vector<const SearchParamDef*> Custom() const;

  // Compartment definitions of the package (CompartmentDefinition-*.json):
  // for compartment `compartment` ("Patient"), the parameters of
  // `resource_type` that link a resource into it. Empty when the type is not
  // in that compartment; {"{def}"} entries are kept as they are.
  const std::vector<std::string>& CompartmentParams(std::string_view compartment,
                                                    std::string_view resource_type) const;
  // The resource types with at least one parameter in `compartment`.
  std::vector<std::string> CompartmentTypes(std::string_view compartment) const;
  bool IsCompartment(std::string_view compartment) const;

 private:
  SearchParameterRegistry();
  void ComputeSharedRows();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits a FHIRPath expression at its top-level '|' operators (outside
// parentheses, brackets and string literals). Exposed for tests.
std::vector<std::string> SplitTopLevelUnion(std::string_view expression);

}  // namespace eds::fhir
