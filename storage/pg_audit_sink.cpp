// Batched audit writes.
#include "storage/pg_audit_sink.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <charconv>
#include <memory>
#include <random>
#include <iterator>

#include "fhir/primitives.hpp"
#include "storage/pg_copy.hpp"
#include "storage/pg_statement_cache.hpp"

namespace eds::storage {
namespace {

const std::vector<std::string> kColumns = {
    "ts", "request_id", "interaction", "method", "resource_type", "resource_id", "version_id",
    "patients", "caller_subject", "caller_role", "caller_org", "caller_region", "purpose_of_use", "client_app",
    "status", "outcome_code", "latency_ms", "bytes_in", "bytes_out", "resources_returned", "query",
    "event_id", "action", "entities", "in_transaction", "service"};

// `ts_ms` as an ISO 8601 instant (UTC, milliseconds); the text up to the
// second is kept per thread, rows of one second sharing it.
void AppendInstant(std::string& out, int64_t ts_ms) {
  thread_local int64_t cached_second = INT64_MIN;
  thread_local std::string cached;  // "YYYY-MM-DDTHH:MM:SS"
  const int64_t second = ts_ms >= 0 ? ts_ms / 1000 : (ts_ms - 999) / 1000;
  if (second != cached_second) {
    cached = fhir::FormatInstant(second * 1000).substr(0, 19);
    cached_second = second;
  }
  const int ms = static_cast<int>(ts_ms - second * 1000);
  out += cached;
  const char frac[] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                       static_cast<char>('0' + ms % 10), 'Z'};
  out.append(frac, sizeof frac);
}

// A text[] value as a COPY field: the array literal {"a","b"}, its quotes
// and backslashes escaped for the array, then backslashes for COPY.
void AppendArrayField(std::string& out, const std::vector<std::string>& values) {
  out += '{';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out.append(c == '"' ? "\\\\\"" : "\\\\\\\\");
      else if (c == '\n') out += "\\n";
      else if (c == '\r') out += "\\r";
      else if (c == '\t') out += "\\t";
      else out += c;
    }
    out += '"';
  }
  out += '}';
}

void AppendAuditEventId(std::string& out, int64_t ts_ms) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[40];
  char* end = std::to_chars(buf, buf + 20, static_cast<uint64_t>(ts_ms), 16).ptr;
  *end++ = '-';
  uint64_t r = rng();
  for (int i = 15; i >= 0; --i, r >>= 4) end[i] = kHex[r & 15];
  out.append(buf, end + 16);
}

// One audit row as a COPY text line, in the order of kColumns.
void AppendAuditLine(std::string& out, const AuditRow& r) {
  auto text = [&out](std::string_view f) {
    AppendCopyField(out, f);
    out += '\t';
  };
  auto number = [&out](int64_t v) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
    out += '\t';
  };
  AppendInstant(out, r.ts_ms);
  out += '\t';
  text(r.request_id);
  text(r.interaction);
  text(r.method);
  text(r.resource_type);
  text(r.resource_id);
  if (r.version_id) number(*r.version_id);
  else out.append(kCopyNull).push_back('\t');
  AppendArrayField(out, r.patients);
  out += '\t';
  text(r.caller_subject);
  text(r.caller_role);
  text(r.caller_org);
  text(r.caller_region);
  text(r.purpose_of_use);
  text(r.client_app);
  number(r.status);
  text(r.outcome_code);
  {
    char buf[32];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, r.latency_ms, std::chars_format::fixed, 3).ptr);
    out += '\t';
  }
  number(r.bytes_in);
  if (r.bytes_out_known) number(r.bytes_out);
  else out.append(kCopyNull).push_back('\t');
  number(r.resources_returned);
  text(r.query);
  if (r.event_id.empty()) AppendAuditEventId(out, r.ts_ms);
  else AppendCopyField(out, r.event_id);
  out += '\t';
  text(r.action);
  AppendArrayField(out, r.entities);
  out += '\t';
  text(r.in_transaction ? "t" : "f");
  AppendCopyField(out, r.service);
  out += '\n';
}

thread_local WriteAudit* current_write_audit = nullptr;

