// Bulk ingest: a pipeline of preparing threads (parse, structure check,
// index extraction, the store's encoding) feeding the writing thread, which
// writes one batch per transaction in source order.
#include "server/bulk_loader.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <utility>

#include "fhir/bulk.hpp"
#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "fhir/primitives.hpp"
#include "fhir/search_index.hpp"
#include "server/search_admin.hpp"
#include "storage/pg_audit_sink.hpp"
#include "storage/resource_store.hpp"

namespace eds::server {

using fhir::ErrorKind;
using fhir::MakeError;

std::string Rejection::Describe() const {
  if (entry) return fmt::format("line {}, Bundle.entry[{}]: {}", line, *entry, reason);
  return fmt::format("line {}: {}", line, reason);
}

namespace {

using Clock = std::chrono::steady_clock;

// A run of whole lines of the source, prepared as one batch.
struct Chunk {
  int64_t seq = 0;
  std::string_view text;
  int64_t first_line = 0;  // 1-based number of its first line
  int64_t end_offset = 0;  // offset in the source just after it
  int64_t lines = 0;
};

struct Prepared {
  std::vector<storage::BulkItem> items;
  std::vector<Rejection> rejections;
  int64_t end_offset = 0;
  int64_t lines = 0;
  int64_t search_parameters = 0;
  int64_t report_end = 0;  // file loads: size of the report once this batch's rejections are in
};

// Largest run of lines prepared as one batch, whatever the line count.
constexpr std::size_t kMaxChunkBytes = 16u << 20;

// The reason of an error, from its issues: "diagnostics (at expression)", the
// first three, and how many more.
std::string Reason(const fhir::Outcome& outcome) {
  std::string out;
  int shown = 0, more = 0;
  for (const auto& issue : outcome.issues()) {
    if (issue.severity != fhir::Severity::kError && issue.severity != fhir::Severity::kFatal) continue;
    if (shown == 3) {
      ++more;
      continue;
    }
    if (shown++) out += "; ";
    out += issue.diagnostics;
    if (!issue.expression.empty()) out += fmt::format(" (at {})", issue.expression);
  }
  if (more) out += fmt::format("; and {} more", more);
  return out.empty() ? std::string("invalid") : out;
}

std::string_view TrimLine(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  return s;
}

std::string Thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string Duration(double seconds) {
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

// The rejection report of a file load: created on the first rejection,
// flushed before each batch is committed, so the checkpoint can record how
// much of it belongs to committed batches.
class Report {
 public:
  explicit Report(std::string path) : path_(std::move(path)) {}
  ~Report() {
    if (file_) std::fclose(file_);
  }
  Report(const Report&) = delete;
  Report& operator=(const Report&) = delete;

  // Keeps the first `size` bytes of an earlier run's report (0: none).
  std::optional<std::string> Reset(int64_t size) {
    if (size == 0) {
      if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return Problem("cannot remove");
    } else if (::truncate(path_.c_str(), size) != 0) {
      if (errno != ENOENT) return Problem("cannot truncate");
      size = 0;  // removed since: the rejections of the earlier run are gone with it
    }
    size_ = size;
    return std::nullopt;
  }
  std::optional<std::string> Write(const std::string& line) {
    if (file_ == nullptr) {
      file_ = std::fopen(path_.c_str(), "a");
      if (file_ == nullptr) return Problem("cannot write");
    }
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fputc('\n', file_) == EOF)
      return Problem("cannot write");
    size_ += static_cast<int64_t>(line.size()) + 1;
    return std::nullopt;
  }
  std::optional<std::string> Flush() {
    if (file_ && std::fflush(file_) != 0) return Problem("cannot write");
    return std::nullopt;
  }
  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string Problem(const char* what) const {
    return fmt::format("{} the rejection report {}: {}", what, path_, std::strerror(errno));
  }
  std::string path_;
  std::FILE* file_ = nullptr;
  int64_t size_ = 0;
};

// A read-only mapping of a whole file.
class MappedFile {
 public:
  ~MappedFile() {
    if (data_ != nullptr && data_ != MAP_FAILED) ::munmap(data_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  std::optional<std::string> Open(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return fmt::format("cannot open {}: {}", path, std::strerror(errno));
    if (::fstat(fd_, &st_) != 0) return fmt::format("cannot read {}: {}", path, std::strerror(errno));
    if (!S_ISREG(st_.st_mode)) return fmt::format("{} is not a regular file", path);
    size_ = static_cast<std::size_t>(st_.st_size);
    if (size_ == 0) return std::nullopt;
    data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (data_ == MAP_FAILED) return fmt::format("cannot map {}: {}", path, std::strerror(errno));
    ::madvise(data_, size_, MADV_SEQUENTIAL);
    return std::nullopt;
  }
  std::string_view text() const {
    return size_ == 0 ? std::string_view() : std::string_view(static_cast<const char*>(data_), size_);
  }
  // Identifies this state of the file: a changed file starts its load over.
  std::string Fingerprint() const {
    return fmt::format("{}:{}.{:09}", st_.st_size, st_.st_mtim.tv_sec, st_.st_mtim.tv_nsec);
  }

 private:
  int fd_ = -1;
  void* data_ = nullptr;
  std::size_t size_ = 0;
  struct stat st_ {};
};

}  // namespace

struct BulkLoader::Impl {
  std::shared_ptr<const fhir::Definitions> defs;
  std::shared_ptr<fhir::IndexerHolder> indexers;
  storage::ResourceStore& store;
  LoadOptions options;

