// Upkeep of the analytics data: the feeding_record partitions made ahead,
// the monitoring schema's materialised views refreshed on a schedule, and
// the key of the fiscal-code hashes kept in the database.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace eds::storage {

// The key of the fiscal-code hashes kept in analytics_key, made at random
// (32 bytes) by the first server that asks; every server then uses the same
// one. Throws StorageError when the database cannot be reached.
std::string LoadAnalyticsKey(const std::string& dsn);

// A background thread that makes the feeding_record partitions of the
// coming months at once and every six hours, and, when `refresh_every` is
// not zero, calls eds_monitoring_refresh() that often (the first time
// `refresh_every` after start). A failure is reported to `on_error` and
// tried again at the next turn (partitions: after five seconds).
class MonitoringMaintenance {
 public:
  using ErrorFn = std::function<void(const std::string&)>;
  MonitoringMaintenance(std::string dsn, std::chrono::seconds refresh_every, ErrorFn on_error = {});
  ~MonitoringMaintenance();  // cancels a refresh under way and stops
  MonitoringMaintenance(const MonitoringMaintenance&) = delete;
  MonitoringMaintenance& operator=(const MonitoringMaintenance&) = delete;

 private:
  void Loop();
  // Runs `sql` on the thread's connection (opened when needed); false after
  // reporting the failure.
  bool Run(const char* what, const char* sql);
  const std::string dsn_;
  const std::chrono::seconds refresh_every_;
  const ErrorFn on_error_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  struct Connection;                  // a pqxx connection (storage/ keeps pqxx out of its headers)
  std::unique_ptr<Connection> conn_;  // replaced only under mutex_
  std::thread thread_;
};

}  // namespace eds::storage
