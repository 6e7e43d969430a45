// PostgreSQL ResourceStore. All SQL of the resource tables lives here, as
// named statements prepared on every pooled connection; every value is a
// bound parameter.
#include "storage/pg_resource_store.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "fhir/search_index.hpp"
#include "fhir/search_query.hpp"
#include "storage/migrator.hpp"
#include "storage/pg_audit_events.hpp"
#include "storage/pg_audit_sink.hpp"
#include "storage/pg_bulk.hpp"
#include "storage/pg_pool.hpp"
#include "storage/pg_search.hpp"
#include "storage/pg_statement_cache.hpp"
#include "storage/pg_statements.hpp"
#include "storage/resource_key.hpp"

namespace eds::storage {
namespace {

using fhir::ErrorKind;
using fhir::MakeError;
using fhir::WriteMethod;

WriteMethod MethodFromSql(std::string_view m) {
  if (m == "POST") return WriteMethod::kCreate;
  if (m == "DELETE") return WriteMethod::kDelete;
  return WriteMethod::kUpdate;
}

// A PostgreSQL array literal of text values ({"a","b"}); `null_for` marks
// elements to write as unquoted infinity words instead (timestamps).
void AppendArrayElement(std::string& out, const std::string& value) {
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

std::string ArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    AppendArrayElement(out, values[i]);
  }
  out += '}';
  return out;
}

// The unnest parameters of rows buffered for one statement: an array
// literal of each of the members, in that order.
template <class Row, class... Member>
std::vector<std::string> ColumnArrays(const std::vector<Row>& rows, Member... member) {
  auto column = [&rows](std::string Row::*m) {
    std::string out = "{";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (i) out += ',';
      AppendArrayElement(out, rows[i].*m);
    }
    out += '}';
    return out;
  };
  return {column(member)...};
}

std::string TimestampText(int64_t ms) {
  // open ends of periods are stored as -infinity / infinity
  if (ms <= INT64_MIN / 4) return "-infinity";
  if (ms >= INT64_MAX / 4) return "infinity";
  return fhir::FormatInstant(ms);
}

// Index rows to write: one statement per index table for all the items
// (and one removing the old rows of those that had some). A transaction
// scope buffers the rows of the resources it writes and writes them at
// once, before any search inside the transaction and before its commit,
// instead of one statement per resource and table (a 20-entry Bundle made
// some 120 index statements); a single write is a buffer of one.
struct PendingIndexItem {
  std::string type, id;
  bool replace = false;  // the resource had index rows before: they go first
  fhir::IndexRows rows;
  int64_t generation = 0;
  int64_t key = 0;  // the resource's key (res_key, migration 0016)
};
struct PendingIndex {
  std::vector<PendingIndexItem> items;
  const pqxx::work* tx = nullptr;  // the transaction a scope buffers for
};
// The buffer of the transaction scope running on this thread, if any.
thread_local PendingIndex* pending_index = nullptr;

// Data-modifying queries sent as one statement of WITH queries: one round
// trip for a transaction's buffered writes and every index table they fill.
// (All of them see the database as it was before the statement: a DELETE
// of a resource's old index rows does not see the new rows an INSERT beside
// it adds.)
class InsertBatch {
 public:
  // Adds `insert` as a WITH query of its own; its parameters are $1..$n
  // for `params`.
  void Add(std::string_view insert, std::vector<std::string> params) {
    AddQuery("i" + std::to_string(parts_ + 1), insert, std::move(params));
  }
  // Adds the WITH query `name` AS (`query`), which later ones may name.
  void AddQuery(const std::string& name, std::string_view query, std::vector<std::string> params) {
    sql_ += parts_++ == 0 ? "WITH " : ", ";
    sql_ += name + " AS (";
    const std::size_t offset = params_.size();
    for (std::size_t i = 0; i < query.size(); ++i) {
      sql_ += query[i];
      if (query[i] != '$') continue;
      std::size_t j = i + 1;
      while (j < query.size() && query[j] >= '0' && query[j] <= '9') ++j;
      if (j == i + 1) continue;
      sql_ += std::to_string(std::stoul(std::string(query.substr(i + 1, j - i - 1))) + offset);
      i = j - 1;
    }
    sql_ += ')';
    for (auto& p : params) params_.push_back(std::move(p));
  }
  bool empty() const { return parts_ == 0; }
  // Runs the statement, whose main query is `select` (it may name the
  // WITH queries); nothing when nothing was added.
  pqxx::result Exec(pqxx::work& tx, std::string_view select = "SELECT 1") {
    if (parts_ == 0) return {};
    return ExecPrepared(tx, sql_ + " " + std::string(select), params_);
  }

 private:
  std::string sql_;
  std::vector<std::string> params_;
  int parts_ = 0;
};

// The INSERT of the `member` rows of every item: res_type, res_id, one
// array per getter, then res_key (the unnest arrays of `sql`).
template <class Row, class... Get>
void InsertIndexBatch(InsertBatch& tx, const std::vector<PendingIndexItem>& items,
                      const std::vector<Row> fhir::IndexRows::*member, const char* sql, Get... get) {
  std::vector<std::string> types, ids, keys;
  std::array<std::vector<std::string>, sizeof...(Get)> columns;
  for (const auto& item : items)
    for (const Row& r : item.rows.*member) {
      types.push_back(item.type);
      ids.push_back(item.id);
      keys.push_back(std::to_string(item.key));
      std::size_t i = 0;
      ((columns[i++].push_back(get(r))), ...);
    }
  if (types.empty()) return;
  std::vector<std::string> params{ArrayLiteral(types), ArrayLiteral(ids)};
  for (const auto& c : columns) params.push_back(ArrayLiteral(c));
  params.push_back(ArrayLiteral(keys));
  tx.Add(sql, std::move(params));
}

// Adds to `inserts` the removal of the old index rows of the replaced
// items and the insertion of every item's rows.
void AddPendingIndex(InsertBatch& inserts, const PendingIndex& pending) {
  const auto& items = pending.items;
  if (items.empty()) return;
  // the old rows of the replaced items, by key (keys are unique; `=
  // ANY(array)` is planned as the index lookup it is even on tables without
  // statistics yet, where a join was planned as a scan of the whole table)
  std::vector<std::string> replaced_keys;
  for (const auto& item : items) {
    if (item.key == 0) throw std::logic_error(fmt::format("{}/{} indexed without its key", item.type, item.id));
    if (item.replace) replaced_keys.push_back(std::to_string(item.key));
  }
  if (!replaced_keys.empty()) {
    const std::string array = ArrayLiteral(replaced_keys);
    for (const char* table : {"search_string", "search_token", "search_date", "search_number", "search_quantity",
                              "search_reference", "search_uri"})
      inserts.AddQuery(std::string("r") + table,
                       std::string("DELETE FROM ") + table + " x WHERE x.res_key = ANY($1::bigint[])", {array});
  }
  auto group = [](const auto& r) { return std::to_string(r.group); };
  InsertIndexBatch(inserts, items, &fhir::IndexRows::strings,
                   "INSERT INTO search_string (res_type, res_id, param, value_norm, value_exact, grp, res_key)"
                   " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],"
                   " $7::bigint[])",
                   [](const fhir::StringIndexRow& r) { return r.param; },
                   [](const fhir::StringIndexRow& r) { return r.normalized; },
                   [](const fhir::StringIndexRow& r) { return r.exact; }, group);
  InsertIndexBatch(inserts, items, &fhir::IndexRows::tokens,
                   "INSERT INTO search_token (res_type, res_id, param, system, code, display, grp, res_key)"
                   " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
                   " $7::int[], $8::bigint[])",
                   [](const fhir::TokenIndexRow& r) { return r.param; },
                   [](const fhir::TokenIndexRow& r) { return r.system; },
                   [](const fhir::TokenIndexRow& r) { return r.code; },
                   [](const fhir::TokenIndexRow& r) { return r.text; }, group);
  InsertIndexBatch(inserts, items, &fhir::IndexRows::dates,
                   "INSERT INTO search_date (res_type, res_id, param, low, high, grp, res_key)"
                   " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],"
                   " $6::int[], $7::bigint[])",
                   [](const fhir::DateIndexRow& r) { return r.param; },
                   [](const fhir::DateIndexRow& r) { return TimestampText(r.low_ms); },
                   [](const fhir::DateIndexRow& r) { return TimestampText(r.high_ms); }, group);
  InsertIndexBatch(inserts, items, &fhir::IndexRows::numbers,
                   "INSERT INTO search_number (res_type, res_id, param, value, low, high, grp, res_key)"
                   " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::numeric[],"
                   " $6::numeric[], $7::int[], $8::bigint[])",
                   [](const fhir::NumberIndexRow& r) { return r.param; },
                   [](const fhir::NumberIndexRow& r) { return r.value; },
                   [](const fhir::NumberIndexRow& r) { return r.low; },
                   [](const fhir::NumberIndexRow& r) { return r.high; }, group);
  InsertIndexBatch(inserts, items, &fhir::IndexRows::quantities,
                   "INSERT INTO search_quantity (res_type, res_id, param, value, low, high, system, code, unit, grp,"
                   " res_key)"
                   " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::numeric[],"
                   " $6::numeric[], $7::text[], $8::text[], $9::text[], $10::int[], $11::bigint[])",
                   [](const fhir::QuantityIndexRow& r) { return r.param; },
                   [](const fhir::QuantityIndexRow& r) { return r.value; },
                   [](const fhir::QuantityIndexRow& r) { return r.low; },
                   [](const fhir::QuantityIndexRow& r) { return r.high; },
                   [](const fhir::QuantityIndexRow& r) { return r.system; },
                   [](const fhir::QuantityIndexRow& r) { return r.code; },
                   [](const fhir::QuantityIndexRow& r) { return r.unit; }, group);
  InsertIndexBatch(inserts, items, &fhir::IndexRows::references,
                   "INSERT INTO search_reference (res_type, res_id, param, target_type, target_id, target_version,"
                   " url, grp, res_key)"
                   " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
                   " $7::text[], $8::int[], $9::bigint[])",
                   [](const fhir::ReferenceIndexRow& r) { return r.param; },
                   [](const fhir::ReferenceIndexRow& r) { return r.target_type; },
                   [](const fhir::ReferenceIndexRow& r) { return r.target_id; },
                   [](const fhir::ReferenceIndexRow& r) { return r.version; },
                   [](const fhir::ReferenceIndexRow& r) { return r.url; }, group);
  InsertIndexBatch(inserts, items, &fhir::IndexRows::uris,
                   "INSERT INTO search_uri (res_type, res_id, param, value, grp, res_key)"
                   " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[])",
                   [](const fhir::UriIndexRow& r) { return r.param; },
                   [](const fhir::UriIndexRow& r) { return r.value; }, group);
}