  // What a load does around the writing of its batches. `before` and
  // `committed` run on the calling thread, in source order; `checkpoint`
  // (may be empty) gives the checkpoint to record with a batch about to be
  // handed out, `alone` when every batch before it is committed (so the
  // checkpoint may count it).
  struct Hooks {
    std::function<std::optional<fhir::Error>(Prepared&)> before;
    std::function<std::optional<storage::BulkCheckpoint>(const Prepared& batch, bool alone)> checkpoint;
    // a batch and every one before it are committed (`batch` without its items)
    std::function<void(const Prepared& batch, const storage::BulkWriteResult&)> committed;
  };

  // ---- preparing (any thread) ------------------------------------------------

  struct Context {
    std::shared_ptr<const fhir::SearchIndexer> indexer;
    fhir::JsonLimits limits;
  };

  // Checks the type and id of a resource and gives an id-less one its id:
  // the id of a RESTful `full_url`, else the one derived from its content.
  // Returns why the resource is refused.
  std::optional<std::string> Identify(fhir::Resource& resource, bool in_bundle, std::string_view full_url) const {
    const std::string& type = resource.type();
    if (type == "Bundle" && in_bundle) return std::string("a Bundle inside a Bundle is not loaded");
    if (!defs->IsResourceType(type)) return fmt::format("unknown resource type '{}'", type);
    if (type == storage::kAuditEventType)
      return std::string("AuditEvent resources are recorded by the server and cannot be loaded");
    if (auto given = resource.id()) {
      if (!fhir::IsValidId(*given))
        return fmt::format("'{}' is not a valid resource id (1-64 of A-Z a-z 0-9 - .)", *given);
      return std::nullopt;
    }
    auto from_url = fhir::FullUrlId(full_url, type);
    resource.SetId(from_url ? *from_url : fhir::ContentDerivedId(resource));
    return std::nullopt;
  }

  void PrepareResource(const Context& ctx, fhir::Resource resource, int64_t line, std::optional<std::size_t> entry,
                       Prepared& out) const {
    auto reject = [&](std::string reason) { out.rejections.push_back({line, entry, std::move(reason)}); };
    if (auto problem = Identify(resource, entry.has_value(), {})) return reject(std::move(*problem));
    const std::string type = resource.type();
    std::string id = *resource.id();
    auto issues = defs->CheckStructure(resource);
    if (issues.HasErrors()) return reject(Reason(issues));
    storage::BulkItem item;
    item.type = type;
    item.id = std::move(id);
    item.last_updated_ms = fhir::NowMs();
    item.content = resource.Render("1", fhir::FormatInstant(item.last_updated_ms));
    if (type == "SearchParameter") {
      if (std::string problem = CheckSearchParameter(item.content); !problem.empty())
        return reject("this SearchParameter cannot be used for search: " + problem);
      ++out.search_parameters;
    }
    if (ctx.indexer) {
      item.index = std::make_shared<const fhir::IndexRows>(ctx.indexer->Extract(resource));
      item.index_gen = ctx.indexer->generation();
    }
    item.resource = std::make_shared<const fhir::Resource>(std::move(resource));
    store.PrepareBulk(item);
    out.items.push_back(std::move(item));
  }

