// The FHIR R4 definitions the server runs on, loaded from the official
// package (hl7.fhir.r4.examples@4.0.1): resource types and the element
// structure of every resource and data type, from the StructureDefinitions.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/outcome.hpp"

namespace eds::fhir {

class Resource;
struct TypeInfo;
struct ElementRules;  // fhir/element_rules.hpp

enum class TypeKind { kPrimitive, kComplex, kResource };

// One element of a type (a row of its StructureDefinition snapshot), linked to
// the types it may hold. FHIRPath navigation and search indexing read these;
// they live as long as the Definitions that made them.
struct ElementInfo {
  std::string name;   // without [x]: "value" for Observation.value[x]
  std::string path;   // full path without [x]: "Patient.contact.name"
  bool choice = false;
  int min = 0;
  std::string max;    // "0", "1", "*", ...
  bool many = false;  // max > 1
  bool summary = false;  // isSummary: part of _summary=true
  // Allowed types, in snapshot order. Elements typed System.String in the
  // snapshot (Element.id, Extension.url) get the FHIR type the snapshot names
  // for them; Resource.id is `id`.
  std::vector<const TypeInfo*> types;
  // Children defined inline (BackboneElement, Element) or through a content
  // reference (Questionnaire.item.item); nullptr when they are the type's own.
  const std::vector<ElementInfo>* children = nullptr;
  // Invariants, binding, fixed/pattern, maxLength, reference targets of the
  // snapshot element; nullptr when it has none.
  const ElementRules* rules = nullptr;

  // For a choice element, the type that JSON property `property` selects
  // ("valueQuantity" -> Quantity); nullptr when it names no variant.
  const TypeInfo* ChoiceType(std::string_view property) const;
};

// A FHIR type: primitive, complex data type or resource, with its base type
// (code -> string, Age -> Quantity, Patient -> DomainResource -> Resource).
struct TypeInfo {
  std::string name;
  TypeKind kind = TypeKind::kComplex;
  bool abstract = false;
  const TypeInfo* base = nullptr;                    // nullptr for Element, Resource
  const std::vector<ElementInfo>* elements = nullptr;  // never null; primitives: id, extension
  // Rules of the type's root element (dom-*, obs-6, per-1, ...), inherited
  // ones included; nullptr when none.
  const ElementRules* rules = nullptr;

  // True when this type is `other` or derives from it.
  bool IsA(const TypeInfo& other) const;
  // The element `name` ("name", "value" for value[x]) of this type, or nullptr.
  const ElementInfo* Element(std::string_view name) const;
};

// The element `name` in `elements` (a type's elements or an element's inline
// children), or nullptr.
const ElementInfo* FindElementIn(const std::vector<ElementInfo>& elements, std::string_view name);

class Definitions {
 public:
  ~Definitions();
  Definitions(const Definitions&) = delete;
  Definitions& operator=(const Definitions&) = delete;

  // Loads every base StructureDefinition (kind resource, complex-type or
  // primitive-type; not profiles, not logical models) from an unpacked FHIR
  // package directory. Throws std::runtime_error when the directory is
  // missing or holds no resource definitions.
  static std::shared_ptr<const Definitions> Load(const std::string& package_dir);

  // Concrete (non-abstract) resource types, sorted by name.
  const std::vector<std::string>& resource_types() const;
  bool IsResourceType(std::string_view name) const;
  // FHIR version of the package, e.g. "4.0.1".
  const std::string& fhir_version() const;
  // The package directory the definitions were loaded from.
  const std::string& package_dir() const;

  // The type named `name` ("Patient", "HumanName", "dateTime", "Resource"),
  // including abstract ones; nullptr when unknown.
  const TypeInfo* FindType(std::string_view name) const;
  bool IsPrimitiveType(std::string_view name) const;
  // The element at dotted `path` below `type`, following data types and
  // content references: ("Observation", "value") is value[x],
  // ("Patient", "contact.name") is Patient.contact.name, ("Patient",
  // "name.family") is HumanName.family. A choice element is matched by its
  // name without [x]; nullptr when there is no such element or the path goes
  // through a choice element of several types.
  const ElementInfo* FindElement(std::string_view type, std::string_view path) const;

  // Checks the element structure of a parsed resource against its
  // StructureDefinition: unknown elements, arrays where single values belong
  // and the reverse, JSON types of primitives, choice types with allowed
  // types only, primitive extensions (_element), nulls and empty values,
  // contained and nested resources. Issues carry FHIRPath-style expressions
  // such as Patient.name[0].given[1]. Returns an Outcome with no issues when
  // the structure is right.
  Outcome CheckStructure(const Resource& resource) const;

  struct Impl;  // opaque; defined in definitions.cpp

 private:
  Definitions();
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::fhir