// The index generation of the items written under a custom parameter
// set, after their rows are; empties the buffer.
void FinishPendingIndex(pqxx::work& tx, PendingIndex& pending) {
  auto& items = pending.items;
  std::vector<std::string> types, ids, generations;
  for (const auto& item : items)
    if (item.generation > 0) {
      types.push_back(item.type);
      ids.push_back(item.id);
      generations.push_back(std::to_string(item.generation));
    }
  if (!types.empty())
    ExecPrepared(tx,
                 "UPDATE resource r SET index_gen = n.g FROM unnest($1::text[], $2::text[], $3::bigint[]) AS n(t, i, g)"
                 " WHERE r.res_type = n.t AND r.res_id = n.i AND r.index_gen <> n.g",
                 {ArrayLiteral(types), ArrayLiteral(ids), ArrayLiteral(generations)});
  items.clear();
}

void FlushPendingIndex(pqxx::work& tx, PendingIndex& pending) {
  if (pending.items.empty()) return;
  InsertBatch batch;
  AddPendingIndex(batch, pending);
  batch.Exec(tx);
  FinishPendingIndex(tx, pending);
}

struct Locked {
  int64_t version;
  bool deleted;
  int64_t last_updated_ms;
  int64_t key = 0;  // res_key (migration 0016)
};

// A row a transaction locked, with its content (empty when deleted).
struct LockedRow {
  Locked row;
  std::string content;
};

// Writes the index rows of type/id (after removing its old ones when
// `replace`), in the caller's transaction.
void WriteIndex(pqxx::work& tx, const std::string& type, const std::string& id, fhir::IndexRows rows,
                bool replace, int64_t key) {
  PendingIndex one;
  one.items.push_back({type, id, replace, std::move(rows), 0, key});
  FlushPendingIndex(tx, one);
}

// What kInsertFirstOrLock did: version 1 written, or the row there locked.
struct InsertedOrLocked {
  std::optional<WriteResult> written;
  std::optional<Locked> locked;
};

std::optional<Locked> LockCurrent(pqxx::work& tx, const std::string& type, const std::string& id) {
  auto r = tx.exec_prepared(kLockCurrent.name, type, id);
  if (r.empty()) return std::nullopt;
  return Locked{r[0][0].as<int64_t>(), r[0][1].as<bool>(), r[0][2].as<int64_t>(), r[0][3].as<int64_t>()};
}

Result<WriteResult> PreconditionFailed(std::optional<int64_t> expected, std::optional<int64_t> current) {
  return MakeError(ErrorKind::kPreconditionFailed,
                   current ? fmt::format("version conflict: If-Match expects version {} but the "
                                         "current version is {}",
                                         expected.value_or(0), *current)
                           : fmt::format("version conflict: If-Match expects version {} but the "
                                         "resource does not exist",
                                         expected.value_or(0)));
}

// A page of history (newest first) read in `tx`.
HistoryPage HistoryIn(pqxx::transaction_base& tx, const HistoryQuery& q) {
  std::string sql =
      "SELECT h.seq, h.res_type, h.res_id, h.version_id, " EDS_MS("h.last_updated")
      ", h.method, h.deleted, " EDS_VERSION_CONTENT("h") "::text FROM resource_history h";
  std::vector<std::string> params;
  std::vector<std::string> where;
  auto param = [&params](std::string v) {
    params.push_back(std::move(v));
    return "$" + std::to_string(params.size());
  };
  if (q.at)
    sql += " LEFT JOIN resource_history n ON n.res_type = h.res_type AND n.res_id = h.res_id"
           " AND n.version_id = h.version_id + 1";
  if (q.type) where.push_back("h.res_type = " + param(*q.type));
  if (q.id) where.push_back("h.res_id = " + param(*q.id));
  if (q.since_ms)
    where.push_back("h.last_updated >= (timestamptz 'epoch' + " + param(std::to_string(*q.since_ms)) +
                    "::bigint * interval '1 millisecond')");
  if (q.at) {
    where.push_back("h.last_updated < (timestamptz 'epoch' + " + param(std::to_string(q.at->high_ms)) +
                    "::bigint * interval '1 millisecond')");
    where.push_back("(n.last_updated IS NULL OR n.last_updated > (timestamptz 'epoch' + " +
                    param(std::to_string(q.at->low_ms)) + "::bigint * interval '1 millisecond'))");
  }
  if (q.before_seq) where.push_back("h.seq < " + param(std::to_string(*q.before_seq)) + "::bigint");
  for (std::size_t i = 0; i < where.size(); ++i) sql += (i == 0 ? " WHERE " : " AND ") + where[i];
  sql += " ORDER BY h.seq DESC LIMIT " + param(std::to_string(q.count + 1)) + "::bigint";

  auto r = tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
  HistoryPage page;
  const auto n = std::min<std::size_t>(r.size(), static_cast<std::size_t>(q.count));
  page.entries.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& row = r[static_cast<pqxx::result::size_type>(i)];
    VersionRecord rec{row[1].c_str(), row[2].c_str(), row[3].as<int64_t>(), row[4].as<int64_t>(),
                      MethodFromSql(row[5].c_str()), row[6].as<bool>(), {}};
    if (!row[7].is_null()) rec.content.assign(row[7].c_str(), row[7].size());
    page.entries.push_back(std::move(rec));
  }
  if (r.size() > n && n > 0) page.next_before_seq = r[static_cast<pqxx::result::size_type>(n - 1)][0].as<int64_t>();
  return page;
}

// One version, read in `tx`.
Result<VersionRecord> ReadVersionIn(pqxx::transaction_base& tx, const std::string& type, const std::string& id,
                                    int64_t version) {
  auto r = tx.exec_prepared(kSelectVersion.name, type, id, version);
  if (r.empty()) return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} has no version {}", type, id, version));
  const auto& row = r[0];
  VersionRecord rec{type, id, row[0].as<int64_t>(), row[2].as<int64_t>(), MethodFromSql(row[4].c_str()),
                    row[1].as<bool>(), {}};
  if (!row[3].is_null()) rec.content.assign(row[3].c_str(), row[3].size());
  return rec;
}

}  // namespace

struct PgResourceStore::Impl {
  explicit Impl(const PgStoreOptions& o)
      : indexers(o.indexers),
        pool(o.dsn, o.pool_size, o.acquire_timeout,
             [timeout = o.statement_timeout](pqxx::connection& c) {
               c.set_variable("statement_timeout", std::to_string(timeout.count()));
               // short queries over many rows: compiling them costs more than it saves
               c.set_variable("jit", "off");
               for (const auto& s : kAllStatements) c.prepare(s.name, s.sql);
             }) {}

