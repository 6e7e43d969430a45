// OperationOutcome rendering.
#include "fhir/outcome.hpp"

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "fhir/result.hpp"

namespace eds::fhir {

Outcome::Outcome(Severity severity, std::string code, std::string diagnostics,
                 std::string expression) {
  issues_.push_back({severity, std::move(code), std::move(diagnostics), std::move(expression)});
}

bool Outcome::HasErrors() const {
  for (const auto& i : issues_)
    if (i.severity == Severity::kError || i.severity == Severity::kFatal) return true;
  return false;
}

const char* SeverityCode(Severity severity) {
  switch (severity) {
    case Severity::kFatal: return "fatal";
    case Severity::kError: return "error";
    case Severity::kWarning: return "warning";
    case Severity::kInformation: return "information";
  }
  return "error";
}

namespace {
template <class Writer>
void WriteOutcome(Writer& w, const std::vector<Issue>& issues) {
  w.StartObject();
  w.Key("resourceType");
  w.String("OperationOutcome");
  w.Key("issue");
  w.StartArray();
  auto write_issue = [&w](const Issue& i) {
    w.StartObject();
    w.Key("severity");
    w.String(SeverityCode(i.severity));
    w.Key("code");
    w.String(i.code.empty() ? "processing" : i.code);
    if (!i.diagnostics.empty()) {
      w.Key("diagnostics");
      w.String(i.diagnostics);
    }
    if (!i.expression.empty()) {
      w.Key("expression");
      w.StartArray();
      w.String(i.expression);
      w.EndArray();
    }
    w.EndObject();
  };
  if (issues.empty()) write_issue({Severity::kInformation, "informational", "All OK", {}});
  for (const auto& i : issues) write_issue(i);
  w.EndArray();
  w.EndObject();
}
}  // namespace

std::string Outcome::ToJson(bool pretty) const {
  rapidjson::StringBuffer buf;
  if (pretty) {
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
    w.SetIndent(' ', 2);
    WriteOutcome(w, issues_);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    WriteOutcome(w, issues_);
  }
  return {buf.GetString(), buf.GetSize()};
}

static const char* DefaultIssueCode(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalid: return "invalid";
    case ErrorKind::kNotFound: return "not-found";
    case ErrorKind::kGone: return "deleted";
    case ErrorKind::kMethodNotAllowed: return "not-supported";
    case ErrorKind::kNotAcceptable: return "not-supported";
    case ErrorKind::kConflict: return "conflict";
    case ErrorKind::kPreconditionFailed: return "conflict";
    case ErrorKind::kPayloadTooLarge: return "too-long";
    case ErrorKind::kUriTooLong: return "too-long";
    case ErrorKind::kUnsupportedMediaType: return "not-supported";
    case ErrorKind::kUnprocessable: return "processing";
    case ErrorKind::kNotSupported: return "not-supported";
    case ErrorKind::kUnavailable: return "transient";
    case ErrorKind::kInternal: return "exception";
  }
  return "exception";
}

Error MakeError(ErrorKind kind, std::string message, std::string expression) {
  return Error{kind, Outcome(Severity::kError, DefaultIssueCode(kind), std::move(message),
                             std::move(expression))};
}

}  // namespace eds::fhir
