// Batched audit writes.
#include "storage/pg_audit_sink.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <memory>
#include <tuple>

#include "fhir/primitives.hpp"

namespace eds::storage {
namespace {

// An array literal of text values: {"a","b"}.
std::string ArrayText(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t k = 0; k < values.size(); ++k) {
    out += k ? ",\"" : "\"";
    for (char c : values[k]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

const std::vector<std::string> kColumns = {
    "ts", "request_id", "interaction", "method", "resource_type", "resource_id", "version_id",
    "patients", "caller_subject", "caller_role", "caller_org", "caller_region", "purpose_of_use", "client_app",
    "status", "outcome_code", "latency_ms", "bytes_in", "bytes_out", "resources_returned", "query"};

}  // namespace

AuditSink::AuditSink(std::string dsn, std::size_t capacity, std::chrono::milliseconds interval, int retention_months)
    : dsn_(std::move(dsn)), capacity_(capacity), interval_(interval), retention_months_(retention_months) {
  thread_ = std::thread([this] { Loop(); });
}

AuditSink::~AuditSink() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool AuditSink::Offer(AuditRow row) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (queue_.size() >= capacity_) return false;
  queue_.push_back(std::move(row));
  if (queue_.size() >= 1000) cv_.notify_one();
  return true;
}

bool AuditSink::Full() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size() >= capacity_;
}

std::size_t AuditSink::depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size() + in_write_;
}

void AuditSink::Flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.notify_one();
  flushed_.wait(lock, [this] { return (queue_.empty() && in_write_ == 0) || stop_; });
}

void AuditSink::Loop() {
  auto next_maintenance = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<AuditRow> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait_for(lock, interval_, [this] { return stop_ || queue_.size() >= 1000; });
      if (queue_.empty()) {
        flushed_.notify_all();
        if (stop_) return;
      }
      batch.swap(queue_);
      in_write_ = batch.size();
    }
    if (std::chrono::steady_clock::now() >= next_maintenance) {
      try {
        pqxx::connection c(dsn_);
        pqxx::nontransaction tx(c);
        tx.exec("SELECT eds_audit_partitions(2)");
        if (retention_months_ > 0) tx.exec_params("SELECT eds_audit_retention($1)", retention_months_);
        next_maintenance = std::chrono::steady_clock::now() + std::chrono::hours(6);
      } catch (const std::exception&) {
        next_maintenance = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      }
    }
    bool ok = batch.empty() || Write(batch);
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ok) {
      // keep them, first in line, and pause before trying again
      batch.insert(batch.end(), std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.swap(batch);
      in_write_ = 0;
      if (stop_) return;  // the database is gone at shutdown: nothing more can be done
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    in_write_ = 0;
    if (queue_.empty()) flushed_.notify_all();
  }
}

bool AuditSink::Write(const std::vector<AuditRow>& rows) {
  static thread_local std::unique_ptr<pqxx::connection> conn;
  try {
    if (!conn || !conn->is_open()) {
      conn = std::make_unique<pqxx::connection>(dsn_);
      // the rows of reads may be lost in a crash within a bound anyway (the
      // queue); not waiting for each batch's WAL flush keeps the read path fast
      conn->set_variable("synchronous_commit", "off");
    }
    pqxx::work tx(*conn);
    pqxx::stream_to copy(tx, "audit_event", kColumns);
    for (const auto& r : rows) {
      const std::string version = r.version_id ? std::to_string(*r.version_id) : std::string();
      copy << std::make_tuple(fhir::FormatInstant(r.ts_ms), r.request_id, r.interaction, r.method, r.resource_type,
                              r.resource_id, r.version_id ? &version : nullptr, ArrayText(r.patients),
                              r.caller_subject, r.caller_role, r.caller_org, r.caller_region, r.purpose_of_use,
                              r.client_app, std::to_string(r.status), r.outcome_code, fmt::format("{:.3f}", r.latency_ms),
                              std::to_string(r.bytes_in), std::to_string(r.bytes_out),
                              std::to_string(r.resources_returned), r.query);
    }
    copy.complete();
    tx.commit();
    written_ += rows.size();
    return true;
  } catch (const std::exception&) {
    conn.reset();
    ++failures_;
    return false;
  }
}

}  // namespace eds::storage