  // Runs `fn(conn)` on a pooled connection, translating database failures:
  // no free connection -> kUnavailable; a broken connection (the database
  // restarted, the network dropped) is discarded and the work retried once
  // on a fresh one (nothing was committed), then kUnavailable; serialization
  // failures and deadlocks are retried once, then kConflict; unique
  // violations -> kConflict; anything else throws StorageError.
  template <class T, class Fn>
  Result<T> Run(Fn&& fn) {
    bool retried_broken = false;
    for (int attempt = 0;; ++attempt) {
      ResetAuditedWrites();  // a retried attempt starts with nothing written
      auto lease = pool.Acquire();
      if (!lease)
        return MakeError(ErrorKind::kUnavailable, "the database is busy; try again later");
      try {
        return fn(lease->conn());
      } catch (const pqxx::broken_connection&) {
        lease->MarkBroken();
        if (!std::exchange(retried_broken, true)) continue;
        return MakeError(ErrorKind::kUnavailable, "the database is unavailable; try again later");
      } catch (const pqxx::transaction_rollback&) {
        if (attempt == 0) continue;
        return MakeError(ErrorKind::kConflict, "concurrent write; try again");
      } catch (const pqxx::unique_violation&) {
        return MakeError(ErrorKind::kConflict, "concurrent write of the same resource; try again");
      } catch (const pqxx::in_doubt_error& e) {
        lease->MarkBroken();
        throw StorageError(std::string("transaction outcome unknown: ") + e.what());
      } catch (const pqxx::sql_error& e) {
        // 57P01-03: the server is shutting down or restarting; 08xxx: connection
        // exceptions, except 08P01 (a malformed message: a bug, not an outage)
        const std::string state = e.sqlstate();
        if ((state.rfind("57P", 0) != 0 && state.rfind("08", 0) != 0) || state == "08P01")
          throw StorageError(std::string(e.what()) + " [query: " + e.query() + "]");
        lease->MarkBroken();
        if (!std::exchange(retried_broken, true)) continue;
        return MakeError(ErrorKind::kUnavailable, "the database is unavailable; try again later");
      } catch (const pqxx::failure& e) {
        lease->MarkBroken();
        throw StorageError(e.what());
      }
    }
  }

  // Rewrites the search index rows of type/id for `resource`, in the
  // caller's transaction (a deletion's go with it: DeleteLockedIn).
  // `key`: the resource's res_key.
  void Index(pqxx::work& tx, const fhir::Resource* resource, const std::string& type, const std::string& id,
             bool replace, int64_t key) {
    if (!indexers) return;
    auto indexer = indexers->Current();
    if (pending_index != nullptr && pending_index->tx == &tx) {
      pending_index->items.push_back({type, id, replace, indexer->Extract(*resource), indexer->generation(), key});
      return;
    }
    WriteIndex(tx, type, id, indexer->Extract(*resource), replace, key);
    if (int64_t g = indexer->generation(); g > 0) tx.exec_prepared(kSetIndexGeneration.name, type, id, g);
  }

  auto Indexer() {
    return [this](pqxx::work& tx, const fhir::Resource* r, const std::string& type, const std::string& id,
                  int64_t key) { Index(tx, r, type, id, true, key); };
  }

  std::shared_ptr<fhir::IndexerHolder> indexers;
  ResourceKeys keys;  // new resources' keys (migration 0016)

  // The inserts UpdateIn makes: version 1 (nullopt when the id is taken),
  // and version 1 or the existing row locked.
  struct Inserts {
    Impl* impl;
    std::optional<WriteResult> operator()(pqxx::work& tx, fhir::Resource& r, const std::string& id,
                                          WriteMethod m) const {
      return impl->InsertFirst(tx, r, id, m);
    }
    InsertedOrLocked OrLock(pqxx::work& tx, fhir::Resource& r, const std::string& id) const {
      return impl->InsertFirstOrLock(tx, r, id);
    }
  };
  Inserts Inserter() { return Inserts{this}; }

  InsertedOrLocked InsertFirstOrLock(pqxx::work& tx, fhir::Resource& resource, const std::string& id) {
    int64_t now = fhir::NowMs();
    resource.SetId(id);
    std::string content = resource.Render("1", fhir::FormatInstant(now));
    const int64_t key = keys.Next(tx);
    auto r = tx.exec_prepared(kInsertFirstOrLock.name, resource.type(), id, now, content, "PUT", key);
    if (r.empty()) return {};
    if (!r[0][0].as<bool>())
      return {std::nullopt,
              Locked{r[0][1].as<int64_t>(), r[0][2].as<bool>(), r[0][3].as<int64_t>(), r[0][4].as<int64_t>()}};
    Index(tx, &resource, resource.type(), id, false, key);
    NoteAuditedWrite(resource.type(), id, 1);
    return {WriteResult{{resource.type(), id, 1, now, WriteMethod::kUpdate, false, std::move(content)}, true, true},
            std::nullopt};
  }

  // Writes version 1, or returns nullopt when (type, id) appeared meanwhile.
  std::optional<WriteResult> InsertFirst(pqxx::work& tx, fhir::Resource& resource,
                                         const std::string& id, WriteMethod method) {
    int64_t now = fhir::NowMs();
    resource.SetId(id);
    std::string content = resource.Render("1", fhir::FormatInstant(now));
    const int64_t key = keys.Next(tx);
    auto r = tx.exec_prepared(kInsertFirst.name, resource.type(), id, now, content,
                              method == WriteMethod::kCreate ? "POST" : "PUT", key);
    if (r.empty()) return std::nullopt;
    Index(tx, &resource, resource.type(), id, false, key);
    NoteAuditedWrite(resource.type(), id, 1);
    return WriteResult{{resource.type(), id, 1, now, method, false, std::move(content)}, true, true};
  }

  PgPool pool;
};

PgResourceStore::PgResourceStore(PgStoreOptions options)
    : impl_(std::make_unique<Impl>(options)) {}
PgResourceStore::~PgResourceStore() = default;

int PgResourceStore::pool_size() const { return impl_->pool.size(); }

Result<VersionRecord> PgResourceStore::Read(const std::string& type, const std::string& id) {
  if (type == kAuditEventType)
    return impl_->Run<VersionRecord>([&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      return ReadAuditEvent(tx, id);
    });
  return impl_->Run<VersionRecord>([&](pqxx::connection& c) -> Result<VersionRecord> {
    pqxx::nontransaction tx(c);
    auto r = tx.exec_prepared(kSelectCurrent.name, type, id);
    if (r.empty())
      return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} is not known", type, id));
    const auto& row = r[0];
    VersionRecord rec{type, id, row[0].as<int64_t>(), row[2].as<int64_t>(), WriteMethod::kUpdate,
                      row[1].as<bool>(), {}};
    if (!row[3].is_null()) rec.content.assign(row[3].c_str(), row[3].size());
    return rec;
  });
}

Result<VersionRecord> PgResourceStore::ReadVersion(const std::string& type, const std::string& id,
                                                   int64_t version) {
  if (type == kAuditEventType) {
    if (version != 1) return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} has no version {}", type, id, version));
    return Read(type, id);
  }
  return impl_->Run<VersionRecord>([&](pqxx::connection& c) -> Result<VersionRecord> {
    pqxx::nontransaction tx(c);
    return ReadVersionIn(tx, type, id, version);
  });
}

namespace {

// Commits a write transaction, with the audit row of the request it serves
// (if any, and if it wrote anything) inserted just before.
void CommitAudited(pqxx::work& tx) {
  const bool audited = InsertWriteAudit(tx);
  tx.commit();
  if (audited) MarkWriteAuditCommitted();
}

// The write operations inside a caller's transaction; each decides its
// outcome with one locking read and one statement.

// The new version of a resource whose row `cur` this transaction holds
// locked (nothing when the content is unchanged).
template <class Index>
Result<WriteResult> UpdateLocked(pqxx::work& tx, Index&& index, fhir::Resource& resource, const std::string& id,
                                 const Locked& cur, std::optional<int64_t> if_match) {
  const std::string& type = resource.type();
  if (if_match && *if_match != cur.version) return PreconditionFailed(if_match, cur.version);
  int64_t version = cur.version + 1;
  int64_t now = std::max(fhir::NowMs(), cur.last_updated_ms);
  resource.SetId(id);
  std::string content = resource.Render(std::to_string(version), fhir::FormatInstant(now));
  auto r = tx.exec_prepared(kUpdateExisting.name, type, id, version, now, content, "PUT");
  if (r.empty()) throw std::logic_error(fmt::format("{}/{} vanished while locked", type, id));
  if (!r[0][0].as<bool>()) {
    // Unchanged content: answer with the current version, write nothing.
    VersionRecord rec{type, id, cur.version, cur.last_updated_ms, WriteMethod::kUpdate, false, r[0][1].c_str()};
    return WriteResult{std::move(rec), false, false};
  }
  index(tx, &resource, type, id, cur.key);
  NoteAuditedWrite(type, id, version);
  return WriteResult{{type, id, version, now, WriteMethod::kUpdate, false, std::move(content)}, cur.deleted, true};
}

template <class Insert, class Index>
Result<WriteResult> UpdateIn(pqxx::work& tx, Insert&& insert, Index&& index, fhir::Resource& resource,
                             const std::string& id, std::optional<int64_t> if_match) {
  const std::string& type = resource.type();
  // A concurrent creator of the same id makes the insert find the row taken
  // (after waiting for it to commit); the next locking read then sees it.
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::optional<Locked> cur;
    if (attempt == 0 && !if_match) {
      // a new id is written at once, an existing one locked
      InsertedOrLocked first = insert.OrLock(tx, resource, id);
      if (first.written) return std::move(*first.written);
      if (!first.locked) continue;
      cur = first.locked;
    } else {
      cur = LockCurrent(tx, type, id);
    }
    if (!cur) {
      if (if_match) return PreconditionFailed(if_match, std::nullopt);
      if (auto w = insert(tx, resource, id, WriteMethod::kUpdate)) return std::move(*w);
      continue;
    }
    return UpdateLocked(tx, index, resource, id, *cur, if_match);
  }
  return MakeError(ErrorKind::kConflict, fmt::format("concurrent creation of {}/{}", type, id));
}

