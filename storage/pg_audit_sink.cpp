// Batched audit writes.
#include "storage/pg_audit_sink.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <memory>
#include <random>
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
    "status", "outcome_code", "latency_ms", "bytes_in", "bytes_out", "resources_returned", "query",
    "event_id", "action", "entities", "in_transaction", "service"};

thread_local WriteAudit* current_write_audit = nullptr;

}  // namespace

std::string NewAuditEventId(int64_t ts_ms) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:x}-{:016x}", ts_ms, rng());
}

std::optional<int64_t> AuditEventIdTime(const std::string& id) {
  auto dash = id.find('-');
  if (dash == 0 || dash == std::string::npos || dash > 15 || id.size() != dash + 17) return std::nullopt;
  int64_t ts = 0;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (i == dash) continue;
    if (!hex) return std::nullopt;
    if (i < dash) ts = ts * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return ts;
}

WriteAudit* CurrentWriteAudit() { return current_write_audit; }

ScopedWriteAudit::ScopedWriteAudit(WriteAudit* audit) : previous_(current_write_audit) {
  current_write_audit = audit;
}
ScopedWriteAudit::~ScopedWriteAudit() { current_write_audit = previous_; }

void NoteAuditedWrite(const std::string& type, const std::string& id, int64_t version) {
  WriteAudit* a = current_write_audit;
  if (a == nullptr) return;
  ++a->written_total;
  if (a->written.size() < kMaxAuditEntities) a->written.push_back(fmt::format("{}/{}/_history/{}", type, id, version));
}

void NoteAuditedPatient(std::string patient_ref) {
  WriteAudit* a = current_write_audit;
  if (a == nullptr || a->patients.size() >= 50) return;
  if (std::find(a->patients.begin(), a->patients.end(), patient_ref) == a->patients.end())
    a->patients.push_back(std::move(patient_ref));
}

void ResetAuditedWrites() {
  if (WriteAudit* a = current_write_audit) {
    a->written.clear();
    a->patients.clear();
    a->written_total = 0;
  }
}

bool InsertWriteAudit(pqxx::transaction_base& tx) {
  WriteAudit* a = current_write_audit;
  if (a == nullptr || a->written_total == 0 || a->committed) return false;
  AuditRow r = a->row;
  r.entities = a->written;
  r.patients = a->patients;
  r.in_transaction = true;
  r.bytes_out_known = false;
  if (a->finish) a->finish(r);
  if (r.event_id.empty()) r.event_id = NewAuditEventId(r.ts_ms);
  const std::string version = r.version_id ? std::to_string(*r.version_id) : std::string();
  tx.exec_params(
      "INSERT INTO audit_event (ts, request_id, interaction, method, resource_type, resource_id, version_id,"
      " patients, caller_subject, caller_role, caller_org, caller_region, purpose_of_use, client_app, status,"
      " outcome_code, latency_ms, bytes_in, bytes_out, resources_returned, query, event_id, action, entities,"
      " in_transaction, service) VALUES ($1::timestamptz, $2, $3, $4, $5, $6, NULLIF($7, '')::bigint, $8::text[], $9, $10, $11, $12, $13,"
      " $14, $15::integer, $16, $17::double precision, $18::bigint, NULL, $19::integer, $20, $21, $22,"
      " $23::text[], true, $24)",
      fhir::FormatInstant(r.ts_ms), r.request_id, r.interaction, r.method, r.resource_type, r.resource_id,
      version, ArrayText(r.patients), r.caller_subject, r.caller_role, r.caller_org,
      r.caller_region, r.purpose_of_use, r.client_app, r.status, r.outcome_code, r.latency_ms, r.bytes_in,
      r.resources_returned, r.query, r.event_id, r.action, ArrayText(r.entities), r.service);
  return true;
}

void MarkWriteAuditCommitted() {
  if (WriteAudit* a = current_write_audit; a != nullptr && a->written_total > 0) a->committed = true;
}

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
      const std::string bytes_out = std::to_string(r.bytes_out);
      copy << std::make_tuple(fhir::FormatInstant(r.ts_ms), r.request_id, r.interaction, r.method, r.resource_type,
                              r.resource_id, r.version_id ? &version : nullptr, ArrayText(r.patients),
                              r.caller_subject, r.caller_role, r.caller_org, r.caller_region, r.purpose_of_use,
                              r.client_app, std::to_string(r.status), r.outcome_code, fmt::format("{:.3f}", r.latency_ms),
                              std::to_string(r.bytes_in), r.bytes_out_known ? &bytes_out : nullptr,
                              std::to_string(r.resources_returned), r.query,
                              r.event_id.empty() ? NewAuditEventId(r.ts_ms) : r.event_id, r.action,
                              ArrayText(r.entities), std::string(r.in_transaction ? "t" : "f"), r.service);
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
