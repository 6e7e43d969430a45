// Bulk writes (storage-internal): a batch of prepared resources written in
// one transaction with COPY, and the load checkpoints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "storage/resource_store.hpp"

namespace eds::storage {

// Encodes the item's index rows and version-1 content as COPY text (no
// database; any thread).
void EncodeBulkItem(BulkItem& item);

// Writes `items` (each encoded) and `checkpoint` in one transaction on
// `conn`. A concurrent creator of one of the ids makes the batch start over
// (twice at most, then kConflict). Throws pqxx errors for the caller to
// translate.
fhir::Result<BulkWriteResult> WriteBulkOn(pqxx::connection& conn, std::vector<BulkItem>& items,
                                          const BulkCheckpoint* checkpoint);

std::optional<BulkCheckpoint> ReadBulkCheckpointOn(pqxx::connection& conn, const std::string& source);

}  // namespace eds::storage