// A deleted resource: its new version and time.
struct Deleted {
  std::string type, id;
  int64_t version, ms;
};

// Deletes the current, not deleted resources among (types[i], ids[i]),
// whose rows the caller locked, with one statement: the deletion versions,
// their history rows and the archived content of the versions they end,
// and the removal of their index rows. Notes them (and the patients they
// referred to) for the audit.
std::vector<Deleted> DeleteLockedIn(pqxx::work& tx, const std::vector<std::string>& types,
                                    const std::vector<std::string>& ids) {
  InsertBatch batch;
  batch.AddQuery("k", "SELECT * FROM unnest($1::text[], $2::text[]) AS k(t, i)", {ArrayLiteral(types), ArrayLiteral(ids)});
  batch.AddQuery("cur",
                 "SELECT r.res_type, r.res_id, r.res_key, r.version_id, r.last_updated, r.content FROM resource r"
                 " JOIN k ON r.res_type = k.t AND r.res_id = k.i WHERE NOT r.deleted",
                 {});
  batch.AddQuery("del",
                 "UPDATE resource r SET version_id = cur.version_id + 1,"
                 " last_updated = greatest(" EDS_TS("$1") ", cur.last_updated), deleted = true, content = NULL"
                 " FROM cur WHERE r.res_type = cur.res_type AND r.res_id = cur.res_id"
                 " RETURNING r.res_type, r.res_id, r.version_id, r.last_updated",
                 {std::to_string(fhir::NowMs())});
  // the deleted versions' content, for reads of those versions
  batch.AddQuery("arch",
                 "INSERT INTO resource_history_content (res_type, res_id, version_id, content)"
                 " SELECT res_type, res_id, version_id, content FROM cur",
                 {});
  batch.AddQuery("hist",
                 "INSERT INTO resource_history (res_type, res_id, version_id, last_updated, method, deleted, content)"
                 " SELECT res_type, res_id, version_id, last_updated, 'DELETE', true, NULL FROM del",
                 {});
  // the patients the deleted versions referred to, before their index goes
  batch.AddQuery("pats",
                 "SELECT DISTINCT x.target_id FROM search_reference x"
                 " WHERE x.res_key = ANY(ARRAY(SELECT res_key FROM cur))"
                 " AND x.target_type = 'Patient' AND x.target_id <> ''",
                 {});
  for (const char* table : {"search_string", "search_token", "search_date", "search_number", "search_quantity",
                            "search_reference", "search_uri"})
    batch.AddQuery(std::string("x") + table,
                   std::string("DELETE FROM ") + table + " x WHERE x.res_key = ANY(ARRAY(SELECT res_key FROM cur))",
                   {});
  auto r = batch.Exec(tx, "SELECT 'd', res_type, res_id, version_id, " EDS_MS("last_updated") " FROM del"
                          " UNION ALL SELECT 'p', 'Patient', target_id, 0, 0 FROM pats");
  const bool audited = CurrentWriteAudit() != nullptr;
  std::vector<Deleted> out;
  for (const auto& row : r) {
    const std::string type = row[1].c_str(), id = row[2].c_str();
    if (row[0].c_str()[0] == 'p') {
      if (audited) NoteAuditedPatient("Patient/" + id);
      continue;
    }
    if (audited && type == "Patient") NoteAuditedPatient("Patient/" + id);
    out.push_back({type, id, row[3].as<int64_t>(), row[4].as<int64_t>()});
    NoteAuditedWrite(type, id, out.back().version);
  }
  return out;
}

Result<WriteResult> DeleteIn(pqxx::work& tx, const std::string& type, const std::string& id,
                             std::optional<int64_t> if_match) {
  auto cur = LockCurrent(tx, type, id);
  if (!cur) return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} is not known", type, id));
  if (if_match && *if_match != cur->version) return PreconditionFailed(if_match, cur->version);
  if (cur->deleted)
    return WriteResult{{type, id, cur->version, cur->last_updated_ms, WriteMethod::kDelete, true, {}}, false, false};
  if (pending_index != nullptr && pending_index->tx == &tx) FlushPendingIndex(tx, *pending_index);
  auto deleted = DeleteLockedIn(tx, {type}, {id});
  if (deleted.size() != 1) throw std::logic_error(fmt::format("{}/{} vanished while locked", type, id));
  return WriteResult{{type, id, deleted[0].version, deleted[0].ms, WriteMethod::kDelete, true, {}}, false, true};
}

Result<WriteResult> ReadIn(pqxx::work& tx, const std::string& type, const std::string& id) {
  auto r = tx.exec_prepared(kSelectCurrent.name, type, id);
  if (r.empty()) return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} is not known", type, id));
  const auto& row = r[0];
  VersionRecord rec{type, id, row[0].as<int64_t>(), row[2].as<int64_t>(), WriteMethod::kUpdate, row[1].as<bool>(), {}};
  if (rec.deleted)
    return MakeError(ErrorKind::kGone, fmt::format("{}/{} was deleted (version {})", type, id, rec.version));
  rec.content.assign(row[3].c_str(), row[3].size());
  return WriteResult{std::move(rec), false, false};
}

}  // namespace

Result<WriteResult> PgResourceStore::Delete(const std::string& type, const std::string& id,
                                            std::optional<int64_t> if_match) {
  return impl_->Run<WriteResult>([&](pqxx::connection& c) -> Result<WriteResult> {
    pqxx::work tx(c);
    auto w = DeleteIn(tx, type, id, if_match);
    if (w) CommitAudited(tx);
    return w;
  });
}

namespace {

// Serializes conditional writes of one type and criteria (the key is a hash:
// different criteria may rarely share a lock, which only costs waiting).
constexpr int kConditionalLockSpace = 0x45445343;  // "EDSC"
constexpr int kNewIdLockSpace = 0x45445349;        // "EDSI": ids a transaction's PUTs may create
static_assert(kNewIdLockSpace == 1162105673, "the lock space is spelled out in kInsertFirstOrLock");

void LockCriteriaIn(pqxx::work& tx, const std::string& type, const std::string& criteria_text) {
  tx.exec_params("SELECT pg_advisory_xact_lock($1, hashtext($2))", kConditionalLockSpace, type + "?" + criteria_text);
}

// The current resources the filters of `criteria` match, at most `limit`.
Result<std::vector<fhir::VersionRecord>> FindIn(pqxx::work& tx, const fhir::SearchQuery& criteria, int limit) {
  fhir::SearchQuery q = criteria;
  q.count = limit;
  q.cursor.reset();
  q.offset.reset();
  q.sort.clear();
  q.includes.clear();
  q.revincludes.clear();
  q.total = fhir::TotalMode::kNone;
  q.summary = fhir::SummaryMode::kFalse;
  auto page = RunSearchIn(tx, q);
  if (!page) return std::move(page.error());
  return std::move(page->matches);
}

// The current resources `criteria` matches, after taking the criteria's
// lock: at most two are read, enough to tell none, one and several apart.
Result<std::vector<fhir::VersionRecord>> Matches(pqxx::work& tx, const fhir::SearchQuery& criteria,
                                                 const std::string& criteria_text) {
  LockCriteriaIn(tx, criteria.resource_type, criteria_text);
  auto found = FindIn(tx, criteria, 2);
  if (!found) return std::move(found.error());
  if (found->size() > 1)
    return MakeError(ErrorKind::kPreconditionFailed,
                     fmt::format("the criteria '{}' match more than one {}", criteria_text, criteria.resource_type));
  return found;
}

// The one current resource `criteria` matches, read without the criteria's
// lock; nothing when there is none, several, or the search fails (the
// caller then takes the lock and looks again).
std::optional<fhir::VersionRecord> SingleMatchUnlocked(pqxx::work& tx, const fhir::SearchQuery& criteria) {
  auto found = FindIn(tx, criteria, 2);
  if (!found || found->size() != 1) return std::nullopt;
  return std::move(found->front());
}

}  // namespace

Result<WriteResult> PgResourceStore::ConditionalCreate(fhir::Resource& resource, const fhir::SearchQuery& criteria,
                                                      const std::string& criteria_text) {
  return impl_->Run<WriteResult>([&](pqxx::connection& c) -> Result<WriteResult> {
    pqxx::work tx(c);
    // the match already there: found without waiting for the criteria's lock
    if (auto one = SingleMatchUnlocked(tx, criteria)) {
      CommitAudited(tx);
      return WriteResult{std::move(*one), false, false};
    }
    auto found = Matches(tx, criteria, criteria_text);
    if (!found) return std::move(found.error());
    if (!found->empty()) {
      CommitAudited(tx);
      return WriteResult{std::move(found->front()), false, false};
    }
    auto w = impl_->InsertFirst(tx, resource, fhir::NewResourceId(), WriteMethod::kCreate);
    if (!w) throw StorageError("a fresh resource id is taken");
    CommitAudited(tx);
    return std::move(*w);
  });
}

