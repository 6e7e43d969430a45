// In-memory ResourceStore with the semantics of the PostgreSQL store, so the
// FHIR API can be exercised without a database.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storage/resource_store.hpp"

namespace eds::testing {

class FakeResourceStore : public storage::ResourceStore {
 public:
  FakeResourceStore();

  storage::Result<fhir::VersionRecord> Read(const std::string& type, const std::string& id) override;
  storage::Result<fhir::VersionRecord> ReadVersion(const std::string& type, const std::string& id,
                                                   int64_t version) override;
  storage::Result<storage::WriteResult> Create(fhir::Resource& resource) override;
  storage::Result<storage::WriteResult> Update(fhir::Resource& resource, const std::string& id,
                                               std::optional<int64_t> if_match) override;
  storage::Result<storage::WriteResult> Delete(const std::string& type, const std::string& id,
                                               std::optional<int64_t> if_match) override;
  storage::Result<storage::HistoryPage> History(const storage::HistoryQuery& query) override;
  // Searching is the database's work: not supported here (nor conditional writes).
  storage::Result<storage::SearchPage> Search(const fhir::SearchQuery& query) override;
  storage::Result<storage::WriteResult> ConditionalCreate(fhir::Resource&, const fhir::SearchQuery&,
                                                          const std::string&) override;
  storage::Result<storage::WriteResult> ConditionalUpdate(fhir::Resource&, const fhir::SearchQuery&,
                                                          const std::string&) override;
  storage::Result<storage::WriteResult> ConditionalDelete(const fhir::SearchQuery&, const std::string&) override;
  // All or nothing: the state is restored when the body fails. Not
  // isolated from other threads; searches (Find) are not supported.
  std::optional<fhir::Error> RunTransaction(
      const std::function<std::optional<fhir::Error>(storage::TxScope&)>& body) override;

  // Bulk writes: each item as an update; checkpoints kept in memory.
  storage::Result<storage::BulkWriteResult> WriteBulk(std::vector<storage::BulkItem>& items,
                                                      const storage::BulkCheckpoint* checkpoint) override;
  storage::Result<std::optional<storage::BulkCheckpoint>> ReadBulkCheckpoint(const std::string& source) override;

  // Version 1 of a new resource under `id` (transactions); kConflict when taken.
  storage::Result<storage::WriteResult> CreateWithId(fhir::Resource& resource, const std::string& id);

  // Source of "now" in milliseconds since the epoch (default: the system clock).
  void SetClock(std::function<int64_t()> clock);
  // Pins "now" to a fixed instant.
  void SetTime(int64_t epoch_ms);

  // Number of versions written so far, over all resources.
  int64_t version_count() const;

 private:
  struct StoredVersion {
    int64_t seq = 0;
    fhir::VersionRecord record;
  };
  using Key = std::pair<std::string, std::string>;  // (type, id)

  int64_t Now() const;
  const fhir::VersionRecord& Append(fhir::VersionRecord record);

  mutable std::mutex mutex_;
  std::map<Key, std::vector<StoredVersion>> resources_;
  int64_t seq_ = 0;
  int64_t next_id_ = 1;
  std::function<int64_t()> clock_;
  std::map<std::string, storage::BulkCheckpoint> checkpoints_;
};

}  // namespace eds::testing
