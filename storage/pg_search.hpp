// Search SQL (storage-internal): runs a parsed search on one connection.
#pragma once

#include <pqxx/connection>
#include <pqxx/transaction_base>

#include "storage/resource_store.hpp"

namespace eds::storage {

fhir::Result<SearchPage> RunSearch(pqxx::connection& conn, const fhir::SearchQuery& query);
// The same inside the caller's transaction (conditional writes).
fhir::Result<SearchPage> RunSearchIn(pqxx::transaction_base& tx, const fhir::SearchQuery& query);

}  // namespace eds::storage