Result<WriteResult> PgResourceStore::ConditionalUpdate(fhir::Resource& resource, const fhir::SearchQuery& criteria,
                                                      const std::string& criteria_text) {
  return impl_->Run<WriteResult>([&](pqxx::connection& c) -> Result<WriteResult> {
    pqxx::work tx(c);
    // the match already holds what the request carries (server meta aside):
    // nothing to write, and no lock to wait for
    if (auto one = SingleMatchUnlocked(tx, criteria)) {
      if (auto body_id = resource.id(); !body_id || *body_id == one->id) {
        resource.SetId(one->id);
        const std::string content =
            resource.Render(std::to_string(one->version), fhir::FormatInstant(one->last_updated_ms));
        if (fhir::JsonEquivalent(one->content, content, true)) {
          CommitAudited(tx);
          return WriteResult{std::move(*one), false, false};
        }
      }
    }
    auto found = Matches(tx, criteria, criteria_text);
    if (!found) return std::move(found.error());
    std::string id;
    if (found->empty()) {
      id = resource.id().value_or(fhir::NewResourceId());
    } else {
      id = found->front().id;
      if (auto body_id = resource.id(); body_id && *body_id != id)
        return MakeError(ErrorKind::kInvalid,
                         fmt::format("the resource id '{}' is not the id of the match ({})", *body_id, id));
    }
    auto w = UpdateIn(tx, impl_->Inserter(), impl_->Indexer(), resource, id, std::nullopt);
    if (w) CommitAudited(tx);
    return w;
  });
}

Result<WriteResult> PgResourceStore::ConditionalDelete(const fhir::SearchQuery& criteria,
                                                      const std::string& criteria_text) {
  return impl_->Run<WriteResult>([&](pqxx::connection& c) -> Result<WriteResult> {
    pqxx::work tx(c);
    auto found = Matches(tx, criteria, criteria_text);
    if (!found) return std::move(found.error());
    if (found->empty())
      return MakeError(ErrorKind::kNotFound,
                       fmt::format("no {} matches '{}'", criteria.resource_type, criteria_text));
    auto w = DeleteIn(tx, criteria.resource_type, found->front().id, std::nullopt);
    if (w) CommitAudited(tx);
    return w;
  });
}

namespace {

// TxScope over one pqxx transaction of the store.
class PgTxScope final : public TxScope {
 public:
  PgTxScope(pqxx::work& tx, PgResourceStore::Impl& impl)
      : tx_(tx), plan_mode_(tx), impl_(impl), previous_pending_(std::exchange(pending_index, &pending_)) {
    pending_.tx = &tx;
  }
  ~PgTxScope() override { pending_index = previous_pending_; }
  PgTxScope(const PgTxScope&) = delete;
  PgTxScope& operator=(const PgTxScope&) = delete;

  // Writes the buffered new resources, then the buffered index rows (before
  // anything else reads or writes in the transaction, and before the commit).
  std::optional<fhir::Error> Flush() { return FlushWrites(true, false); }
  // Flush, with the request's audit row (storage::WriteAuditInsert) in the
  // same statement: the last one before the commit.
  std::optional<fhir::Error> FlushLast() { return FlushWrites(true, true); }

