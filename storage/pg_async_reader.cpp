// libpq non-blocking query state machine for PgAsyncReader.
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

}  // namespace

struct PgAsyncReader::Impl {
  PGconn* conn = nullptr;
  std::vector<VersionRecord> rows;
  bool have_result = false;
  bool flushing = false;
  std::string error;

  ~Impl() {
    if (conn != nullptr) PQfinish(conn);
  }

  Step Drain() {
    if (flushing) {
      int f = PQflush(conn);
      if (f < 0) return Step::kFailed;
      if (f == 1) return Step::kWantWrite;
      flushing = false;
    }
    if (PQconsumeInput(conn) == 0) return Step::kFailed;
    while (!PQisBusy(conn)) {
      PGresult* res = PQgetResult(conn);
      if (res == nullptr) {
        if (!error.empty()) throw StorageError(error);
        return have_result ? Step::kDone : Step::kFailed;
      }
      if (!have_result) Decode(res);
      PQclear(res);
    }
    return Step::kWantRead;
  }

  void Decode(PGresult* res) {
    have_result = true;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      error = std::string("batched read failed: ") + PQresultErrorMessage(res);
      return;
    }
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
  exec(PQprepare(impl_->conn, kSelectCurrentBatch.name, kSelectCurrentBatch.sql, 2, nullptr),
       "preparing the batched read");
  if (PQsetnonblocking(impl_->conn, 1) != 0)
    throw StorageError("cannot make the database connection non-blocking");
}

PgAsyncReader::~PgAsyncReader() = default;

int PgAsyncReader::socket() const { return PQsocket(impl_->conn); }

int PgAsyncReader::address_family() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(socket(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return AF_UNSPEC;
  return addr.ss_family;
}

PgAsyncReader::Step PgAsyncReader::StartBatch(const std::vector<ResourceKey>& keys) {
  impl_->rows.clear();
  impl_->have_result = false;
  impl_->error.clear();
  const std::string types = ArrayLiteral(keys, true);
  const std::string ids = ArrayLiteral(keys, false);
  const char* values[2] = {types.c_str(), ids.c_str()};
  if (PQsendQueryPrepared(impl_->conn, kSelectCurrentBatch.name, 2, values, nullptr, nullptr, 0) == 0)
    return Step::kFailed;
  impl_->flushing = true;
  return impl_->Drain();
}

PgAsyncReader::Step PgAsyncReader::Continue() { return impl_->Drain(); }

std::vector<VersionRecord> PgAsyncReader::TakeRows() { return std::move(impl_->rows); }

}  // namespace eds::storage
