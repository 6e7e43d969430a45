#include "storage/resource_key.hpp"

#include <pqxx/pqxx>

#include <string>

namespace eds::storage {

int64_t ResourceKeys::Next(pqxx::transaction_base& tx) {
  std::lock_guard lock(mutex_);
  if (next_ == end_) {
    next_ = tx.exec("SELECT nextval('resource_key')")[0][0].as<int64_t>();
    end_ = next_ + kResourceKeyBlock;
  }
  return next_++;
}

std::vector<int64_t> ReserveResourceKeys(pqxx::transaction_base& tx, std::size_t n) {
  std::vector<int64_t> keys;
  if (n == 0) return keys;
  keys.reserve(n);
  const auto blocks = static_cast<int64_t>((n + kResourceKeyBlock - 1) / kResourceKeyBlock);
  auto r = tx.exec_params("SELECT nextval('resource_key') FROM generate_series(1, $1) ORDER BY 1", blocks);
  for (const auto& row : r)
    for (int64_t k = row[0].as<int64_t>(), end = k + kResourceKeyBlock; k < end && keys.size() < n; ++k)
      keys.push_back(k);
  return keys;
}

}  // namespace eds::storage