  void LockCriteria(const std::string& type, const std::string& criteria_text) override {
    LockCriteriaIn(tx_, type, criteria_text);
  }
  void LockAllCriteria(const std::vector<std::pair<std::string, std::string>>& keys) override {
    if (keys.size() == 1) return LockCriteria(keys[0].first, keys[0].second);
    if (keys.empty()) return;
    std::vector<std::string> texts;
    for (const auto& [type, text] : keys) texts.push_back(type + "?" + text);
    // one lock after the other, in the order given (as LockCriteriaIn's)
    ExecPrepared(tx_,
                 "SELECT pg_advisory_xact_lock($1::int, hashtext(k)) FROM"
                 " (SELECT k FROM unnest($2::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n) s",
                 {std::to_string(kConditionalLockSpace), ArrayLiteral(texts)});
  }
  Result<std::vector<fhir::VersionRecord>> Find(const fhir::SearchQuery& query, int limit) override {
    if (auto err = Flush()) return std::move(*err);
    return FindIn(tx_, query, limit);
  }
  Result<VersionRecord> ReadForUpdate(const std::string& type, const std::string& id) override {
    Forget(type, id);
    if (auto err = FlushCreates()) return std::move(*err);
    auto r = tx_.exec_prepared(kSelectCurrentForUpdate.name, type, id);
    if (r.empty()) return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} is not known", type, id));
    return RecordOf(type, id, r[0]);
  }
  Result<VersionRecord> Read(const std::string& type, const std::string& id) override {
    if (type == kAuditEventType) return ReadAuditEvent(tx_, id);
    if (auto err = FlushCreates()) return std::move(*err);
    auto w = ReadIn(tx_, type, id);
    if (!w) return std::move(w.error());
    return std::move(w->record);
  }
  // Version 1 of a resource with a fresh id: buffered, and written with the
  // transaction's other new resources in one statement (see FlushCreates).
  Result<WriteResult> Create(fhir::Resource& resource, const std::string& id) override {
    return BufferCreate(resource, id, WriteMethod::kCreate);
  }
  void LockForWrite(const std::vector<std::pair<std::string, std::string>>& keys) override {
    if (keys.empty()) return;
    std::set<std::pair<std::string, std::string>> sorted(keys.begin(), keys.end());
    std::vector<std::string> types, ids;
    for (const auto& [t, i] : sorted) {
      types.push_back(t);
      ids.push_back(i);
    }
    // Two transactions creating one id take turns: the second then finds
    // the first's resource and updates it. (Locks in hash order, so two
    // transactions never wait for each other; the rows in key order.)
    ExecPrepared(tx_,
                 "SELECT pg_advisory_xact_lock($1::int, h) FROM"
                 " (SELECT DISTINCT hashtext(t || '/' || i) AS h FROM unnest($2::text[], $3::text[]) AS k(t, i)"
                 "  ORDER BY 1) s",
                 {std::to_string(kNewIdLockSpace), ArrayLiteral(types), ArrayLiteral(ids)});
    auto r = ExecPrepared(tx_,
                          "SELECT x.res_type, x.res_id, x.version_id, x.deleted, " EDS_MS("x.last_updated")
                          ", x.content::text, x.res_key"
                          " FROM unnest($1::text[], $2::text[]) AS k(t, i)"
                          " CROSS JOIN LATERAL (SELECT res_type, res_id, version_id, deleted, last_updated, content,"
                          "   res_key FROM resource WHERE res_type = k.t AND res_id = k.i FOR UPDATE) x",
                          {ArrayLiteral(types), ArrayLiteral(ids)});
    for (const auto& row : r) {
      std::pair<std::string, std::string> key{row[0].c_str(), row[1].c_str()};
      sorted.erase(key);
      locked_[key] = LockedRow{Locked{row[2].as<int64_t>(), row[3].as<bool>(), row[4].as<int64_t>(),
                                      row[6].as<int64_t>()},
                               row[5].is_null() ? std::string() : std::string(row[5].c_str(), row[5].size())};
    }
    absent_.insert(sorted.begin(), sorted.end());
  }
  Result<WriteResult> Update(fhir::Resource& resource, const std::string& id, std::optional<int64_t> if_match) override {
    const std::pair<std::string, std::string> key{resource.type(), id};
    // an id LockForWrite found absent is a new resource: buffered like a create
    if (!if_match)
      if (auto it = absent_.find(key); it != absent_.end()) {
        absent_.erase(it);
        return BufferCreate(resource, id, WriteMethod::kUpdate);
      }
    // a row LockForWrite locked: buffered like a create, or nothing to
    // write when the content is unchanged
    if (auto it = locked_.find(key); it != locked_.end()) {
      LockedRow cur = std::move(it->second);
      locked_.erase(it);
      return BufferUpdate(resource, id, cur, if_match);
    }
    if (auto err = FlushCreates()) return std::move(*err);
    return UpdateIn(tx_, impl_.Inserter(), impl_.Indexer(), resource, id, if_match);
  }
  Result<WriteResult> Delete(const std::string& type, const std::string& id, std::optional<int64_t> if_match) override {
    Forget(type, id);
    if (auto err = Flush()) return std::move(*err);  // a deletion reads the resource's references
    return DeleteIn(tx_, type, id, if_match);
  }
  std::optional<fhir::Error> DeleteMany(const std::vector<std::pair<std::string, std::string>>& keys) override {
    if (keys.empty()) return std::nullopt;
    std::set<std::pair<std::string, std::string>> sorted(keys.begin(), keys.end());
    std::vector<std::string> types, ids;
    for (const auto& [t, i] : sorted) {
      Forget(t, i);
      types.push_back(t);
      ids.push_back(i);
    }
    if (auto err = Flush()) return err;  // the deletions read the resources' references
    // the rows locked first (key order), so that the deletion's own snapshot
    // sees their latest versions and nothing changes them meanwhile
    ExecPrepared(tx_,
                 "SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(t, i) CROSS JOIN LATERAL"
                 " (SELECT 1 FROM resource WHERE res_type = k.t AND res_id = k.i FOR UPDATE) x",
                 {ArrayLiteral(types), ArrayLiteral(ids)});
    DeleteLockedIn(tx_, types, ids);
    return std::nullopt;
  }
  Deletions DeleteEach(const std::vector<DeleteKey>& keys) override {
    Deletions out;
    if (keys.empty()) return out;
    std::set<std::pair<std::string, std::string>> sorted;
    for (const auto& k : keys) {
      Forget(k.type, k.id);
      sorted.emplace(k.type, k.id);
    }
    if (auto err = Flush()) {  // the deletions read the resources' references
      out.failure = std::move(*err);
      return out;
    }
    std::vector<std::string> types, ids;
    for (const auto& [t, i] : sorted) {
      types.push_back(t);
      ids.push_back(i);
    }
    // the rows locked in key order, as DeleteMany does
    auto r = ExecPrepared(tx_,
                          "SELECT x.res_type, x.res_id, x.version_id, x.deleted, " EDS_MS("x.last_updated")
                          " FROM unnest($1::text[], $2::text[]) AS k(t, i)"
                          " CROSS JOIN LATERAL (SELECT res_type, res_id, version_id, deleted, last_updated"
                          "   FROM resource WHERE res_type = k.t AND res_id = k.i FOR UPDATE) x",
                          {ArrayLiteral(types), ArrayLiteral(ids)});
    std::map<std::pair<std::string, std::string>, Locked> found;
    for (const auto& row : r)
      found.emplace(std::pair<std::string, std::string>{row[0].c_str(), row[1].c_str()},
                    Locked{row[2].as<int64_t>(), row[3].as<bool>(), row[4].as<int64_t>()});
    // each judged in order; the first failure ends the results
    std::vector<WriteResult>& done = out.done;
    std::optional<fhir::Error>& failure = out.failure;
    std::vector<std::string> live_types, live_ids;
    std::map<std::pair<std::string, std::string>, std::size_t> live;  // key -> index in done
    for (const auto& k : keys) {
      auto it = found.find({k.type, k.id});
      if (it == found.end()) {
        failure = MakeError(ErrorKind::kNotFound, fmt::format("{}/{} is not known", k.type, k.id));
        break;
      }
      const Locked& cur = it->second;
      if (k.if_match && *k.if_match != cur.version) {
        failure = PreconditionFailed(k.if_match, cur.version).error();
        break;
      }
      done.push_back(
          WriteResult{{k.type, k.id, cur.version, cur.last_updated_ms, WriteMethod::kDelete, true, {}}, false, false});
      if (!cur.deleted) {
        live.emplace(it->first, done.size() - 1);
        live_types.push_back(k.type);
        live_ids.push_back(k.id);
      }
    }
    if (!failure && !live.empty()) {
      for (const auto& d : DeleteLockedIn(tx_, live_types, live_ids)) {
        auto it = live.find({d.type, d.id});
        if (it == live.end()) continue;
        done[it->second] = WriteResult{{d.type, d.id, d.version, d.ms, WriteMethod::kDelete, true, {}}, false, true};
        live.erase(it);
      }
      if (!live.empty())
        throw std::logic_error(fmt::format("{}/{} vanished while locked", live.begin()->first.first,
                                           live.begin()->first.second));
    }
    return out;
  }
  Result<VersionRecord> ReadVersion(const std::string& type, const std::string& id, int64_t version) override {
    if (type == kAuditEventType) {
      if (version != 1) return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} has no version {}", type, id, version));
      return ReadAuditEvent(tx_, id);
    }
    if (auto err = FlushCreates()) return std::move(*err);
    return ReadVersionIn(tx_, type, id, version);
  }
  Result<HistoryPage> History(const HistoryQuery& query) override {
    if (auto err = FlushCreates()) return std::move(*err);
    return HistoryIn(tx_, query);
  }
  Result<SearchPage> Search(const fhir::SearchQuery& query) override {
    if (query.resource_type == kAuditEventType) return SearchAuditEvents(tx_, query);
    if (auto err = Flush()) return std::move(*err);
    return RunSearchIn(tx_, query);
  }

  Result<std::optional<DocumentRecord>> GetDocument(const std::string& identifier) override {
    FlushDeferred();
    return DocumentFrom(tx_.exec_params(std::string(kDocumentColumns) + " WHERE identifier = $1 FOR UPDATE", identifier));
  }
  Result<std::optional<DocumentRecord>> GetDocumentByWorkflow(const std::string& workflow_instance_id) override {
    FlushDeferred();
    return DocumentFrom(tx_.exec_params(std::string(kDocumentColumns) +
                                            " WHERE workflow_instance_id = $1 ORDER BY updated_at DESC LIMIT 1 FOR UPDATE",
                                        workflow_instance_id));
  }
  // The document registry's row and the feeding record are written with
  // the transaction's last statement (FlushLast); a read or deletion of
  // documents in the transaction writes them first.
  std::optional<fhir::Error> PutDocument(const DocumentRecord& d) override {
    deferred_.emplace_back(
        "INSERT INTO fse_document (identifier, workflow_instance_id, resources, document_reference, rda, rde, priority)"
        " VALUES ($1, $2, $3::text[], $4, $5, $6, $7) ON CONFLICT (identifier) DO UPDATE SET"
        " workflow_instance_id = EXCLUDED.workflow_instance_id, resources = EXCLUDED.resources,"
        " document_reference = EXCLUDED.document_reference, rda = EXCLUDED.rda, rde = EXCLUDED.rde,"
        " priority = EXCLUDED.priority, updated_at = now()",
        std::vector<std::string>{d.identifier, d.workflow_instance_id, ArrayLiteral(d.resources), d.document_reference,
                                 d.rda, d.rde, d.priority});
    return std::nullopt;
  }
  std::optional<fhir::Error> DeleteDocument(const std::string& identifier) override {
    FlushDeferred();
    tx_.exec_params("DELETE FROM fse_document WHERE identifier = $1", identifier);
    return std::nullopt;
  }

  std::optional<fhir::Error> RecordFeeding(const FeedingRecord& f) override {
    deferred_.emplace_back(
        kInsertFeeding,
        std::vector<std::string>{fhir::FormatInstant(f.received_ms), fhir::FormatInstant(f.completed_ms), f.request_id,
                                 f.operation, f.workflow_instance_id, f.identifier, f.document_type,
                                 f.tipo_documento_liv_alto, f.rde, f.rda, f.producer_app_id, f.producer_app_vendor,
                                 f.producer_app_version, f.producer_org, f.priority, std::to_string(f.entries),
                                 std::to_string(f.validation_errors), std::to_string(f.status), f.problem_type,
                                 f.problem_title, f.patient, f.fiscal_code_hash});
    return std::nullopt;
  }
  std::optional<fhir::Error> SetPatientRegion(const std::string& patient, const std::string& rda,
                                              const std::string& identifier) override {
    // written with the last flush, like the feeding record. An unchanged
    // region writes and locks nothing: the INSERT is not even tried (ON
    // CONFLICT would lock the row also when its WHERE leaves it as it is,
    // and every document of the patient would wait for the others).
    deferred_.emplace_back(
        "INSERT INTO patient_region (patient, rda, identifier) SELECT $1::text, $2::text, $3::text"
        " WHERE NOT EXISTS (SELECT 1 FROM patient_region WHERE patient = $1 AND rda = $2)"
        " ON CONFLICT (patient) DO UPDATE SET rda = EXCLUDED.rda, identifier = EXCLUDED.identifier,"
        " updated_at = now() WHERE patient_region.rda <> EXCLUDED.rda",
        std::vector<std::string>{patient, rda, identifier});
    return std::nullopt;
  }

 private:
  static constexpr const char* kInsertFeeding =
      "INSERT INTO feeding_record (received_at, completed_at, request_id, operation, workflow_instance_id,"
      " identifier, document_type, tipo_documento_liv_alto, rde, rda, producer_app_id, producer_app_vendor,"
      " producer_app_version, producer_org, priority, entries, validation_errors, status, problem_type,"
      " problem_title, patient, fiscal_code_hash)"
      " VALUES ($1::timestamptz, $2::timestamptz, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
      " $18, $19, $20, $21, $22)";

  static constexpr const char* kDocumentColumns =
      "SELECT identifier, workflow_instance_id, array_to_json(resources)::text, document_reference, rda, rde, priority"
      " FROM fse_document";

  static Result<std::optional<DocumentRecord>> DocumentFrom(const pqxx::result& r) {
    if (r.empty()) return std::optional<DocumentRecord>();
    DocumentRecord d;
    d.identifier = r[0][0].c_str();
    d.workflow_instance_id = r[0][1].c_str();
    // ["Patient/1","Observation/2"]: ids and types never hold quotes or backslashes
    std::string list = r[0][2].c_str();
    for (std::size_t i = 0; i < list.size(); ++i)
      if (list[i] == '"') {
        auto end = list.find('"', i + 1);
        if (end == std::string::npos) break;
        d.resources.push_back(list.substr(i + 1, end - i - 1));
        i = end;
      }
    d.document_reference = r[0][3].c_str();
    d.rda = r[0][4].c_str();
    d.rde = r[0][5].c_str();
    d.priority = r[0][6].c_str();
    return std::optional<DocumentRecord>(std::move(d));
  }

  static VersionRecord RecordOf(const std::string& type, const std::string& id, const pqxx::row& row) {
    VersionRecord rec{type, id, row[0].as<int64_t>(), row[2].as<int64_t>(), WriteMethod::kUpdate, row[1].as<bool>(), {}};
    if (!row[3].is_null()) rec.content.assign(row[3].c_str(), row[3].size());
    return rec;
  }

  // What LockForWrite learnt of type/id no longer holds once another write
  // than the PUT it was for touches it.
  void Forget(const std::string& type, const std::string& id) {
    const std::pair<std::string, std::string> key{type, id};
    absent_.erase(key);
    locked_.erase(key);
  }

  // The new version of a row LockForWrite locked (and read), buffered and
  // written with the transaction's other updates in one statement; nothing
  // when the content is the stored one apart from meta.versionId and
  // meta.lastUpdated (fhir::JsonEquivalent: key order aside).
  Result<WriteResult> BufferUpdate(fhir::Resource& resource, const std::string& id, const LockedRow& cur,
                                   std::optional<int64_t> if_match) {
    const std::string& type = resource.type();
    if (if_match && *if_match != cur.row.version) return PreconditionFailed(if_match, cur.row.version);
    resource.SetId(id);
    const int64_t version = cur.row.version + 1;
    const int64_t now = std::max(fhir::NowMs(), cur.row.last_updated_ms);
    std::string content = resource.Render(std::to_string(version), fhir::FormatInstant(now));
    if (!cur.row.deleted && fhir::JsonEquivalent(cur.content, content, true)) {
      VersionRecord rec{type, id, cur.row.version, cur.row.last_updated_ms, WriteMethod::kUpdate, false, cur.content};
      return WriteResult{std::move(rec), false, false};
    }
    updates_.push_back({type, id, std::to_string(version), std::to_string(now), content, "PUT"});
    impl_.Index(tx_, &resource, type, id, true, cur.row.key);
    NoteAuditedWrite(type, id, version);
    return WriteResult{{type, id, version, now, WriteMethod::kUpdate, false, std::move(content)}, cur.row.deleted,
                       true};
  }

  Result<WriteResult> BufferCreate(fhir::Resource& resource, const std::string& id, WriteMethod method) {
    const int64_t now = fhir::NowMs();
    resource.SetId(id);
    std::string content = resource.Render("1", fhir::FormatInstant(now));
    const int64_t key = impl_.keys.Next(tx_);
    creates_.push_back({resource.type(), id, std::to_string(now), content,
                        method == WriteMethod::kCreate ? "POST" : "PUT", std::to_string(key)});
    impl_.Index(tx_, &resource, resource.type(), id, false, key);
    NoteAuditedWrite(resource.type(), id, 1);
    return WriteResult{{resource.type(), id, 1, now, method, false, std::move(content)}, true, true};
  }

  // Writes the buffered new resources before anything reads: see FlushWrites.
  std::optional<fhir::Error> FlushCreates() { return FlushWrites(false, false); }

  // Writes with one statement the buffered new resources (and their history
  // rows), the buffered new versions of locked rows (their history rows and
  // the archived content of the versions they supersede) and, with
  // `index`, the buffered index rows, and with `audit` the audit row. An id
  // taken after all (by a concurrent writer of the same PUT, or a fresh id
  // two writers chose) fails the transaction with 409.
  std::optional<fhir::Error> FlushWrites(bool index, bool audit) {
    InsertBatch batch;
    std::vector<std::string> selects;
    using C = PendingCreate;
    using U = PendingUpdate;
    if (!creates_.empty()) {
      batch.AddQuery("cu", "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],"
                           " $6::bigint[]) AS u(t, i, ms, c, m, k)",
                     ColumnArrays(creates_, &C::type, &C::id, &C::ms, &C::content, &C::method, &C::key));
      batch.AddQuery("cins",
                     "INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content, res_key)"
                     " SELECT t, i, 1, " EDS_TS("ms") ", false, c::json, k FROM cu ON CONFLICT DO NOTHING"
                     " RETURNING res_type, res_id, version_id, last_updated",
                     {});
      batch.AddQuery("ch",
                     "INSERT INTO resource_history (res_type, res_id, version_id, last_updated, method)"
                     " SELECT cins.res_type, cins.res_id, cins.version_id, cins.last_updated, cu.m"
                     " FROM cins JOIN cu ON cu.t = cins.res_type AND cu.i = cins.res_id RETURNING res_type, res_id",
                     {});
      selects.push_back("SELECT 'c', res_type, res_id FROM ch");
    }
    if (!updates_.empty()) {
      batch.AddQuery("uu", "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],"
                           " $6::text[]) AS u(t, i, v, ms, c, m)",
                     ColumnArrays(updates_, &U::type, &U::id, &U::version, &U::ms, &U::content, &U::method));
      batch.AddQuery("uprev",
                     "SELECT r.res_type, r.res_id, r.version_id, r.deleted, r.content FROM resource r"
                     " JOIN uu ON r.res_type = uu.t AND r.res_id = uu.i",
                     {});
      batch.AddQuery("uupd",
                     "UPDATE resource r SET version_id = uu.v, last_updated = " EDS_TS("uu.ms") ", deleted = false,"
                     " content = uu.c::json FROM uu WHERE r.res_type = uu.t AND r.res_id = uu.i"
                     " RETURNING r.res_type, r.res_id, r.version_id, r.last_updated",
                     {});
      // the superseded versions' content, for reads of those versions
      batch.AddQuery("uarch",
                     "INSERT INTO resource_history_content (res_type, res_id, version_id, content)"
                     " SELECT res_type, res_id, version_id, content FROM uprev WHERE NOT deleted",
                     {});
      batch.AddQuery("uh",
                     "INSERT INTO resource_history (res_type, res_id, version_id, last_updated, method)"
                     " SELECT uupd.res_type, uupd.res_id, uupd.version_id, uupd.last_updated, uu.m"
                     " FROM uupd JOIN uu ON uu.t = uupd.res_type AND uu.i = uupd.res_id RETURNING res_type, res_id",
                     {});
      selects.push_back("SELECT 'u', res_type, res_id FROM uh");
    }
    if (index) AddPendingIndex(batch, pending_);
    if (audit) {
      if (auto insert = WriteAuditInsert()) batch.AddQuery("audit", insert->first, std::move(insert->second));
      AddDeferred(batch);
    }
    if (batch.empty()) return std::nullopt;
    std::string select;
    for (const auto& part : selects) select += (select.empty() ? "" : " UNION ALL ") + part;
    auto r = batch.Exec(tx_, select.empty() ? "SELECT 'i', '', ''" : select);
    std::set<std::pair<std::string, std::string>> created;
    std::size_t updated = 0;
    for (const auto& row : r) {
      if (row[0].c_str()[0] == 'c') created.emplace(row[1].c_str(), row[2].c_str());
      if (row[0].c_str()[0] == 'u') ++updated;
    }
    if (updated != updates_.size())
      throw std::logic_error(fmt::format("{} of {} locked resources updated", updated, updates_.size()));
    updates_.clear();
    if (created.size() != creates_.size())
      for (const auto& c : creates_)
        if (created.count({c.type, c.id}) == 0)
          return MakeError(ErrorKind::kConflict,
                           fmt::format("{}/{} was created by another request at the same time; try again", c.type,
                                       c.id));
    creates_.clear();
    if (index) FinishPendingIndex(tx_, pending_);
    return std::nullopt;
  }

  // Adds the deferred inserts to `batch`, and forgets them.
  void AddDeferred(InsertBatch& batch) {
    for (std::size_t i = 0; i < deferred_.size(); ++i)
      batch.AddQuery("x" + std::to_string(i + 1), deferred_[i].first, std::move(deferred_[i].second));
    deferred_.clear();
  }
  void FlushDeferred() {
    if (deferred_.empty()) return;
    InsertBatch batch;
    AddDeferred(batch);
    batch.Exec(tx_);
  }

  struct PendingCreate {
    std::string type, id, ms, content, method, key;
  };
  struct PendingUpdate {
    std::string type, id, version, ms, content, method;
  };


  pqxx::work& tx_;
  TransactionPlanMode plan_mode_;  // searches of the transaction set their plan mode once
  PgResourceStore::Impl& impl_;
  PendingIndex pending_;
  PendingIndex* previous_pending_;
  std::vector<PendingCreate> creates_;
  std::vector<PendingUpdate> updates_;
  std::vector<std::pair<std::string, std::vector<std::string>>> deferred_;  // INSERTs without an answer
  // keys LockForWrite found without a resource, and the rows it locked,
  // not written yet (each entry is used once: no two entries write one resource)
  std::set<std::pair<std::string, std::string>> absent_;
  std::map<std::pair<std::string, std::string>, LockedRow> locked_;
};

}  // namespace