  void PrepareLine(const Context& ctx, std::string_view text, int64_t line, Prepared& out) const {
    text = TrimLine(text);
    if (text.empty()) return;
    auto parsed = fhir::Resource::Parse(text, ctx.limits);
    if (!parsed) {
      out.rejections.push_back({line, std::nullopt, Reason(parsed.error().outcome)});
      return;
    }
    if (parsed->type() != "Bundle") return PrepareResource(ctx, std::move(*parsed), line, std::nullopt, out);
    auto entries = fhir::BundleEntryResources(*parsed, ctx.limits);
    if (!entries) {
      out.rejections.push_back({line, std::nullopt, Reason(entries.error().outcome)});
      return;
    }
    // Every entry gets its id first, so that references between entries
    // (urn:uuid: and other fullUrls) can be rewritten to Type/id as a
    // transaction would; the ids do not depend on the rewriting, so loading
    // the Bundle again finds the same ones.
    for (auto& e : *entries) {
      if (!e.resource) continue;
      if (auto problem = Identify(*e.resource, true, e.full_url))
        e.resource = MakeError(ErrorKind::kInvalid, std::move(*problem));  // neither a target nor rewritten
    }
    fhir::RewriteBundleReferences(*entries);
    for (auto& e : *entries) {
      if (!e.resource) out.rejections.push_back({line, e.index, Reason(e.resource.error().outcome)});
      else PrepareResource(ctx, std::move(*e.resource), line, e.index, out);
    }
  }

