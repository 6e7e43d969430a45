// Unit tests of fhir/json: parsing limits and errors, canonical rendering,
// number preservation, pretty printing, equivalence and string escaping.
#include <catch2/catch.hpp>

#include <chrono>

#include <optional>
#include <string>

#include "fhir/json.hpp"
#include "test_support.hpp"

namespace eds::fhir {
namespace {

std::string ParseError(std::string_view text, const JsonLimits& limits = {}) {
  auto r = Resource::Parse(text, limits);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::kInvalid);
  REQUIRE(r.error().outcome.issues().size() == 1);
  return r.error().outcome.issues()[0].diagnostics;
}

TEST_CASE("Resource::Parse accepts a resource and exposes type and id", "[fhir]") {
  auto r = Resource::Parse(R"({"resourceType":"Patient","id":"p1","active":true})");
  REQUIRE(r.ok());
  CHECK(r->type() == "Patient");
  REQUIRE(r->id().has_value());
  CHECK(*r->id() == "p1");

  auto no_id = Resource::Parse(R"({"resourceType":"Observation"})");
  REQUIRE(no_id.ok());
  CHECK_FALSE(no_id->id().has_value());
  no_id->SetId("o1");
  CHECK(no_id->id() == std::optional<std::string>("o1"));
}

TEST_CASE("Resource::Parse rejects malformed input", "[fhir]") {
  SECTION("malformed JSON") {
    CHECK_THAT(ParseError(R"({"resourceType":"Patient",)"), Catch::Contains("invalid JSON"));
    CHECK_THAT(ParseError(R"({"resourceType":"Patient"} trailing)"), Catch::Contains("invalid JSON"));
    ParseError("");
    ParseError(R"({'resourceType':'Patient'})");
  }
  SECTION("invalid UTF-8") { ParseError("{\"resourceType\":\"Patient\",\"x\":\"\xff\xfe\"}"); }
  SECTION("root is not an object") {
    CHECK_THAT(ParseError(R"([{"resourceType":"Patient"}])"), Catch::Contains("JSON object"));
    CHECK_THAT(ParseError(R"("Patient")"), Catch::Contains("JSON object"));
    CHECK_THAT(ParseError("42"), Catch::Contains("JSON object"));
  }
  SECTION("resourceType missing or not a string") {
    auto r = Resource::Parse(R"({"id":"x"})");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().outcome.issues()[0].expression == "resourceType");
    CHECK_THAT(ParseError(R"({"resourceType":5})"), Catch::Contains("resourceType"));
    CHECK_THAT(ParseError(R"({"resourceType":1.5})"), Catch::Contains("resourceType"));
    CHECK_THAT(ParseError(R"({"resourceType":null})"), Catch::Contains("resourceType"));
    CHECK_THAT(ParseError(R"({"resourceType":""})"), Catch::Contains("resourceType"));
    CHECK_THAT(ParseError(R"({"resourceType":["Patient"]})"), Catch::Contains("resourceType"));
  }
  SECTION("id not a string") {
    auto r = Resource::Parse(R"({"resourceType":"Patient","id":42})");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().outcome.issues()[0].expression == "Patient.id");
    ParseError(R"({"resourceType":"Patient","id":{"value":"x"}})");
    ParseError(R"({"resourceType":"Patient","id":null})");
  }
  SECTION("duplicate keys, at the root and nested") {
    CHECK_THAT(ParseError(R"({"resourceType":"Patient","active":true,"active":false})"),
               Catch::Contains("duplicate") && Catch::Contains("active"));
    CHECK_THAT(ParseError(R"({"resourceType":"Patient","name":[{"family":"a","family":"b"}]})"),
               Catch::Contains("family"));
    CHECK_THAT(ParseError(R"({"resourceType":"Patient","resourceType":"Patient"})"),
               Catch::Contains("duplicate"));
  }
  SECTION("string values starting with U+0001 are rejected") {
    CHECK_THAT(ParseError(R"({"resourceType":"Patient","gender":"\u0001male"})"),
               Catch::Contains("U+0001"));
    CHECK_THAT(ParseError(R"({"resourceType":"\u00011"})"), Catch::Contains("U+0001"));
    // elsewhere in the string it is just a control character
    CHECK(Resource::Parse(R"({"resourceType":"Patient","gender":"m\u0001"})").ok());
  }
}

