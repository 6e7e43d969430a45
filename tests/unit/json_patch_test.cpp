// Unit tests of JSON Patch (RFC 6902) application.
#include <catch2/catch.hpp>

#include "fhir/json.hpp"
#include "fhir/json_patch.hpp"

namespace eds::fhir {
namespace {

std::string Apply(std::string_view doc, std::string_view patch) {
  auto r = ApplyJsonPatch(doc, patch);
  INFO(patch << "\n" << (r.ok() ? std::string() : r.error().outcome.ToJson()));
  REQUIRE(r.ok());
  return *r;
}

ErrorKind Fails(std::string_view doc, std::string_view patch) {
  auto r = ApplyJsonPatch(doc, patch);
  REQUIRE_FALSE(r.ok());
  return r.error().kind;
}

TEST_CASE("JSON Patch operations", "[fhir]") {
  const std::string doc = R"({"resourceType":"Patient","id":"p","name":[{"family":"Rossi","given":["Mario"]}],"active":true})";
  CHECK(JsonEquivalent(Apply(doc, R"([{"op":"replace","path":"/active","value":false}])"),
                       R"({"resourceType":"Patient","id":"p","name":[{"family":"Rossi","given":["Mario"]}],"active":false})"));
  CHECK(JsonEquivalent(Apply(doc, R"([{"op":"add","path":"/name/0/given/-","value":"Luigi"}])"),
                       R"({"resourceType":"Patient","id":"p","name":[{"family":"Rossi","given":["Mario","Luigi"]}],"active":true})"));
  CHECK(JsonEquivalent(Apply(doc, R"([{"op":"add","path":"/name/0/given/0","value":"Ugo"}])"),
                       R"({"resourceType":"Patient","id":"p","name":[{"family":"Rossi","given":["Ugo","Mario"]}],"active":true})"));
  CHECK(JsonEquivalent(Apply(doc, R"([{"op":"remove","path":"/active"}])"),
                       R"({"resourceType":"Patient","id":"p","name":[{"family":"Rossi","given":["Mario"]}]})"));
  CHECK(JsonEquivalent(Apply(doc, R"([{"op":"copy","from":"/name/0","path":"/name/-"}])"),
                       R"({"resourceType":"Patient","id":"p","name":[{"family":"Rossi","given":["Mario"]},{"family":"Rossi","given":["Mario"]}],"active":true})"));
  CHECK(JsonEquivalent(Apply(doc, R"([{"op":"move","from":"/name/0/family","path":"/name/0/text"}])"),
                       R"({"resourceType":"Patient","id":"p","name":[{"given":["Mario"],"text":"Rossi"}],"active":true})"));
  CHECK(JsonEquivalent(Apply(doc, R"([{"op":"test","path":"/name/0/family","value":"Rossi"},
                                      {"op":"add","path":"/birthDate","value":"1970-01-01"}])"),
                       R"({"resourceType":"Patient","id":"p","name":[{"family":"Rossi","given":["Mario"]}],"active":true,"birthDate":"1970-01-01"})"));
  // pointer escapes, and numbers keep their text
  CHECK(Apply(R"({"a/b":1,"m~n":2})", R"([{"op":"replace","path":"/a~1b","value":1.50}])") == R"({"a/b":1.50,"m~n":2})");
  CHECK(Apply(R"({"a/b":1,"m~n":2})", R"([{"op":"remove","path":"/m~0n"}])") == R"({"a/b":1})");
}

TEST_CASE("JSON Patch errors: malformed patches and paths that do not apply", "[fhir]") {
  const std::string doc = R"({"resourceType":"Patient","name":[{"family":"Rossi"}]})";
  CHECK(Fails(doc, R"({"op":"add"})") == ErrorKind::kInvalid);
  CHECK(Fails(doc, R"([{"op":"frob","path":"/a"}])") == ErrorKind::kInvalid);
  CHECK(Fails(doc, R"([{"op":"add","path":"/a"}])") == ErrorKind::kInvalid);
  CHECK(Fails(doc, R"([{"op":"add","path":"a","value":1}])") == ErrorKind::kInvalid);
  CHECK(Fails(doc, R"([{"op":"move","path":"/a"}])") == ErrorKind::kInvalid);
  CHECK(Fails(doc, R"([{"op":"remove","path":"/nothing"}])") == ErrorKind::kUnprocessable);
  CHECK(Fails(doc, R"([{"op":"replace","path":"/name/5","value":{}}])") == ErrorKind::kUnprocessable);
  CHECK(Fails(doc, R"([{"op":"add","path":"/x/y","value":1}])") == ErrorKind::kUnprocessable);
  CHECK(Fails(doc, R"([{"op":"test","path":"/name/0/family","value":"Bianchi"}])") == ErrorKind::kUnprocessable);
  CHECK(Fails(doc, R"([{"op":"move","from":"/name","path":"/name/0/x"}])") == ErrorKind::kUnprocessable);
  auto r = ApplyJsonPatch(doc, R"([{"op":"add","path":"/a","value":1},{"op":"remove","path":"/zzz"}])");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().outcome.issues()[0].expression == "patch[1]");
}

}  // namespace
}  // namespace eds::fhir