  Prepared Prepare(const Context& ctx, const Chunk& chunk, bool whole_document) const {
    Prepared out;
    out.end_offset = chunk.end_offset;
    out.lines = chunk.lines;
    auto guarded = [&](std::string_view text, int64_t line) {
      try {
        PrepareLine(ctx, text, line, out);
      } catch (const std::exception& e) {
        out.rejections.push_back({line, std::nullopt, std::string("could not be processed: ") + e.what()});
      }
    };
    if (whole_document) {
      guarded(chunk.text, chunk.first_line);
      return out;
    }
    std::string_view rest = chunk.text;
    int64_t line = chunk.first_line;
    while (!rest.empty()) {
      auto nl = rest.find('\n');
      guarded(rest.substr(0, nl), line++);
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
    return out;
  }

  // ---- the pipeline ------------------------------------------------------------

  // Prepares `data` (the source from `base_offset`, line `first_line` on) on
  // the preparing threads and writes the batches on `options.writers`
  // threads, each with its own connection. Batches are handed out in source
  // order, and one that shares a resource with a batch still being written
  // waits for it, so versions of one resource are written in source order.
  // Stops at the first error (a failed write, or `before`); batches already
  // handed out finish first. Rethrows an exception of a writer.
  std::optional<fhir::Error> Pipeline(std::string_view data, int64_t base_offset, int64_t first_line,
                                      bool whole_document, const Hooks& hooks) const {
    Context ctx;
    ctx.indexer = indexers ? indexers->Current() : nullptr;
    ctx.limits.max_depth = options.max_json_depth;
    const int workers = std::max(1, options.workers);
    const int writers = std::max(1, options.writers);
    const int64_t max_ahead = workers + writers + 1;
    const std::size_t batch_lines = static_cast<std::size_t>(std::max(1, options.batch_size));

    // ---- preparing threads: chunks in, prepared batches out (by sequence number)
    std::mutex mu;
    std::condition_variable cv_work, cv_ready;
    std::size_t pos = 0;
    int64_t next_line = first_line, next_seq = 0, take_seq = 0;
    bool stop = false;
    std::map<int64_t, Prepared> ready;

    // The next chunk of at most batch_lines lines (the caller holds `mu`).
    auto cut = [&]() {
      Chunk c;
      c.seq = next_seq++;
      c.first_line = next_line;
      std::size_t end = pos;
      if (whole_document) {
        end = data.size();
        c.lines = std::count(data.begin(), data.end(), '\n') + (data.empty() || data.back() == '\n' ? 0 : 1);
      } else {
        while (end < data.size() && static_cast<std::size_t>(c.lines) < batch_lines && end - pos < kMaxChunkBytes) {
          auto nl = data.find('\n', end);
          end = nl == std::string_view::npos ? data.size() : nl + 1;
          ++c.lines;
        }
      }
      c.text = data.substr(pos, end - pos);
      c.end_offset = base_offset + static_cast<int64_t>(end);
      pos = end;
      next_line += c.lines;
      return c;
    };

    auto prepare = [&]() {
      for (;;) {
        Chunk c;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv_work.wait(lock, [&] { return stop || pos >= data.size() || next_seq - take_seq < max_ahead; });
          if (stop || pos >= data.size()) return;
          c = cut();
        }
        Prepared p = Prepare(ctx, c, whole_document);
        {
          std::lock_guard<std::mutex> lock(mu);
          ready.emplace(c.seq, std::move(p));
        }
        cv_ready.notify_all();
      }
    };

    // ---- writing threads: jobs in, finished batches out (by sequence number)
    struct Job {
      int64_t seq = 0;
      Prepared batch;
      std::optional<storage::BulkCheckpoint> checkpoint;
      std::vector<std::string> keys;
    };
    struct Finished {
      Prepared batch;  // without its items
      storage::BulkWriteResult result;
      std::optional<fhir::Error> error;
      std::exception_ptr exception;
    };
    std::mutex wmu;
    std::condition_variable cv_job, cv_done;
    std::deque<Job> jobs;
    std::map<int64_t, Finished> finished;
    std::unordered_set<std::string> busy;  // resources of the batches being written
    int in_flight = 0;
    bool writers_stop = false;

    auto write = [&]() {
      for (;;) {
        Job job;
        {
          std::unique_lock<std::mutex> lock(wmu);
          cv_job.wait(lock, [&] { return writers_stop || !jobs.empty(); });
          if (jobs.empty()) return;
          job = std::move(jobs.front());
          jobs.pop_front();
        }
        Finished f;
        try {
          auto w = store.WriteBulk(job.batch.items, job.checkpoint ? &*job.checkpoint : nullptr);
          if (w) f.result = *w;
          else f.error = std::move(w.error());
        } catch (...) {
          f.exception = std::current_exception();
        }
        job.batch.items.clear();
        f.batch = std::move(job.batch);
        {
          std::lock_guard<std::mutex> lock(wmu);
          for (const auto& k : job.keys) busy.erase(k);
          --in_flight;
          finished.emplace(job.seq, std::move(f));
        }
        cv_done.notify_all();
      }
    };

    std::vector<std::thread> preparing, writing;
    struct Joiner {
      std::function<void()> fn;
      ~Joiner() { fn(); }
    } joiner{[&] {
      {
        std::lock_guard<std::mutex> lock(mu);
        stop = true;
      }
      cv_work.notify_all();
      for (auto& t : preparing) t.join();
      {
        std::lock_guard<std::mutex> lock(wmu);
        writers_stop = true;
      }
      cv_job.notify_all();
      for (auto& t : writing) t.join();
    }};
    for (int i = 0; i < workers; ++i) preparing.emplace_back(prepare);
    for (int i = 0; i < writers; ++i) writing.emplace_back(write);

    // ---- this thread: hands out batches in order, reports them committed in order
    int64_t commit_seq = 0;
    std::optional<fhir::Error> error;
    std::exception_ptr exception;
    // (holding `wmu`) reports the batches committed in order so far
    auto drain = [&]() {
      for (auto it = finished.find(commit_seq); it != finished.end(); it = finished.find(commit_seq)) {
        Finished f = std::move(it->second);
        finished.erase(it);
        ++commit_seq;
        if (f.exception && !exception) exception = f.exception;
        if (f.error && !error) error = std::move(f.error);
        if (!f.exception && !f.error && !error && !exception && hooks.committed) hooks.committed(f.batch, f.result);
      }
    };
    for (int64_t seq = 0;; ++seq) {
      Prepared p;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv_ready.wait(lock, [&] { return ready.count(take_seq) > 0 || (pos >= data.size() && take_seq == next_seq); });
        auto it = ready.find(take_seq);
        if (it == ready.end()) break;  // everything handed out
        p = std::move(it->second);
        ready.erase(it);
        ++take_seq;
      }
      cv_work.notify_all();
      if (hooks.before) {
        if (auto e = hooks.before(p)) {
          error = std::move(e);
          break;
        }
      }
      std::vector<std::string> keys;
      keys.reserve(p.items.size());
      for (const auto& item : p.items) keys.push_back(item.type + '/' + item.id);
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      {
        std::unique_lock<std::mutex> lock(wmu);
        cv_done.wait(lock, [&] {
          drain();
          if (error || exception) return true;
          if (in_flight >= writers) return false;
          return std::none_of(keys.begin(), keys.end(), [&](const std::string& k) { return busy.count(k) > 0; });
        });
        if (error || exception) break;
        auto checkpoint = hooks.checkpoint ? hooks.checkpoint(p, commit_seq == seq) : std::nullopt;
        Job job{seq, std::move(p), std::move(checkpoint), std::move(keys)};
        for (const auto& k : job.keys) busy.insert(k);
        ++in_flight;
        jobs.push_back(std::move(job));
      }
      cv_job.notify_one();
    }
    {
      std::unique_lock<std::mutex> lock(wmu);
      cv_done.wait(lock, [&] {
        drain();
        return in_flight == 0;
      });
      drain();
    }
    if (exception) std::rethrow_exception(exception);
    return error;
  }

