// Transaction and batch execution. Each run works on copies of the planned
// entries, because the store may start a database transaction over (after a
// deadlock or a lost connection) and the run must then begin afresh.
#include "server/transaction_processor.hpp"

#include <fmt/format.h>

#include <map>
#include <set>
#include <utility>

#include "fhir/definitions.hpp"
#include "fhir/fhirpath.hpp"
#include "fhir/json.hpp"
#include "fhir/patch.hpp"
#include "fhir/primitives.hpp"
#include "fhir/search_index.hpp"
#include "fhir/search_query.hpp"
#include "fhir/transaction.hpp"
#include "storage/resource_store.hpp"

namespace eds::server {

using fhir::EntryMethod;
using fhir::Error;
using fhir::ErrorKind;
using fhir::MakeError;
using fhir::TransactionEntry;

struct TransactionProcessor::Impl {
  std::shared_ptr<const fhir::Definitions> defs;
  std::shared_ptr<fhir::IndexerHolder> indexers;
  fhir::fhirpath::Engine engine;
  std::size_t max_depth;
  TransactionProcessor::WriteCheck check;

  fhir::Result<fhir::SearchQuery> Criteria(const std::string& type,
                                           const std::vector<std::pair<std::string, std::string>>& params) const {
    auto indexer = indexers ? indexers->Current() : nullptr;
    if (!indexer) return MakeError(ErrorKind::kNotSupported, "conditional interactions need search");
    auto query = fhir::ParseConditionalCriteria(
        type, params, indexer->registry(),
        [&indexer](std::string_view t, const fhir::SearchParamDef& d) { return indexer->IsIndexed(t, d); },
        indexer->local_bases());
    if (query) query->definitions_owner = indexer;  // the definitions it points into stay alive
    return query;
  }
};

namespace {

struct Failure {
  std::optional<std::size_t> entry;  // Bundle index
  Error error;
};

// One attempt at running `order` (indices into `entries`) in `scope`.
class Run {
 public:
  Run(const TransactionProcessor::Impl& impl, storage::TxScope& scope, std::vector<TransactionEntry> entries,
      const std::vector<std::size_t>& order, bool transaction, const TransactionProcessor::GetHook& get,
      bool optimistic = false)
      : impl_(impl), scope_(scope), entries_(std::move(entries)), order_(order), transaction_(transaction), get_(get) {
    // Without locks first when every conditional entry is a PUT (the
    // Gateway's Patient, Organization and Practitioner) or a POST with
    // ifNoneExist: PUTs whose match already holds what they carry, and POSTs
    // that find theirs, write nothing, so they need not wait for each other;
    // when one would write, the run starts over with the locks.
    if (optimistic && transaction) {
      bool any = false;
      optimistic_ = true;
      for (std::size_t i : order_) {
        if (!entries_[i].conditional()) continue;
        any = true;
        if (entries_[i].method != EntryMethod::kPut && entries_[i].method != EntryMethod::kPost) optimistic_ = false;
      }
      optimistic_ = optimistic_ && any;
    }
  }

  // True when an optimistic run (see the constructor) found a conditional
  // entry that writes (a changed or new PUT target, a POST without match):
  // nothing was written by the run, which must start over without
  // `optimistic`.
  bool needs_locks() const { return needs_locks_; }