// Rows that wake the writing thread before its interval is up.
constexpr std::size_t kBatchRows = 1000;

}  // namespace

std::string NewAuditEventId(int64_t ts_ms) {
  std::string id;
  AppendAuditEventId(id, ts_ms);
  return id;
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
  ExecPrepared(tx,
      "INSERT INTO audit_event (ts, request_id, interaction, method, resource_type, resource_id, version_id,"
      " patients, caller_subject, caller_role, caller_org, caller_region, purpose_of_use, client_app, status,"
      " outcome_code, latency_ms, bytes_in, bytes_out, resources_returned, query, event_id, action, entities,"
      " in_transaction, service) VALUES ($1::timestamptz, $2, $3, $4, $5, $6, NULLIF($7, '')::bigint, $8::text[], $9, $10, $11, $12, $13,"
      " $14, $15::integer, $16, $17::double precision, $18::bigint, NULL, $19::integer, $20, $21, $22,"
      " $23::text[], true, $24)",
      {fhir::FormatInstant(r.ts_ms), r.request_id, r.interaction, r.method, r.resource_type, r.resource_id,
       version, TextArrayLiteral(r.patients), r.caller_subject, r.caller_role, r.caller_org, r.caller_region,
       r.purpose_of_use, r.client_app, std::to_string(r.status), r.outcome_code, fmt::format("{}", r.latency_ms),
       std::to_string(r.bytes_in), std::to_string(r.resources_returned), r.query, r.event_id, r.action,
       TextArrayLiteral(r.entities), r.service});
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

bool AuditSink::Offer(const AuditRow& row) {
  thread_local std::string line;
  line.clear();
  AppendAuditLine(line, row);
  std::lock_guard<std::mutex> lock(mutex_);
  if (queued_rows_ >= capacity_) return false;
  queue_ += line;
  backlog_.store(++queued_rows_, std::memory_order_relaxed);
  if (queued_rows_ == kBatchRows) cv_.notify_one();
  return true;
}

bool AuditSink::Full() const { return backlog_.load(std::memory_order_relaxed) >= capacity_; }

std::size_t AuditSink::depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_rows_ + in_write_;
}

void AuditSink::Flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.notify_one();
  flushed_.wait(lock, [this] { return (queued_rows_ == 0 && in_write_ == 0) || stop_; });
}

void AuditSink::Loop() {
  auto next_maintenance = std::chrono::steady_clock::now();
  std::string batch;
  for (;;) {
    std::size_t rows = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait_for(lock, interval_, [this] { return stop_ || queued_rows_ >= kBatchRows; });
      if (queued_rows_ == 0) {
        flushed_.notify_all();
        if (stop_) return;
      }
      batch.clear();
      batch.swap(queue_);
      rows = queued_rows_;
      queued_rows_ = 0;
      backlog_.store(0, std::memory_order_relaxed);
      in_write_ = rows;
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
    bool ok = rows == 0 || Write(batch, rows);
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ok) {
      // keep them, first in line, and pause before trying again
      batch += queue_;
      queue_.swap(batch);
      queued_rows_ += rows;
      backlog_.store(queued_rows_, std::memory_order_relaxed);
      in_write_ = 0;
      if (stop_) return;  // the database is gone at shutdown: nothing more can be done
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    in_write_ = 0;
    if (queued_rows_ == 0) flushed_.notify_all();
  }
}

bool AuditSink::Write(std::string& lines, std::size_t rows) {
  static thread_local std::unique_ptr<pqxx::connection> conn;
  try {
    if (!conn || !conn->is_open()) {
      conn = std::make_unique<pqxx::connection>(dsn_);
      // the rows of reads may be lost in a crash within a bound anyway (the
      // queue); not waiting for each batch's WAL flush keeps the read path fast
      conn->set_variable("synchronous_commit", "off");
    }
    pqxx::work tx(*conn);
    CopyLines(tx, "audit_event", kColumns, lines);
    tx.commit();
    written_ += rows;
    return true;
  } catch (const std::exception&) {
    // CopyLines takes the last newline off: put it back for the retry
    if (!lines.empty() && lines.back() != '\n') lines += '\n';
    conn.reset();
    ++failures_;
    return false;
  }
}

}  // namespace eds::storage
