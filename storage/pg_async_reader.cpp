// libpq pipeline-mode reader behind PgAsyncReader.
#include "storage/pg_async_reader.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <sys/socket.h>

#include <cstdlib>

#include "storage/pg_statements.hpp"

namespace eds::storage {
namespace {

// A PostgreSQL text[] literal: {"a","b"} with " and \ escaped.
std::string ArrayLiteral(const std::vector<ResourceKey>& keys, bool types) {
  std::string out = "{";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : types ? keys[i].type : keys[i].id) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

void DecodeRows(PGresult* res, std::vector<VersionRecord>& rows) {
  const int n = PQntuples(res);
  rows.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    VersionRecord rec;
    rec.type = PQgetvalue(res, i, 0);
    rec.id = PQgetvalue(res, i, 1);
    rec.version = std::strtoll(PQgetvalue(res, i, 2), nullptr, 10);
    rec.deleted = PQgetvalue(res, i, 3)[0] == 't';
    rec.last_updated_ms = std::strtoll(PQgetvalue(res, i, 4), nullptr, 10);
    rec.method = fhir::WriteMethod::kUpdate;
    if (!PQgetisnull(res, i, 5))
      rec.content.assign(PQgetvalue(res, i, 5), static_cast<std::size_t>(PQgetlength(res, i, 5)));
    rows.push_back(std::move(rec));
  }
}

}  // namespace

struct PgAsyncReader::Impl {
  PGconn* conn = nullptr;
  std::size_t in_flight = 0;
  bool want_write = false;
  BatchResult current;  // results of the batch at the head of the pipeline

  ~Impl() {
    if (conn != nullptr) PQfinish(conn);
  }
};

PgAsyncReader::PgAsyncReader(const std::string& dsn, std::chrono::milliseconds statement_timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->conn = PQconnectdb(dsn.c_str());
  if (PQstatus(impl_->conn) != CONNECTION_OK)
    throw StorageError(std::string("cannot connect to the database: ") + PQerrorMessage(impl_->conn));
  auto exec = [this](PGresult* r, const char* what) {
    bool ok = r != nullptr &&
              (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    std::string err = ok ? "" : PQerrorMessage(impl_->conn);
    PQclear(r);
    if (!ok) throw StorageError(std::string(what) + ": " + err);
  };
  std::string timeout = fmt::format("SET statement_timeout = {}", statement_timeout.count());
  exec(PQexec(impl_->conn, timeout.c_str()), "setting statement_timeout");
  // One plan fits every batch (a primary-key lookup per key); left to
  // choose, PostgreSQL plans each batch anew, which costs more than the
  // lookups themselves.
  exec(PQexec(impl_->conn, "SET plan_cache_mode = force_generic_plan"), "setting plan_cache_mode");
  exec(PQprepare(impl_->conn, kSelectCurrentBatch.name, kSelectCurrentBatch.sql, 2, nullptr),
       "preparing the batched read");
  if (PQsetnonblocking(impl_->conn, 1) != 0)
    throw StorageError("cannot make the database connection non-blocking");
  if (PQenterPipelineMode(impl_->conn) != 1)
    throw StorageError(std::string("cannot enter pipeline mode: ") + PQerrorMessage(impl_->conn));
}

PgAsyncReader::~PgAsyncReader() = default;

int PgAsyncReader::socket() const { return PQsocket(impl_->conn); }

int PgAsyncReader::address_family() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(socket(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return AF_UNSPEC;
  return addr.ss_family;
}

bool PgAsyncReader::Submit(const std::vector<ResourceKey>& keys) {
  const std::string types = ArrayLiteral(keys, true);
  const std::string ids = ArrayLiteral(keys, false);
  const char* values[2] = {types.c_str(), ids.c_str()};
  if (PQsendQueryPrepared(impl_->conn, kSelectCurrentBatch.name, 2, values, nullptr, nullptr, 0) == 0)
    return false;
  // A sync point per batch: an error fails only its own batch.
  if (PQpipelineSync(impl_->conn) != 1) return false;
  ++impl_->in_flight;
  return Flush();
}

bool PgAsyncReader::WantsWrite() const { return impl_->want_write; }

bool PgAsyncReader::Flush() {
  int f = PQflush(impl_->conn);
  impl_->want_write = f == 1;
  return f >= 0;
}

bool PgAsyncReader::Receive(std::vector<BatchResult>& completed) {
  auto& s = *impl_;
  if (PQconsumeInput(s.conn) == 0) return false;
  // Per batch the pipeline yields: the query's result, NULL, then the sync.
  int nulls = 0;
  while (s.in_flight > 0 && !PQisBusy(s.conn)) {
    PGresult* res = PQgetResult(s.conn);
    if (res == nullptr) {  // end of the query's results
      if (++nulls > 1) break;  // nothing further has arrived yet
      continue;
    }
    nulls = 0;
    switch (PQresultStatus(res)) {
      case PGRES_TUPLES_OK:
        s.current.ok = true;
        DecodeRows(res, s.current.rows);
        break;
      case PGRES_PIPELINE_SYNC:
        completed.push_back(std::move(s.current));
        s.current = BatchResult{};
        --s.in_flight;
        break;
      case PGRES_PIPELINE_ABORTED:
        break;
      default:
        s.current.ok = false;
        s.current.error = PQresultErrorMessage(res);
        break;
    }
    PQclear(res);
  }
  return true;
}

std::size_t PgAsyncReader::in_flight() const { return impl_->in_flight; }

}  // namespace eds::storage
