// ResourceStore: persistence of FHIR resources in FHIR terms (create, read,
// vread, update, delete, history). Implementations translate their own
// failures: expected outcomes are Result errors; broken infrastructure
// throws StorageError.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fhir/bundle.hpp"
#include "fhir/primitives.hpp"
#include "fhir/result.hpp"

namespace eds::fhir {
class Resource;
struct SearchQuery;
struct IndexRows;
}

namespace eds::storage {

using fhir::Result;
using fhir::VersionRecord;

// Infrastructure failure (bad SQL, lost data invariants). Caught once at the
// HTTP boundary and answered with a generic 500.
class StorageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct WriteResult {
  VersionRecord record;  // the version now current
  bool created = false;  // a new resource (or a deleted one brought back)
  bool changed = true;   // false: nothing changed, no version was written
};

struct HistoryQuery {
  std::optional<std::string> type;  // absent: system history
  std::optional<std::string> id;    // with type: instance history
  std::optional<int64_t> since_ms;  // versions written at or after
  std::optional<fhir::InstantRange> at;  // versions current during the range
  std::optional<int64_t> before_seq;     // paging cursor: only older changes
  int count = 50;
};

struct HistoryPage {
  std::vector<VersionRecord> entries;     // newest first
  std::optional<int64_t> next_before_seq;  // cursor of the next page, if any
};

struct SearchPage {
  std::vector<VersionRecord> matches;      // in the requested order
  std::vector<VersionRecord> included;     // _include / _revinclude, each once
  // Keyset cursors of the next and previous pages, if any (cursor paging).
  std::optional<std::string> next_cursor;
  std::optional<std::string> prev_cursor;
  // Offsets of the next and previous pages (_offset paging).
  std::optional<long> next_offset;
  std::optional<long> prev_offset;
  std::optional<int64_t> total;            // when the query asked for it
  bool total_is_estimate = false;
  // Warnings for the result's OperationOutcome (e.g. a custom parameter
  // not every resource has been reindexed for yet).
  std::vector<std::string> warnings;
};

// A SearchParameter resource stored here, with the index generation its
// current version took effect at.
struct StoredSearchParameter {
  std::string id;
  std::string content;
  int64_t generation = 0;
};

// Progress of a reindex: resources re-extracted by this call, and those
// still indexed by an older parameter set.
struct ReindexProgress {
  int64_t reindexed = 0;
  int64_t remaining = 0;
};

// An FSE 2.0 document published through the ingestion API.
struct DocumentRecord {
  std::string identifier;            // master identifier as sent
  std::string workflow_instance_id;
  std::vector<std::string> resources;  // Type/id written by the document
  std::string document_reference;      // Type/id
  std::string rda, rde, priority;
};

// One call of the FSE ingestion API, for the feeding analytics
// (feeding_record). The patient's fiscal code appears only as a keyed hash.
struct FeedingRecord {
  int64_t received_ms = 0;   // when the request arrived
  int64_t completed_ms = 0;  // when its outcome was known
  std::string request_id;
  std::string operation;     // PUBLISH, REPLACE, UPDATE, DELETE
  std::string workflow_instance_id;
  std::string identifier;    // master identifier
  std::string document_type;  // LOINC code of Composition.type
  std::string tipo_documento_liv_alto;
  std::string rde, rda;
  std::string producer_app_id, producer_app_vendor, producer_app_version;
  std::string producer_org;
  std::string priority;
  int entries = 0;
  int validation_errors = 0;
  int status = 0;            // HTTP status of the answer
  std::string problem_type, problem_title;
  std::string patient;           // Patient/id
  std::string fiscal_code_hash;  // HMAC-SHA256, hex
};

// One resource of a bulk write (ResourceStore::WriteBulk), checked and
// prepared off the writing thread: its id set, its index rows extracted and
// its content rendered as version 1.
struct BulkItem {
  std::string type;
  std::string id;
  std::shared_ptr<const fhir::Resource> resource;  // re-rendered when it becomes a later version
  std::string content;                             // rendered as version 1 at last_updated_ms
  int64_t last_updated_ms = 0;
  std::shared_ptr<const fhir::IndexRows> index;    // its search index rows
  int64_t index_gen = 0;                           // generation of the indexer that extracted them
  // The store's own encoding of the item (ResourceStore::PrepareBulk);
  // opaque to callers.
  std::vector<std::string> encoded;
};

// How far a bulk load of one source has been committed; written in the
// same transaction as a batch, so that a load run again resumes after it.
struct BulkCheckpoint {
  std::string source;        // absolute path
  std::string fingerprint;   // identifies the file's state (size, modification time)
  int64_t committed_offset = 0;  // bytes of whole lines committed
  int64_t committed_line = 0;    // lines committed
  int64_t report_offset = 0;     // bytes of the rejection report covering them
  int64_t stored = 0;            // totals of the load so far
  int64_t unchanged = 0;
  int64_t rejected = 0;
  bool complete = false;
};

struct BulkWriteResult {
  int64_t stored = 0;     // versions written
  int64_t unchanged = 0;  // resources equal to their current version: nothing written
};

// The operations of one database transaction (ResourceStore::RunTransaction).
// Each sees the writes made before it in the same transaction; nothing is
// stored unless the whole body succeeds. Errors are as for the
// ResourceStore operations of the same name.
class TxScope {
 public:
  virtual ~TxScope() = default;

