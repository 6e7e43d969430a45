// Bulk ingest (eds load, $import): NDJSON lines (or a JSON document) are
// checked like API writes and indexed by a pool of threads, and written in
// batches, one transaction each, by the calling thread while the next
// batches are prepared. A rejected line is reported and skipped, never
// stops the load. File loads record a checkpoint with every batch, so a
// load run again after an interruption resumes after the last batch
// committed; writes are idempotent, so nothing is ever stored twice.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/result.hpp"

namespace eds::fhir {
class Definitions;
class IndexerHolder;
}  // namespace eds::fhir
namespace eds::storage {
class ResourceStore;
}

namespace eds::server {

struct LoadOptions {
  int batch_size = 1000;             // lines (resources, or Bundles) per transaction
  int workers = 2;                   // threads that parse, check and index lines
  int writers = 1;                   // threads writing batches at once, each on its own connection
  std::size_t max_json_depth = 64;
  bool progress = false;             // a progress line on stderr (files only)
};

// A line (or Bundle entry) that was not loaded, and why.
struct Rejection {
  int64_t line = 0;                  // 1-based line of the source
  std::optional<std::size_t> entry;  // Bundle.entry index, for a Bundle's resource
  std::string reason;
  // "line 12: reason" or "line 12, Bundle.entry[3]: reason"
  std::string Describe() const;
};

struct LoadStats {
  int64_t lines = 0;      // lines read by this run (blank ones included)
  int64_t stored = 0;     // versions written
  int64_t unchanged = 0;  // resources equal to their stored version
  int64_t rejected = 0;   // lines and entries refused
  int64_t search_parameters = 0;  // SearchParameter resources among those stored or unchanged
  double seconds = 0;
};

// What a file load did, and what the load of that file did in all its runs.
struct FileLoadResult {
  LoadStats run;                 // this run
  int64_t resumed_at_line = 0;   // lines a previous run had committed (0: started at the beginning)
  bool already_complete = false; // an earlier run loaded the unchanged file completely
  int64_t total_stored = 0, total_unchanged = 0, total_rejected = 0;  // all runs of this file
  std::string report_path;       // where the rejected lines are listed (written when there are some)
  std::vector<Rejection> first_rejections;  // this run's first ones (up to FileLoadOptions::keep_rejections)
};

struct FileLoadOptions {
  std::string report_path;     // default: <file>.rejected.txt
  bool restart = false;        // ignore the checkpoint of an earlier run
  std::size_t keep_rejections = 20;
};

class BulkLoader {
 public:
  BulkLoader(std::shared_ptr<const fhir::Definitions> definitions, std::shared_ptr<fhir::IndexerHolder> indexers,
             storage::ResourceStore& store, LoadOptions options);
  ~BulkLoader();
  BulkLoader(const BulkLoader&) = delete;
  BulkLoader& operator=(const BulkLoader&) = delete;

  // Loads NDJSON `text` (each non-blank line a resource or a Bundle, whose
  // entry resources are loaded). `on_rejected` is called for each rejected
  // line in order. Errors: the store's error for the batch that failed
  // (the batches before it stay written).
  fhir::Result<LoadStats> LoadText(std::string_view text, const std::function<void(const Rejection&)>& on_rejected);

  // Loads a file: NDJSON, or one JSON document (a resource or a Bundle)
  // when its name ends in ".json". Resumes after the checkpoint of an
  // earlier run of the same unchanged file. Errors: kNotFound when the file
  // cannot be read, kInvalid when the report cannot be written, the
  // store's errors (what was committed stays, and a new run resumes).
  fhir::Result<FileLoadResult> LoadFile(const std::string& path, const FileLoadOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::server