  // ---- progress --------------------------------------------------------------

  struct Progress {
    bool enabled = false;
    int64_t total_bytes = 0, start_offset = 0;
    Clock::time_point start = Clock::now(), last{};
    bool drawn = false;

    void Update(int64_t offset, int64_t resources, int64_t rejected) {
      if (!enabled) return;
      auto now = Clock::now();
      if (now - last < std::chrono::milliseconds(250) && offset < total_bytes) return;
      last = now;
      const double secs = std::chrono::duration<double>(now - start).count();
      const double done = total_bytes > 0 ? double(offset) / double(total_bytes) : 1.0;
      const double byte_rate = secs > 0 ? double(offset - start_offset) / secs : 0;
      std::string eta = byte_rate > 0 ? Duration(double(total_bytes - offset) / byte_rate) : "?";
      constexpr int kWidth = 24;
      const int filled = std::clamp(static_cast<int>(done * kWidth), 0, kWidth);
      fmt::print(stderr, "\r[{}{}] {:5.1f}%  {} resources  {}/s  ETA {}  rejected {}\x1b[K",
                 std::string(static_cast<std::size_t>(filled), '#'),
                 std::string(static_cast<std::size_t>(kWidth - filled), '.'), done * 100, Thousands(resources),
                 Thousands(secs > 0 ? static_cast<int64_t>(double(resources) / secs) : 0), eta,
                 Thousands(rejected));
      std::fflush(stderr);
      drawn = true;
    }
    void Clear() {
      if (drawn) fmt::print(stderr, "\r\x1b[K");
      drawn = false;
    }
  };
};

BulkLoader::BulkLoader(std::shared_ptr<const fhir::Definitions> definitions,
                       std::shared_ptr<fhir::IndexerHolder> indexers, storage::ResourceStore& store,
                       LoadOptions options)
    : impl_(std::make_unique<Impl>(Impl{std::move(definitions), std::move(indexers), store, options})) {}
BulkLoader::~BulkLoader() = default;

fhir::Result<LoadStats> BulkLoader::LoadText(std::string_view text,
                                             const std::function<void(const Rejection&)>& on_rejected) {
  LoadStats stats;
  const auto start = Clock::now();
  Impl::Hooks hooks;
  hooks.before = [&](Prepared& p) -> std::optional<fhir::Error> {
    for (const auto& r : p.rejections)
      if (on_rejected) on_rejected(r);
    return std::nullopt;
  };
  hooks.committed = [&](const Prepared& p, const storage::BulkWriteResult& w) {
    stats.lines += p.lines;
    stats.stored += w.stored;
    stats.unchanged += w.unchanged;
    stats.rejected += static_cast<int64_t>(p.rejections.size());
    stats.search_parameters += p.search_parameters;
  };
  if (auto err = impl_->Pipeline(text, 0, 1, false, hooks)) return std::move(*err);
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return stats;
}

fhir::Result<FileLoadResult> BulkLoader::LoadFile(const std::string& path, const FileLoadOptions& options) {
  MappedFile file;
  if (auto problem = file.Open(path)) return MakeError(ErrorKind::kNotFound, *problem);
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr)
    return MakeError(ErrorKind::kNotFound, fmt::format("cannot resolve {}: {}", path, std::strerror(errno)));
  const std::string source = resolved;
  const std::string fingerprint = file.Fingerprint();
  const std::string_view text = file.text();
  const int64_t size = static_cast<int64_t>(text.size());
  const bool whole_document = source.size() >= 5 && source.compare(source.size() - 5, 5, ".json") == 0;

