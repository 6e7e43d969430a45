#include "fhir/local_bases.hpp"

#include <cctype>

#include "fhir/primitives.hpp"

namespace eds::fhir {
namespace {

// Length of "scheme://host[:port]" in `url` (0 when it has no "://").
std::size_t AuthorityEnd(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return 0;
  auto path = url.find('/', scheme + 3);
  return path == std::string_view::npos ? url.size() : path;
}

bool SameBase(std::string_view base, std::string_view url_prefix) {
  if (base.size() != url_prefix.size()) return false;
  const std::size_t authority = AuthorityEnd(base);
  for (std::size_t i = 0; i < base.size(); ++i) {
    char a = base[i], b = url_prefix[i];
    if (i < authority) {
      a = static_cast<char>(std::tolower(static_cast<unsigned char>(a)));
      b = static_cast<char>(std::tolower(static_cast<unsigned char>(b)));
    }
    if (a != b) return false;
  }
  return true;
}

// True for "Type/id" and "Type/id/_history/vid".
bool IsLocalShape(std::string_view rel) {
  auto slash = rel.find('/');
  if (slash == std::string_view::npos || !IsTypeNameSyntax(rel.substr(0, slash))) return false;
  std::string_view rest = rel.substr(slash + 1);
  auto hist = rest.find("/_history/");
  std::string_view id = hist == std::string_view::npos ? rest : rest.substr(0, hist);
  if (!IsValidId(id)) return false;
  if (hist == std::string_view::npos) return true;
  std::string_view version = rest.substr(hist + 10);
  return IsValidId(version);
}

}  // namespace

LocalBases::LocalBases(const std::vector<std::string>& bases) {
  for (std::string b : bases) {
    while (!b.empty() && b.back() == '/') b.pop_back();
    if (AuthorityEnd(b) == 0) continue;
    bases_.push_back(std::move(b));
  }
}

std::optional<std::string_view> LocalBases::Relative(std::string_view url) const {
  for (const auto& base : bases_) {
    if (url.size() <= base.size() + 1 || url[base.size()] != '/') continue;
    if (!SameBase(base, url.substr(0, base.size()))) continue;
    std::string_view rel = url.substr(base.size() + 1);
    if (IsLocalShape(rel)) return rel;
  }
  return std::nullopt;
}

}  // namespace eds::fhir
