// Canonical references: splitting `url|version`, ordering versions.
#include "fhir/canonical.hpp"

#include <algorithm>

namespace eds::fhir {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool AllDigits(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit); }

int Sign(int c) { return c < 0 ? -1 : c > 0 ? 1 : 0; }

// The release and the pre-release label of a version: "2.0.0-ballot" gives
// "2.0.0" and "ballot"; "2018-08-12" has no label.
std::pair<std::string_view, std::string_view> SplitLabel(std::string_view v) {
  for (std::size_t i = 0; i + 1 < v.size(); ++i)
    if (v[i] == '-' && IsLetter(v[i + 1])) return {v.substr(0, i), v.substr(i + 1)};
  return {v, {}};
}

int ComparePart(std::string_view a, std::string_view b) {
  if (AllDigits(a) && AllDigits(b)) {
    // as numbers, of any length: leading zeros off, then the longer is larger
    a.remove_prefix(std::min(a.find_first_not_of('0'), a.size()));
    b.remove_prefix(std::min(b.find_first_not_of('0'), b.size()));
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  }
  return Sign(a.compare(b));
}

// Dot-separated parts, one by one; the one that runs out first ranks below.
int CompareDotted(std::string_view a, std::string_view b) {
  for (;;) {
    const auto da = a.find('.'), db = b.find('.');
    if (int c = ComparePart(a.substr(0, da), b.substr(0, db)); c != 0) return c;
    if (da == std::string_view::npos || db == std::string_view::npos)
      return da == db ? 0 : da == std::string_view::npos ? -1 : 1;
    a.remove_prefix(da + 1);
    b.remove_prefix(db + 1);
  }
}

}  // namespace

CanonicalParts SplitCanonical(std::string_view canonical) {
  const auto bar = canonical.find('|');
  if (bar == std::string_view::npos) return {canonical, {}};
  return {canonical.substr(0, bar), canonical.substr(bar + 1)};
}

int CompareVersions(std::string_view a, std::string_view b) {
  const auto [ra, la] = SplitLabel(a);
  const auto [rb, lb] = SplitLabel(b);
  if (int c = CompareDotted(ra, rb); c != 0) return c;
  if (la.empty() != lb.empty()) return la.empty() ? 1 : -1;
  if (la.empty()) return 0;
  return CompareDotted(la, lb);
}

}  // namespace eds::fhir
