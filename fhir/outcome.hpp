// OperationOutcome: the issues a request produced, rendered as FHIR JSON.
#pragma once

#include <string>
#include <vector>

namespace eds::fhir {

enum class Severity { kFatal, kError, kWarning, kInformation };

struct Issue {
  Severity severity = Severity::kError;
  std::string code;         // IssueType code: invalid, structure, not-found, ...
  std::string diagnostics;  // human-readable English message
  std::string expression;   // FHIRPath of the element, e.g. Patient.name[0].given[1]
};

class Outcome {
 public:
  Outcome() = default;
  Outcome(Severity severity, std::string code, std::string diagnostics,
          std::string expression = {});

  void Add(Issue issue) { issues_.push_back(std::move(issue)); }
  const std::vector<Issue>& issues() const { return issues_; }
  bool HasErrors() const;

  // Serialises as an OperationOutcome resource. An outcome with no issues
  // renders one informational "all ok" issue, as the resource requires >= 1.
  std::string ToJson(bool pretty = false) const;

 private:
  std::vector<Issue> issues_;
};

const char* SeverityCode(Severity severity);

}  // namespace eds::fhir
