// Unit tests of fhir/outcome and fhir/result: OperationOutcome rendering and
// the errors built by MakeError.
#include <catch2/catch.hpp>

#include "fhir/outcome.hpp"
#include "fhir/result.hpp"
#include "test_support.hpp"

namespace eds::fhir {
namespace {

using testing::ParseJson;
using testing::StrOf;

TEST_CASE("Outcome renders its issues as an OperationOutcome", "[fhir]") {
  Outcome o(Severity::kError, "invalid", "bad \"name\"\n", "Patient.name[0]");
  o.Add({Severity::kWarning, "structure", "odd", {}});
  o.Add({Severity::kInformation, "", {}, {}});
  CHECK(o.HasErrors());
  auto doc = ParseJson(o.ToJson());
  CHECK(StrOf(doc, "resourceType") == "OperationOutcome");
  const auto& issues = doc["issue"];
  REQUIRE(issues.IsArray());
  REQUIRE(issues.Size() == 3);
  CHECK(StrOf(issues[0], "severity") == "error");
  CHECK(StrOf(issues[0], "code") == "invalid");
  CHECK(StrOf(issues[0], "diagnostics") == "bad \"name\"\n");
  REQUIRE(issues[0]["expression"].IsArray());
  REQUIRE(issues[0]["expression"].Size() == 1);
  CHECK(std::string(issues[0]["expression"][0].GetString()) == "Patient.name[0]");
  CHECK(StrOf(issues[1], "severity") == "warning");
  CHECK(StrOf(issues[1], "code") == "structure");
  CHECK_FALSE(issues[1].HasMember("expression"));
  CHECK(StrOf(issues[2], "severity") == "information");
  CHECK(StrOf(issues[2], "code") == "processing");  // empty code falls back to processing
  CHECK_FALSE(issues[2].HasMember("diagnostics"));
  CHECK(doc.MemberCount() == 2);
}

TEST_CASE("An empty Outcome renders one informational issue", "[fhir]") {
  Outcome o;
  CHECK_FALSE(o.HasErrors());
  CHECK(o.issues().empty());
  auto doc = ParseJson(o.ToJson());
  CHECK(StrOf(doc, "resourceType") == "OperationOutcome");
  REQUIRE(doc["issue"].Size() == 1);
  CHECK(StrOf(doc["issue"][0], "severity") == "information");
  CHECK(StrOf(doc["issue"][0], "code") == "informational");
}

TEST_CASE("Outcome pretty rendering is the same document", "[fhir]") {
  Outcome o(Severity::kFatal, "exception", "boom");
  const std::string compact = o.ToJson();
  const std::string pretty = o.ToJson(true);
  CHECK(compact.find('\n') == std::string::npos);
  CHECK_THAT(pretty, Catch::Contains("\n  \"issue\": ["));
  const bool same_document = ParseJson(compact) == ParseJson(pretty);
  CHECK(same_document);
  CHECK(o.HasErrors());  // fatal counts as an error
}

TEST_CASE("HasErrors ignores warnings and information", "[fhir]") {
  Outcome o(Severity::kWarning, "informational", "w");
  o.Add({Severity::kInformation, "informational", "i", {}});
  CHECK_FALSE(o.HasErrors());
  o.Add({Severity::kError, "invalid", "e", {}});
  CHECK(o.HasErrors());
}

TEST_CASE("SeverityCode", "[fhir]") {
  CHECK(std::string(SeverityCode(Severity::kFatal)) == "fatal");
  CHECK(std::string(SeverityCode(Severity::kError)) == "error");
  CHECK(std::string(SeverityCode(Severity::kWarning)) == "warning");
  CHECK(std::string(SeverityCode(Severity::kInformation)) == "information");
}

TEST_CASE("MakeError builds one error issue with the kind's issue code", "[fhir]") {
  const std::pair<ErrorKind, const char*> cases[] = {
      {ErrorKind::kInvalid, "invalid"},           {ErrorKind::kNotFound, "not-found"},
      {ErrorKind::kGone, "deleted"},              {ErrorKind::kMethodNotAllowed, "not-supported"},
      {ErrorKind::kNotAcceptable, "not-supported"}, {ErrorKind::kConflict, "conflict"},
      {ErrorKind::kPreconditionFailed, "conflict"}, {ErrorKind::kPayloadTooLarge, "too-long"},
      {ErrorKind::kUriTooLong, "too-long"},       {ErrorKind::kUnsupportedMediaType, "not-supported"},
      {ErrorKind::kUnprocessable, "processing"},  {ErrorKind::kNotSupported, "not-supported"},
      {ErrorKind::kUnavailable, "transient"},     {ErrorKind::kInternal, "exception"},
  };
  for (const auto& [kind, code] : cases) {
    Error e = MakeError(kind, "message", "Patient.id");
    CHECK(e.kind == kind);
    REQUIRE(e.outcome.issues().size() == 1);
    const Issue& i = e.outcome.issues()[0];
    CHECK(i.severity == Severity::kError);
    CHECK(i.code == code);
    CHECK(i.diagnostics == "message");
    CHECK(i.expression == "Patient.id");
  }
}

TEST_CASE("Result holds a value or an error", "[fhir]") {
  Result<int> good = 5;
  REQUIRE(good.ok());
  CHECK(static_cast<bool>(good));
  CHECK(*good == 5);
  Result<int> bad = MakeError(ErrorKind::kNotFound, "gone");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().kind == ErrorKind::kNotFound);
  Result<std::string> s = std::string("abc");
  CHECK(s->size() == 3);
}

}  // namespace
}  // namespace eds::fhir