  // Serializes this transaction with every other conditional write of the
  // same type and criteria (fhir::CanonicalCriteria text), single requests
  // included, until it ends. Several are taken in sorted order, so two
  // transactions never wait for each other.
  virtual void LockCriteria(const std::string& type, const std::string& criteria_text) = 0;
  // LockCriteria of each (type, criteria text), in the order given (sorted
  // by the caller), with one statement where the store can.
  virtual void LockAllCriteria(const std::vector<std::pair<std::string, std::string>>& keys) {
    for (const auto& [type, text] : keys) LockCriteria(type, text);
  }
  // Current resources matching the filters of `query`, at most `limit`,
  // ordered by id. kNotSupported for criteria this store cannot answer.
  virtual Result<std::vector<VersionRecord>> Find(const fhir::SearchQuery& query, int limit) = 0;
  // Current version (a tombstone when deleted), locked until the transaction
  // ends. kNotFound when the resource never existed.
  virtual Result<VersionRecord> ReadForUpdate(const std::string& type, const std::string& id) = 0;
  // Current version. kNotFound, or kGone when it is deleted.
  virtual Result<VersionRecord> Read(const std::string& type, const std::string& id) = 0;
  // Version 1 of a new resource under `id`; kConflict when the id is taken.
  virtual Result<WriteResult> Create(fhir::Resource& resource, const std::string& id) = 0;
  virtual Result<WriteResult> Update(fhir::Resource& resource, const std::string& id,
                                     std::optional<int64_t> if_match) = 0;
  // Locks the current versions of the resources (type, id) the transaction
  // is about to update, with one statement; the store may then write the
  // ones that do not exist as new resources without a statement each.
  virtual void LockForWrite(const std::vector<std::pair<std::string, std::string>>& keys) { (void)keys; }
  virtual Result<WriteResult> Delete(const std::string& type, const std::string& id,
                                     std::optional<int64_t> if_match) = 0;
  // One deletion of DeleteEach: what Delete takes.
  struct DeleteKey {
    std::string type, id;
    std::optional<int64_t> if_match;
  };
  // What DeleteEach did: the results of the first keys, in their order,
  // and the failure of the next one, where it stopped.
  struct Deletions {
    std::vector<WriteResult> done;
    std::optional<fhir::Error> failure;
  };
  // Delete of each key (distinct resources), in their order, with a couple
  // of statements for all where the store can, which then locks the rows in
  // key order. Stops at the first failure.
  virtual Deletions DeleteEach(const std::vector<DeleteKey>& keys) {
    Deletions out;
    for (const auto& k : keys) {
      auto w = Delete(k.type, k.id, k.if_match);
      if (!w) {
        out.failure = std::move(w.error());
        break;
      }
      out.done.push_back(std::move(*w));
    }
    return out;
  }
  // Deletes each (type, id) as Delete does, without version checks, where
  // the store can with a couple of statements for all; resources that do
  // not exist or are deleted already are left as they are.
  virtual std::optional<fhir::Error> DeleteMany(const std::vector<std::pair<std::string, std::string>>& keys) {
    for (const auto& [type, id] : keys)
      if (auto w = Delete(type, id, std::nullopt); !w && w.error().kind != fhir::ErrorKind::kNotFound)
        return std::move(w.error());
    return std::nullopt;
  }

