// SQL of the resource tables: named statements prepared on every
// connection. Every value is a bound parameter.
#pragma once

namespace eds::storage {

// Milliseconds since the epoch <-> timestamptz, exactly.
#define EDS_TS(p) "(timestamptz 'epoch' + " p "::bigint * interval '1 millisecond')"
#define EDS_MS(c) "(extract(epoch from " c ") * 1000)::bigint"
// The content of the version history row `h` names (migration 0013): its
// own, else the current row's when it is that version, else the archived
// copy of a superseded version.
#define EDS_VERSION_CONTENT(h)                                                                           \
  "COALESCE(" h ".content, (SELECT r_.content FROM resource r_ WHERE r_.res_type = " h                   \
  ".res_type AND r_.res_id = " h ".res_id AND r_.version_id = " h ".version_id),"                        \
  " (SELECT c_.content FROM resource_history_content c_ WHERE c_.res_type = " h ".res_type AND c_.res_id = " h \
  ".res_id AND c_.version_id = " h ".version_id))"

struct Statement {
  const char* name;
  const char* sql;
};

inline constexpr Statement kSelectCurrent{
    "select_current",
    "SELECT version_id, deleted, " EDS_MS("last_updated") ", content::text"
    " FROM resource WHERE res_type = $1 AND res_id = $2"};

// The current versions of a batch of keys ($1 types, $2 ids, as text[]),
// each looked up by primary key.
inline constexpr Statement kSelectCurrentBatch{
    "select_current_batch",
    "SELECT r.res_type, r.res_id, r.version_id, r.deleted, " EDS_MS("r.last_updated") ", r.content::text"
    " FROM unnest($1::text[], $2::text[]) AS k(res_type, res_id)"
    " CROSS JOIN LATERAL (SELECT * FROM resource x"
    "   WHERE x.res_type = k.res_type AND x.res_id = k.res_id) r"};

inline constexpr Statement kSelectVersion{
    "select_version",
    "SELECT h.version_id, h.deleted, " EDS_MS("h.last_updated") ", " EDS_VERSION_CONTENT("h") "::text, h.method"
    " FROM resource_history h WHERE h.res_type = $1 AND h.res_id = $2 AND h.version_id = $3"};

inline constexpr Statement kLockCurrent{
    "lock_current",
    "SELECT version_id, deleted, " EDS_MS("last_updated") ", res_key"
    " FROM resource WHERE res_type = $1 AND res_id = $2 FOR UPDATE"};

// Version 1 of a resource when it has no row, else its row locked (one
// round trip for the PUT of a new id): (true, ...) after an insert,
// (false, version, deleted, last updated, key) for a row that exists, no row
// when a concurrent writer's insert came first ($6: the new resource's
// key, storage::NewResourceKey). Before inserting, it takes
// the id's lock in the space a transaction's PUTs lock the ids they may
// create ("EDSI", 0x45445349, see TxScope::LockForWrite), so that a
// transaction that found the id free and a single PUT take turns.
inline constexpr Statement kInsertFirstOrLock{
    "insert_first_or_lock",
    "WITH cur AS (SELECT version_id, deleted, " EDS_MS("last_updated") " AS ms, res_key"
    "  FROM resource WHERE res_type = $1 AND res_id = $2 FOR UPDATE),"
    " ins AS ("
    "  INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content, res_key)"
    "  SELECT $1, $2, 1, " EDS_TS("$3") ", false, $4::json, $6"
    "  FROM (SELECT pg_advisory_xact_lock(1162105673, hashtext($1::text || '/' || $2::text))) lk"
    "  WHERE NOT EXISTS (SELECT 1 FROM cur)"
    "  ON CONFLICT DO NOTHING"
    "  RETURNING res_type, res_id, version_id, last_updated, content),"
    " hist AS ("
    "  INSERT INTO resource_history (res_type, res_id, version_id, last_updated, method)"
    "  SELECT res_type, res_id, version_id, last_updated, $5 FROM ins RETURNING seq)"
    " SELECT true, 1::bigint, false, 0::bigint, 0::bigint FROM hist"
    " UNION ALL SELECT false, version_id, deleted, ms, res_key FROM cur"};

inline constexpr Statement kSelectCurrentForUpdate{
    "select_current_for_update",
    "SELECT version_id, deleted, " EDS_MS("last_updated") ", content::text"
    " FROM resource WHERE res_type = $1 AND res_id = $2 FOR UPDATE"};

// Version 1 of a new resource ($6: its key, storage::NewResourceKey);
// inserts nothing when (type, id) exists.
inline constexpr Statement kInsertFirst{
    "insert_first",
    "WITH ins AS ("
    " INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content, res_key)"
    " VALUES ($1, $2, 1, " EDS_TS("$3") ", false, $4::json, $6)"
    " ON CONFLICT DO NOTHING"
    " RETURNING res_type, res_id, version_id, last_updated)"
    " INSERT INTO resource_history (res_type, res_id, version_id, last_updated, method)"
    " SELECT res_type, res_id, version_id, last_updated, $5 FROM ins"
    " RETURNING seq"};

// A new version of a locked resource, unless its content is unchanged.
inline constexpr Statement kUpdateExisting{
    "update_existing",
    "WITH prev AS (SELECT version_id, deleted, content FROM resource WHERE res_type = $1 AND res_id = $2),"
    " upd AS ("
    " UPDATE resource SET version_id = $3, last_updated = " EDS_TS("$4") ","
    "   deleted = false, content = $5::json"
    // unchanged: the same tree, numbers with the same value and precision
    // (jsonb's text keeps a number's scale: 5.50 and 5.50e0, not 5.5)
    " WHERE res_type = $1 AND res_id = $2 AND (deleted OR"
    "   eds_strip_server_meta(content::jsonb)::text IS DISTINCT FROM eds_strip_server_meta($5::json::jsonb)::text)"
    " RETURNING res_type, res_id, version_id, last_updated),"
    // the superseded version's content, for reads of that version
    " arch AS (INSERT INTO resource_history_content (res_type, res_id, version_id, content)"
    "   SELECT $1, $2, prev.version_id, prev.content FROM prev, upd WHERE NOT prev.deleted),"
    " hist AS (INSERT INTO resource_history (res_type, res_id, version_id, last_updated, method)"
    "   SELECT res_type, res_id, version_id, last_updated, $6 FROM upd RETURNING seq)"
    // (true, NULL) for a new version; (false, the current content) when the
    // content is unchanged and nothing was written
    " SELECT true, NULL::text FROM hist"
    " UNION ALL SELECT false, prev.content::text FROM prev WHERE NOT EXISTS (SELECT 1 FROM upd)"};

// The parameter-set generation that indexed a resource (custom parameters).
inline constexpr Statement kSetIndexGeneration{
    "set_index_generation",
    "UPDATE resource SET index_gen = $3 WHERE res_type = $1 AND res_id = $2 AND index_gen <> $3"};

inline constexpr Statement kAllStatements[] = {
    kSelectCurrent, kSelectVersion,  kLockCurrent,       kInsertFirstOrLock,
    kSelectCurrentForUpdate, kInsertFirst, kUpdateExisting, kSetIndexGeneration};

}  // namespace eds::storage
