// In-memory ResourceStore: every version of every resource in a map, ordered
// by a store-wide change sequence like the resource_history table.
#include "fake_resource_store.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "fhir/json.hpp"

namespace eds::testing {

using fhir::ErrorKind;
using fhir::MakeError;
using fhir::VersionRecord;
using fhir::WriteMethod;
using storage::HistoryPage;
using storage::HistoryQuery;
using storage::Result;
using storage::WriteResult;

namespace {

Result<WriteResult> PreconditionFailed(int64_t expected, std::optional<int64_t> current) {
  return MakeError(ErrorKind::kPreconditionFailed,
                   current ? fmt::format("version conflict: If-Match expects version {} but the "
                                         "current version is {}",
                                         expected, *current)
                           : fmt::format("version conflict: If-Match expects version {} but the "
                                         "resource does not exist",
                                         expected));
}

}  // namespace

FakeResourceStore::FakeResourceStore() : clock_(&fhir::NowMs) {}

void FakeResourceStore::SetClock(std::function<int64_t()> clock) {
  std::lock_guard lock(mutex_);
  clock_ = std::move(clock);
}

void FakeResourceStore::SetTime(int64_t epoch_ms) {
  SetClock([epoch_ms] { return epoch_ms; });
}

int64_t FakeResourceStore::version_count() const {
  std::lock_guard lock(mutex_);
  return seq_;
}

int64_t FakeResourceStore::Now() const { return clock_(); }

const VersionRecord& FakeResourceStore::Append(VersionRecord record) {
  auto& versions = resources_[{record.type, record.id}];
  versions.push_back({++seq_, std::move(record)});
  return versions.back().record;
}

Result<VersionRecord> FakeResourceStore::Read(const std::string& type, const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = resources_.find({type, id});
  if (it == resources_.end())
    return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} is not known", type, id));
  return it->second.back().record;
}

Result<VersionRecord> FakeResourceStore::ReadVersion(const std::string& type, const std::string& id,
                                                     int64_t version) {
  std::lock_guard lock(mutex_);
  auto it = resources_.find({type, id});
  if (it == resources_.end() || version < 1 ||
      version > static_cast<int64_t>(it->second.size()))
    return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} has no version {}", type, id, version));
  return it->second[static_cast<std::size_t>(version - 1)].record;
}

Result<WriteResult> FakeResourceStore::Create(fhir::Resource& resource) {
  std::lock_guard lock(mutex_);
  std::string id;
  do {
    id = fmt::format("fake-{}", next_id_++);
  } while (resources_.count({resource.type(), id}) != 0);
  const int64_t now = Now();
  resource.SetId(id);
  std::string content = resource.Render("1", fhir::FormatInstant(now));
  const auto& rec =
      Append({resource.type(), id, 1, now, WriteMethod::kCreate, false, std::move(content)});
  return WriteResult{rec, true, true};
}

Result<WriteResult> FakeResourceStore::CreateWithId(fhir::Resource& resource, const std::string& id) {
  std::lock_guard lock(mutex_);
  if (resources_.count({resource.type(), id}) != 0)
    return MakeError(ErrorKind::kConflict, fmt::format("{}/{} already exists", resource.type(), id));
  const int64_t now = Now();
  resource.SetId(id);
  std::string content = resource.Render("1", fhir::FormatInstant(now));
  return WriteResult{Append({resource.type(), id, 1, now, WriteMethod::kCreate, false, std::move(content)}), true, true};
}

storage::Result<storage::SearchPage> FakeResourceStore::Search(const fhir::SearchQuery&) {
  return fhir::MakeError(fhir::ErrorKind::kNotSupported, "the in-memory store does not search");
}

Result<WriteResult> FakeResourceStore::ConditionalCreate(fhir::Resource&, const fhir::SearchQuery&, const std::string&) {
  return fhir::MakeError(fhir::ErrorKind::kNotSupported, "the in-memory store does not search");
}
Result<WriteResult> FakeResourceStore::ConditionalUpdate(fhir::Resource&, const fhir::SearchQuery&, const std::string&) {
  return fhir::MakeError(fhir::ErrorKind::kNotSupported, "the in-memory store does not search");
}
Result<WriteResult> FakeResourceStore::ConditionalDelete(const fhir::SearchQuery&, const std::string&) {
  return fhir::MakeError(fhir::ErrorKind::kNotSupported, "the in-memory store does not search");
}

namespace {

class FakeTxScope final : public storage::TxScope {
 public:
  explicit FakeTxScope(FakeResourceStore& store) : store_(store) {}
  void LockCriteria(const std::string&, const std::string&) override {}
  Result<std::vector<VersionRecord>> Find(const fhir::SearchQuery&, int) override {
    return MakeError(ErrorKind::kNotSupported, "the in-memory store does not search");
  }
  Result<VersionRecord> ReadForUpdate(const std::string& type, const std::string& id) override {
    return store_.Read(type, id);
  }
  Result<VersionRecord> Read(const std::string& type, const std::string& id) override {
    auto r = store_.Read(type, id);
    if (r && r->deleted) return MakeError(ErrorKind::kGone, fmt::format("{}/{} was deleted", type, id));
    return r;
  }
  Result<WriteResult> Create(fhir::Resource& resource, const std::string& id) override {
    return store_.CreateWithId(resource, id);
  }
  Result<WriteResult> Update(fhir::Resource& resource, const std::string& id, std::optional<int64_t> if_match) override {
    return store_.Update(resource, id, if_match);
  }
  Result<WriteResult> Delete(const std::string& type, const std::string& id, std::optional<int64_t> if_match) override {
    return store_.Delete(type, id, if_match);
  }
  Result<VersionRecord> ReadVersion(const std::string& type, const std::string& id, int64_t version) override {
    return store_.ReadVersion(type, id, version);
  }
  Result<storage::HistoryPage> History(const storage::HistoryQuery& query) override { return store_.History(query); }

