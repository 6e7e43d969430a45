// Batched audit writes.
#include "storage/pg_audit_sink.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <memory>
#include <random>
#include <iterator>

#include "fhir/primitives.hpp"
#include "storage/pg_copy.hpp"
#include "storage/pg_statement_cache.hpp"

namespace eds::storage {
namespace {

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

// An event id: the time in ms and 64 bits, the high 32 random per process
// and the low 32 a counter, so that the events one server records in one
// millisecond sort (searches break ties on the id) in the order their ids
// were made, and two servers' ids stay apart.
void AppendAuditEventId(std::string& out, int64_t ts_ms) {
  static const uint64_t process_bits = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32);
  }();
  static std::atomic<uint32_t> counter{0};
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[40];
  char* end = std::to_chars(buf, buf + 20, static_cast<uint64_t>(ts_ms), 16).ptr;
  *end++ = '-';
  uint64_t r = process_bits | counter.fetch_add(1, std::memory_order_relaxed);
  for (int i = 15; i >= 0; --i, r >>= 4) end[i] = kHex[r & 15];
  out.append(buf, end + 16);
}

// Audit rows queued by the sink are stored as the elements of an
// audit_record[] literal: each element a quoted composite literal
// "(f1,f2,...)". A field is written bare when record_in reads it back as is,
// else quoted; quotes and backslashes are escaped for the composite, and
// then, with the composite's own quotes, once more for the array element.

bool NeedsRecordQuotes(std::string_view v) {
  if (v.empty()) return true;  // a bare empty field is NULL
  for (char c : v)
    if (c == '(' || c == ')' || c == ',' || c == '"' || c == '\\' || static_cast<unsigned char>(c) <= ' ' ||
        static_cast<unsigned char>(c) >= 0x80)
      return true;
  return false;
}

// Length of the well-formed UTF-8 sequence at `s[i]` (a non-ASCII lead
// byte), 0 when it is not one.
std::size_t Utf8Length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if ((c == 0xE0 && b(i + 1) < 0xA0) || (c == 0xED && b(i + 1) > 0x9F) || (c == 0xF0 && b(i + 1) < 0x90) ||
      (c == 0xF4 && b(i + 1) > 0x8F))
    return 0;  // overlong, surrogate, beyond U+10FFFF
  return n;
}

// One non-NULL field of the composite, escaped for the array element. Text
// PostgreSQL would refuse (a NUL byte, malformed UTF-8, from a header say)
// is written as U+FFFD, so one request can never make its batch unwritable.
void AppendRecordText(std::string& out, std::string_view v) {
  if (v.empty()) {
    out += "\\\"\\\"";  // "" (a bare empty field would be NULL), escaped for the array element
    return;
  }
  if (!NeedsRecordQuotes(v)) {
    out += v;
    return;
  }
  out += "\\\"";  // the composite's quote, escaped for the array element
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '"' || c == '\\') {
      out += "\\\\\\";  // the composite's backslash and the array's one before c
      out += c;
    } else if (c == '\0') {
      out += "\xEF\xBF\xBD";
    } else if (static_cast<unsigned char>(c) < 0x80) {
      out += c;
    } else if (std::size_t n = Utf8Length(v, i)) {
      out.append(v.data() + i, n);
      i += n - 1;
    } else {
      out += "\xEF\xBF\xBD";
    }
  }
  out += "\\\"";
}

// `v` as an element of an array literal, quoted where array_in needs it.
void AppendArrayElement(std::string& literal, std::string_view v) {
  // bare "" and NULL (any case) would read as NULL
  bool quote = v.empty() || (v.size() == 4 && (v[0] | 0x20) == 'n' && (v[1] | 0x20) == 'u' &&
                                               (v[2] | 0x20) == 'l' && (v[3] | 0x20) == 'l');
  for (char c : v)
    if (c == '{' || c == '}' || c == ',' || c == '"' || c == '\\' || static_cast<unsigned char>(c) <= ' ') quote = true;
  if (!quote) {
    literal += v;
    return;
  }
  literal += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') literal += '\\';
    literal += c;
  }
  literal += '"';
}