  FileLoadResult result;
  result.report_path = options.report_path.empty() ? path + ".rejected.txt" : options.report_path;
  Report report(result.report_path);

  // Resume after the last committed batch of an earlier run of this file.
  storage::BulkCheckpoint cp;
  cp.source = source;
  cp.fingerprint = fingerprint;
  auto earlier = impl_->store.ReadBulkCheckpoint(source);
  const bool checkpoints = earlier || earlier.error().kind != ErrorKind::kNotSupported;
  if (!earlier && checkpoints) return std::move(earlier.error());
  if (checkpoints && !options.restart && *earlier && (*earlier)->fingerprint == fingerprint) {
    cp = **earlier;
    if (whole_document && !cp.complete) cp = storage::BulkCheckpoint{source, fingerprint};
  }
  if (cp.complete) {
    result.already_complete = true;
    result.resumed_at_line = cp.committed_line;
    result.total_stored = cp.stored;
    result.total_unchanged = cp.unchanged;
    result.total_rejected = cp.rejected;
    return result;
  }
  if (auto problem = report.Reset(cp.report_offset)) return MakeError(ErrorKind::kInvalid, *problem);
  result.resumed_at_line = cp.committed_line;

  Impl::Progress progress;
  progress.enabled = impl_->options.progress;
  progress.total_bytes = size;
  progress.start_offset = cp.committed_offset;
  LoadStats& stats = result.run;
  const auto start = Clock::now();

  // The checkpoint recorded with a batch covers it when every batch before
  // it is committed; else (batches written alongside, which may not commit)
  // it repeats what is committed. The store adds the batch's own counts.
  Impl::Hooks hooks;
  hooks.before = [&](Prepared& p) -> std::optional<fhir::Error> {
    for (const auto& r : p.rejections) {
      if (result.first_rejections.size() < options.keep_rejections) result.first_rejections.push_back(r);
      if (auto problem = report.Write(fmt::format("{}:{}", path, r.Describe())))
        return MakeError(ErrorKind::kInvalid, *problem);
    }
    if (auto problem = report.Flush()) return MakeError(ErrorKind::kInvalid, *problem);
    p.report_end = report.size();
    return std::nullopt;
  };
  if (checkpoints)
    hooks.checkpoint = [&](const Prepared& p, bool alone) -> std::optional<storage::BulkCheckpoint> {
      storage::BulkCheckpoint next = cp;
      if (alone) {
        next.committed_offset = p.end_offset;
        next.committed_line += p.lines;
        next.report_offset = p.report_end;
        next.rejected += static_cast<int64_t>(p.rejections.size());
      }
      return next;
    };
  hooks.committed = [&](const Prepared& p, const storage::BulkWriteResult& w) {
    cp.committed_offset = p.end_offset;
    cp.committed_line += p.lines;
    cp.report_offset = p.report_end;
    cp.stored += w.stored;
    cp.unchanged += w.unchanged;
    cp.rejected += static_cast<int64_t>(p.rejections.size());
    stats.lines += p.lines;
    stats.stored += w.stored;
    stats.unchanged += w.unchanged;
    stats.rejected += static_cast<int64_t>(p.rejections.size());
    stats.search_parameters += p.search_parameters;
    progress.Update(p.end_offset, stats.stored + stats.unchanged, stats.rejected);
  };
  std::optional<fhir::Error> err;
  if (cp.committed_offset < size)
    err = impl_->Pipeline(text.substr(static_cast<std::size_t>(cp.committed_offset)), cp.committed_offset,
                          cp.committed_line + 1, whole_document, hooks);
  if (!err) {
    // every batch is committed: record the load as complete
    cp.complete = true;
    std::vector<storage::BulkItem> none;
    auto w = impl_->store.WriteBulk(none, checkpoints ? &cp : nullptr);
    if (!w) err = std::move(w.error());
  }
  progress.Clear();
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (err) return std::move(*err);
  result.total_stored = cp.stored;
  result.total_unchanged = cp.unchanged;
  result.total_rejected = cp.rejected;
  return result;
}

}  // namespace eds::server
