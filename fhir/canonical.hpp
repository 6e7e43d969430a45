// Canonical references (https://hl7.org/fhir/R4/references.html#canonical):
// `url|version` names one version of a StructureDefinition, ValueSet or
// CodeSystem, a bare `url` its latest. Used by the ConformanceStore and
// the Terminology to keep every version of a URL side by side.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace eds::fhir {

// The FHIR version of the core definitions the server serves (R4).
inline constexpr std::string_view kFhirCoreVersion = "4.0.1";

struct CanonicalParts {
  std::string_view url;
  std::string_view version;  // empty when the reference names none
};

// Splits a canonical reference at its first '|' ("url|" counts as no version).
CanonicalParts SplitCanonical(std::string_view canonical);

// The URL of a canonical reference, without its |version.
inline std::string_view CanonicalUrl(std::string_view canonical) { return SplitCanonical(canonical).url; }

// Orders two business versions: negative, zero or positive as `a` ranks
// below, level with or above `b`. Versions compare part by part, split at
// '.': two parts of digits compare as numbers, any other as text; a
// version that runs out of parts first ranks below (1.0 < 1.0.1); a
// pre-release label ('-' then a letter: 2.0.0-ballot) ranks below the
// release itself. A date (2018-08-12) is one part, compared as text.
int CompareVersions(std::string_view a, std::string_view b);

// Values kept by canonical URL and version: several versions of one URL
// side by side. The first value added for a URL and version stays; a later
// one is refused. Which version a bare URL finds does not depend on the
// order of adding.
template <typename T>
class CanonicalMap {
 public:
  // Adds `value` as version `version` ("" for none) of `url`; false, and
  // nothing added, when that version of `url` is there already. Pointers
  // from Find stay valid until the next Add.
  bool Add(std::string_view url, std::string_view version, T value) {
    if (FindExact(url, version) != nullptr) return false;
    auto& v = by_url_[std::string(url)];
    v.entries.push_back({std::string(version), std::move(value)});
    if (v.entries.size() > 1 && !Above(v.entries.back().version, v.entries[v.latest].version)) return true;
    v.latest = v.entries.size() - 1;
    return true;
  }

  // `url|version`: exactly that version; a bare `url`: its latest version
  // (the highest by CompareVersions, one with no version below every
  // versioned one; of two that rank level, the greater string). nullptr
  // when unknown.
  const T* Find(std::string_view canonical) const {
    const auto [url, version] = SplitCanonical(canonical);
    auto it = by_url_.find(url);
    if (it == by_url_.end()) return nullptr;
    const Versions& v = it->second;
    if (version.empty()) return &v.entries[v.latest].value;
    for (const auto& e : v.entries)
      if (e.version == version) return &e.value;
    return nullptr;
  }
  T* Find(std::string_view canonical) {
    return const_cast<T*>(static_cast<const CanonicalMap&>(*this).Find(canonical));
  }

  // Exactly version `version` ("" for none) of `url`; nullptr when not held.
  const T* FindExact(std::string_view url, std::string_view version) const {
    auto it = by_url_.find(url);
    if (it == by_url_.end()) return nullptr;
    for (const auto& e : it->second.entries)
      if (e.version == version) return &e.value;
    return nullptr;
  }

  // The number of URL and version pairs held.
  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& [url, v] : by_url_) n += v.entries.size();
    return n;
  }

  // Calls fn(url, version, value) for each value held, in no set order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const auto& [url, v] : by_url_)
      for (const auto& e : v.entries) fn(url, e.version, e.value);
  }

 private:
  struct Entry {
    std::string version;
    T value;
  };
  struct Versions {
    std::vector<Entry> entries;
    std::size_t latest = 0;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // Whether version `a` ranks above `b` for a bare URL.
  static bool Above(std::string_view a, std::string_view b) {
    if (a.empty() != b.empty()) return b.empty();
    if (int c = CompareVersions(a, b); c != 0) return c > 0;
    return a > b;
  }

  std::unordered_map<std::string, Versions, Hash, std::equal_to<>> by_url_;
};

}  // namespace eds::fhir
