// The FHIR REST API: content negotiation, routing (method x path pattern ->
// interaction), the interaction handlers and the mapping of results and
// errors to HTTP. One pipeline for every request; runs without sockets.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "fhir/bundle.hpp"
#include "fhir/result.hpp"
#include "server/config.hpp"
#include "server/http_types.hpp"

namespace eds::fhir {
class Definitions;
class IndexerHolder;
class Validator;
}
namespace eds::storage {
class ResourceStore;
class AuditSink;
}

namespace eds::server {

class FhirApi {
 public:
  // `indexers` may be null: searches then answer 501. Writes of
  // SearchParameter resources replace the indexer it holds. `validator` may
  // be null: writes are then checked for structure only and $validate
  // answers 501; otherwise writes are validated as config.validation says.
  FhirApi(const ServerConfig& config, std::shared_ptr<const fhir::Definitions> defs,
          storage::ResourceStore& store, std::shared_ptr<fhir::IndexerHolder> indexers = nullptr,
          std::shared_ptr<const fhir::Validator> validator = nullptr);
  ~FhirApi();

  // Handles one request. Never throws: expected failures become their
  // OperationOutcome with the right status; unexpected ones are logged with
  // the request id and answered with a generic 500.
  HttpResponse Handle(const HttpRequest& request, RequestContext& ctx) const;

  // The response for a request refused before it reached Handle (limits,
  // malformed HTTP): an OperationOutcome with the status of `kind`.
  HttpResponse Reject(fhir::ErrorKind kind, std::string message, const RequestContext& ctx) const;

  // A request served: Count adds it to the metrics (before the answer is
  // sent, so a client that has its answer sees it counted); Observe queues
  // its audit row and writes its access-log line (once the answer is sent).
  void Count(const HttpRequest& request, const HttpResponse& response, const RequestContext& ctx) const;
  void Observe(const HttpRequest& request, const HttpResponse& response, const RequestContext& ctx) const;
  // The requests in flight.
  void InFlight(int delta) const;
  // Audit rows of every request go to `sink` (nullptr: auditing off); when
  // its queue is full, requests are refused with 503.
  void SetAuditSink(storage::AuditSink* sink);
  // Successful writes of StructureDefinition, ValueSet or CodeSystem
  // resources (also in transactions and $import) replace the validator with
  // what `factory` builds then (nullptr: the current one stays). Call before
  // serving.
  void SetValidatorFactory(std::function<std::shared_ptr<const fhir::Validator>()> factory);

  // True when the request only needs CPU (no database), so it may run on an
  // I/O thread.
  bool IsCheap(const HttpRequest& request) const;

  // A plain read (GET [type]/[id]) that the caller may serve with a
  // non-blocking database read: what to read and how to answer.
  struct ReadPlan {
    std::string type;
    std::string id;
    std::string content_type;
    bool pretty = false;
  };
  // The plan when `request` is a valid plain read; nullopt for anything else
  // (including invalid reads, whose errors Handle reports).
  std::optional<ReadPlan> PlanRead(const HttpRequest& request, RequestContext& ctx) const;
  // The response to a planned read, given what the store returned.
  HttpResponse CompleteRead(const HttpRequest& request, const ReadPlan& plan,
                            fhir::Result<fhir::VersionRecord> result, RequestContext& ctx) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Status code for an error kind.
int HttpStatusOf(fhir::ErrorKind kind);

// A request id: the client's X-Request-Id when it is short and safe, else a
// fresh random one.
std::string MakeRequestId(std::string_view client_value);

}  // namespace eds::server
