// Resource keys (migration 0016): the number a resource's search index rows
// carry, by which they are found. Keys come from the database's sequence
// resource_key, in blocks: each call of nextval reserves kResourceKeyBlock
// keys, so they are unique, and grow with time (index entries keyed by them
// are added near the right edge of their B-tree).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace pqxx {
class transaction_base;
}

namespace eds::storage {

inline constexpr int64_t kResourceKeyBlock = 1024;  // the sequence's increment

// The keys of one database, handed out from a reserved block; thread-safe.
class ResourceKeys {
 public:
  // A key for a new resource; reserves a block through `tx` when the
  // current one is used up (a reservation is never rolled back).
  int64_t Next(pqxx::transaction_base& tx);

 private:
  std::mutex mutex_;
  int64_t next_ = 0, end_ = 0;
};

// `n` keys of blocks reserved for the caller alone (a bulk batch's keys,
// ascending and next to each other).
std::vector<int64_t> ReserveResourceKeys(pqxx::transaction_base& tx, std::size_t n);

}  // namespace eds::storage
