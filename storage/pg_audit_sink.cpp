// Batched audit writes.
#include "storage/pg_audit_sink.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <memory>

#include "fhir/json.hpp"
#include "fhir/primitives.hpp"

namespace eds::storage {
namespace {

void Field(std::string& out, const char* name, const std::string& value) {
  out += '"';
  out += name;
  out += "\":";
  fhir::AppendJsonString(out, value);
  out += ',';
}

// The rows as a JSON array of audit_event records (json_populate_recordset).
std::string ToJson(const std::vector<AuditRow>& rows) {
  std::string out = "[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    out += i ? ",{" : "{";
    Field(out, "ts", fhir::FormatInstant(r.ts_ms));
    Field(out, "request_id", r.request_id);
    Field(out, "interaction", r.interaction);
    Field(out, "method", r.method);
    Field(out, "resource_type", r.resource_type);
    Field(out, "resource_id", r.resource_id);
    if (r.version_id) out += fmt::format("\"version_id\":{},", *r.version_id);
    out += "\"patients\":[";
    for (std::size_t k = 0; k < r.patients.size(); ++k) {
      if (k) out += ',';
      fhir::AppendJsonString(out, r.patients[k]);
    }
    out += "],";
    Field(out, "caller_subject", r.caller_subject);
    Field(out, "caller_role", r.caller_role);
    Field(out, "caller_org", r.caller_org);
    Field(out, "caller_region", r.caller_region);
    Field(out, "purpose_of_use", r.purpose_of_use);
    Field(out, "client_app", r.client_app);
    Field(out, "outcome_code", r.outcome_code);
    Field(out, "query", r.query);
    out += fmt::format("\"status\":{},\"latency_ms\":{},\"bytes_in\":{},\"bytes_out\":{},\"resources_returned\":{}}}",
                       r.status, r.latency_ms, r.bytes_in, r.bytes_out, r.resources_returned);
  }
  return out + "]";
}

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
    if (!conn || !conn->is_open()) conn = std::make_unique<pqxx::connection>(dsn_);
    pqxx::work tx(*conn);
    tx.exec_params("INSERT INTO audit_event SELECT * FROM json_populate_recordset(NULL::audit_event, $1::json)",
                   ToJson(rows));
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