  // Fills results[i] for every entry run; returns the first failure.
  std::optional<Failure> Execute(std::vector<std::optional<EntryResult>>& results) {
    if (auto f = Lock(!optimistic_)) return f;
    // Every conditional entry is resolved before anything is written, so
    // that two entries meaning one resource are caught whatever their order.
    for (std::size_t i : order_)
      if (entries_[i].conditional())
        if (auto f = Resolve(i)) return f;
    if (transaction_) {
      if (auto err = fhir::CheckDistinctTargets(entries_)) return Failure{std::nullopt, std::move(*err)};
      std::map<std::string, std::string> resolved;
      if (auto f = ResolveReferences(resolved)) return f;
      fhir::RewriteEntryReferences(entries_, resolved);
      if (optimistic_) {
        for (std::size_t i : order_) {
          TransactionEntry& e = entries_[i];
          if (!e.conditional()) continue;
          if (e.method == EntryMethod::kPost) {  // found: nothing written (Write answers from existing_)
            if (existing_.count(i) != 0) continue;
            needs_locks_ = true;
            return std::nullopt;
          }
          auto m = matched_.find(i);
          if (m == matched_.end() || e.if_match || !Unchanged(e, m->second)) {
            needs_locks_ = true;
            return std::nullopt;
          }
          unchanged_.emplace(i, EntryResult{200, m->second, true});
        }
      }
    } else {
      for (std::size_t i : order_)
        if (!fhir::ConditionalReferences(entries_[i], *impl_.defs).empty())
          return Failure{i, MakeError(ErrorKind::kInvalid,
                                      "conditional references are resolved in transactions only, not in batches",
                                      fmt::format("Bundle.entry[{}].resource", i))};
    }
    if (transaction_) {
      // the targets of the updates, locked at once
      std::vector<std::pair<std::string, std::string>> keys;
      for (std::size_t i : order_)
        if (entries_[i].method == EntryMethod::kPut && !entries_[i].id.empty() && !entries_[i].if_match &&
            unchanged_.count(i) == 0)
          keys.emplace_back(entries_[i].type, entries_[i].id);
      scope_.LockForWrite(keys);
    }
    if (transaction_) {
      // the deletions (first in the order) at once, their rows locked in key order
      std::vector<storage::TxScope::DeleteKey> keys;
      std::vector<std::size_t> at;
      for (std::size_t i : order_)
        if (entries_[i].method == EntryMethod::kDelete && !entries_[i].id.empty()) {
          keys.push_back({entries_[i].type, entries_[i].id, entries_[i].if_match});
          at.push_back(i);
        }
      if (keys.size() > 1) {
        auto deleted = scope_.DeleteEach(keys);
        for (std::size_t n = 0; n < deleted.done.size(); ++n)
          deleted_.emplace(at[n], EntryResult{200, std::move(deleted.done[n].record), false});
        if (deleted.failure) return Failure{at[deleted.done.size()], std::move(*deleted.failure)};
      }
    }
    for (std::size_t i : order_) {
      auto r = Write(entries_[i]);
      if (!r) return Failure{i, std::move(r.error())};
      results[i] = std::move(*r);
    }
    return std::nullopt;
  }

 private:
  // Parses the criteria of the conditional entries and, with `take`, takes
  // their locks, in a fixed order so that two transactions never wait for
  // each other.
  std::optional<Failure> Lock(bool take) {
    std::set<std::pair<std::string, std::string>> keys;
    for (std::size_t i : order_) {
      const TransactionEntry& e = entries_[i];
      if (!e.conditional()) continue;
      auto q = impl_.Criteria(e.type, *e.criteria);
      if (!q) return Failure{i, std::move(q.error())};
      queries_.emplace(i, std::move(*q));
      keys.emplace(e.type, fhir::CanonicalCriteria(*e.criteria));
    }
    if (take) scope_.LockAllCriteria({keys.begin(), keys.end()});
    return std::nullopt;
  }

  // True when conditional PUT `e`, its references final, holds what its
  // match `stored` holds (server meta aside): then it writes nothing.
  static bool Unchanged(TransactionEntry& e, const fhir::VersionRecord& stored) {
    if (stored.deleted || !e.resource) return false;
    e.resource->SetId(stored.id);
    const std::string content =
        e.resource->Render(std::to_string(stored.version), fhir::FormatInstant(stored.last_updated_ms));
    return fhir::JsonEquivalent(stored.content, content, true);
  }

