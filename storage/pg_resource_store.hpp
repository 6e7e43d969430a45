// ResourceStore on PostgreSQL: current versions in `resource`, every version
// in `resource_history`; each write is one transaction.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "storage/resource_store.hpp"

namespace eds::fhir {
class IndexerHolder;
}

namespace eds::storage {

struct PgStoreOptions {
  std::string dsn;
  // The indexer in force extracts the search index on every write (nullptr:
  // no search index).
  std::shared_ptr<fhir::IndexerHolder> indexers;
  int pool_size = 8;
  std::chrono::milliseconds acquire_timeout{5000};
  std::chrono::milliseconds statement_timeout{30000};
};

class PgResourceStore final : public ResourceStore {
 public:
  explicit PgResourceStore(PgStoreOptions options);
  ~PgResourceStore() override;

  Result<VersionRecord> Read(const std::string& type, const std::string& id) override;
  Result<VersionRecord> ReadVersion(const std::string& type, const std::string& id,
                                    int64_t version) override;
  Result<WriteResult> Create(fhir::Resource& resource) override;
  Result<WriteResult> Update(fhir::Resource& resource, const std::string& id,
                             std::optional<int64_t> if_match) override;
  Result<WriteResult> Delete(const std::string& type, const std::string& id,
                             std::optional<int64_t> if_match) override;
  Result<HistoryPage> History(const HistoryQuery& query) override;
  Result<SearchPage> Search(const fhir::SearchQuery& query) override;
  Result<WriteResult> ConditionalCreate(fhir::Resource& resource, const fhir::SearchQuery& criteria,
                                        const std::string& criteria_text) override;
  Result<WriteResult> ConditionalUpdate(fhir::Resource& resource, const fhir::SearchQuery& criteria,
                                        const std::string& criteria_text) override;
  Result<WriteResult> ConditionalDelete(const fhir::SearchQuery& criteria, const std::string& criteria_text) override;
  std::optional<fhir::Error> RunTransaction(
      const std::function<std::optional<fhir::Error>(TxScope&)>& body) override;
  Result<std::vector<StoredSearchParameter>> SearchParameters() override;
  Result<std::vector<std::string>> CurrentContents(const std::string& type) override;
  Result<ReindexProgress> ReindexBatch(int batch) override;
  std::string MetricsText() override;
  std::optional<std::string> NotReady() override;
  void PrepareBulk(BulkItem& item) const override;
  Result<BulkWriteResult> WriteBulk(std::vector<BulkItem>& items, const BulkCheckpoint* checkpoint) override;
  Result<std::optional<BulkCheckpoint>> ReadBulkCheckpoint(const std::string& source) override;
  // Refreshes the planner statistics of the resource and index tables after
  // bulk writes changed many rows, so that searches right after a load are
  // planned for the data now there. Tables autovacuum is processing at that
  // moment are left to it. Throws StorageError when it fails.
  void RefreshStatistics();

  int pool_size() const;

  struct Impl;  // opaque; defined in pg_resource_store.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::storage
