// A fixed-size pool of PostgreSQL connections with RAII leases. A lease that
// saw a broken connection is discarded and reopened on next use.
#pragma once

#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

namespace eds::storage {

class PgPool {
 public:
  // `prepare` runs on every new connection (to prepare statements).
  PgPool(std::string dsn, int size, std::chrono::milliseconds acquire_timeout,
         std::function<void(pqxx::connection&)> prepare = {});
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  class Lease {
   public:
    Lease(PgPool& pool, std::size_t slot) : pool_(&pool), slot_(slot) {}
    Lease(Lease&& o) noexcept : pool_(o.pool_), slot_(o.slot_), broken_(o.broken_) { o.pool_ = nullptr; }
    Lease(const Lease&) = delete;
    ~Lease();
    pqxx::connection& conn();
    // The connection is unusable; close it instead of returning it.
    void MarkBroken() { broken_ = true; }

   private:
    PgPool* pool_;
    std::size_t slot_;
    bool broken_ = false;
  };

  // Waits up to the acquire timeout for a free connection; nullopt when none
  // became free. Opening a connection may throw pqxx::broken_connection.
  std::optional<Lease> Acquire();

  int size() const { return static_cast<int>(slots_.size()); }

  struct Stats {
    int size = 0;
    int in_use = 0;
    uint64_t acquires = 0;
    uint64_t timeouts = 0;
    double wait_seconds = 0;  // total time spent waiting for a connection
  };
  Stats stats() const;
  const std::string& dsn() const { return dsn_; }

 private:
  void Release(std::size_t slot, bool broken);

  std::string dsn_;
  std::chrono::milliseconds acquire_timeout_;
  std::function<void(pqxx::connection&)> prepare_;
  std::vector<std::unique_ptr<pqxx::connection>> slots_;
  std::vector<std::size_t> free_;
  mutable std::mutex mu_;
  uint64_t acquires_ = 0;
  uint64_t timeouts_ = 0;
  double wait_seconds_ = 0;
  std::condition_variable cv_;
};

}  // namespace eds::storage
