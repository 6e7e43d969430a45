// Non-blocking batched reads of current resource versions on a dedicated
// libpq connection in pipeline mode. The caller's event loop waits for
// socket readiness; no thread blocks on the database. One query reads a
// whole batch of (type, id) keys, and further batches are sent while earlier
// ones are still being answered, so the database never waits for the client.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "storage/resource_store.hpp"

namespace eds::storage {

struct ResourceKey {
  std::string type;
  std::string id;
};

// The answer to one batch, in submission order.
struct BatchResult {
  bool ok = false;                    // false: the query failed (error says why)
  std::vector<VersionRecord> rows;    // current versions found, tombstones included
  std::string error;
};

class PgAsyncReader {
 public:
  // Connects (blocking), prepares the statement and enters pipeline mode.
  // Throws StorageError when the database cannot be reached.
  PgAsyncReader(const std::string& dsn, std::chrono::milliseconds statement_timeout);
  ~PgAsyncReader();
  PgAsyncReader(const PgAsyncReader&) = delete;
  PgAsyncReader& operator=(const PgAsyncReader&) = delete;

  // The connection's socket and its address family, for readiness waits.
  // The socket stays owned here.
  int socket() const;
  int address_family() const;

  // Queues the read of `keys` and sends what the socket takes. Returns false
  // when the connection is unusable (discard this reader).
  bool Submit(const std::vector<ResourceKey>& keys);
  // True when queued output is waiting for the socket to become writable.
  bool WantsWrite() const;
  // Sends queued output; false when the connection failed.
  bool Flush();
  // Consumes what arrived and appends the batches completed since, in
  // submission order. Returns false when the connection failed.
  bool Receive(std::vector<BatchResult>& completed);
  // Batches submitted and not yet completed.
  std::size_t in_flight() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::storage