// A text[] field: its array literal, written as a composite field.
void AppendRecordArray(std::string& out, const std::vector<std::string>& values) {
  thread_local std::string literal;
  literal.clear();
  literal += '{';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) literal += ',';
    AppendArrayElement(literal, values[i]);
  }
  literal += '}';
  AppendRecordText(out, literal);
}

// One audit row as an element of the audit_record[] literal, followed by a
// comma, its fields in the order of audit_record.
void AppendAuditRecord(std::string& out, const AuditRow& r) {
  auto text = [&out](std::string_view f) {
    AppendRecordText(out, f);
    out += ',';
  };
  auto number = [&out](int64_t v) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
    out += ',';
  };
  out += "\"(";
  AppendInstant(out, r.ts_ms);
  out += ',';
  text(r.request_id);
  text(r.interaction);
  text(r.method);
  text(r.resource_type);
  text(r.resource_id);
  if (r.version_id) number(*r.version_id);
  else out += ',';  // NULL
  AppendRecordArray(out, r.patients);
  out += ',';
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
    out += ',';
  }
  number(r.bytes_in);
  if (r.bytes_out_known) number(r.bytes_out);
  else out += ',';
  number(r.resources_returned);
  text(r.query);
  if (r.event_id.empty()) AppendAuditEventId(out, r.ts_ms);
  else AppendRecordText(out, r.event_id);
  out += ',';
  text(r.action);
  AppendRecordArray(out, r.entities);
  out += ',';
  out += r.in_transaction ? 't' : 'f';
  out += ',';
  AppendRecordText(out, r.service);
  out += ")\",";
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
    a->inserted = false;
  }
}

std::optional<std::pair<std::string, std::vector<std::string>>> WriteAuditInsert() {
  WriteAudit* a = current_write_audit;
  if (a == nullptr || a->written_total == 0 || a->committed || a->inserted) return std::nullopt;
  a->inserted = true;
  AuditRow r = a->row;
  r.entities = a->written;
  r.patients = a->patients;
  r.in_transaction = true;
  r.bytes_out_known = false;
  if (a->finish) a->finish(r);
  if (r.event_id.empty()) r.event_id = NewAuditEventId(r.ts_ms);
  const std::string version = r.version_id ? std::to_string(*r.version_id) : std::string();
  return std::pair<std::string, std::vector<std::string>>{
      "INSERT INTO audit_event_row (ts, request_id, interaction, method, resource_type, resource_id, version_id,"
      " patients, caller_subject, caller_role, caller_org, caller_region, purpose_of_use, client_app, status,"
      " outcome_code, latency_ms, bytes_in, bytes_out, resources_returned, query, event_id, action, entities,"
      " in_transaction, service) VALUES ($1::timestamptz, $2, $3, $4, $5, $6, NULLIF($7, '')::bigint, $8::text[], $9, $10, $11, $12, $13,"
      " $14, $15::integer, $16, $17::double precision, $18::bigint, NULL, $19::integer, $20, $21, $22,"
      " $23::text[], true, $24)",
      {fhir::FormatInstant(r.ts_ms), r.request_id, r.interaction, r.method, r.resource_type, r.resource_id,
       version, TextArrayLiteral(r.patients), r.caller_subject, r.caller_role, r.caller_org, r.caller_region,
       r.purpose_of_use, r.client_app, std::to_string(r.status), r.outcome_code, fmt::format("{}", r.latency_ms),
       std::to_string(r.bytes_in), std::to_string(r.resources_returned), r.query, r.event_id, r.action,
       TextArrayLiteral(r.entities), r.service}};
}

