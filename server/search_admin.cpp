// Custom search parameters and reindexing.
#include "server/search_admin.hpp"

#include <fmt/format.h>

#include <chrono>

#include "fhir/fhirpath.hpp"
#include "fhir/search_index.hpp"
#include "fhir/search_parameters.hpp"
#include "server/log.hpp"
#include "storage/resource_store.hpp"

namespace eds::server {

fhir::Result<std::shared_ptr<const fhir::SearchIndexer>> BuildIndexer(
    std::shared_ptr<const fhir::Definitions> definitions, const fhir::SearchIndexer& current,
    storage::ResourceStore& store, std::vector<std::string>* notes) {
  const fhir::SearchParameterRegistry& registry = current.registry();
  auto stored = store.SearchParameters();
  if (!stored) return std::move(stored.error());
  std::vector<fhir::SearchParamDef> custom;
  for (const auto& sp : *stored) {
    fhir::SearchParamDef def;
    std::string error;
    auto note = [&](const std::string& why) {
      if (notes != nullptr) notes->push_back(fmt::format("SearchParameter/{}: {}", sp.id, why));
    };
    if (!fhir::ParseSearchParameterResource(sp.content, def, error)) {
      note(error);
      continue;
    }
    if (def.status != "active") continue;
    if (!def.url.empty()) {
      const auto* known = registry.FindByUrl(def.url);
      if (known != nullptr && known->generation == 0) {
        note("has the URL of a parameter of the FHIR package; the package's definition is used");
        continue;
      }
    }
    if (def.type != fhir::SearchParamType::kSpecial && !fhir::fhirpath::Expression::Parse(def.expression)) {
      note("its expression does not parse");
      continue;
    }
    def.generation = sp.generation;
    custom.push_back(std::move(def));
  }
  return std::shared_ptr<const fhir::SearchIndexer>(
      std::make_shared<const fhir::SearchIndexer>(std::move(definitions), registry.WithCustom(std::move(custom)),
                                                  current.local_bases()));
}

std::string CheckSearchParameter(std::string_view json) {
  fhir::SearchParamDef def;
  std::string error;
  const bool parsed_ok = fhir::ParseSearchParameterResource(json, def, error);
  if (def.status != "active") return {};  // drafts and retired ones are never used
  if (!parsed_ok) return error;
  if (def.type == fhir::SearchParamType::kSpecial) return {};
  auto parsed = fhir::fhirpath::Expression::Parse(def.expression);
  if (!parsed) return fmt::format("SearchParameter.expression does not parse: {}", parsed.error().message);
  if (def.type == fhir::SearchParamType::kComposite && def.components.empty())
    return "a composite SearchParameter needs components";
  return {};
}

ReindexJob::ReindexJob(storage::ResourceStore& store, int batch) : store_(store), batch_(batch) {}

ReindexJob::~ReindexJob() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

ReindexJob::Status ReindexJob::Start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (status_.running) return status_;
  if (thread_.joinable()) thread_.join();
  status_ = Status{true, 0, -1, {}};
  thread_ = std::thread([this] { Run(); });
  return status_;
}

ReindexJob::Status ReindexJob::Current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return status_;
}

void ReindexJob::Run() {
  int idle = 0;
  while (!stop_) {
    auto r = store_.ReindexBatch(batch_);
    bool pause = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!r) {
        status_.error =
            r.error().outcome.issues().empty() ? "reindex failed" : r.error().outcome.issues()[0].diagnostics;
        break;
      }
      status_.reindexed += r->reindexed;
      status_.remaining = r->remaining;
      if (r->remaining == 0) break;
      // rows locked by writers are skipped; they are retried a little later
      idle = r->reindexed == 0 ? idle + 1 : 0;
      if (idle > 100) {
        status_.error = "the remaining resources stayed locked";
        break;
      }
      pause = idle > 0;
    }
    if (pause) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  status_.running = false;
  Log(LogLevel::kInfo, fmt::format("reindex: {} resources reindexed, {} remaining{}", status_.reindexed,
                                   status_.remaining, status_.error.empty() ? "" : " (" + status_.error + ")"));
}

}  // namespace eds::server