  // Reads of a Bundle's GET entries, seeing this transaction's writes; as
  // ResourceStore::ReadVersion, History and Search. kNotSupported by
  // default (a store that cannot read inside its transactions).
  virtual Result<VersionRecord> ReadVersion(const std::string& type, const std::string& id, int64_t version) {
    (void)type;
    (void)id;
    (void)version;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store cannot read versions inside a transaction");
  }
  virtual Result<HistoryPage> History(const HistoryQuery& query) {
    (void)query;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store cannot read history inside a transaction");
  }
  virtual Result<SearchPage> Search(const fhir::SearchQuery& query) {
    (void)query;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store cannot search inside a transaction");
  }

  // The registry of FSE documents, in this transaction. Get locks the row
  // it returns until the transaction ends.
  virtual Result<std::optional<DocumentRecord>> GetDocument(const std::string& identifier) {
    (void)identifier;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store keeps no document registry");
  }
  virtual Result<std::optional<DocumentRecord>> GetDocumentByWorkflow(const std::string& workflow_instance_id) {
    (void)workflow_instance_id;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store keeps no document registry");
  }
  virtual std::optional<fhir::Error> PutDocument(const DocumentRecord& record) {
    (void)record;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store keeps no document registry");
  }
  virtual std::optional<fhir::Error> DeleteDocument(const std::string& identifier) {
    (void)identifier;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store keeps no document registry");
  }

  // Appends the feeding record of an ingestion API call, in this
  // transaction (so an accepted document and its record commit together).
  virtual std::optional<fhir::Error> RecordFeeding(const FeedingRecord& record) {
    (void)record;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store keeps no feeding records");
  }
  // Records `rda` as the region of assistance of `patient` (Patient/id), as
  // said by the document `identifier`.
  virtual std::optional<fhir::Error> SetPatientRegion(const std::string& patient, const std::string& rda,
                                                      const std::string& identifier) {
    (void)patient;
    (void)rda;
    (void)identifier;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store keeps no patient regions");
  }
};

class ResourceStore {
 public:
  virtual ~ResourceStore() = default;

  // Current version. kNotFound when the resource never existed; a deleted
  // resource is returned as its tombstone (deleted == true).
  virtual Result<VersionRecord> Read(const std::string& type, const std::string& id) = 0;

  // One version. kNotFound when the resource or the version does not exist;
  // a deletion version is returned with deleted == true.
  virtual Result<VersionRecord> ReadVersion(const std::string& type, const std::string& id,
                                            int64_t version) = 0;

  // Stores a new resource under a fresh server-assigned id (set on `resource`).
  virtual Result<WriteResult> Create(fhir::Resource& resource) = 0;

  // Update or create with the client's id. `if_match`: the version the
  // client expects to be current (kPreconditionFailed otherwise). Content
  // equal to the current version's (apart from meta.versionId/lastUpdated)
  // writes nothing and returns the current version with changed == false.
  virtual Result<WriteResult> Update(fhir::Resource& resource, const std::string& id,
                                     std::optional<int64_t> if_match) = 0;
  // Locks the current versions of the resources (type, id) the transaction
  // is about to update, with one statement; the store may then write the
  // ones that do not exist as new resources without a statement each.
  virtual void LockForWrite(const std::vector<std::pair<std::string, std::string>>& keys) { (void)keys; }

  // Writes a deletion version. kNotFound when the resource never existed;
  // deleting a deleted resource changes nothing (changed == false).
  virtual Result<WriteResult> Delete(const std::string& type, const std::string& id,
                                     std::optional<int64_t> if_match) = 0;

