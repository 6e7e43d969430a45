// Unit tests of fhir/bundle: history Bundles and version ETags.
#include <catch2/catch.hpp>

#include "fhir/bundle.hpp"
#include "fhir/json.hpp"
#include "fhir/outcome.hpp"
#include "fhir/primitives.hpp"
#include "test_support.hpp"

namespace eds::fhir {
namespace {

using testing::ParseJson;
using testing::StrOf;

TEST_CASE("VersionETag", "[fhir]") {
  CHECK(VersionETag(1) == "W/\"1\"");
  CHECK(VersionETag(1234567890123) == "W/\"1234567890123\"");
}

TEST_CASE("BuildHistoryBundle lists versions as history entries", "[fhir]") {
  const std::string v2 =
      R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"2","lastUpdated":"x"},"n":1.50})";
  const std::string v1 = R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"x"}})";
  const std::string o1 = R"({"resourceType":"Observation","id":"o1"})";
  const std::vector<VersionRecord> entries = {
      {"Patient", "p1", 3, 1700000002000, WriteMethod::kDelete, true, {}},
      {"Patient", "p1", 2, 1700000001000, WriteMethod::kUpdate, false, v2},
      {"Patient", "p1", 1, 1700000000123, WriteMethod::kCreate, false, v1},
      {"Observation", "o1", 1, 0, WriteMethod::kUpdate, false, o1},  // update-as-create
  };
  const std::vector<BundleLink> links = {
      {"self", "http://example.test/fhir/_history?_count=4"},
      {"next", "http://example.test/fhir/_history?_count=4&_cursor=17"},
  };
  const std::string text = BuildHistoryBundle("http://example.test/fhir", entries, links);
  auto doc = ParseJson(text);

  CHECK(StrOf(doc, "resourceType") == "Bundle");
  CHECK(StrOf(doc, "type") == "history");
  CHECK_FALSE(doc.HasMember("total"));

  REQUIRE(doc["link"].Size() == 2);
  CHECK(StrOf(doc["link"][0], "relation") == "self");
  CHECK(StrOf(doc["link"][0], "url") == "http://example.test/fhir/_history?_count=4");
  CHECK(StrOf(doc["link"][1], "relation") == "next");
  CHECK(StrOf(doc["link"][1], "url") == "http://example.test/fhir/_history?_count=4&_cursor=17");

  const auto& e = doc["entry"];
  REQUIRE(e.Size() == 4);

  SECTION("deletion: no resource, DELETE, 204") {
    CHECK(StrOf(e[0], "fullUrl") == "http://example.test/fhir/Patient/p1");
    CHECK_FALSE(e[0].HasMember("resource"));
    CHECK(StrOf(e[0]["request"], "method") == "DELETE");
    CHECK(StrOf(e[0]["request"], "url") == "Patient/p1");
    CHECK(StrOf(e[0]["response"], "status") == "204 No Content");
    CHECK(StrOf(e[0]["response"], "etag") == "W/\"3\"");
    CHECK(StrOf(e[0]["response"], "lastModified") == FormatInstant(1700000002000));
  }
  SECTION("update: PUT, 200, resource embedded verbatim") {
    CHECK(StrOf(e[1]["request"], "method") == "PUT");
    CHECK(StrOf(e[1]["request"], "url") == "Patient/p1");
    CHECK(StrOf(e[1]["response"], "status") == "200 OK");
    CHECK(StrOf(e[1]["response"], "etag") == "W/\"2\"");
    CHECK_THAT(text, Catch::Contains(R"("resource":)" + v2));
  }
  SECTION("create: POST to the type, 201") {
    CHECK(StrOf(e[2]["request"], "method") == "POST");
    CHECK(StrOf(e[2]["request"], "url") == "Patient");
    CHECK(StrOf(e[2]["response"], "status") == "201 Created");
    CHECK(StrOf(e[2]["response"], "etag") == "W/\"1\"");
    CHECK(StrOf(e[2]["response"], "lastModified") == "2023-11-14T22:13:20.123Z");
    CHECK(StrOf(e[2]["resource"], "id") == "p1");
  }
  SECTION("update-as-create: PUT, 201") {
    CHECK(StrOf(e[3], "fullUrl") == "http://example.test/fhir/Observation/o1");
    CHECK(StrOf(e[3]["request"], "method") == "PUT");
    CHECK(StrOf(e[3]["request"], "url") == "Observation/o1");
    CHECK(StrOf(e[3]["response"], "status") == "201 Created");
    CHECK(StrOf(e[3]["response"], "lastModified") == "1970-01-01T00:00:00.000Z");
  }
  SECTION("numbers inside embedded resources keep their text") {
    CHECK_THAT(text, Catch::Contains(R"("n":1.50)"));
  }
}

TEST_CASE("BuildHistoryBundle with no entries, no links and a total", "[fhir]") {
  auto doc = ParseJson(BuildHistoryBundle("http://b", {}, {}, 42));
  CHECK(StrOf(doc, "type") == "history");
  REQUIRE(doc["total"].IsInt64());
  CHECK(doc["total"].GetInt64() == 42);
  CHECK(doc["link"].Size() == 0);
  CHECK(doc["entry"].Size() == 0);
}

TEST_CASE("BuildHistoryBundle escapes link URLs", "[fhir]") {
  auto doc = ParseJson(BuildHistoryBundle("http://b", {}, {{"self", "http://b/_history?x=\"y\\z"}}));
  CHECK(StrOf(doc["link"][0], "url") == "http://b/_history?x=\"y\\z");
}

}  // namespace
}  // namespace eds::fhir

namespace eds::fhir {
namespace {

std::vector<std::string> DocumentIssues(const std::string& json) {
  auto r = Resource::Parse(json);
  REQUIRE(r.ok());
  std::vector<std::string> out;
  const Outcome outcome = CheckDocumentBundle(*r);
  for (const auto& i : outcome.issues()) out.push_back(i.expression);
  return out;
}

TEST_CASE("document Bundles follow bdl-9, bdl-10 and bdl-11", "[bundle]") {
  const std::string good = R"({"resourceType":"Bundle","type":"document","identifier":{"system":"urn:ietf:rfc:3986",
    "value":"urn:uuid:1"},"timestamp":"2026-11-20T10:00:00Z","entry":[
    {"fullUrl":"urn:uuid:2","resource":{"resourceType":"Composition"}},
    {"fullUrl":"urn:uuid:3","resource":{"resourceType":"Patient"}}]})";
  CHECK(DocumentIssues(good).empty());
  CHECK(DocumentIssues(R"({"resourceType":"Bundle","type":"document","entry":[
    {"fullUrl":"urn:uuid:3","resource":{"resourceType":"Patient"}},{"resource":{"resourceType":"Composition"}}]})") ==
        std::vector<std::string>{"Bundle.identifier", "Bundle.timestamp", "Bundle.entry[0].resource",
                                 "Bundle.entry[1].fullUrl"});
  CHECK(DocumentIssues(R"({"resourceType":"Bundle","type":"collection"})").empty());
}

}  // namespace
}  // namespace eds::fhir