TEST_CASE("Resource::Parse enforces the depth limit without crashing", "[fhir]") {
  SECTION("100,000 unclosed brackets") {
    std::string text = R"({"resourceType":"Patient","x":)" + std::string(100'000, '[');
    CHECK_THAT(ParseError(text), Catch::Contains("nesting deeper than 64"));
  }
  SECTION("100,000 balanced brackets") {
    std::string text = R"({"resourceType":"Patient","x":)" + std::string(100'000, '[') +
                       std::string(100'000, ']') + "}";
    CHECK_THAT(ParseError(text), Catch::Contains("nesting"));
  }
  SECTION("a bare deep array") { ParseError(std::string(100'000, '[')); }
  SECTION("the limit is exact and configurable") {
    // depth 1 is the resource object; each '[' adds one level
    auto nested = [](int arrays) {
      return R"({"resourceType":"Patient","x":)" + std::string(static_cast<std::size_t>(arrays), '[') +
             std::string(static_cast<std::size_t>(arrays), ']') + "}";
    };
    JsonLimits limits;
    limits.max_depth = 10;
    CHECK(Resource::Parse(nested(9), limits).ok());
    CHECK_FALSE(Resource::Parse(nested(10), limits).ok());
    CHECK(Resource::Parse(nested(63)).ok());
    CHECK_FALSE(Resource::Parse(nested(64)).ok());
  }
}

TEST_CASE("duplicate keys in a huge object are found in O(n log n)", "[fhir]") {
  std::string json = "{\"resourceType\":\"Basic\",\"x\":{";
  for (int i = 0; i < 200000; ++i) json += "\"k" + std::to_string(i) + "\":1,";
  json += "\"k7\":2}}";
  auto start = std::chrono::steady_clock::now();
  auto r = Resource::Parse(json);
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().outcome.issues()[0].diagnostics, Catch::Contains("k7"));
  CHECK(elapsed < std::chrono::seconds(2));  // pairwise comparison took minutes
}

TEST_CASE("Render puts resourceType, id and meta first and sets server meta", "[fhir]") {
  auto r = Resource::Parse(
      R"({"active":true,"meta":{"versionId":"99","tag":[{"code":"t"}],"lastUpdated":"2000-01-01T00:00:00Z",)"
      R"("profile":["http://example.org/p"]},"name":[{"family":"Chalmers"}],"id":"p1","resourceType":"Patient"})");
  REQUIRE(r.ok());
  CHECK(r->Render("2", "2024-05-06T10:11:12.345Z") ==
        R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"2","lastUpdated":"2024-05-06T10:11:12.345Z",)"
        R"("tag":[{"code":"t"}],"profile":["http://example.org/p"]},"active":true,"name":[{"family":"Chalmers"}]})");

  SECTION("without id or meta") {
    auto plain = Resource::Parse(R"({"gender":"male","resourceType":"Patient"})");
    REQUIRE(plain.ok());
    CHECK(plain->Render("1", "2024-01-01T00:00:00.000Z") ==
          R"({"resourceType":"Patient","meta":{"versionId":"1","lastUpdated":"2024-01-01T00:00:00.000Z"},"gender":"male"})");
  }
  SECTION("SetId replaces the id of the document") {
    auto other = Resource::Parse(R"({"resourceType":"Patient","id":"client"})");
    REQUIRE(other.ok());
    other->SetId("server");
    CHECK(other->Render("1", "x") ==
          R"({"resourceType":"Patient","id":"server","meta":{"versionId":"1","lastUpdated":"x"}})");
  }
  SECTION("the rendering parses back to an equivalent resource") {
    std::string text = r->Render("3", "2024-01-01T00:00:00.000Z");
    auto again = Resource::Parse(text);
    REQUIRE(again.ok());
    CHECK(again->Render("3", "2024-01-01T00:00:00.000Z") == text);
  }
}

TEST_CASE("Numbers keep their exact text", "[fhir]") {
  const std::string body =
      R"({"resourceType":"Observation","valueQuantity":{"value":1.50},"a":1e3,"b":1E-7,"c":-0.0,)"
      R"("d":123456789012345678901234567890,"e":0.1000000000000000000001,"f":[1.0,2.00,-3],"g":7})";
  auto r = Resource::Parse(body);
  REQUIRE(r.ok());
  std::string out = r->Render("1", "t");
  CHECK_THAT(out, Catch::Contains(R"("value":1.50})"));
  CHECK_THAT(out, Catch::Contains(R"("a":1e3,)"));
  CHECK_THAT(out, Catch::Contains(R"("b":1E-7,)"));
  CHECK_THAT(out, Catch::Contains(R"("c":-0.0,)"));
  CHECK_THAT(out, Catch::Contains(R"("d":123456789012345678901234567890,)"));
  CHECK_THAT(out, Catch::Contains(R"("e":0.1000000000000000000001,)"));
  CHECK_THAT(out, Catch::Contains(R"("f":[1.0,2.00,-3])"));
  CHECK_THAT(out, Catch::Contains(R"("g":7})"));
}

TEST_CASE("PrettyPrintJson indents by two spaces and keeps numbers", "[fhir]") {
  CHECK(PrettyPrintJson(R"({"a":[1.50,{"b":true,"c":null}],"d":"x"})") ==
        "{\n"
        "  \"a\": [\n"
        "    1.50,\n"
        "    {\n"
        "      \"b\": true,\n"
        "      \"c\": null\n"
        "    }\n"
        "  ],\n"
        "  \"d\": \"x\"\n"
        "}");
  CHECK(PrettyPrintJson("1e3") == "1e3");
  CHECK(PrettyPrintJson(R"("a\"b")") == R"("a\"b")");
  SECTION("invalid JSON is returned unchanged") {
    CHECK(PrettyPrintJson("{not json") == "{not json");
    CHECK(PrettyPrintJson("") == "");
  }
  SECTION("pretty output is equivalent to its input") {
    const std::string text = R"({"resourceType":"Patient","name":[{"given":["A","B"]}],"n":1.50})";
    CHECK(JsonEquivalent(PrettyPrintJson(text), text));
  }
}

TEST_CASE("JsonEquivalent compares trees", "[fhir]") {
  SECTION("key order is ignored, array order is not") {
    CHECK(JsonEquivalent(R"({"a":1,"b":{"c":[1,2],"d":"x"}})", R"({"b":{"d":"x","c":[1,2]},"a":1})"));
    CHECK_FALSE(JsonEquivalent(R"({"a":[1,2]})", R"({"a":[2,1]})"));
  }
  SECTION("values and types must match") {
    CHECK_FALSE(JsonEquivalent(R"({"a":1})", R"({"a":"1"})"));
    CHECK_FALSE(JsonEquivalent(R"({"a":true})", R"({"a":false})"));
    CHECK_FALSE(JsonEquivalent(R"({"a":null})", R"({})"));
    CHECK_FALSE(JsonEquivalent(R"({"a":1})", R"({"a":1,"b":2})"));
    CHECK_FALSE(JsonEquivalent(R"({"a":1,"b":2})", R"({"a":1})"));
    CHECK_FALSE(JsonEquivalent(R"({"a":[1]})", R"({"a":[1,1]})"));
  }
  SECTION("numbers compare by their text") {
    CHECK(JsonEquivalent(R"({"a":1.50})", R"({"a":1.50})"));
    CHECK_FALSE(JsonEquivalent(R"({"a":1.5})", R"({"a":1.50})"));
  }
  SECTION("invalid JSON is never equivalent") {
    CHECK_FALSE(JsonEquivalent("{", "{"));
    CHECK_FALSE(JsonEquivalent(R"({"a":1})", "{"));
  }
  SECTION("server meta without ignore_server_meta") {
    CHECK_FALSE(JsonEquivalent(R"({"resourceType":"Patient","meta":{"versionId":"1"}})",
                               R"({"resourceType":"Patient","meta":{"versionId":"2"}})"));
    CHECK_FALSE(JsonEquivalent(R"({"resourceType":"Patient","meta":{"versionId":"1"}})",
                               R"({"resourceType":"Patient"})"));
  }
  SECTION("ignore_server_meta ignores versionId and lastUpdated") {
    CHECK(JsonEquivalent(
        R"({"resourceType":"Patient","meta":{"versionId":"1","lastUpdated":"2020-01-01T00:00:00Z"},"active":true})",
        R"({"active":true,"meta":{"lastUpdated":"2024-01-01T00:00:00Z","versionId":"7"},"resourceType":"Patient"})",
        true));
    // a meta left empty by dropping the server fields counts as absent, on either side
    CHECK(JsonEquivalent(R"({"resourceType":"Patient","meta":{"versionId":"1","lastUpdated":"x"}})",
                         R"({"resourceType":"Patient"})", true));
    CHECK(JsonEquivalent(R"({"resourceType":"Patient"})",
                         R"({"resourceType":"Patient","meta":{"versionId":"3"}})", true));
    CHECK(JsonEquivalent(R"({"resourceType":"Patient","meta":{}})", R"({"resourceType":"Patient"})",
                         true));
  }
  SECTION("ignore_server_meta still compares the other meta elements") {
    CHECK(JsonEquivalent(R"({"resourceType":"Patient","meta":{"versionId":"1","tag":[{"code":"a"}]}})",
                         R"({"resourceType":"Patient","meta":{"tag":[{"code":"a"}],"versionId":"2"}})",
                         true));
    CHECK_FALSE(JsonEquivalent(R"({"resourceType":"Patient","meta":{"versionId":"1","tag":[{"code":"a"}]}})",
                               R"({"resourceType":"Patient","meta":{"versionId":"1"}})", true));
    CHECK_FALSE(JsonEquivalent(R"({"resourceType":"Patient","meta":{"tag":[{"code":"a"}]}})",
                               R"({"resourceType":"Patient"})", true));
    CHECK_FALSE(JsonEquivalent(R"({"resourceType":"Patient","meta":{"tag":[{"code":"a"}]}})",
                               R"({"resourceType":"Patient","meta":{"tag":[{"code":"b"}]}})", true));
  }
  SECTION("ignore_server_meta applies to the resource's own meta only") {
    CHECK_FALSE(JsonEquivalent(
        R"({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","meta":{"versionId":"1"}}}]})",
        R"({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","meta":{"versionId":"2"}}}]})",
        true));
    CHECK_FALSE(JsonEquivalent(R"({"resourceType":"Patient","contact":{"versionId":"1"}})",
                               R"({"resourceType":"Patient","contact":{"versionId":"2"}})", true));
    CHECK_FALSE(JsonEquivalent(R"({"resourceType":"Patient","versionId":"1"})",
                               R"({"resourceType":"Patient","versionId":"2"})", true));
  }
}