  // Finds the target of conditional entry i and sets its id (left empty when
  // a conditional delete matches nothing).
  std::optional<Failure> Resolve(std::size_t i) {
    TransactionEntry& e = entries_[i];
    auto matches = scope_.Find(queries_.at(i), 2);
    if (!matches) return Failure{i, std::move(matches.error())};
    const std::string criteria = fhir::CanonicalCriteria(*e.criteria);
    if (matches->size() > 1)
      return Failure{i, MakeError(ErrorKind::kPreconditionFailed,
                                  fmt::format("the criteria '{}' match more than one {}", criteria, e.type))};
    const fhir::VersionRecord* match = matches->empty() ? nullptr : &matches->front();
    switch (e.method) {
      case EntryMethod::kPost:
        if (match != nullptr) {
          e.id = match->id;
          existing_.emplace(i, *match);
        }
        break;
      case EntryMethod::kPut: {
        auto body_id = e.resource->id();
        if (match != nullptr) {
          if (body_id && *body_id != match->id)
            return Failure{i, MakeError(ErrorKind::kInvalid,
                                        fmt::format("the resource id '{}' is not the id of the match ({})", *body_id,
                                                    match->id),
                                        fmt::format("Bundle.entry[{}].resource.id", i))};
          e.id = match->id;
          if (optimistic_) matched_.emplace(i, *match);
        } else if (body_id) {
          if (!fhir::IsValidId(*body_id))
            return Failure{i, MakeError(ErrorKind::kInvalid, fmt::format("'{}' is not a valid id", *body_id),
                                        fmt::format("Bundle.entry[{}].resource.id", i))};
          e.id = *body_id;
        } else {
          e.id = fhir::NewResourceId();
        }
        break;
      }
      case EntryMethod::kDelete:
        if (match != nullptr) e.id = match->id;
        break;
      case EntryMethod::kPatch:
        if (match == nullptr)
          return Failure{i, MakeError(ErrorKind::kNotFound, fmt::format("no {} matches '{}'", e.type, criteria))};
        e.id = match->id;
        break;
      case EntryMethod::kGet: break;
    }
    return std::nullopt;
  }

  // Searches every conditional reference ("Patient?identifier=...") once:
  // exactly one match replaces it with Type/id; none or several fail the
  // transaction.
  std::optional<Failure> ResolveReferences(std::map<std::string, std::string>& resolved) {
    for (std::size_t i : order_) {
      for (const auto& ref : fhir::ConditionalReferences(entries_[i], *impl_.defs)) {
        if (resolved.count(ref) != 0) continue;
        const std::string where = fmt::format("Bundle.entry[{}].resource", i);
        const std::string type = ref.substr(0, ref.find('?'));
        auto params = fhir::ParseQueryString(ref);
        if (!params)
          return Failure{i, MakeError(ErrorKind::kInvalid,
                                      fmt::format("the conditional reference '{}' is not a valid query", ref), where)};
        auto query = impl_.Criteria(type, *params);
        if (!query) {
          Error err = std::move(query.error());
          fhir::Outcome outcome;
          for (const auto& issue : err.outcome.issues())
            outcome.Add({issue.severity, issue.code,
                         fmt::format("the conditional reference '{}': {}", ref, issue.diagnostics), where});
          return Failure{i, Error{err.kind, std::move(outcome)}};
        }
        auto matches = scope_.Find(*query, 2);
        if (!matches) return Failure{i, std::move(matches.error())};
        if (matches->empty())
          return Failure{i, MakeError(ErrorKind::kNotFound,
                                      fmt::format("the conditional reference '{}' matches no {}", ref, type), where)};
        if (matches->size() > 1)
          return Failure{i, MakeError(ErrorKind::kPreconditionFailed,
                                      fmt::format("the conditional reference '{}' matches more than one {}", ref, type),
                                      where)};
        resolved.emplace(ref, type + "/" + matches->front().id);
      }
    }
    return std::nullopt;
  }