// (A single update stays UpdateIn's insert-or-lock statement: through a
// TxScope, LockForWrite's two statements and the content comparison in
// the server made it some 10% slower.)
Result<WriteResult> PgResourceStore::Update(fhir::Resource& resource, const std::string& id,
                                            std::optional<int64_t> if_match) {
  return impl_->Run<WriteResult>([&](pqxx::connection& c) -> Result<WriteResult> {
    pqxx::work tx(c);
    auto w = UpdateIn(tx, impl_->Inserter(), impl_->Indexer(), resource, id, if_match);
    if (w) CommitAudited(tx);
    return w;
  });
}

// A create is a transaction of one buffered create: the resource, its
// history row, its index rows and the audit row go in one statement.
Result<WriteResult> PgResourceStore::Create(fhir::Resource& resource) {
  return impl_->Run<WriteResult>([&](pqxx::connection& c) -> Result<WriteResult> {
    pqxx::work tx(c);
    PgTxScope scope(tx, *impl_);
    auto w = scope.Create(resource, fhir::NewResourceId());
    if (!w) return w;
    if (auto err = scope.FlushLast()) return std::move(*err);
    CommitAudited(tx);
    return w;
  });
}

std::optional<fhir::Error> PgResourceStore::RunTransaction(
    const std::function<std::optional<fhir::Error>(TxScope&)>& body) {
  auto done = impl_->Run<bool>([&](pqxx::connection& c) -> Result<bool> {
    pqxx::work tx(c);
    PgTxScope scope(tx, *impl_);
    if (auto err = body(scope)) return std::move(*err);  // rolled back
    if (auto err = scope.FlushLast()) return std::move(*err);
    CommitAudited(tx);
    return true;
  });
  if (!done) return std::move(done.error());
  return std::nullopt;
}

