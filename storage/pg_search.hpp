// Search SQL (storage-internal): runs a parsed search on one connection.
#pragma once

#include <pqxx/connection>
#include <pqxx/transaction_base>

#include "storage/resource_store.hpp"

namespace eds::storage {

fhir::Result<SearchPage> RunSearch(pqxx::connection& conn, const fhir::SearchQuery& query);
// The same inside the caller's transaction (conditional writes). With
// `plan`, the page query is not run: its EXPLAIN output is stored there
// (tests check that key searches use the indexes).
fhir::Result<SearchPage> RunSearchIn(pqxx::transaction_base& tx, const fhir::SearchQuery& query,
                                     std::string* plan = nullptr);
// The plan PostgreSQL chooses for the page query of `query`.
fhir::Result<std::string> ExplainSearch(pqxx::connection& conn, const fhir::SearchQuery& query);

}  // namespace eds::storage
