// Profiles (constraining StructureDefinitions on resources, data types and
// extensions) the validator checks resources against: loaded from FHIR
// package directories and profiles/, each from its snapshot, generated from
// its differential when it ships none (fhir/snapshot.hpp). The element
// tree keeps only what differs from the base R4 definitions (which are
// checked anyway), so a profile walk visits what the profile adds.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fhir/canonical.hpp"
#include "fhir/element_rules.hpp"

namespace eds::fhir {

class Definitions;
struct Profile;

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
  std::vector<std::string> types;  // allowed type codes
  // type[].profile and type[].targetProfile canonical URLs, as written
  // (with the |version they name, if any)
  std::vector<std::string> type_profiles;
  std::vector<std::string> target_profiles;
  // The profile the values must also conform to (the first type profile
  // this store holds, unless it is one the base definitions already use,
  // such as SimpleQuantity); nullptr when none.
  const Profile* type_profile = nullptr;
  // What the element adds to the base definition: invariants the base does
  // not have, a different binding, fixed/pattern, maxLength, reference
  // targets (resource types, profiles resolved to the type they constrain);
  // nullptr when nothing.
  std::shared_ptr<const ElementRules> rules;
  struct Discriminator {
    std::string type;  // value, pattern, exists, type, profile
    std::string path;  // relative to the sliced element; "$this"
  };
  bool sliced = false;
  std::vector<Discriminator> discriminators;
  bool closed = false;       // slicing.rules = closed
  bool open_at_end = false;  // slicing.rules = openAtEnd: values in no slice only after the sliced ones
  bool ordered = false;      // slicing.ordered: the sliced values in the order of the slices
  bool pinned = false;  // named by a discriminator: kept even when it adds nothing
  std::vector<ProfileElement*> children;
  std::vector<ProfileElement*> slices;
};

struct Profile {
  std::string url;
  std::string version;  // the StructureDefinition's version; empty when it has none
  std::string name;
  std::string type;  // the type it constrains: a resource, a data type, Extension
  bool resource = true;  // kind resource (else a data type or an extension)
  bool from_snapshot = false;  // shipped with a snapshot
  bool generated = false;      // snapshot generated from the differential
  std::deque<ProfileElement> elements;  // [0] is the root
  const ProfileElement& root() const { return elements.front(); }
};

class ConformanceStore {
 public:
  // Loads every StructureDefinition with derivation `constraint` on a
  // resource, a data type or Extension from `stored` (JSON texts, such as
  // the resources written through the API), the *.json files of `dirs` and
  // the JSON entries of the FHIR package tarballs (*.tgz) there (missing
  // directories are skipped). Each is kept under its URL and version, so
  // several versions of one URL live side by side; for a URL and version
  // found twice the stored one, then the first directory, then a loose file
  // before a tarball wins. Bases and type profiles are looked up there and
  // in the definitions' package, by canonical reference (Find); a profile
  // without a snapshot gets one generated (its base's first). Files that are not such profiles are ignored;
  // problems (unreadable JSON, a corrupt or truncated tarball, skipped
  // whole, unknown base, differential elements that address nothing) are
  // listed in notes().
  static std::shared_ptr<const ConformanceStore> Load(const Definitions& defs, const std::vector<std::string>& dirs,
                                                      const std::vector<std::string>& stored = {});

  // The profile a canonical reference names: `url|version` exactly that
  // version, a bare `url` its latest version (CanonicalMap); nullptr when
  // unknown.
  const Profile* Find(std::string_view canonical) const;
  const std::vector<std::unique_ptr<Profile>>& profiles() const { return profiles_; }
  std::size_t resource_profile_count() const;
  const std::vector<std::string>& notes() const { return notes_; }
  // The StructureDefinition (JSON) with the snapshot generated for the
  // profile `canonical` names (as Find), when it shipped without one;
  // nullptr for other profiles.
  const std::string* GeneratedSnapshot(std::string_view canonical) const;

 private:
  std::vector<std::unique_ptr<Profile>> profiles_;
  CanonicalMap<const Profile*> by_url_;
  std::unordered_map<const Profile*, std::string> generated_;
  std::vector<std::string> notes_;
};

}  // namespace eds::fhir
