// The audit sink: audit rows queued by request handlers and written by a
// background thread every few milliseconds, each write one row of
// `audit_event_batch` holding all the audit rows queued since the last
// (migration 0010; the view `audit_event` shows them one row each). A row is
// encoded as its audit_record literal by the thread that offers it, and
// queued as those bytes: the writing thread only sends them. Nothing is
// dropped: rows that cannot be written stay queued and are retried, and when
// the queue is full the server refuses new requests (503) instead of serving
// them unaudited.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace pqxx {
class transaction_base;
}

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
  std::string event_id;               // AuditEvent.id: hex of ts_ms, '-', 16 random hex digits
  std::string action;                 // C R U D E
  std::string service;                // FSE service code (SERV_ASS_xx, SERV_PRO_xx, SERV_WRITE_0x)
  std::vector<std::string> entities;  // Type/id (read) or Type/id/_history/v (written), capped
  bool in_transaction = false;        // written inside the write's own transaction
  bool bytes_out_known = true;        // false for in_transaction rows (NULL)
};

// Audit rows are served as read-only AuditEvent resources
// (storage/pg_audit_events.hpp).
inline constexpr std::string_view kAuditEventType = "AuditEvent";
// The search parameters an AuditEvent search answers (others are reported
// like unknown ones): _id, _lastUpdated, date, patient (chains on the
// patient included), agent, entity, type, subtype, action, outcome.
bool IsAuditEventSearchParam(std::string_view code);

// A fresh AuditEvent id for a row recorded at `ts_ms`.
std::string NewAuditEventId(int64_t ts_ms);
// The timestamp an AuditEvent id was made for; nullopt when `id` is not one.
std::optional<int64_t> AuditEventIdTime(const std::string& id);

// Entities recorded per row at most.
inline constexpr std::size_t kMaxAuditEntities = 50;

// The audit of one write request, recorded by the store inside the database
// transaction that commits its changes: when that transaction has written
// at least one resource version, the store calls `finish` on `row` (with the
// versions written in `row.entities`) and inserts it before committing, so a
// committed write always has its audit row. `committed` then tells the
// caller not to queue the row again. ScopedWriteAudit makes it current for
// the calling thread (requests are served one per thread at a time).
struct WriteAudit {
  AuditRow row;
  std::function<void(AuditRow&)> finish;
  std::vector<std::string> written;   // Type/id/_history/v, in write order
  std::vector<std::string> patients;  // Patient/id a deleted resource referred to
  std::size_t written_total = 0;
  bool inserted = false;  // the row's INSERT is part of the transaction (WriteAuditInsert)
  bool committed = false;
};
WriteAudit* CurrentWriteAudit();
class ScopedWriteAudit {
 public:
  explicit ScopedWriteAudit(WriteAudit* audit);
  ~ScopedWriteAudit();
  ScopedWriteAudit(const ScopedWriteAudit&) = delete;
  ScopedWriteAudit& operator=(const ScopedWriteAudit&) = delete;

 private:
  WriteAudit* previous_;
};
// The store's side: notes a version written (no-op without a current audit),
// forgets the notes of a transaction attempt that is retried, and inserts
// the row in `tx` before its commit (returns whether it did).
void NoteAuditedWrite(const std::string& type, const std::string& id, int64_t version);
// A deletion's patients (its content is gone from the request and answer).
void NoteAuditedPatient(std::string patient_ref);
void ResetAuditedWrites();
bool InsertWriteAudit(pqxx::transaction_base& tx);
// The INSERT of the row (its SQL, parameters $1..$n), for a caller that
// sends it with other statements just before the commit; nothing when there
// is nothing to audit. InsertWriteAudit then only reports it.
std::optional<std::pair<std::string, std::vector<std::string>>> WriteAuditInsert();
// After the commit of a transaction InsertWriteAudit wrote to.
void MarkWriteAuditCommitted();

class AuditSink {
 public:
  // `capacity`: rows queued at most; `interval`: longest wait before a batch
  // is written. Creates the coming months' partitions at start and daily;
  // with `retention_months` > 0, drops partitions older than that daily.
  AuditSink(std::string dsn, std::size_t capacity, std::chrono::milliseconds interval, int retention_months = 0);
  ~AuditSink();  // writes what is queued, then stops
  AuditSink(const AuditSink&) = delete;
  AuditSink& operator=(const AuditSink&) = delete;

  // Queues a row (encoded here, on the calling thread); false when the
  // queue is full (the row is not taken).
  bool Offer(const AuditRow& row);
  bool Full() const;
  std::size_t depth() const;
  uint64_t written() const { return written_.load(); }
  uint64_t write_failures() const { return failures_.load(); }
  // Blocks until every row queued before the call is written (tests, shutdown).
  void Flush();

 private:
  // What one write takes: the records (audit_record[] elements, each
  // followed by a comma), their patients (text[] elements, likewise), the
  // earliest and latest row instants, the row count.
  struct Batch {
    std::string records, patients;
    int64_t first_ts_ms = 0, last_ts_ms = 0;
    std::size_t rows = 0;
  };
  void Loop();
  bool Write(const Batch& batch);
  const std::string dsn_;
  const std::size_t capacity_;
  const std::chrono::milliseconds interval_;
  const int retention_months_;
  mutable std::mutex mutex_;
  std::condition_variable cv_, flushed_;
  std::string queue_;            // audit_record[] elements, each followed by a comma
  std::string queued_patients_;  // text[] elements, each followed by a comma
  int64_t first_ts_ms_ = 0, last_ts_ms_ = 0;  // of the queued rows
  std::size_t queued_rows_ = 0;  // elements in queue_
  std::atomic<std::size_t> backlog_{0};  // queued_rows_, read without the lock
  std::size_t in_write_ = 0;
  bool stop_ = false;
  std::atomic<uint64_t> written_{0}, failures_{0};
  std::thread thread_;
};

}  // namespace eds::storage
