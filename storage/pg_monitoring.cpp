// Analytics upkeep on PostgreSQL.
#include "storage/pg_monitoring.hpp"

#include <pqxx/pqxx>

#include <algorithm>

#include "storage/analytics_hash.hpp"
#include "storage/resource_store.hpp"

namespace eds::storage {

std::string LoadAnalyticsKey(const std::string& dsn) {
  try {
    pqxx::connection c(dsn);
    pqxx::work tx(c);
    // servers starting together: the first insert wins, the others read it
    pqxx::binarystring candidate(RandomKey(32));
    tx.exec_params("INSERT INTO analytics_key (key) VALUES ($1) ON CONFLICT (singleton) DO NOTHING", candidate);
    auto r = tx.exec("SELECT key FROM analytics_key");
    tx.commit();
    if (r.empty()) throw StorageError("analytics_key holds no key");
    return pqxx::binarystring(r[0][0]).str();
  } catch (const StorageError&) {
    throw;
  } catch (const std::exception& e) {
    throw StorageError(std::string("cannot read the analytics key: ") + e.what());
  }
}

struct MonitoringMaintenance::Connection {
  explicit Connection(const std::string& dsn) : c(dsn) {}
  pqxx::connection c;
};

MonitoringMaintenance::MonitoringMaintenance(std::string dsn, std::chrono::seconds refresh_every, ErrorFn on_error)
    : dsn_(std::move(dsn)), refresh_every_(refresh_every), on_error_(std::move(on_error)) {
  thread_ = std::thread([this] { Loop(); });
}

MonitoringMaintenance::~MonitoringMaintenance() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    // a refresh of a large audit trail can take a while: don't wait for it
    if (conn_) {
      try {
        conn_->c.cancel_query();
      } catch (const std::exception&) {
        // the connection is going away anyway
      }
    }
  }
  cv_.notify_all();
  thread_.join();
}

bool MonitoringMaintenance::Run(const char* what, const char* sql) {
  try {
    pqxx::connection* c = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return false;
      if (!conn_ || !conn_->c.is_open()) conn_ = std::make_unique<Connection>(dsn_);
      c = &conn_->c;
    }
    pqxx::nontransaction tx(*c);
    tx.exec(sql);
    return true;
  } catch (const std::exception& e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return false;  // cancelled at shutdown
      conn_.reset();
    }
    if (on_error_) on_error_(std::string(what) + " failed: " + e.what());
    return false;
  }
}

void MonitoringMaintenance::Loop() {
  using Clock = std::chrono::steady_clock;
  auto next_partitions = Clock::now();
  const auto never = Clock::now() + std::chrono::hours(24 * 365 * 100);
  auto next_refresh = refresh_every_.count() > 0 ? Clock::now() + refresh_every_ : never;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait_until(lock, std::min(next_partitions, next_refresh), [this] { return stop_; });
      if (stop_) break;
    }
    const auto now = Clock::now();
    if (now >= next_partitions) {
      const bool ok = Run("making the feeding_record partitions", "SELECT eds_feeding_partitions(2)");
      next_partitions = Clock::now() + (ok ? std::chrono::seconds(6 * 3600) : std::chrono::seconds(5));
    }
    if (now >= next_refresh) {
      Run("refreshing the monitoring views", "SELECT eds_monitoring_refresh()");
      next_refresh = Clock::now() + refresh_every_;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  conn_.reset();
}

}  // namespace eds::storage