  virtual Result<HistoryPage> History(const HistoryQuery& query) = 0;

  // Current resources of query.resource_type matching every criterion.
  // kInvalid for a cursor that does not fit the query; kNotSupported for
  // criteria this store cannot answer.
  virtual Result<SearchPage> Search(const fhir::SearchQuery& query) = 0;

  // Conditional writes: `criteria` (a search on the resource's type) picks
  // the target. They run in one transaction, serialized with every other
  // conditional write of the same type and criteria, so concurrent
  // identical requests cannot both create. More than one match is
  // kPreconditionFailed.
  // Create: no match creates (created); one match returns it unchanged
  // (created == false, changed == false).
  virtual Result<WriteResult> ConditionalCreate(fhir::Resource& resource, const fhir::SearchQuery& criteria,
                                                const std::string& criteria_text) = 0;
  // Update: no match creates (with the body's id, or a new one); one match
  // is updated (a body id must equal its id, else kInvalid).
  virtual Result<WriteResult> ConditionalUpdate(fhir::Resource& resource, const fhir::SearchQuery& criteria,
                                                const std::string& criteria_text) = 0;
  // Delete: no match is kNotFound; one match is deleted.
  virtual Result<WriteResult> ConditionalDelete(const fhir::SearchQuery& criteria, const std::string& criteria_text) = 0;

  // Custom search parameters: every current SearchParameter resource, each
  // version given its index generation the first time it is seen here.
  virtual Result<std::vector<StoredSearchParameter>> SearchParameters() {
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "custom search parameters are not supported");
  }
  // The content of every current (not deleted) resource of `type`, for
  // the few types the server reads whole: the StructureDefinitions,
  // ValueSets and CodeSystems written through the API, which validation uses.
  virtual Result<std::vector<std::string>> CurrentContents(const std::string& type) {
    (void)type;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "this store cannot list resources");
  }
  // Re-extracts the search index of up to `batch` resources indexed by an
  // older parameter set than the current indexer's, each batch one
  // transaction.
  virtual Result<ReindexProgress> ReindexBatch(int batch) {
    (void)batch;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "reindexing is not supported");
  }

  // Prometheus exposition lines about the store (connection pool), for
  // GET /metrics; empty when it has none.
  virtual std::string MetricsText() { return {}; }
  // Why the store cannot serve now (database unreachable, schema not at
  // this binary's version); nullopt when it can.
  virtual std::optional<std::string> NotReady() { return std::nullopt; }
  // Bulk writes (eds load, $import). PrepareBulk does the store's share of
  // the work that needs no database (encoding rows), on any thread, so
  // callers can run it in parallel; it must be called on every item before
  // WriteBulk.
  virtual void PrepareBulk(BulkItem& item) const { (void)item; }
  // Writes `items` in one database transaction, in order, with the rules of
  // an update-as-create (Update without If-Match): a new id is version 1, an
  // existing one gets the next version unless its content is unchanged, a
  // deleted one comes back. `checkpoint` (may be null) is recorded in the
  // same transaction. Nothing is written when it fails; errors as for Update.
  virtual Result<BulkWriteResult> WriteBulk(std::vector<BulkItem>& items, const BulkCheckpoint* checkpoint) {
    (void)items;
    (void)checkpoint;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "bulk writes are not supported");
  }
  // The checkpoint recorded for `source`, if any.
  virtual Result<std::optional<BulkCheckpoint>> ReadBulkCheckpoint(const std::string& source) {
    (void)source;
    return fhir::MakeError(fhir::ErrorKind::kNotSupported, "bulk loads are not supported");
  }

  // Runs `body` in one database transaction and commits when it returns no
  // error; an error rolls everything back and is returned as is. `body` may
  // run more than once (after a serialization failure, a deadlock or a lost
  // connection the store starts over), so it must start from its inputs
  // each time. Database failures are translated as for every operation
  // (kConflict, kUnavailable, StorageError).
  virtual std::optional<fhir::Error> RunTransaction(
      const std::function<std::optional<fhir::Error>(TxScope&)>& body) = 0;
};

}  // namespace eds::storage
