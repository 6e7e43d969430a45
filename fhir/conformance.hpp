// Profiles (constraining StructureDefinitions) the validator checks
// resources against: loaded from FHIR package directories and profiles/,
// each read from its snapshot or, when it has none, its differential (the
// base checks run anyway, so what a profile adds is what gets checked).
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fhir/element_rules.hpp"

namespace eds::fhir {

class Definitions;

// One element of a profile, linked into a tree by its id
// (Patient.identifier:cf.system is child `system` of slice `cf` of
// Patient.identifier).
struct ProfileElement {
  std::string id;
  std::string path;
  std::string name;        // last path segment, without [x]
  bool choice = false;     // name[x]
  std::string slice_name;  // set on slices
  std::optional<int> min;
  std::optional<std::string> max;
  std::vector<std::string> types;  // allowed type codes, when the profile narrows them
  std::shared_ptr<const ElementRules> rules;
  struct Discriminator {
    std::string type;  // value, pattern, exists, type, profile
    std::string path;  // relative to the sliced element; "$this"
  };
  bool sliced = false;
  std::vector<Discriminator> discriminators;
  bool closed = false;  // slicing.rules = closed
  std::vector<const ProfileElement*> children;
  std::vector<const ProfileElement*> slices;
};

struct Profile {
  std::string url;
  std::string name;
  std::string type;  // the resource type it constrains
  bool from_snapshot = false;
  std::deque<ProfileElement> elements;  // [0] is the root
  const ProfileElement& root() const { return elements.front(); }
};

class ConformanceStore {
 public:
  // Loads every StructureDefinition with derivation `constraint` on a
  // resource type from the *.json files of `dirs` (missing directories are
  // skipped). Files that are not such profiles are ignored; problems
  // (unreadable JSON, unknown base type) are listed in notes().
  static std::shared_ptr<const ConformanceStore> Load(const Definitions& defs, const std::vector<std::string>& dirs);

  // The profile with canonical URL `url` (a |version suffix is ignored);
  // nullptr when unknown.
  const Profile* Find(std::string_view url) const;
  const std::vector<std::unique_ptr<Profile>>& profiles() const { return profiles_; }
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  std::vector<std::unique_ptr<Profile>> profiles_;
  std::vector<std::string> notes_;
};

}  // namespace eds::fhir
