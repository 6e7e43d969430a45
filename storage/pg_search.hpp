// Search SQL (storage-internal): runs a parsed search on one connection.
#pragma once

#include <pqxx/connection>

#include "storage/resource_store.hpp"

namespace eds::storage {

fhir::Result<SearchPage> RunSearch(pqxx::connection& conn, const fhir::SearchQuery& query);

}  // namespace eds::storage