TEST_CASE("RewriteReferences rewrites references and the links of narratives", "[fhir]") {
  auto r = Resource::Parse(R"({"resourceType":"Observation","subject":{"reference":"urn:uuid:a"},
    "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:a\">x</a><a data-href=\"urn:uuid:a\">y</a><img src='urn:uuid:a'/><a href=\"urn:uuid:b\">z</a><a href=\"urn:uuid:q\">q</a></div>"},
    "contained":[{"resourceType":"Patient","id":"p","link":[{"other":{"reference":"urn:uuid:b"}}]}]})");
  REQUIRE(r.ok());
  auto map = [](std::string_view from) -> std::optional<std::string> {
    if (from == "urn:uuid:a") return std::string("Patient/1");
    if (from == "urn:uuid:b") return std::string("Patient/2");
    if (from == "urn:uuid:q") return std::string("Patient/\"3");  // cannot be written into an attribute
    return std::nullopt;
  };
  CHECK(r->RewriteReferences(map) == 5);  // subject, contained, three narrative links
  const std::string out = r->Render("1", "2024-01-01T00:00:00.000Z");
  CHECK(out.find(R"("subject":{"reference":"Patient/1"})") != std::string::npos);
  CHECK(out.find(R"("other":{"reference":"Patient/2"})") != std::string::npos);
  CHECK(out.find(R"(<a href=\"Patient/1\">x</a>)") != std::string::npos);
  CHECK(out.find(R"(<a data-href=\"urn:uuid:a\">y</a>)") != std::string::npos);  // another attribute
  CHECK(out.find(R"(<img src='Patient/1'/>)") != std::string::npos);
  CHECK(out.find(R"(<a href=\"Patient/2\">z</a>)") != std::string::npos);
  CHECK(out.find(R"(<a href=\"urn:uuid:q\">q</a>)") != std::string::npos);
}

TEST_CASE("AppendJsonString escapes", "[fhir]") {
  std::string out = "x=";
  AppendJsonString(out, "a\"b\\c\n\r\t\b\f\x01\x1f/é");
  CHECK(out == "x=\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/é\"");
  std::string empty;
  AppendJsonString(empty, "");
  CHECK(empty == "\"\"");
  std::string with_nul;
  AppendJsonString(with_nul, std::string_view("a\0b", 3));
  CHECK(with_nul == "\"a\\u0000b\"");
  SECTION("the result is valid JSON with the original value") {
    const std::string value = "line1\nline2 \"quoted\" \\ \x02 tab\t end";
    std::string json;
    AppendJsonString(json, value);
    auto doc = testing::ParseJson(json);
    REQUIRE(doc.IsString());
    CHECK(std::string(doc.GetString(), doc.GetStringLength()) == value);
  }
}

}  // namespace
}  // namespace eds::fhir
