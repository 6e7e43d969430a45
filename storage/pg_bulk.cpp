// Bulk writes: one transaction per batch. The current versions of the
// batch's ids are read (and locked) with one statement; new resources,
// every history row (without content for current versions: migration 0013)
// and every search index row go in with COPY; resources
// that existed are updated with one statement over arrays.
#include "storage/pg_bulk.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <array>
#include <map>
#include <utility>

#include "fhir/json.hpp"
#include "fhir/primitives.hpp"
#include "fhir/search_index.hpp"
#include "storage/pg_copy.hpp"
#include "storage/resource_key.hpp"

namespace eds::storage {
namespace {

// The search index tables, in the order of BulkItem::encoded, with their
// COPY columns.
struct IndexTable {
  const char* name;
  std::vector<std::string> columns;
};
const std::array<IndexTable, 7>& IndexTables() {
  static const std::array<IndexTable, 7> kTables = {{
      {"search_string", {"res_type", "res_id", "param", "value_norm", "value_exact", "grp", "res_key"}},
      {"search_token", {"res_type", "res_id", "param", "system", "code", "display", "grp", "res_key"}},
      {"search_date", {"res_type", "res_id", "param", "low", "high", "grp", "res_key"}},
      {"search_number", {"res_type", "res_id", "param", "value", "low", "high", "grp", "res_key"}},
      {"search_quantity",
       {"res_type", "res_id", "param", "value", "low", "high", "system", "code", "unit", "grp", "res_key"}},
      {"search_reference",
       {"res_type", "res_id", "param", "target_type", "target_id", "target_version", "url", "grp", "res_key"}},
      {"search_uri", {"res_type", "res_id", "param", "value", "grp", "res_key"}},
  }};
  return kTables;
}
constexpr std::size_t kContentSlot = 7;  // encoded[7]: the version-1 content, COPY-escaped

std::string TimestampText(int64_t ms) {
  // open ends of periods are stored as -infinity / infinity
  if (ms <= INT64_MIN / 4) return "-infinity";
  if (ms >= INT64_MAX / 4) return "infinity";
  return fhir::FormatInstant(ms);
}

// The current versions of the batch's keys (sorted, so concurrent batches
// lock rows in the same order), locked until the transaction ends.
constexpr const char* kLockCurrentBatch =
    "SELECT r.res_type, r.res_id, r.version_id, r.deleted,"
    " (extract(epoch from r.last_updated) * 1000)::bigint, r.content::text, r.res_key"
    " FROM unnest($1::text[], $2::text[]) AS k(res_type, res_id)"
    " CROSS JOIN LATERAL (SELECT * FROM resource x"
    "   WHERE x.res_type = k.res_type AND x.res_id = k.res_id FOR UPDATE) r";

// New current versions of resources that existed, with the key their new
// index rows carry.
constexpr const char* kUpdateCurrentBatch =
    "UPDATE resource r SET version_id = u.version_id,"
    " last_updated = timestamptz 'epoch' + u.ms * interval '1 millisecond',"
    " deleted = false, content = u.content::json, index_gen = u.gen, res_key = u.res_key"
    " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[])"
    "   AS u(res_type, res_id, version_id, ms, content, gen, res_key)"
    " WHERE r.res_type = u.res_type AND r.res_id = u.res_id";

// Index rows of resources that existed, removed (by the keys stored with
// the resources: unique, and `= ANY(array)` is planned as an index lookup
// even before the tables have statistics) before their new rows are written
// and the keys change.
constexpr const char* kDeleteIndexBatch =
    "WITH"
    " a AS (DELETE FROM search_string WHERE res_key = ANY($1::bigint[])),"
    " b AS (DELETE FROM search_token WHERE res_key = ANY($1::bigint[])),"
    " c AS (DELETE FROM search_date WHERE res_key = ANY($1::bigint[])),"
    " d AS (DELETE FROM search_number WHERE res_key = ANY($1::bigint[])),"
    " e AS (DELETE FROM search_quantity WHERE res_key = ANY($1::bigint[])),"
    " f AS (DELETE FROM search_reference WHERE res_key = ANY($1::bigint[]))"
    " DELETE FROM search_uri WHERE res_key = ANY($1::bigint[])";

constexpr const char* kSaveCheckpoint =
    "INSERT INTO load_checkpoint (source, fingerprint, committed_offset, committed_line, report_offset,"
    "   stored, unchanged, rejected, complete, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())"
    " ON CONFLICT (source) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
    "   committed_offset = EXCLUDED.committed_offset, committed_line = EXCLUDED.committed_line,"
    "   report_offset = EXCLUDED.report_offset, stored = EXCLUDED.stored, unchanged = EXCLUDED.unchanged,"
    "   rejected = EXCLUDED.rejected, complete = EXCLUDED.complete, updated_at = now()";

constexpr const char* kReadCheckpoint =
    "SELECT fingerprint, committed_offset, committed_line, report_offset, stored, unchanged, rejected, complete"
    " FROM load_checkpoint WHERE source = $1";

// Appends the COPY lines `lines` to `out`, each with `key` as its last field.
void AppendWithKey(std::string& out, const std::string& lines, std::string_view key) {
  std::size_t from = 0;
  while (from < lines.size()) {
    std::size_t end = lines.find('\n', from);
    if (end == std::string::npos) end = lines.size();
    out.append(lines, from, end - from);
    out += '\t';
    out += key;
    out += '\n';
    from = end + 1;
  }
}

// What a batch does to one (type, id).
struct KeyState {
  bool existed = false;    // in the table before the batch
  bool deleted = false;    // current version is a tombstone
  int64_t version = 0;     // current version (0: none)
  int64_t last_updated_ms = 0;
  int64_t old_key = 0;     // res_key before the batch (of the rows to remove)
  std::string content;     // current content (unescaped JSON)
  int remaining = 0;       // items of the batch for this key not seen yet
  bool archive = false;    // the version before the batch had content: archive it when superseded
  int64_t archive_version = 0;
  std::string archive_content;
  const BulkItem* indexed_by = nullptr;  // the item whose version is current, when the batch wrote one
  std::string copy_content;              // that version's content, COPY-escaped
};

using Key = std::pair<std::string, std::string>;

fhir::Result<BulkWriteResult> WriteOnce(pqxx::work& tx, std::vector<BulkItem>& items,
                                        const BulkCheckpoint* checkpoint) {
  BulkWriteResult result;
  std::map<Key, KeyState> keys;
  for (const auto& item : items) keys.try_emplace(Key{item.type, item.id});

  if (!keys.empty()) {
    std::vector<std::string> types, ids;
    types.reserve(keys.size());
    ids.reserve(keys.size());
    for (const auto& [k, s] : keys) {
      types.push_back(k.first);
      ids.push_back(k.second);
    }
    auto rows = tx.exec_params(kLockCurrentBatch, TextArrayLiteral(types), TextArrayLiteral(ids));
    for (const auto& row : rows) {
      auto& s = keys[Key{row[0].c_str(), row[1].c_str()}];
      s.existed = true;
      s.version = row[2].as<int64_t>();
      s.deleted = row[3].as<bool>();
      s.last_updated_ms = row[4].as<int64_t>();
      if (!row[5].is_null()) s.content.assign(row[5].c_str(), row[5].size());
      s.old_key = row[6].as<int64_t>();
      if (!s.deleted) {
        s.archive = true;
        s.archive_version = s.version;
        s.archive_content = s.content;
      }
    }
  }
  for (const auto& item : items) ++keys[Key{item.type, item.id}].remaining;

  // The COPY buffers are sized up front: growing megabytes by doubling
  // costs more copying than the rows themselves.
  std::array<std::size_t, kContentSlot + 1> sizes{};
  for (const auto& item : items)
    for (std::size_t t = 0; t < sizes.size() && t < item.encoded.size(); ++t) sizes[t] += item.encoded[t].size();
  const std::size_t row_overhead = 96 * items.size();  // keys, version, timestamps of a resource row

  // Versions, in the order of the items (an id twice in a batch gets two).
  std::string history;
  history.reserve(sizes[kContentSlot] + row_overhead);
  const int64_t now = fhir::NowMs();
  for (const auto& item : items) {
    auto& s = keys[Key{item.type, item.id}];
    --s.remaining;
    std::string_view content = item.content;
    std::string rendered;
    int64_t version = 1, ms = item.last_updated_ms;
    if (s.version > 0) {
      if (!s.deleted && fhir::JsonEquivalent(s.content, item.content, true)) {
        ++result.unchanged;
        continue;
      }
      version = s.version + 1;
      ms = std::max(now, s.last_updated_ms);
      rendered = item.resource->Render(std::to_string(version), fhir::FormatInstant(ms));
      content = rendered;
    }
    s.version = version;
    s.deleted = false;
    s.last_updated_ms = ms;
    s.content.assign(content);
    s.indexed_by = &item;
    if (rendered.empty() && item.encoded.size() > kContentSlot) {
      s.copy_content = item.encoded[kContentSlot];
    } else {
      s.copy_content.clear();
      AppendCopyField(s.copy_content, content);
    }
    const std::string v = std::to_string(version), when = TimestampText(ms);
    AppendCopyLine(history, item.type, item.id, v, when, std::string_view("PUT"), std::string_view("f"));
    history.pop_back();  // the content is already escaped
    history += '\t';
    // the current version's content is the resource row's (migration 0013);
    // a version the batch supersedes keeps its own
    if (s.remaining == 0) history += "\\N";
    else history += s.copy_content;
    history += '\n';
    ++result.stored;
  }

  // Current versions: new ids by COPY, existing ones by one UPDATE; then
  // the index rows of every resource that got a new version.
  std::string fresh;
  fresh.reserve(sizes[kContentSlot] + row_overhead);
  std::vector<std::string> up_types, up_ids, up_versions, up_ms, up_contents, up_gens, up_keys, old_keys;
  std::array<std::string, 7> index;
  for (std::size_t t = 0; t < index.size(); ++t) index[t].reserve(sizes[t] + sizes[t] / 8);
  std::string archived;  // superseded versions' content (migration 0013)
  // the written resources' keys: one block for the batch, so that its index
  // rows are added next to each other at the right edge of the key indexes
  std::size_t written = 0;
  for (const auto& [k, s] : keys) written += s.indexed_by != nullptr;
  const std::vector<int64_t> batch_keys = ReserveResourceKeys(tx, written);
  auto next_key = batch_keys.begin();
  for (const auto& [k, s] : keys) {
    if (s.indexed_by == nullptr) continue;
    const BulkItem& item = *s.indexed_by;
    const std::string key = std::to_string(*next_key++);
    if (s.archive) AppendCopyLine(archived, k.first, k.second, std::to_string(s.archive_version), s.archive_content);
    if (s.existed) {
      up_types.push_back(k.first);
      up_ids.push_back(k.second);
      up_versions.push_back(std::to_string(s.version));
      up_ms.push_back(std::to_string(s.last_updated_ms));
      up_contents.push_back(s.content);
      up_gens.push_back(std::to_string(item.index_gen));
      up_keys.push_back(key);
      old_keys.push_back(std::to_string(s.old_key));
    } else {
      AppendCopyLine(fresh, k.first, k.second, std::to_string(s.version), TimestampText(s.last_updated_ms),
                 std::string_view("f"));
      fresh.pop_back();
      fresh += '\t';
      fresh += s.copy_content;
      fresh += '\t';
      fresh += std::to_string(item.index_gen);
      fresh += '\t';
      fresh += key;
      fresh += '\n';
    }
    for (std::size_t t = 0; t < index.size() && t < item.encoded.size(); ++t)
      AppendWithKey(index[t], item.encoded[t], key);
  }
  CopyLines(tx, "resource",
            {"res_type", "res_id", "version_id", "last_updated", "deleted", "content", "index_gen", "res_key"}, fresh);
  if (!up_ids.empty()) {
    tx.exec_params(kDeleteIndexBatch, TextArrayLiteral(old_keys));
    tx.exec_params(kUpdateCurrentBatch, TextArrayLiteral(up_types), TextArrayLiteral(up_ids), TextArrayLiteral(up_versions),
                   TextArrayLiteral(up_ms), TextArrayLiteral(up_contents), TextArrayLiteral(up_gens),
                   TextArrayLiteral(up_keys));
  }
  CopyLines(tx, "resource_history", {"res_type", "res_id", "version_id", "last_updated", "method", "deleted", "content"},
       history);
  if (!archived.empty()) CopyLines(tx, "resource_history_content", {"res_type", "res_id", "version_id", "content"}, archived);
  for (std::size_t t = 0; t < index.size(); ++t) CopyLines(tx, IndexTables()[t].name, IndexTables()[t].columns, index[t]);

  if (checkpoint != nullptr) {
    const auto& c = *checkpoint;
    tx.exec_params(kSaveCheckpoint, c.source, c.fingerprint, c.committed_offset, c.committed_line, c.report_offset,
                   c.stored + result.stored, c.unchanged + result.unchanged, c.rejected, c.complete);
  }
  return result;
}

}  // namespace

void EncodeBulkItem(BulkItem& item) {
  item.encoded.assign(kContentSlot + 1, std::string());
  const std::string& t = item.type;
  const std::string& id = item.id;
  if (item.index) {
    const fhir::IndexRows& rows = *item.index;
    auto g = [](int group) { return std::to_string(group); };
    for (const auto& r : rows.strings)
      AppendCopyLine(item.encoded[0], t, id, r.param, r.normalized, r.exact, g(r.group));
    for (const auto& r : rows.tokens)
      AppendCopyLine(item.encoded[1], t, id, r.param, r.system, r.code, r.text, g(r.group));
    for (const auto& r : rows.dates)
      AppendCopyLine(item.encoded[2], t, id, r.param, TimestampText(r.low_ms), TimestampText(r.high_ms), g(r.group));
    for (const auto& r : rows.numbers)
      AppendCopyLine(item.encoded[3], t, id, r.param, r.value, r.low, r.high, g(r.group));
    for (const auto& r : rows.quantities)
      AppendCopyLine(item.encoded[4], t, id, r.param, r.value, r.low, r.high, r.system, r.code, r.unit, g(r.group));
    for (const auto& r : rows.references)
      AppendCopyLine(item.encoded[5], t, id, r.param, r.target_type, r.target_id, r.version, r.url, g(r.group));
    for (const auto& r : rows.uris) AppendCopyLine(item.encoded[6], t, id, r.param, r.value, g(r.group));
  }
  AppendCopyField(item.encoded[kContentSlot], item.content);
}

fhir::Result<BulkWriteResult> WriteBulkOn(pqxx::connection& conn, std::vector<BulkItem>& items,
                                          const BulkCheckpoint* checkpoint) {
  for (auto& item : items)
    if (item.encoded.size() <= kContentSlot) EncodeBulkItem(item);
  for (int attempt = 0;; ++attempt) {
    try {
      pqxx::work tx(conn);
      auto r = WriteOnce(tx, items, checkpoint);
      if (r) tx.commit();
      return r;
    } catch (const pqxx::unique_violation&) {
      // another writer created one of the ids after the batch looked: the
      // next attempt finds it and makes a new version instead
      if (attempt >= 2) throw;
    }
  }
}

std::optional<BulkCheckpoint> ReadBulkCheckpointOn(pqxx::connection& conn, const std::string& source) {
  pqxx::nontransaction tx(conn);
  auto r = tx.exec_params(kReadCheckpoint, source);
  if (r.empty()) return std::nullopt;
  const auto& row = r[0];
  BulkCheckpoint c;
  c.source = source;
  c.fingerprint = row[0].c_str();
  c.committed_offset = row[1].as<int64_t>();
  c.committed_line = row[2].as<int64_t>();
  c.report_offset = row[3].as<int64_t>();
  c.stored = row[4].as<int64_t>();
  c.unchanged = row[5].as<int64_t>();
  c.rejected = row[6].as<int64_t>();
  c.complete = row[7].as<bool>();
  return c;
}

}  // namespace eds::storage