bool InsertWriteAudit(pqxx::transaction_base& tx) {
  WriteAudit* a = current_write_audit;
  if (a == nullptr || a->written_total == 0 || a->committed) return false;
  if (a->inserted) return true;
  auto insert = WriteAuditInsert();
  ExecPrepared(tx, insert->first, insert->second);
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
  thread_local std::string record;
  thread_local std::string patients;
  record.clear();
  AppendAuditRecord(record, row);
  patients.clear();
  for (const auto& p : row.patients) {
    AppendArrayElement(patients, p);
    patients += ',';
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (queued_rows_ >= capacity_) return false;
  queue_ += record;
  queued_patients_ += patients;
  if (queued_rows_ == 0 || row.ts_ms < first_ts_ms_) first_ts_ms_ = row.ts_ms;
  if (queued_rows_ == 0 || row.ts_ms > last_ts_ms_) last_ts_ms_ = row.ts_ms;
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
  Batch batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait_for(lock, interval_, [this] { return stop_ || queued_rows_ >= kBatchRows; });
      if (queued_rows_ == 0) {
        flushed_.notify_all();
        if (stop_) return;
      }
      batch.records.clear();
      batch.records.swap(queue_);
      batch.patients.clear();
      batch.patients.swap(queued_patients_);
      batch.first_ts_ms = first_ts_ms_;
      batch.last_ts_ms = last_ts_ms_;
      batch.rows = queued_rows_;
      in_write_ = queued_rows_;
      queued_rows_ = 0;
      backlog_.store(0, std::memory_order_relaxed);
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
    bool ok = batch.rows == 0 || Write(batch);
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ok) {
      // keep them, first in line, and pause before trying again
      if (queued_rows_ > 0) {
        batch.first_ts_ms = std::min(batch.first_ts_ms, first_ts_ms_);
        batch.last_ts_ms = std::max(batch.last_ts_ms, last_ts_ms_);
      }
      batch.records += queue_;
      queue_.swap(batch.records);
      batch.patients += queued_patients_;
      queued_patients_.swap(batch.patients);
      first_ts_ms_ = batch.first_ts_ms;
      last_ts_ms_ = batch.last_ts_ms;
      queued_rows_ += batch.rows;
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

namespace {

// The patients of a batch as a text[] literal: the elements written bare
// (every Patient/id is) sorted bytewise and without repeats, the few quoted
// ones after them.
std::string PatientsLiteral(const std::string& elements) {
  std::vector<std::string_view> bare;
  std::string quoted;
  for (std::size_t i = 0; i < elements.size();) {
    if (elements[i] == '"') {  // "...", with \" and \\ inside, then a comma
      std::size_t j = i + 1;
      while (j < elements.size() && elements[j] != '"') j += elements[j] == '\\' ? 2 : 1;
      quoted.append(elements, i, j + 2 - i);
      i = j + 2;
    } else {
      const std::size_t comma = elements.find(',', i);
      bare.emplace_back(elements.data() + i, comma - i);
      i = comma + 1;
    }
  }
  std::sort(bare.begin(), bare.end());
  bare.erase(std::unique(bare.begin(), bare.end()), bare.end());
  std::string out = "{";
  for (auto v : bare) {
    out += v;
    out += ',';
  }
  out += quoted;
  if (out.size() > 1) out.pop_back();
  out += '}';
  return out;
}

}  // namespace

// One batch, one row of audit_event_batch: its records (each followed by a
// comma) become the audit_record[] literal.
bool AuditSink::Write(const Batch& batch) {
  static thread_local std::unique_ptr<pqxx::connection> conn;
  try {
    if (!conn || !conn->is_open()) {
      conn = std::make_unique<pqxx::connection>(dsn_);
      // the rows of reads may be lost in a crash within a bound anyway (the
      // queue); not waiting for each batch's WAL flush keeps the read path fast
      conn->set_variable("synchronous_commit", "off");
    }
    auto literal = [](const std::string& elements) {
      std::string out;
      out.reserve(elements.size() + 2);
      out += '{';
      out.append(elements, 0, elements.empty() ? 0 : elements.size() - 1);
      out += '}';
      return out;
    };
    pqxx::work tx(*conn);
    ExecPrepared(tx,
                 "INSERT INTO audit_event_batch (first_ts, last_ts, row_count, patients, records)"
                 " VALUES (timestamptz 'epoch' + $1::bigint * interval '1 millisecond',"
                 " timestamptz 'epoch' + $2::bigint * interval '1 millisecond', $3::integer, $4::text[], $5)",
                 {std::to_string(batch.first_ts_ms), std::to_string(batch.last_ts_ms), std::to_string(batch.rows),
                  PatientsLiteral(batch.patients), literal(batch.records)});
    tx.commit();
    written_ += batch.rows;
    return true;
  } catch (const std::exception&) {
    conn.reset();
    ++failures_;
    return false;
  }
}

}  // namespace eds::storage