Result<SearchPage> PgResourceStore::Search(const fhir::SearchQuery& query) {
  if (query.resource_type == kAuditEventType)
    return impl_->Run<SearchPage>([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      return SearchAuditEvents(tx, query);
    });
  return impl_->Run<SearchPage>([&](pqxx::connection& c) { return RunSearch(c, query); });
}

Result<HistoryPage> PgResourceStore::History(const HistoryQuery& q) {
  return impl_->Run<HistoryPage>([&](pqxx::connection& c) -> Result<HistoryPage> {
    pqxx::nontransaction tx(c);
    return HistoryIn(tx, q);
  });
}

}  // namespace eds::storage

namespace eds::storage {

Result<std::vector<StoredSearchParameter>> PgResourceStore::SearchParameters() {
  return impl_->Run<std::vector<StoredSearchParameter>>([&](pqxx::connection& c) -> Result<std::vector<StoredSearchParameter>> {
    pqxx::work tx(c);
    // a generation for every version not seen before (the sequence orders them)
    tx.exec0(
        "INSERT INTO custom_search_param (res_id, version_id, generation)"
        " SELECT r.res_id, r.version_id, nextval('search_index_generation') FROM resource r"
        " LEFT JOIN custom_search_param c ON c.res_id = r.res_id"
        " WHERE r.res_type = 'SearchParameter' AND NOT r.deleted"
        "   AND (c.res_id IS NULL OR c.version_id <> r.version_id)"
        " ORDER BY r.res_id"
        " ON CONFLICT (res_id) DO UPDATE SET version_id = EXCLUDED.version_id, generation = EXCLUDED.generation"
        " WHERE custom_search_param.version_id < EXCLUDED.version_id");
    auto rows = tx.exec(
        "SELECT r.res_id, r.content::text, c.generation FROM resource r JOIN custom_search_param c ON c.res_id = r.res_id"
        " WHERE r.res_type = 'SearchParameter' AND NOT r.deleted ORDER BY c.generation, r.res_id");
    tx.commit();
    std::vector<StoredSearchParameter> out;
    for (const auto& row : rows)
      out.push_back({row[0].c_str(), std::string(row[1].c_str(), row[1].size()), row[2].as<int64_t>()});
    return out;
  });
}

Result<std::vector<std::string>> PgResourceStore::CurrentContents(const std::string& type) {
  return impl_->Run<std::vector<std::string>>([&](pqxx::connection& c) -> Result<std::vector<std::string>> {
    pqxx::work tx(c);
    auto rows = tx.exec_params(
        "SELECT content::text FROM resource WHERE res_type = $1 AND NOT deleted ORDER BY res_id", type);
    tx.commit();
    std::vector<std::string> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.emplace_back(row[0].c_str(), row[0].size());
    return out;
  });
}

Result<ReindexProgress> PgResourceStore::ReindexBatch(int batch) {
  if (!impl_->indexers) return MakeError(ErrorKind::kNotSupported, "this store keeps no search index");
  auto indexer = impl_->indexers->Current();
  const int64_t generation = indexer->generation();
  // every type: a resource marked -1 (migration 14) is due whatever its
  // type's generation; custom parameters raise their types' generation
  std::map<std::string, int64_t> required;
  for (const auto& type : indexer->definitions()->resource_types()) required[type] = 0;
  for (const auto& [type, g] : indexer->RequiredGenerations()) required[type] = g;
  std::vector<std::string> types, gens;
  for (const auto& [type, g] : required) {
    types.push_back(type);
    gens.push_back(std::to_string(g));
  }
  const std::string type_array = ArrayLiteral(types), gen_array = ArrayLiteral(gens);
  return impl_->Run<ReindexProgress>([&](pqxx::connection& c) -> Result<ReindexProgress> {
    pqxx::work tx(c);
    auto rows = tx.exec_params(
        "SELECT r.res_type, r.res_id, r.content::text, r.res_key FROM resource r"
        " JOIN unnest($1::text[], $2::bigint[]) AS n(res_type, gen) ON r.res_type = n.res_type"
        " WHERE NOT r.deleted AND r.index_gen < n.gen LIMIT $3 FOR UPDATE OF r SKIP LOCKED",
        type_array, gen_array, batch);
    ReindexProgress p;
    for (const auto& row : rows) {
      const std::string type = row[0].c_str(), id = row[1].c_str();
      auto parsed = fhir::Resource::Parse(std::string_view(row[2].c_str(), row[2].size()));
      if (parsed) WriteIndex(tx, type, id, indexer->Extract(*parsed), true, row[3].as<int64_t>());
      tx.exec_prepared(kSetIndexGeneration.name, type, id, generation);
      ++p.reindexed;
    }
    auto left = tx.exec_params(
        "SELECT count(*) FROM resource r JOIN unnest($1::text[], $2::bigint[]) AS n(res_type, gen)"
        " ON r.res_type = n.res_type WHERE NOT r.deleted AND r.index_gen < n.gen",
        type_array, gen_array);
    tx.commit();
    p.remaining = left[0][0].as<int64_t>();
    return p;
  });
}

void PgResourceStore::PrepareBulk(BulkItem& item) const { EncodeBulkItem(item); }

Result<BulkWriteResult> PgResourceStore::WriteBulk(std::vector<BulkItem>& items, const BulkCheckpoint* checkpoint) {
  return impl_->Run<BulkWriteResult>(
      [&](pqxx::connection& c) -> Result<BulkWriteResult> { return WriteBulkOn(c, items, checkpoint); });
}

void PgResourceStore::RefreshStatistics() {
  auto done = impl_->Run<bool>([&](pqxx::connection& c) -> Result<bool> {
    pqxx::nontransaction tx(c);
    // A table autovacuum is processing (after a load, a VACUUM ANALYZE of it)
    // is skipped: waiting for its lock cost a deadlock_timeout per table.
    tx.exec0(
        "ANALYZE (SKIP_LOCKED) resource, resource_history, search_string, search_token, search_date,"
        " search_number, search_quantity, search_reference, search_uri");
    return true;
  });
  if (!done) throw StorageError("could not refresh the planner statistics");
}

Result<std::optional<BulkCheckpoint>> PgResourceStore::ReadBulkCheckpoint(const std::string& source) {
  return impl_->Run<std::optional<BulkCheckpoint>>(
      [&](pqxx::connection& c) -> Result<std::optional<BulkCheckpoint>> { return ReadBulkCheckpointOn(c, source); });
}

}  // namespace eds::storage

namespace eds::storage {

std::string PgResourceStore::MetricsText() {
  const auto st = impl_->pool.stats();
  return fmt::format(
      "# HELP eds_db_pool_connections Database connections of the worker pool.\n"
      "# TYPE eds_db_pool_connections gauge\neds_db_pool_connections {}\n"
      "# HELP eds_db_pool_in_use Database connections lent out now.\n"
      "# TYPE eds_db_pool_in_use gauge\neds_db_pool_in_use {}\n"
      "# HELP eds_db_pool_acquires_total Connection requests.\n"
      "# TYPE eds_db_pool_acquires_total counter\neds_db_pool_acquires_total {}\n"
      "# HELP eds_db_pool_timeouts_total Connection requests that found none free in time (answered 503).\n"
      "# TYPE eds_db_pool_timeouts_total counter\neds_db_pool_timeouts_total {}\n"
      "# HELP eds_db_pool_wait_seconds_total Time spent waiting for a free connection.\n"
      "# TYPE eds_db_pool_wait_seconds_total counter\neds_db_pool_wait_seconds_total {}\n",
      st.size, st.in_use, st.acquires, st.timeouts, st.wait_seconds);
}

std::optional<std::string> PgResourceStore::NotReady() {
  const int known = BuiltinMigrations().empty() ? 0 : BuiltinMigrations().back().version;
  try {
    auto r = impl_->Run<int>([&](pqxx::connection& c) -> Result<int> {
      pqxx::nontransaction tx(c);
      auto rows = tx.exec("SELECT coalesce(max(version), 0) FROM schema_migrations");
      return rows[0][0].as<int>();
    });
    if (!r) return std::string("database unavailable");
    if (*r != known) return fmt::format("database schema at version {}, this server needs {}", *r, known);
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string("database check failed");
  }
}

}  // namespace eds::storage
