// Plain HTTP request/response values passed between the socket layer and the
// FHIR API, so that handlers need no Beast types and run without sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eds::server {

struct HttpRequest {
  std::string method;  // upper case: GET, POST, ...
  std::string target;  // origin-form: /fhir/Patient/1?_pretty=true
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;

  // Value of the first header named `lower_name`, empty when absent.
  std::string_view Header(std::string_view lower_name) const;
  bool HasHeader(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  void SetHeader(std::string name, std::string value);
  std::string_view Header(std::string_view name) const;  // case-insensitive
};

// Per-request state that crosses every stage of the pipeline: identity
// (authentication fills it in; "anonymous" until then), correlation and
// timing, and what the router decided (for logging and auditing).
struct RequestContext {
  std::string request_id;
  std::string principal = "anonymous";
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::string interaction;  // read, vread, create, ... once routed
  std::string resource_type;
  std::string resource_id;
  // The request's audit row was committed with the write it made.
  bool audited_in_transaction = false;
};

}  // namespace eds::server