 private:
  FakeResourceStore& store_;
};

}  // namespace

std::optional<fhir::Error> FakeResourceStore::RunTransaction(
    const std::function<std::optional<fhir::Error>(storage::TxScope&)>& body) {
  std::unique_lock lock(mutex_);
  auto saved_resources = resources_;
  auto saved_seq = seq_;
  lock.unlock();
  FakeTxScope scope(*this);
  auto err = body(scope);
  if (err) {
    lock.lock();
    resources_ = std::move(saved_resources);
    seq_ = saved_seq;
  }
  return err;
}

Result<WriteResult> FakeResourceStore::Update(fhir::Resource& resource, const std::string& id,
                                              std::optional<int64_t> if_match) {
  std::lock_guard lock(mutex_);
  const std::string type = resource.type();
  auto it = resources_.find({type, id});
  if (it == resources_.end()) {
    if (if_match) return PreconditionFailed(*if_match, std::nullopt);
    const int64_t now = Now();
    resource.SetId(id);
    std::string content = resource.Render("1", fhir::FormatInstant(now));
    const auto& rec = Append({type, id, 1, now, WriteMethod::kUpdate, false, std::move(content)});
    return WriteResult{rec, true, true};
  }
  const VersionRecord cur = it->second.back().record;
  if (if_match && *if_match != cur.version) return PreconditionFailed(*if_match, cur.version);
  const int64_t version = cur.version + 1;
  const int64_t now = std::max(Now(), cur.last_updated_ms);
  resource.SetId(id);
  std::string content = resource.Render(std::to_string(version), fhir::FormatInstant(now));
  if (!cur.deleted && fhir::JsonEquivalent(cur.content, content, /*ignore_server_meta=*/true))
    return WriteResult{cur, false, false};
  const auto& rec = Append({type, id, version, now, WriteMethod::kUpdate, false, std::move(content)});
  return WriteResult{rec, cur.deleted, true};
}

Result<storage::BulkWriteResult> FakeResourceStore::WriteBulk(std::vector<storage::BulkItem>& items,
                                                              const storage::BulkCheckpoint* checkpoint) {
  // Not atomic as a whole: items are written one by one, as updates.
  storage::BulkWriteResult out;
  for (auto& item : items) {
    fhir::Resource copy = item.resource->Clone();
    auto w = Update(copy, item.id, std::nullopt);
    if (!w) return std::move(w.error());
    ++(w->changed ? out.stored : out.unchanged);
  }
  if (checkpoint) {
    std::lock_guard lock(mutex_);
    checkpoints_[checkpoint->source] = *checkpoint;
    checkpoints_[checkpoint->source].stored += out.stored;
    checkpoints_[checkpoint->source].unchanged += out.unchanged;
  }
  return out;
}

Result<std::optional<storage::BulkCheckpoint>> FakeResourceStore::ReadBulkCheckpoint(const std::string& source) {
  std::lock_guard lock(mutex_);
  auto it = checkpoints_.find(source);
  if (it == checkpoints_.end()) return std::optional<storage::BulkCheckpoint>();
  return std::optional<storage::BulkCheckpoint>(it->second);
}

Result<WriteResult> FakeResourceStore::Delete(const std::string& type, const std::string& id,
                                              std::optional<int64_t> if_match) {
  std::lock_guard lock(mutex_);
  auto it = resources_.find({type, id});
  if (it == resources_.end())
    return MakeError(ErrorKind::kNotFound, fmt::format("{}/{} is not known", type, id));
  const VersionRecord cur = it->second.back().record;
  if (if_match && *if_match != cur.version) return PreconditionFailed(*if_match, cur.version);
  if (cur.deleted) return WriteResult{cur, false, false};
  const int64_t now = std::max(Now(), cur.last_updated_ms);
  const auto& rec = Append({type, id, cur.version + 1, now, WriteMethod::kDelete, true, {}});
  return WriteResult{rec, false, true};
}

Result<HistoryPage> FakeResourceStore::History(const HistoryQuery& q) {
  std::lock_guard lock(mutex_);
  std::vector<const StoredVersion*> matches;
  for (const auto& [key, versions] : resources_) {
    if (q.type && key.first != *q.type) continue;
    if (q.id && key.second != *q.id) continue;
    for (std::size_t i = 0; i < versions.size(); ++i) {
      const auto& v = versions[i];
      if (q.since_ms && v.record.last_updated_ms < *q.since_ms) continue;
      if (q.before_seq && v.seq >= *q.before_seq) continue;
      if (q.at) {
        // current during [low, high): written before high, not replaced before low
        if (v.record.last_updated_ms >= q.at->high_ms) continue;
        if (i + 1 < versions.size() && versions[i + 1].record.last_updated_ms <= q.at->low_ms)
          continue;
      }
      matches.push_back(&v);
    }
  }
  std::sort(matches.begin(), matches.end(),
            [](const StoredVersion* a, const StoredVersion* b) { return a->seq > b->seq; });
  HistoryPage page;
  const std::size_t n = std::min(matches.size(), static_cast<std::size_t>(std::max(q.count, 0)));
  for (std::size_t i = 0; i < n; ++i) page.entries.push_back(matches[i]->record);
  if (matches.size() > n && n > 0) page.next_before_seq = matches[n - 1]->seq;
  return page;
}

}  // namespace eds::testing
