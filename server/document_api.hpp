// The FSE 2.0 ingestion API that the national Gateway's EDS client calls,
// next to the FHIR API: each clinical document arrives as a FHIR transaction
// Bundle in a JSON envelope and is stored, replaced, updated or deleted as
// one database transaction.
//
//   POST   /v1/document/workflowinstanceid/{wii}  PUBLISH  (201; 409 if the identifier exists)
//   PUT    /v1/document/workflowinstanceid/{wii}  REPLACE  (200; 404 if it does not)
//   PUT    /v1/document/metadata                  UPDATE of the DocumentReference's metadata
//   DELETE /v1/document/identifier/{identifier}   DELETE   (200; 404)
//
// Answers {"traceID","spanID","result":true}; errors are RFC 7807 problem
// JSON (type /err/client 400 and 409, /err/resource 404, /err/server 500).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/http_types.hpp"

namespace eds::fhir {
class Definitions;
struct Error;
struct TransactionPlan;
}
namespace eds::storage {
class ResourceStore;
struct FeedingRecord;
}

namespace eds::server {

class TransactionProcessor;

// Admission by priority: at most `capacity` holders at once; when a slot
// frees, waiting HIGH requests get it before NULL (normal) ones, and those
// before LOW ones.
class PriorityGate {
 public:
  enum class Priority { kHigh = 0, kNormal = 1, kLow = 2 };
  explicit PriorityGate(int capacity) : free_(capacity) {}

  class Slot {
   public:
    explicit Slot(PriorityGate* gate) : gate_(gate) {}
    Slot(Slot&& o) noexcept : gate_(o.gate_) { o.gate_ = nullptr; }
    Slot(const Slot&) = delete;
    ~Slot() {
      if (gate_ != nullptr) gate_->Release();
    }

   private:
    PriorityGate* gate_;
  };
  Slot Acquire(Priority p);
  // Requests of priority `p` waiting now.
  int Waiting(Priority p) {
    std::lock_guard<std::mutex> lock(mutex_);
    return waiting_[static_cast<int>(p)];
  }

 private:
  void Release();
  std::mutex mutex_;
  std::condition_variable cv_;
  int free_;
  int waiting_[3] = {0, 0, 0};
};

class DocumentApi {
 public:
  // `check` validates a document's entries as writes are validated (422).
  using EntryCheck = std::function<std::optional<fhir::Error>(const fhir::TransactionPlan&)>;
  // `analytics_key`: the key of the fiscal-code hashes in feeding records
  // (empty: the records carry no hash).
  DocumentApi(std::shared_ptr<const fhir::Definitions> defs, storage::ResourceStore& store,
              const TransactionProcessor& processor, int concurrency, EntryCheck check = {},
              std::string analytics_key = {});
  ~DocumentApi();

  // True for the paths this API serves (/v1/document/...).
  static bool Serves(std::string_view target);
  // Answers one call and appends its feeding record (docs/monitoring.md).
  HttpResponse Handle(const HttpRequest& request, RequestContext& ctx) const;

 private:
  HttpResponse Route(const HttpRequest& request, RequestContext& ctx, std::string_view path,
                     const std::vector<std::string>& segments,
                     const std::vector<std::pair<std::string, std::string>>& query,
                     storage::FeedingRecord& record) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::server
