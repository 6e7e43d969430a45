// Runs planned transaction and batch Bundles against the store: conditional
// entries resolved by search under the same locks as single conditional
// writes, conditional references, PATCH entries, the spec's processing order.
// A transaction is one database transaction; each batch entry is its own.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fhir/bundle.hpp"
#include "fhir/local_bases.hpp"
#include "fhir/result.hpp"

namespace eds::fhir {
class Definitions;
class Resource;
class IndexerHolder;
struct TransactionPlan;
struct TransactionEntry;
namespace fhirpath {
class Engine;
}
}  // namespace eds::fhir
namespace eds::storage {
class ResourceStore;
class TxScope;
}

namespace eds::server {

// What one entry did, for its response.
struct EntryResult {
  EntryResult() = default;
  EntryResult(int status_code, std::optional<fhir::VersionRecord> what, bool with_location)
      : status(status_code), record(std::move(what)), location(with_location) {}

  int status = 200;
  std::optional<fhir::VersionRecord> record;  // what it read or wrote (nothing: a conditional delete without match)
  bool location = false;                      // answered with a location (create, update, patch)
  std::optional<std::string> bundle;          // a GET entry's search or history: the Bundle (JSON text)
};

class TransactionProcessor {
 public:
  // The write policy's check of a resource about to be stored: the error
  // (422 with the OperationOutcome) when it must not be written.
  using WriteCheck = std::function<std::optional<fhir::Error>(const fhir::Resource&)>;

  // `indexers` may be null: conditional entries and references then answer
  // 501. `check` (may be empty) validates what PATCH entries produce, as the
  // caller validated the other entries' resources before the run.
  TransactionProcessor(std::shared_ptr<const fhir::Definitions> defs,
                       std::shared_ptr<fhir::IndexerHolder> indexers, std::size_t max_json_depth,
                       WriteCheck check = {});
  ~TransactionProcessor();
  TransactionProcessor(TransactionProcessor&&) noexcept;
  TransactionProcessor& operator=(TransactionProcessor&&) noexcept;

  // Every entry of a transaction plan in one database transaction, all or
  // nothing. Results are in Bundle order. On failure nothing is stored and
  // the error is returned, with the Bundle index of the entry that failed in
  // `failed_entry` (nullopt when no single entry is to blame).
  // `before` runs first and `after` last in the same database transaction
  // (an error from either rolls everything back): the document API checks
  // and records its documents with them.
  using BeforeHook = std::function<std::optional<fhir::Error>(storage::TxScope&)>;
  using AfterHook =
      std::function<std::optional<fhir::Error>(storage::TxScope&, const std::vector<std::optional<EntryResult>>&)>;
  // `get` answers GET and HEAD entries (reads, searches, history) in the
  // transaction, after every write; without it only Type/id reads are
  // answered and other GET entries are kInvalid.
  using GetHook = std::function<fhir::Result<EntryResult>(storage::TxScope&, const fhir::TransactionEntry&)>;
  fhir::Result<std::vector<EntryResult>> RunTransaction(storage::ResourceStore& store,
                                                        const fhir::TransactionPlan& plan,
                                                        std::optional<std::size_t>& failed_entry,
                                                        const BeforeHook& before = {},
                                                        const AfterHook& after = {},
                                                        const GetHook& get = {}) const;

  // Entry `index` of a batch plan on its own, in its own database
  // transaction (`get` as for RunTransaction).
  fhir::Result<EntryResult> RunBatchEntry(storage::ResourceStore& store, const fhir::TransactionPlan& plan,
                                          std::size_t index, const GetHook& get = {}) const;

  // The FHIRPath engine of the loaded definitions (FHIRPath Patch).
  const fhir::fhirpath::Engine& engine() const;

  // The server's own bases (--public-url, --local-bases) of the indexer in
  // force; empty without one.
  fhir::LocalBases local_bases() const;

  struct Impl;  // opaque; defined in transaction_processor.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::server