  fhir::Result<EntryResult> Write(TransactionEntry& e) {
    switch (e.method) {
      case EntryMethod::kPost: {
        if (auto it = existing_.find(e.index); it != existing_.end())
          return EntryResult{200, it->second, true};  // ifNoneExist matched: nothing written
        auto w = scope_.Create(*e.resource, e.id);
        if (!w) return std::move(w.error());
        return EntryResult{201, std::move(w->record), true};
      }
      case EntryMethod::kPut: {
        if (auto it = unchanged_.find(e.index); it != unchanged_.end()) return std::move(it->second);
        auto w = scope_.Update(*e.resource, e.id, e.if_match);
        if (!w) return std::move(w.error());
        return EntryResult{w->created ? 201 : 200, std::move(w->record), true};
      }
      case EntryMethod::kPatch: return Patch(e);
      case EntryMethod::kGet: {
        if (get_) return get_(scope_, e);
        if (e.id.empty())
          return MakeError(ErrorKind::kInvalid, fmt::format("'{}': only reads (Type/id) are answered here", e.url));
        auto r = scope_.Read(e.type, e.id);
        if (!r) return std::move(r.error());
        return EntryResult{200, std::move(*r), false};
      }
      case EntryMethod::kDelete: {
        if (e.id.empty()) return EntryResult{204, std::nullopt, false};  // a conditional delete without match
        if (auto it = deleted_.find(e.index); it != deleted_.end()) return std::move(it->second);
        auto w = scope_.Delete(e.type, e.id, e.if_match);
        if (!w) return std::move(w.error());
        return EntryResult{200, std::move(w->record), false};
      }
    }
    return MakeError(ErrorKind::kInternal, "unexpected entry method");
  }

  fhir::Result<EntryResult> Patch(TransactionEntry& e) {
    auto current = scope_.ReadForUpdate(e.type, e.id);
    if (!current) return std::move(current.error());
    if (current->deleted)
      return MakeError(ErrorKind::kGone, fmt::format("{}/{} was deleted (version {})", e.type, e.id, current->version));
    if (e.if_match && *e.if_match != current->version)
      return MakeError(ErrorKind::kPreconditionFailed,
                       fmt::format("version conflict: ifMatch expects version {} but the current version is {}",
                                   *e.if_match, current->version));
    fhir::PatchDocument patch;
    patch.json_patch = e.json_patch;
    patch.fhirpath_patch = e.fhirpath_patch ? &*e.fhirpath_patch : nullptr;
    auto patched = fhir::PatchResource(impl_.engine, current->content, e.type, e.id, patch, impl_.max_depth);
    if (!patched) return std::move(patched.error());
    // the patched resource is held to the write policy like a PUT's
    if (impl_.check)
      if (auto err = impl_.check(*patched)) {
        fhir::Outcome located;
        const std::string prefix = fmt::format("Bundle.entry[{}].resource", e.index);
        for (auto issue : err->outcome.issues()) {
          if (issue.expression.rfind(e.type, 0) == 0) issue.expression = prefix + issue.expression.substr(e.type.size());
          else if (issue.expression.empty()) issue.expression = prefix;
          located.Add(std::move(issue));
        }
        return Error{err->kind, std::move(located)};
      }
    auto w = scope_.Update(*patched, e.id, current->version);
    if (!w) return std::move(w.error());
    return EntryResult{200, std::move(w->record), true};
  }

