// Expected outcomes of FHIR operations as values: an Error carries its kind
// (which decides the HTTP status) and the OperationOutcome issues to report.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include "fhir/outcome.hpp"

namespace eds::fhir {

enum class ErrorKind {
  kInvalid,               // 400: malformed or structurally wrong input
  kNotFound,              // 404
  kGone,                  // 410
  kMethodNotAllowed,      // 405
  kNotAcceptable,         // 406
  kConflict,              // 409: concurrent or duplicate write
  kPreconditionFailed,    // 412: If-Match mismatch
  kPayloadTooLarge,       // 413
  kUriTooLong,            // 414
  kUnsupportedMediaType,  // 415
  kUnprocessable,         // 422: business rule or profile violation
  kNotSupported,          // 501
  kUnavailable,           // 503: database unreachable, pool exhausted
  kInternal,              // 500
};

struct Error {
  ErrorKind kind;
  Outcome outcome;
};

// Builds an Error with one issue of severity "error".
Error MakeError(ErrorKind kind, std::string message, std::string expression = {});

// A value or an error (by default an Error); the small subset of
// std::expected that we need.
template <class T, class E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Result(E error) : v_(std::move(error)) {}          // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() { assert(ok()); return std::get<0>(v_); }
  const T& value() const { assert(ok()); return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  E& error() { assert(!ok()); return std::get<1>(v_); }
  const E& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

}  // namespace eds::fhir
