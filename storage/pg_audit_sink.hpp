// The audit sink: audit rows queued by request handlers and written to
// `audit_event` in batches (one INSERT every few milliseconds) by a
// background thread. Nothing is dropped: rows that cannot be written stay
// queued and are retried, and when the queue is full the server refuses new
// requests (503) instead of serving them unaudited.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace eds::storage {

struct AuditRow {
  int64_t ts_ms = 0;
  std::string request_id;
  std::string interaction;
  std::string method;
  std::string resource_type;
  std::string resource_id;
  std::optional<int64_t> version_id;
  std::vector<std::string> patients;  // Patient/id
  std::string caller_subject = "anonymous";
  std::string caller_role, caller_org, caller_region, purpose_of_use, client_app;
  int status = 0;
  std::string outcome_code;
  double latency_ms = 0;
  int64_t bytes_in = 0, bytes_out = 0;
  int resources_returned = 0;
  std::string query;
};

class AuditSink {
 public:
  // `capacity`: rows queued at most; `interval`: longest wait before a batch
  // is written. Creates the coming months' partitions at start and daily;
  // with `retention_months` > 0, drops partitions older than that daily.
  AuditSink(std::string dsn, std::size_t capacity, std::chrono::milliseconds interval, int retention_months = 0);
  ~AuditSink();  // writes what is queued, then stops
  AuditSink(const AuditSink&) = delete;
  AuditSink& operator=(const AuditSink&) = delete;

  // Queues a row; false when the queue is full (the row is not taken).
  bool Offer(AuditRow row);
  bool Full() const;
  std::size_t depth() const;
  uint64_t written() const { return written_.load(); }
  uint64_t write_failures() const { return failures_.load(); }
  // Blocks until every row queued before the call is written (tests, shutdown).
  void Flush();

 private:
  void Loop();
  bool Write(const std::vector<AuditRow>& rows);
  const std::string dsn_;
  const std::size_t capacity_;
  const std::chrono::milliseconds interval_;
  const int retention_months_;
  mutable std::mutex mutex_;
  std::condition_variable cv_, flushed_;
  std::vector<AuditRow> queue_;
  std::size_t in_write_ = 0;
  bool stop_ = false;
  std::atomic<uint64_t> written_{0}, failures_{0};
  std::thread thread_;
};

}  // namespace eds::storage