  const TransactionProcessor::Impl& impl_;
  storage::TxScope& scope_;
  std::vector<TransactionEntry> entries_;
  const std::vector<std::size_t>& order_;
  const bool transaction_;
  const TransactionProcessor::GetHook& get_;
  std::map<std::size_t, fhir::SearchQuery> queries_;        // conditional entries' criteria
  std::map<std::size_t, fhir::VersionRecord> existing_;     // POST entries whose ifNoneExist matched
  std::map<std::size_t, EntryResult> deleted_;               // DELETE entries run at once (DeleteEach)
  bool optimistic_ = false;                                  // conditional PUTs resolved without locks
  bool needs_locks_ = false;
  std::map<std::size_t, fhir::VersionRecord> matched_;       // optimistic conditional PUTs' matches
  std::map<std::size_t, EntryResult> unchanged_;             // conditional PUTs that write nothing
};

std::vector<TransactionEntry> CloneEntries(const fhir::TransactionPlan& plan) {
  std::vector<TransactionEntry> out;
  out.reserve(plan.entries.size());
  for (const auto& e : plan.entries) out.push_back(e.Clone());
  return out;
}

// The failure's error, its issues naming the entry that failed.
Error Describe(const Failure& f, const std::vector<TransactionEntry>& entries) {
  if (!f.entry) return f.error;
  const TransactionEntry& e = entries[*f.entry];
  fhir::Outcome outcome;
  for (const auto& issue : f.error.outcome.issues())
    outcome.Add({issue.severity, issue.code,
                 fmt::format("entry {} ({} {}): {}", e.index, fhir::EntryMethodCode(e.method), e.url,
                             issue.diagnostics),
                 issue.expression.rfind("Bundle.entry[", 0) == 0 ? issue.expression
                                                                 : fmt::format("Bundle.entry[{}]", e.index)});
  return Error{f.error.kind, std::move(outcome)};
}

}  // namespace

TransactionProcessor::TransactionProcessor(std::shared_ptr<const fhir::Definitions> defs,
                                           std::shared_ptr<fhir::IndexerHolder> indexers,
                                           std::size_t max_json_depth, WriteCheck check)
    : impl_(std::make_unique<Impl>(
          Impl{defs, std::move(indexers), fhir::fhirpath::Engine(defs), max_json_depth, std::move(check)})) {}

TransactionProcessor::~TransactionProcessor() = default;
TransactionProcessor::TransactionProcessor(TransactionProcessor&&) noexcept = default;
TransactionProcessor& TransactionProcessor::operator=(TransactionProcessor&&) noexcept = default;

const fhir::fhirpath::Engine& TransactionProcessor::engine() const { return impl_->engine; }

fhir::LocalBases TransactionProcessor::local_bases() const {
  auto indexer = impl_->indexers ? impl_->indexers->Current() : nullptr;
  return indexer ? indexer->local_bases() : fhir::LocalBases();
}

fhir::Result<std::vector<EntryResult>> TransactionProcessor::RunTransaction(
    storage::ResourceStore& store, const fhir::TransactionPlan& plan, std::optional<std::size_t>& failed_entry,
    const BeforeHook& before, const AfterHook& after, const GetHook& get) const {
  std::vector<std::optional<EntryResult>> results;
  std::optional<Failure> failure;
  auto body = [&](storage::TxScope& scope) -> std::optional<Error> {
    results.assign(plan.entries.size(), std::nullopt);
    failure.reset();
    if (before)
      if (auto e = before(scope)) return e;
    {
      Run optimistic(*impl_, scope, CloneEntries(plan), plan.order, true, get, true);
      failure = optimistic.Execute(results);
      if (!optimistic.needs_locks()) {
        if (failure) return Describe(*failure, plan.entries);
        if (after) return after(scope, results);
        return std::nullopt;
      }
    }
    // a conditional entry writes: start over, conditional entries locked
    results.assign(plan.entries.size(), std::nullopt);
    Run run(*impl_, scope, CloneEntries(plan), plan.order, true, get);
    failure = run.Execute(results);
    if (failure) return Describe(*failure, plan.entries);
    if (after) return after(scope, results);
    return std::nullopt;
  };
  if (auto err = store.RunTransaction(body)) {
    failed_entry = failure ? failure->entry : std::nullopt;
    return std::move(*err);
  }
  std::vector<EntryResult> out;
  out.reserve(results.size());
  for (auto& r : results) out.push_back(r ? std::move(*r) : EntryResult{500, std::nullopt, false});
  return out;
}

fhir::Result<EntryResult> TransactionProcessor::RunBatchEntry(storage::ResourceStore& store,
                                                              const fhir::TransactionPlan& plan,
                                                              std::size_t index, const GetHook& get) const {
  std::vector<std::optional<EntryResult>> results;
  const std::vector<std::size_t> order{index};
  std::optional<Failure> failure;
  auto body = [&](storage::TxScope& scope) -> std::optional<Error> {
    results.assign(plan.entries.size(), std::nullopt);
    std::vector<TransactionEntry> entries;
    entries.reserve(plan.entries.size());
    for (const auto& e : plan.entries) entries.push_back(e.index == index ? e.Clone() : TransactionEntry{});
    Run run(*impl_, scope, std::move(entries), order, false, get);
    failure = run.Execute(results);
    if (!failure) return std::nullopt;
    return failure->error;
  };
  if (auto err = store.RunTransaction(body)) return std::move(*err);
  if (!results[index]) return MakeError(ErrorKind::kInternal, "the entry produced no result");
  return std::move(*results[index]);
}

}  // namespace eds::server
