// Canonical references: `url|version` split, versions ordered, and the map
// that keeps every version of a URL and finds the latest for a bare URL.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "fhir/canonical.hpp"

using eds::fhir::CanonicalMap;
using eds::fhir::CompareVersions;
using eds::fhir::SplitCanonical;

TEST_CASE("canonical: url and version split at the first bar", "[fhir][canonical]") {
  auto p = SplitCanonical("http://example.org/sd|1.2.0");
  CHECK(p.url == "http://example.org/sd");
  CHECK(p.version == "1.2.0");
  p = SplitCanonical("http://example.org/sd");
  CHECK(p.url == "http://example.org/sd");
  CHECK(p.version.empty());
  p = SplitCanonical("http://example.org/sd|");
  CHECK(p.url == "http://example.org/sd");
  CHECK(p.version.empty());
  CHECK(eds::fhir::CanonicalUrl("http://example.org/sd|a|b") == "http://example.org/sd");
}

TEST_CASE("canonical: versions compare part by part, numbers as numbers", "[fhir][canonical]") {
  CHECK(CompareVersions("1.0.0", "1.0.0") == 0);
  CHECK(CompareVersions("1.0.0", "2.0.0") < 0);
  CHECK(CompareVersions("1.10.0", "1.9.0") > 0);
  CHECK(CompareVersions("1.0", "1.0.1") < 0);
  CHECK(CompareVersions("1.01", "1.1") == 0);
  CHECK(CompareVersions("12345678901234567890", "9") > 0);  // no overflow
  CHECK(CompareVersions("2.0.0-ballot", "2.0.0") < 0);
  CHECK(CompareVersions("2.0.0-ballot", "1.9.9") > 0);
  CHECK(CompareVersions("2.0.0-ballot1", "2.0.0-ballot2") < 0);
  CHECK(CompareVersions("2018-08-12", "2019-01-01") < 0);
  CHECK(CompareVersions("2018-08-12", "2018-08-12") == 0);
  CHECK(CompareVersions("1.0.a", "1.0.b") < 0);
}

TEST_CASE("canonical: every version kept, a bare URL finds the latest whatever the order", "[fhir][canonical]") {
  const std::string url = "http://example.org/vs";
  std::vector<std::string> versions = {"", "1.0.0", "1.10.0", "1.9.0", "2.0.0-ballot"};
  std::sort(versions.begin(), versions.end());
  do {
    CanonicalMap<std::string> m;
    for (const auto& v : versions) REQUIRE(m.Add(url, v, "v=" + v));
    INFO(versions[0] << "," << versions[1] << "," << versions[2] << "," << versions[3] << "," << versions[4]);
    REQUIRE(m.Find(url) != nullptr);
    CHECK(*m.Find(url) == "v=2.0.0-ballot");
    CHECK(*m.Find(url + "|1.9.0") == "v=1.9.0");
    CHECK(*m.Find(url + "|1.10.0") == "v=1.10.0");
    CHECK(m.Find(url + "|3.0.0") == nullptr);
    CHECK(m.size() == 5);
  } while (std::next_permutation(versions.begin(), versions.end()));

  CanonicalMap<int> m;
  CHECK(m.Add(url, "1.0.0", 1));
  CHECK_FALSE(m.Add(url, "1.0.0", 2));  // the first one stays
  CHECK(*m.Find(url + "|1.0.0") == 1);
  CHECK(m.Add(url, "", 0));
  CHECK(*m.Find(url) == 1);  // no version ranks below any version
  CHECK(*m.Find(url + "|") == 1);
  CHECK(m.Find("http://example.org/other") == nullptr);
  CanonicalMap<int> unversioned;
  CHECK(unversioned.Add(url, "", 7));
  CHECK(*unversioned.Find(url) == 7);
  CHECK(unversioned.Find(url + "|1.0.0") == nullptr);
}
