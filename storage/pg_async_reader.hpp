// Non-blocking batched reads of current resource versions on a dedicated
// libpq connection. The caller's event loop waits for socket readiness and
// calls Continue(); no thread blocks on the database. One query reads a whole
// batch of (type, id) keys, so concurrent reads share a round trip.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "storage/resource_store.hpp"

namespace eds::storage {

struct ResourceKey {
  std::string type;
  std::string id;
};

class PgAsyncReader {
 public:
  // Connects (blocking) and prepares the statement. Throws StorageError when
  // the database cannot be reached.
  PgAsyncReader(const std::string& dsn, std::chrono::milliseconds statement_timeout);
  ~PgAsyncReader();
  PgAsyncReader(const PgAsyncReader&) = delete;
  PgAsyncReader& operator=(const PgAsyncReader&) = delete;

  // The connection's socket and its address family, for readiness waits.
  // The socket stays owned here.
  int socket() const;
  int address_family() const;

  enum class Step { kWantRead, kWantWrite, kDone, kFailed };

  // Sends the read of the current versions of `keys`. kFailed: the
  // connection is unusable (discard this reader).
  Step StartBatch(const std::vector<ResourceKey>& keys);
  // Advances after the socket became ready.
  Step Continue();
  // Once Continue() returned kDone: the current versions found (tombstones
  // included); keys without a row do not exist.
  std::vector<VersionRecord> TakeRows();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::storage
