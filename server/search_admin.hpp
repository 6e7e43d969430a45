// Custom search parameters and reindexing: the indexer in force is the
// package's parameters plus the active SearchParameter resources stored
// here; a reindex re-extracts, in batches, the resources an older parameter
// set indexed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fhir/result.hpp"

namespace eds::fhir {
class Definitions;
class SearchIndexer;
class SearchParameterRegistry;
}  // namespace eds::fhir
namespace eds::storage {
class ResourceStore;
}

namespace eds::server {

// The indexer for `current`'s package parameters and local bases plus every active
// SearchParameter resource in `store` (ones with the URL of a package
// parameter, or whose expression does not parse, are left out; `notes`
// says why).
fhir::Result<std::shared_ptr<const fhir::SearchIndexer>> BuildIndexer(
    std::shared_ptr<const fhir::Definitions> definitions, const fhir::SearchIndexer& current,
    storage::ResourceStore& store, std::vector<std::string>* notes = nullptr);

// Checks a SearchParameter resource a client writes: what it needs to be
// used (code, type, base, a FHIRPath expression that parses); empty when
// fine, else the problem.
std::string CheckSearchParameter(std::string_view json);

// A reindex running in the background, one batch per transaction, while
// the server keeps serving.
class ReindexJob {
 public:
  explicit ReindexJob(storage::ResourceStore& store, int batch = 500);
  ~ReindexJob();
  ReindexJob(const ReindexJob&) = delete;
  ReindexJob& operator=(const ReindexJob&) = delete;

  struct Status {
    bool running = false;
    int64_t reindexed = 0;   // by the current (or last) run
    int64_t remaining = -1;  // after the last batch; -1 before any
    std::string error;       // why the last run stopped early
  };
  // Starts a run unless one is running; returns the status after starting.
  Status Start();
  Status Current() const;

 private:
  void Run();
  storage::ResourceStore& store_;
  const int batch_;
  mutable std::mutex mutex_;
  Status status_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace eds::server
