// FHIR REST interactions over ResourceStore.
#include "server/fhir_api.hpp"

#include <fmt/format.h>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <mutex>
#include <random>
#include <vector>

#include "fhir/bundle.hpp"
#include "fhir/capability.hpp"
#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "fhir/patch.hpp"
#include "fhir/primitives.hpp"
#include "fhir/search_index.hpp"
#include "fhir/search_parameters.hpp"
#include "fhir/search_query.hpp"
#include "fhir/subset.hpp"
#include "fhir/transaction.hpp"
#include "server/document_api.hpp"
#include "fhir/validator.hpp"
#include "server/bulk_loader.hpp"
#include "server/log.hpp"
#include "server/metrics.hpp"
#include "storage/pg_audit_sink.hpp"
#include "server/search_admin.hpp"
#include "server/transaction_processor.hpp"
#include "storage/resource_store.hpp"

namespace eds::server {

using fhir::Error;
using fhir::ErrorKind;
using fhir::MakeError;

int HttpStatusOf(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalid: return 400;
    case ErrorKind::kNotFound: return 404;
    case ErrorKind::kGone: return 410;
    case ErrorKind::kMethodNotAllowed: return 405;
    case ErrorKind::kNotAcceptable: return 406;
    case ErrorKind::kConflict: return 409;
    case ErrorKind::kPreconditionFailed: return 412;
    case ErrorKind::kPayloadTooLarge: return 413;
    case ErrorKind::kUriTooLong: return 414;
    case ErrorKind::kUnsupportedMediaType: return 415;
    case ErrorKind::kUnprocessable: return 422;
    case ErrorKind::kNotSupported: return 501;
    case ErrorKind::kUnavailable: return 503;
    case ErrorKind::kInternal: return 500;
  }
  return 500;
}

std::string MakeRequestId(std::string_view client_value) {
  bool ok = !client_value.empty() && client_value.size() <= 64;
  for (char c : client_value)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.');
  if (ok) return std::string(client_value);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

namespace {

constexpr std::string_view kFhirJson = "application/fhir+json; charset=utf-8";
constexpr std::string_view kPlainJson = "application/json; charset=utf-8";

// How the client wants the response rendered.
struct Format {
  std::string content_type = std::string(kFhirJson);
  bool pretty = false;
};

enum class PreferReturn { kRepresentation, kMinimal, kOutcome };

enum class Interaction {
  kCapabilities, kHistorySystem, kHistoryType, kCreate, kRead, kUpdate, kDelete,
  kHistoryInstance, kVread, kTransaction, kPatch, kSearchType, kConditionalUpdate, kConditionalDelete,
  kSearchSystem, kSearchCompartment, kReindex, kValidate, kImport,
};

struct Route {
  const char* method;
  std::vector<std::string_view> pattern;  // literal segments or {type} {id} {vid}
  Interaction interaction;
  const char* code;       // CapabilityStatement interaction code
  bool type_level;        // listed per resource type (else system level)
};

const std::vector<Route>& Routes() {
  static const std::vector<Route> kRoutes = {
      {"GET", {"metadata"}, Interaction::kCapabilities, "capabilities", false},
      {"POST", {}, Interaction::kTransaction, "transaction", false},
      {"GET", {}, Interaction::kSearchSystem, "search-system", false},
      {"POST", {"_search"}, Interaction::kSearchSystem, "search-system", false},
      {"GET", {"$reindex"}, Interaction::kReindex, "operation", false},
      {"POST", {"$reindex"}, Interaction::kReindex, "operation", false},
      {"POST", {"$import"}, Interaction::kImport, "operation", false},
      {"GET", {"_history"}, Interaction::kHistorySystem, "history-system", false},
      {"GET", {"{type}", "_history"}, Interaction::kHistoryType, "history-type", true},
      {"GET", {"{type}"}, Interaction::kSearchType, "search-type", true},
      {"POST", {"{type}", "_search"}, Interaction::kSearchType, "search-type", true},
      {"POST", {"{type}", "$validate"}, Interaction::kValidate, "operation", true},
      {"POST", {"{type}", "{id}", "$validate"}, Interaction::kValidate, "operation", true},
      {"POST", {"{type}"}, Interaction::kCreate, "create", true},
      {"PUT", {"{type}"}, Interaction::kConditionalUpdate, "update", true},
      {"DELETE", {"{type}"}, Interaction::kConditionalDelete, "delete", true},
      {"GET", {"{type}", "{id}"}, Interaction::kRead, "read", true},
      {"PUT", {"{type}", "{id}"}, Interaction::kUpdate, "update", true},
      {"DELETE", {"{type}", "{id}"}, Interaction::kDelete, "delete", true},
      {"PATCH", {"{type}", "{id}"}, Interaction::kPatch, "patch", true},
      {"GET", {"{type}", "{id}", "_history"}, Interaction::kHistoryInstance, "history-instance", true},
      {"GET", {"{type}", "{id}", "_history", "{vid}"}, Interaction::kVread, "vread", true},
      {"GET", {"{type}", "{id}", "{ctype}"}, Interaction::kSearchCompartment, "search-type", true},
  };
  return kRoutes;
}

struct RouteMatch {
  const Route* route = nullptr;
  std::string type, id, vid;
  std::string compartment_target;  // compartment search: the type searched, or "*"
};

bool SegmentMatches(std::string_view pattern, std::string_view seg) {
  if (pattern == "{type}") return fhir::IsTypeNameSyntax(seg);
  if (pattern == "{ctype}") return seg == "*" || fhir::IsTypeNameSyntax(seg);
  if (pattern == "{id}" || pattern == "{vid}")
    return !seg.empty() && seg[0] != '_' && seg[0] != '$';
  return pattern == seg;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Media type without parameters, lower case.
std::string MediaType(std::string_view value) {
  return Lower(Trim(value.substr(0, value.find(';'))));
}

template <class Fn>
void ForEachListItem(std::string_view list, char sep, Fn&& fn) {
  while (!list.empty()) {
    auto pos = list.find(sep);
    fn(Trim(list.substr(0, pos)));
    if (pos == std::string_view::npos) break;
    list.remove_prefix(pos + 1);
  }
}

std::optional<int64_t> ParsePositive(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 1) return std::nullopt;
  return v;
}

// ETag value: W/"3", "3" or 3.
std::optional<int64_t> ParseETag(std::string_view s) {
  s = Trim(s);
  if (s.substr(0, 2) == "W/") s.remove_prefix(2);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return ParsePositive(s);
}

// Where the read interactions read: the store (a request of its own), or the
// database transaction of a Bundle, whose GET entries see its writes.
class Reads {
 public:
  virtual ~Reads() = default;
  virtual fhir::Result<fhir::VersionRecord> ReadVersion(const std::string& type, const std::string& id,
                                                        int64_t version) = 0;
  virtual fhir::Result<storage::HistoryPage> History(const storage::HistoryQuery& query) = 0;
  virtual fhir::Result<storage::SearchPage> Search(const fhir::SearchQuery& query) = 0;
};

class StoreReads final : public Reads {
 public:
  explicit StoreReads(storage::ResourceStore& store) : store_(store) {}
  fhir::Result<fhir::VersionRecord> ReadVersion(const std::string& type, const std::string& id,
                                                int64_t version) override {
    return store_.ReadVersion(type, id, version);
  }
  fhir::Result<storage::HistoryPage> History(const storage::HistoryQuery& query) override {
    return store_.History(query);
  }
  fhir::Result<storage::SearchPage> Search(const fhir::SearchQuery& query) override { return store_.Search(query); }

 private:
  storage::ResourceStore& store_;
};

class ScopeReads final : public Reads {
 public:
  explicit ScopeReads(storage::TxScope& scope) : scope_(scope) {}
  fhir::Result<fhir::VersionRecord> ReadVersion(const std::string& type, const std::string& id,
                                                int64_t version) override {
    return scope_.ReadVersion(type, id, version);
  }
  fhir::Result<storage::HistoryPage> History(const storage::HistoryQuery& query) override {
    return scope_.History(query);
  }
  fhir::Result<storage::SearchPage> Search(const fhir::SearchQuery& query) override { return scope_.Search(query); }

 private:
  storage::TxScope& scope_;
};

// `url` (a Bundle entry's request.url) as an origin-form target: characters
// clients leave unencoded in search values ('|', spaces, quotes) encoded,
// escapes already there kept.
std::string EncodeTarget(std::string_view url) {
  static constexpr std::string_view kKeep = "-._~!$&'()*+,;=:@/?%";
  std::string out;
  for (char c : url) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        kKeep.find(c) != std::string_view::npos)
      out += c;
    else
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
  }
  return out;
}

}  // namespace

struct FhirApi::Impl {
  const ServerConfig& config;
  std::shared_ptr<const fhir::Definitions> defs;
  storage::ResourceStore& store;
  std::shared_ptr<fhir::IndexerHolder> indexers;
  std::unique_ptr<ReindexJob> reindex;
  // The validator in force: replaced when conformance resources are written
  // (ReloadValidator); read once per request, so it stays alive while used.
  std::shared_ptr<const fhir::Validator> validator_initial;
  mutable std::mutex validator_mu;
  mutable std::shared_ptr<const fhir::Validator> validator_current = validator_initial;
  std::function<std::shared_ptr<const fhir::Validator>()> validator_factory;
  mutable std::mutex rebuild_mu;  // one rebuild at a time, each from what is stored then
  TransactionProcessor processor{defs, indexers, config.json_max_depth,
                                 [this](const fhir::Resource& r) { return CheckWrite(r); }};
  DocumentApi documents{defs, store, processor, std::max(1, config.pool_size - 1),
                        [this](const fhir::TransactionPlan& plan) { return CheckTransaction(plan); },
                        config.analytics_hash_key};
  mutable Metrics metrics;
  storage::AuditSink* audit = nullptr;

  // GET /metrics, /healthz (alive), /readyz (database reachable, schema current).
  static std::string_view OperationalPath(std::string_view target) {
    std::string_view path = target.substr(0, target.find('?'));
    if (path == "/metrics" || path == "/healthz" || path == "/readyz") return path;
    return {};
  }
  HttpResponse Operational(const HttpRequest& req, std::string_view path, RequestContext& ctx) const {
    ctx.interaction = path == "/metrics" ? "metrics" : "health";
    HttpResponse r;
    if (req.method != "GET" && req.method != "HEAD") {
      r.status = 405;
      r.SetHeader("Allow", "GET");
      r.SetHeader("Content-Type", "text/plain; charset=utf-8");
      r.body = "only GET\n";
      return r;
    }
    r.SetHeader("Content-Type", "text/plain; charset=utf-8");
    if (path == "/metrics") {
      r.SetHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
      std::string extra = store.MetricsText();
      if (audit != nullptr)
        extra += fmt::format(
            "# HELP eds_audit_queue_depth Audit rows waiting to be written.\n# TYPE eds_audit_queue_depth gauge\n"
            "eds_audit_queue_depth {}\n# HELP eds_audit_rows_written_total Audit rows written.\n"
            "# TYPE eds_audit_rows_written_total counter\neds_audit_rows_written_total {}\n"
            "# HELP eds_audit_write_failures_total Audit batches that failed and were kept to retry.\n"
            "# TYPE eds_audit_write_failures_total counter\neds_audit_write_failures_total {}\n",
            audit->depth(), audit->written(), audit->write_failures());
      r.body = metrics.Render(extra);
    } else if (path == "/healthz") {
      r.body = "ok\n";
    } else if (auto why = store.NotReady()) {
      r.status = 503;
      r.body = *why + "\n";
    } else {
      r.body = "ready\n";
    }
    return r;
  }

  // Validation on write, as the policy says for the resource's type: the
  // OperationOutcome (422) when it finds errors. Structure is checked before.
  std::shared_ptr<const fhir::Validator> CurrentValidator() const {
    std::lock_guard<std::mutex> lock(validator_mu);
    return validator_current;
  }

  // Rebuilds the validator after StructureDefinition, ValueSet or CodeSystem
  // resources changed, so what was written is used by the next request.
  void ReloadValidator() const {
    if (!validator_factory) return;
    std::lock_guard<std::mutex> rebuild(rebuild_mu);
    auto next = validator_factory();
    if (!next) return;
    std::lock_guard<std::mutex> lock(validator_mu);
    validator_current = std::move(next);
  }

  std::optional<Error> CheckWrite(const fhir::Resource& resource) const {
    auto validator = CurrentValidator();
    if (!validator) return std::nullopt;
    const ValidationMode mode = config.validation.For(resource.type());
    if (mode == ValidationMode::kOff) return std::nullopt;
    fhir::ValidationOptions options;
    options.structure = false;
    options.declared_profiles = mode == ValidationMode::kProfiles;
    fhir::Outcome outcome = validator->Validate(resource, options);
    if (!outcome.HasErrors()) return std::nullopt;
    return Error{ErrorKind::kUnprocessable, std::move(outcome)};
  }

  // Validation on write of every entry's resource of a transaction: the
  // first failing entry's OperationOutcome, its issues located in the Bundle.
  std::optional<Error> CheckTransaction(const fhir::TransactionPlan& plan) const {
    for (const auto& entry : plan.entries) {
      if (entry.error || !entry.resource) continue;
      if (auto e = CheckWrite(*entry.resource)) return Located(entry, std::move(*e));
    }
    return std::nullopt;
  }

  static Error Located(const fhir::TransactionEntry& entry, Error e) {
    fhir::Outcome located;
    const std::string prefix = fmt::format("Bundle.entry[{}].resource", entry.index);
    for (auto issue : e.outcome.issues()) {
      const std::string& type = entry.resource->type();
      if (issue.expression.rfind(type, 0) == 0) issue.expression = prefix + issue.expression.substr(type.size());
      located.Add(std::move(issue));
    }
    return Error{e.kind, std::move(located)};
  }

  // The indexer in force, kept for the whole of a request.
  std::shared_ptr<const fhir::SearchIndexer> Indexer() const { return indexers ? indexers->Current() : nullptr; }

  // Rebuilds the indexer after SearchParameter resources changed.
  void ReloadSearchParameters() const {
    auto current = Indexer();
    if (!current) return;
    std::vector<std::string> notes;
    auto next = BuildIndexer(defs, *current, store, &notes);
    for (const auto& n : notes) Log(LogLevel::kWarn, "custom search parameter ignored: " + n);
    if (!next) {
      Log(LogLevel::kError, "custom search parameters not reloaded: " +
                                (next.error().outcome.issues().empty() ? std::string("error")
                                                                       : next.error().outcome.issues()[0].diagnostics));
      return;
    }
    indexers->Set(std::move(*next));
  }

  std::string started_at = fhir::FormatInstant(fhir::NowMs());
  std::vector<std::string> base = [this] {  // segments of the base path
    std::vector<std::string> out;
    ForEachListItem(std::string_view(config.base_path).substr(1), '/',
                    [&out](std::string_view s) { out.emplace_back(s); });
    return out;
  }();

  // ---- request parsing -------------------------------------------------

  struct Parsed {
    RouteMatch match;
    std::vector<std::pair<std::string, std::string>> params;
    Format format;
    std::string base_url;  // absolute FHIR base for links
  };

  // The bases under which an absolute reference names a resource of this
  // server: the configured ones and this request's own.
  fhir::LocalBases OwnBases(const HttpRequest& req) const {
    std::vector<std::string> bases;
    if (auto indexer = Indexer()) bases = indexer->local_bases().bases();
    bases.push_back(BaseUrl(req));
    return fhir::LocalBases(bases);
  }

  std::string BaseUrl(const HttpRequest& req) const {
    if (!config.public_base_url.empty()) return config.public_base_url;
    std::string_view host = req.Header("host");
    bool safe = !host.empty() && host.size() < 256;
    for (char c : host)
      safe = safe && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == ':' || c == '[' || c == ']');
    if (!safe) host = config.bind_address;
    return fmt::format("http://{}{}", host, config.base_path);
  }

  std::optional<Error> Negotiate(const HttpRequest& req, Format& format,
                                 const std::vector<std::pair<std::string, std::string>>& params) const {
    std::string_view fmt_param;
    for (const auto& [k, v] : params) {
      if (k == "_format") fmt_param = v;
      if (k == "_pretty") format.pretty = v == "true";
    }
    if (!fmt_param.empty()) {
      std::string f = MediaType(fmt_param);
      if (f == "json" || f == "application/fhir+json") format.content_type = kFhirJson;
      else if (f == "application/json") format.content_type = kPlainJson;
      else
        return MakeError(ErrorKind::kNotAcceptable,
                         fmt::format("_format '{}' is not supported; this server speaks JSON "
                                     "(application/fhir+json)", fmt_param));
      return std::nullopt;
    }
    std::string_view accept = req.Header("accept");
    if (accept.empty()) return std::nullopt;
    bool acceptable = false;
    bool plain_first = false;
    ForEachListItem(accept, ',', [&](std::string_view item) {
      if (acceptable) return;
      std::string mt = MediaType(item);
      // q=0 means "not acceptable"
      auto q = item.find("q=");
      if (q != std::string_view::npos && Trim(item.substr(q + 2)).substr(0, 1) == "0" &&
          Trim(item.substr(q + 2)).find_first_not_of("0.") == std::string_view::npos)
        return;
      if (mt == "application/fhir+json" || mt == "*/*" || mt == "application/*" ||
          mt == "application/json+fhir") {
        acceptable = true;
      } else if (mt == "application/json") {
        acceptable = true;
        plain_first = true;
      }
    });
    if (!acceptable)
      return MakeError(ErrorKind::kNotAcceptable,
                       fmt::format("none of the media types in Accept ({}) can be produced; this "
                                   "server speaks application/fhir+json", accept));
    if (plain_first) format.content_type = kPlainJson;
    return std::nullopt;
  }

  // ---- responses -------------------------------------------------------

  HttpResponse Json(int status, std::string body, const Format& format) const {
    HttpResponse r;
    r.status = status;
    r.SetHeader("Content-Type", format.content_type);
    r.body = format.pretty ? fhir::PrettyPrintJson(body) : std::move(body);
    return r;
  }

  HttpResponse ErrorResponse(const Error& e, const Format& format) const {
    HttpResponse r = Json(HttpStatusOf(e.kind), e.outcome.ToJson(format.pretty), Format{format.content_type, false});
    return r;
  }

  static void SetVersionHeaders(HttpResponse& r, const fhir::VersionRecord& rec) {
    r.SetHeader("ETag", fhir::VersionETag(rec.version));
    r.SetHeader("Last-Modified", fhir::FormatHttpDate(rec.last_updated_ms));
  }

  // ---- interactions ----------------------------------------------------

  HttpResponse Capabilities(const Parsed& p) const {
    fhir::ServerCapabilities caps;
    caps.base_url = p.base_url;
    caps.software_name = "EDS core";
    caps.software_version = EDS_VERSION;
    caps.date = started_at;
    auto indexer = Indexer();
    caps.conditional = indexer != nullptr;
    caps.read_only_types = {std::string(storage::kAuditEventType)};
    if (indexer)
      caps.search_params_for = [indexer](const std::string& type) {
        std::vector<fhir::ServerCapabilities::SearchParam> out;
        for (const auto* d : indexer->registry().ForType(type))
          if (type == storage::kAuditEventType ? storage::IsAuditEventSearchParam(d->code) : indexer->IsIndexed(type, *d))
            out.push_back({d->code, fhir::SearchParamTypeCode(d->type), d->url});
        return out;
      };
    for (const auto& r : Routes()) {
      if (r.interaction == Interaction::kCapabilities || r.interaction == Interaction::kReindex ||
          r.interaction == Interaction::kValidate || r.interaction == Interaction::kImport)
        continue;
      auto& list = r.type_level ? caps.type_interactions : caps.system_interactions;
      if (std::find(list.begin(), list.end(), r.code) == list.end()) list.push_back(r.code);
      if (r.interaction == Interaction::kTransaction) caps.system_interactions.push_back("batch");
    }
    return Json(200, fhir::BuildCapabilityStatement(*defs, caps), p.format);
  }

  HttpResponse Deleted(const fhir::VersionRecord& rec, const Format& format) const {
    auto e = MakeError(ErrorKind::kGone,
                       fmt::format("{}/{} was deleted (version {})", rec.type, rec.id, rec.version));
    HttpResponse r = ErrorResponse(e, format);
    SetVersionHeaders(r, rec);
    return r;
  }

  HttpResponse ReadLike(const HttpRequest& req, const Format& format,
                        storage::Result<fhir::VersionRecord> res) const {
    if (!res) return ErrorResponse(res.error(), format);
    auto& rec = *res;
    if (rec.deleted) return Deleted(rec, format);
    std::string_view inm = req.Header("if-none-match");
    if (!inm.empty()) {
      bool match = false;
      ForEachListItem(inm, ',', [&](std::string_view tag) {
        match = match || tag == "*" || ParseETag(tag) == rec.version;
      });
      if (match) {
        HttpResponse r;
        r.status = 304;
        SetVersionHeaders(r, rec);
        return r;
      }
    }
    HttpResponse r = Json(200, std::move(rec.content), format);
    SetVersionHeaders(r, rec);
    return r;
  }

  // Parses and checks a request body. With `structure`, structure issues are
  // handed to the caller instead of failing the parse.
  fhir::Result<fhir::Resource> ParseBody(const HttpRequest& req, const std::string& type,
                                         fhir::Outcome* structure = nullptr) const {
    std::string_view ct = req.Header("content-type");
    if (!ct.empty()) {
      std::string mt = MediaType(ct);
      if (mt != "application/fhir+json" && mt != "application/json" && mt != "application/json+fhir")
        return MakeError(ErrorKind::kUnsupportedMediaType,
                         fmt::format("Content-Type '{}' is not supported; send application/fhir+json",
                                     ct));
    }
    if (req.body.empty()) return MakeError(ErrorKind::kInvalid, "the request has no body; a FHIR resource is required");
    fhir::JsonLimits limits;
    limits.max_depth = config.json_max_depth;
    auto parsed = fhir::Resource::Parse(req.body, limits);
    if (!parsed) return std::move(parsed.error());
    if (parsed->type() != type)
      return MakeError(ErrorKind::kInvalid,
                       fmt::format("resourceType '{}' does not match the type in the URL ({})",
                                   parsed->type(), type),
                       "resourceType");
    auto issues = defs->CheckStructure(*parsed);
    if (structure != nullptr) *structure = std::move(issues);
    else if (issues.HasErrors()) return Error{ErrorKind::kInvalid, std::move(issues)};
    if (type == "Bundle")
      if (auto document = fhir::CheckDocumentBundle(*parsed); document.HasErrors())
        return fhir::Error{ErrorKind::kUnprocessable, std::move(document)};
    if (type == "SearchParameter")
      if (std::string problem = CheckSearchParameter(req.body); !problem.empty())
        return MakeError(ErrorKind::kInvalid, "this SearchParameter cannot be used for search: " + problem,
                         "SearchParameter");
    return std::move(*parsed);
  }

  static PreferReturn Prefer(const HttpRequest& req) {
    PreferReturn out = PreferReturn::kRepresentation;
    std::string_view prefer = req.Header("prefer");
    auto scan = [&](std::string_view item) {
      if (item == "return=minimal") out = PreferReturn::kMinimal;
      else if (item == "return=OperationOutcome") out = PreferReturn::kOutcome;
      else if (item == "return=representation") out = PreferReturn::kRepresentation;
    };
    ForEachListItem(prefer, ',', [&](std::string_view a) { ForEachListItem(a, ';', scan); });
    return out;
  }

  std::optional<Error> IfMatch(const HttpRequest& req, std::optional<int64_t>& out) const {
    std::string_view im = req.Header("if-match");
    if (im.empty()) return std::nullopt;
    out = ParseETag(im);
    if (!out)
      return MakeError(ErrorKind::kInvalid,
                       fmt::format("If-Match '{}' is not a version ETag such as W/\"3\"", im));
    return std::nullopt;
  }

  HttpResponse WriteResponse(const HttpRequest& req, const Parsed& p,
                             const storage::WriteResult& w, const char* what) const {
    const auto& rec = w.record;
    int status = w.created ? 201 : 200;
    HttpResponse r;
    switch (Prefer(req)) {
      case PreferReturn::kMinimal:
        r.status = status;
        break;
      case PreferReturn::kOutcome: {
        fhir::Outcome o(fhir::Severity::kInformation, "informational",
                        fmt::format("{} {}/{} version {}{}", what, rec.type, rec.id, rec.version,
                                    w.changed ? "" : " (content unchanged, no new version)"));
        r = Json(status, o.ToJson(), p.format);
        break;
      }
      case PreferReturn::kRepresentation:
        r = Json(status, rec.content, p.format);
        break;
    }
    SetVersionHeaders(r, rec);
    if (w.created)
      r.SetHeader("Location",
                  fmt::format("{}/{}/{}/_history/{}", p.base_url, rec.type, rec.id, rec.version));
    return r;
  }

  // Search criteria of a conditional interaction: filters only, every one
  // understood (unknown ones would widen the match), and there must be some.
  fhir::Result<fhir::SearchQuery> Criteria(const std::string& type,
                                           const std::vector<std::pair<std::string, std::string>>& params) const {
    auto indexer = Indexer();
    if (!indexer) return MakeError(ErrorKind::kNotSupported, "conditional interactions need search");
    auto query = fhir::ParseConditionalCriteria(
        type, params, indexer->registry(),
        [&indexer](std::string_view t, const fhir::SearchParamDef& d) { return indexer->IsIndexed(t, d); },
        indexer->local_bases());
    if (query) query->definitions_owner = indexer;
    return query;
  }

  HttpResponse Create(const HttpRequest& req, const Parsed& p) const {
    auto res = ParseBody(req, p.match.type);
    if (!res) return ErrorResponse(res.error(), p.format);
    if (auto e = CheckWrite(*res)) return ErrorResponse(*e, p.format);
    if (std::string_view ine = req.Header("if-none-exist"); !ine.empty()) {
      auto params = fhir::ParseQueryString(ine);
      if (!params) return ErrorResponse(params.error(), p.format);
      auto criteria = Criteria(p.match.type, *params);
      if (!criteria) return ErrorResponse(criteria.error(), p.format);
      auto w = store.ConditionalCreate(*res, *criteria, fhir::CanonicalCriteria(*params));
      if (!w) return ErrorResponse(w.error(), p.format);
      return WriteResponse(req, p, *w, w->created ? "created" : "found (If-None-Exist)");
    }
    auto w = store.Create(*res);
    if (!w) return ErrorResponse(w.error(), p.format);
    return WriteResponse(req, p, *w, "created");
  }

  HttpResponse Update(const HttpRequest& req, const Parsed& p) const {
    std::optional<int64_t> if_match;
    if (auto e = IfMatch(req, if_match)) return ErrorResponse(*e, p.format);
    auto res = ParseBody(req, p.match.type);
    if (!res) return ErrorResponse(res.error(), p.format);
    auto body_id = res->id();
    if (!body_id)
      return ErrorResponse(MakeError(ErrorKind::kInvalid,
                                     "the resource has no id; an update must carry the id of the URL",
                                     p.match.type + ".id"),
                           p.format);
    if (*body_id != p.match.id)
      return ErrorResponse(
          MakeError(ErrorKind::kInvalid,
                    fmt::format("the resource id '{}' does not match the id in the URL ({})", *body_id,
                                p.match.id),
                    p.match.type + ".id"),
          p.format);
    if (auto e = CheckWrite(*res)) return ErrorResponse(*e, p.format);
    auto w = store.Update(*res, p.match.id, if_match);
    if (!w) return ErrorResponse(w.error(), p.format);
    return WriteResponse(req, p, *w, w->created ? "created" : "updated");
  }

  // PATCH [type]/[id] with a JSON Patch or a FHIRPath Patch (Parameters):
  // applied to the current version, checked like an update, and stored only
  // if the version did not change meanwhile (the client's If-Match, else the
  // version the patch was applied to; a concurrent change makes it re-apply,
  // a few times at most).
  HttpResponse Patch(const HttpRequest& req, const Parsed& p) const {
    std::optional<int64_t> if_match;
    if (auto e = IfMatch(req, if_match)) return ErrorResponse(*e, p.format);
    std::string mt = MediaType(req.Header("content-type"));
    fhir::PatchDocument patch;
    std::optional<fhir::Resource> parameters;
    if (mt == "application/json-patch+json") {
      patch.json_patch = req.body;
    } else if (mt == "application/fhir+json" || mt == "application/json" || mt == "application/json+fhir") {
      auto parsed = fhir::Resource::Parse(req.body, fhir::JsonLimits{config.json_max_depth});
      if (!parsed) return ErrorResponse(parsed.error(), p.format);
      if (parsed->type() != "Parameters")
        return ErrorResponse(MakeError(ErrorKind::kInvalid,
                                       fmt::format("a FHIRPath Patch is a Parameters resource, not {}; a JSON Patch "
                                                   "is sent as application/json-patch+json",
                                                   parsed->type()),
                                       "resourceType"),
                             p.format);
      auto structure = defs->CheckStructure(*parsed);
      if (structure.HasErrors()) return ErrorResponse(Error{ErrorKind::kInvalid, std::move(structure)}, p.format);
      parameters = std::move(*parsed);
      patch.fhirpath_patch = &*parameters;
    } else {
      return ErrorResponse(MakeError(ErrorKind::kUnsupportedMediaType,
                                     fmt::format("Content-Type '{}' is not supported for PATCH; send a JSON Patch as "
                                                 "application/json-patch+json or a FHIRPath Patch (Parameters) as "
                                                 "application/fhir+json",
                                                 req.Header("content-type"))),
                           p.format);
    }
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto current = store.Read(p.match.type, p.match.id);
      if (!current) return ErrorResponse(current.error(), p.format);
      if (current->deleted) return Deleted(*current, p.format);
      if (if_match && *if_match != current->version)
        return ErrorResponse(MakeError(ErrorKind::kPreconditionFailed,
                                       fmt::format("version conflict: If-Match expects version {} but the current "
                                                   "version is {}", *if_match, current->version)),
                             p.format);
      auto resource = fhir::PatchResource(processor.engine(), current->content, p.match.type, p.match.id, patch,
                                          config.json_max_depth);
      if (!resource) return ErrorResponse(resource.error(), p.format);
      if (auto e = CheckWrite(*resource)) return ErrorResponse(*e, p.format);
      auto w = store.Update(*resource, p.match.id, current->version);
      if (!w && w.error().kind == ErrorKind::kPreconditionFailed && !if_match) continue;  // changed meanwhile
      if (!w) return ErrorResponse(w.error(), p.format);
      return WriteResponse(req, p, *w, "patched");
    }
    return ErrorResponse(MakeError(ErrorKind::kConflict, "the resource kept changing while the patch was applied"),
                         p.format);
  }

  // PUT [type]?criteria
  HttpResponse ConditionalUpdate(const HttpRequest& req, const Parsed& p) const {
    auto criteria = Criteria(p.match.type, p.params);
    if (!criteria) return ErrorResponse(criteria.error(), p.format);
    auto res = ParseBody(req, p.match.type);
    if (!res) return ErrorResponse(res.error(), p.format);
    if (auto e = CheckWrite(*res)) return ErrorResponse(*e, p.format);
    auto w = store.ConditionalUpdate(*res, *criteria, fhir::CanonicalCriteria(p.params));
    if (!w) return ErrorResponse(w.error(), p.format);
    return WriteResponse(req, p, *w, w->created ? "created" : "updated");
  }

  // DELETE [type]?criteria
  HttpResponse ConditionalDelete(const HttpRequest& req, const Parsed& p) const {
    auto criteria = Criteria(p.match.type, p.params);
    if (!criteria) return ErrorResponse(criteria.error(), p.format);
    auto w = store.ConditionalDelete(*criteria, fhir::CanonicalCriteria(p.params));
    if (!w) return ErrorResponse(w.error(), p.format);
    HttpResponse r;
    if (Prefer(req) == PreferReturn::kMinimal) {
      r.status = 204;
    } else {
      fhir::Outcome o(fhir::Severity::kInformation, "informational",
                      fmt::format("deleted {}/{} (version {})", w->record.type, w->record.id, w->record.version));
      r = Json(200, o.ToJson(), p.format);
    }
    SetVersionHeaders(r, w->record);
    return r;
  }

  HttpResponse Delete(const HttpRequest& req, const Parsed& p) const {
    std::optional<int64_t> if_match;
    if (auto e = IfMatch(req, if_match)) return ErrorResponse(*e, p.format);
    auto w = store.Delete(p.match.type, p.match.id, if_match);
    if (!w) return ErrorResponse(w.error(), p.format);
    HttpResponse r;
    if (Prefer(req) == PreferReturn::kMinimal) {
      r.status = 204;
    } else {
      fhir::Outcome o(fhir::Severity::kInformation, "informational",
                      w->changed ? fmt::format("deleted {}/{} (version {})", p.match.type,
                                               p.match.id, w->record.version)
                                 : fmt::format("{}/{} was already deleted", p.match.type, p.match.id));
      r = Json(200, o.ToJson(), p.format);
    }
    SetVersionHeaders(r, w->record);
    return r;
  }

  // GET [type]/[id]/_history, [type]/_history, _history: the history Bundle.
  HttpResponse History(const Parsed& p) const {
    StoreReads reads(store);
    auto bundle = HistoryBundle(reads, p);
    if (!bundle) return ErrorResponse(bundle.error(), p.format);
    return Json(200, std::move(*bundle), p.format);
  }

  fhir::Result<std::string> HistoryBundle(Reads& reads, const Parsed& p) const {
    storage::HistoryQuery q;
    q.count = config.history_default_count;
    std::vector<std::pair<std::string, std::string>> echoed;
    for (const auto& [k, raw] : p.params) {
      std::string v = raw;
      if (k == "_count") {
        int64_t n = 0;
        auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc() || ptr != v.data() + v.size() || n < 0)
          return MakeError(ErrorKind::kInvalid, fmt::format("_count must be a whole number >= 0, got '{}'", v));
        q.count = static_cast<int>(std::min<int64_t>(n, config.history_max_count));
        continue;  // echoed below with the value actually used
      }
      if (k == "_since" || k == "_at") {
        std::replace(v.begin(), v.end(), ' ', '+');  // an unescaped '+' in a zone offset
        auto range = fhir::ParseDateTimeRange(v);
        if (!range)
          return MakeError(ErrorKind::kInvalid, fmt::format("{} must be a FHIR instant or dateTime, got '{}'", k, v));
        if (k == "_since") q.since_ms = range->low_ms;
        else q.at = *range;
        echoed.emplace_back(k, v);
      } else if (k == "_cursor") {
        auto c = ParsePositive(v);
        if (!c)
          return MakeError(ErrorKind::kInvalid, "_cursor is not a valid paging cursor");
        q.before_seq = *c;
      }
    }
    if (!p.match.type.empty()) q.type = p.match.type;
    if (!p.match.id.empty()) q.id = p.match.id;

    auto page = reads.History(q);
    if (!page) return std::move(page.error());

    std::string path = p.base_url;
    if (q.type) path += "/" + *q.type;
    if (q.id) path += "/" + *q.id;
    path += "/_history";
    auto link = [&](std::optional<int64_t> cursor) {
      std::string url = path + "?_count=" + std::to_string(q.count);
      for (const auto& [k, v] : echoed) url += "&" + k + "=" + UrlEncode(v);
      if (cursor) url += "&_cursor=" + std::to_string(*cursor);
      return url;
    };
    std::vector<fhir::BundleLink> links;
    links.push_back({"self", link(q.before_seq)});
    if (q.before_seq) links.push_back({"first", link(std::nullopt)});
    if (page->next_before_seq) links.push_back({"next", link(page->next_before_seq)});
    return fhir::BuildHistoryBundle(p.base_url, page->entries, links);
  }

  static const char* ReasonPhrase(int status) {
    switch (status) {
      case 200: return "OK";
      case 201: return "Created";
      case 204: return "No Content";
      case 400: return "Bad Request";
      case 404: return "Not Found";
      case 405: return "Method Not Allowed";
      case 409: return "Conflict";
      case 410: return "Gone";
      case 412: return "Precondition Failed";
      case 422: return "Unprocessable Entity";
      case 501: return "Not Implemented";
      case 503: return "Service Unavailable";
      default: return status >= 500 ? "Server Error" : "Error";
    }
  }

  // One entry of a transaction-response / batch-response Bundle: status,
  // location (creates, updates, patches), etag and lastModified of what the
  // entry wrote or read, the resource when asked for, the outcome of a
  // failed batch entry.
  static void AppendEntryResponse(std::string& out, const EntryResult* r, const Error* error, bool with_resource) {
    const fhir::VersionRecord* rec = r != nullptr && r->record ? &*r->record : nullptr;
    const int status = error != nullptr ? HttpStatusOf(error->kind) : r->status;
    out += "{";
    if (rec != nullptr && with_resource && !rec->deleted && !rec->content.empty()) {
      out += R"("resource":)";
      out += rec->content;
      out += ",";
    } else if (r != nullptr && r->bundle && with_resource) {
      out += R"("resource":)";
      out += *r->bundle;
      out += ",";
    }
    out += R"("response":{"status":)";
    fhir::AppendJsonString(out, fmt::format("{} {}", status, ReasonPhrase(status)));
    if (rec != nullptr) {
      if (r->location) {
        out += R"(,"location":)";
        fhir::AppendJsonString(out, fmt::format("{}/{}/_history/{}", rec->type, rec->id, rec->version));
      }
      out += R"(,"etag":)";
      fhir::AppendJsonString(out, fhir::VersionETag(rec->version));
      out += R"(,"lastModified":)";
      fhir::AppendJsonString(out, fhir::FormatInstant(rec->last_updated_ms));
    }
    if (error != nullptr) {
      out += R"(,"outcome":)";
      out += error->outcome.ToJson();
    }
    out += "}}";
  }

  // A GET or HEAD entry of a Bundle, routed like a request and run in the
  // Bundle's database transaction: read, vread, history or search (or the
  // CapabilityStatement). Errors as the request would answer them; other
  // interactions are kInvalid.
  fhir::Result<EntryResult> BundleGet(storage::TxScope& scope, const fhir::TransactionEntry& entry,
                                      const std::string& base_url, bool strict) const {
    HttpRequest sub;
    sub.method = "GET";
    sub.target = config.base_path + "/" + EncodeTarget(entry.read_url);
    Parsed p;
    RequestContext ctx;
    std::string allow;
    bool plain = false;
    if (auto e = Match(sub, p, ctx, allow, plain)) return std::move(*e);
    p.base_url = base_url;
    ScopeReads reads(scope);
    EntryResult result;
    switch (p.match.route->interaction) {
      case Interaction::kRead: {
        auto r = scope.Read(p.match.type, p.match.id);
        if (!r) return std::move(r.error());
        result.record = std::move(*r);
        return result;
      }
      case Interaction::kVread: {
        auto r = reads.ReadVersion(p.match.type, p.match.id, *ParsePositive(p.match.vid));
        if (!r) return std::move(r.error());
        if (r->deleted)
          return MakeError(ErrorKind::kGone, fmt::format("version {} of {}/{} is its deletion", r->version,
                                                         p.match.type, p.match.id));
        result.record = std::move(*r);
        return result;
      }
      case Interaction::kHistorySystem:
      case Interaction::kHistoryType:
      case Interaction::kHistoryInstance: {
        auto b = HistoryBundle(reads, p);
        if (!b) return std::move(b.error());
        result.bundle = std::move(*b);
        return result;
      }
      case Interaction::kSearchType:
      case Interaction::kSearchSystem:
      case Interaction::kSearchCompartment: {
        auto b = SearchBundle(reads, p, p.params, strict);
        if (!b) return std::move(b.error());
        result.bundle = std::move(*b);
        return result;
      }
      case Interaction::kCapabilities: {
        result.bundle = Capabilities(p).body;
        return result;
      }
      default:
        return MakeError(ErrorKind::kInvalid,
                         fmt::format("'{}' is not a read, search or history; a Bundle's GET entries run only those",
                                     entry.url));
    }
  }

  // POST [base] with a transaction (all or nothing) or batch (each entry on
  // its own) Bundle.
  HttpResponse Transaction(const HttpRequest& req, const Parsed& p) const {
    fhir::Outcome structure;
    auto bundle = ParseBody(req, "Bundle", &structure);
    if (!bundle) return ErrorResponse(bundle.error(), p.format);
    auto plan = fhir::PlanTransaction(*bundle, *defs);
    if (!plan) return ErrorResponse(plan.error(), p.format);
    auto& entries = plan->entries;
    if (structure.HasErrors()) {
      // A transaction fails whole; a batch answers a bad entry on its own,
      // and fails whole only for problems outside the entries' resources.
      if (!plan->batch) return ErrorResponse(fhir::Error{ErrorKind::kInvalid, std::move(structure)}, p.format);
      std::vector<fhir::Outcome> per_entry(entries.size());
      fhir::Outcome outside;
      for (const auto& issue : structure.issues()) {
        std::size_t n = 0;
        if (std::sscanf(issue.expression.c_str(), "Bundle.entry[%zu].resource", &n) == 1 && n < entries.size() &&
            issue.expression.find("].resource") != std::string::npos)
          per_entry[n].Add(issue);
        else
          outside.Add(issue);
      }
      if (outside.HasErrors()) return ErrorResponse(fhir::Error{ErrorKind::kInvalid, std::move(outside)}, p.format);
      for (std::size_t i = 0; i < entries.size(); ++i)
        if (per_entry[i].HasErrors() && !entries[i].error)
          entries[i].error = fhir::Error{ErrorKind::kInvalid, std::move(per_entry[i])};
    }
    // the audit trail is written by the server only
    for (auto& entry : entries) {
      if (entry.error || entry.type != storage::kAuditEventType || entry.method == fhir::EntryMethod::kGet) continue;
      Error refused = MakeError(ErrorKind::kMethodNotAllowed,
                                fmt::format("Bundle.entry[{}]: AuditEvent resources are recorded by the server and "
                                            "cannot be written",
                                            entry.index));
      if (!plan->batch) return ErrorResponse(refused, p.format);
      entry.error = std::move(refused);
    }
    // validation of the entries' resources: a transaction fails whole (422),
    // a batch entry on its own
    for (auto& entry : entries) {
      if (entry.error || !entry.resource) continue;
      auto e = CheckWrite(*entry.resource);
      if (!e) continue;
      Error located = Located(entry, std::move(*e));
      if (!plan->batch) return ErrorResponse(located, p.format);
      entry.error = std::move(located);
    }
    const bool with_resource = Prefer(req) == PreferReturn::kRepresentation;
    const std::string base_url = p.base_url;
    const bool strict = req.Header("prefer").find("handling=strict") != std::string_view::npos;
    const TransactionProcessor::GetHook get = [this, &base_url, strict](storage::TxScope& scope,
                                                                        const fhir::TransactionEntry& entry) {
      return BundleGet(scope, entry, base_url, strict);
    };
    std::vector<fhir::Result<EntryResult>> results;
    results.reserve(entries.size());
    if (plan->batch) {
      std::vector<std::optional<fhir::Result<EntryResult>>> by_entry(entries.size());
      for (std::size_t i : plan->order)
        by_entry[i] = entries[i].error ? fhir::Result<EntryResult>(*entries[i].error)
                                       : processor.RunBatchEntry(store, *plan, i, get);
      for (auto& r : by_entry) results.push_back(std::move(*r));
    } else {
      std::optional<std::size_t> failed;
      auto done = processor.RunTransaction(store, *plan, failed, {}, {}, get);
      if (!done) return ErrorResponse(done.error(), p.format);
      for (auto& r : *done) results.emplace_back(std::move(r));
    }

    std::string out = plan->batch ? R"({"resourceType":"Bundle","type":"batch-response","entry":[)"
                                  : R"({"resourceType":"Bundle","type":"transaction-response","entry":[)";
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (i) out += ",";
      const auto& r = results[i];
      if (r) AppendEntryResponse(out, &*r, nullptr, with_resource && !entries[i].head);
      else AppendEntryResponse(out, nullptr, &r.error(), false);
    }
    out += "]}";
    return Json(200, std::move(out), p.format);
  }

  // GET [base]/$reindex: progress; POST: (re)loads the custom parameters and
  // starts a reindex of what an older parameter set indexed.
  HttpResponse Reindex(const HttpRequest& req, const Parsed& p) const {
    if (!reindex || !indexers)
      return ErrorResponse(MakeError(ErrorKind::kNotSupported, "this server keeps no search index"), p.format);
    ReindexJob::Status st;
    if (req.method == "POST") {
      ReloadSearchParameters();
      st = reindex->Start();
    } else {
      st = reindex->Current();
    }
    std::string out = R"({"resourceType":"Parameters","parameter":[{"name":"status","valueCode":")";
    out += st.running ? "running" : (st.error.empty() ? "idle" : "failed");
    out += fmt::format(R"("}},{{"name":"generation","valueInteger":{}}},{{"name":"reindexed","valueInteger":{}}})",
                       Indexer()->generation(), st.reindexed);
    if (st.remaining >= 0) out += fmt::format(R"(,{{"name":"remaining","valueInteger":{}}})", st.remaining);
    if (!st.error.empty()) {
      out += R"(,{"name":"error","valueString":)";
      fhir::AppendJsonString(out, st.error);
      out += "}";
    }
    out += "]}";
    HttpResponse r = Json(req.method == "POST" ? 202 : 200, std::move(out), p.format);
    if (req.method == "POST") r.SetHeader("Content-Location", p.base_url + "/$reindex");
    return r;
  }

  // POST [base]/$import with an NDJSON body: every line loaded like `eds
  // load` does (batches, one transaction each; a rejected line is skipped and
  // reported). Answers a Parameters resource with the counts and the reason
  // of every rejected line.
  HttpResponse Import(const HttpRequest& req, const Parsed& p) const {
    const std::string mt = MediaType(req.Header("content-type"));
    if (mt != "application/fhir+ndjson" && mt != "application/x-ndjson" && mt != "application/ndjson")
      return ErrorResponse(MakeError(ErrorKind::kUnsupportedMediaType,
                                     "$import takes an NDJSON body (Content-Type application/fhir+ndjson or "
                                     "application/x-ndjson), one resource or Bundle a line"),
                           p.format);
    if (req.body.empty())
      return ErrorResponse(MakeError(ErrorKind::kInvalid, "the request has no body; NDJSON lines are required"),
                           p.format);
    LoadOptions options;
    options.workers = 1;
    options.max_json_depth = config.json_max_depth;
    BulkLoader loader(defs, indexers, store, options);
    std::vector<Rejection> rejections;
    auto stats = loader.LoadText(req.body, [&rejections](const Rejection& r) { rejections.push_back(r); });
    if (!stats) return ErrorResponse(stats.error(), p.format);
    if (stats->search_parameters > 0) ReloadSearchParameters();
    std::string out = R"({"resourceType":"Parameters","parameter":[)";
    out += fmt::format(R"({{"name":"stored","valueInteger":{}}},{{"name":"unchanged","valueInteger":{}}},)"
                       R"({{"name":"rejected","valueInteger":{}}})",
                       stats->stored, stats->unchanged, stats->rejected);
    for (const auto& r : rejections) {
      out += fmt::format(R"(,{{"name":"rejection","part":[{{"name":"line","valueInteger":{}}})", r.line);
      if (r.entry) out += fmt::format(R"(,{{"name":"entry","valueInteger":{}}})", *r.entry);
      out += R"(,{"name":"reason","valueString":)";
      fhir::AppendJsonString(out, r.reason);
      out += "}]}";
    }
    out += "]}";
    return Json(200, std::move(out), p.format);
  }

  // GET [type]?... and POST [type]/_search (form body), GET [base]?... and
  // POST [base]/_search across types (_type), GET [base]/Patient/[id]/[type]
  // within a compartment: a searchset Bundle.
  HttpResponse Search(const HttpRequest& req, const Parsed& p) const {
    auto params = p.params;
    if (req.method == "POST") {
      std::string mt = MediaType(req.Header("content-type"));
      if (!req.body.empty() && mt != "application/x-www-form-urlencoded")
        return ErrorResponse(MakeError(ErrorKind::kUnsupportedMediaType,
                                       "POST _search takes an application/x-www-form-urlencoded body"),
                             p.format);
      const std::string as_target = "/?" + req.body;
      auto form = boost::urls::parse_origin_form(as_target);
      if (!form) return ErrorResponse(MakeError(ErrorKind::kInvalid, "the form body is malformed"), p.format);
      for (auto param : form->params(boost::urls::encoding_opts(true)))
        params.emplace_back(std::string(param.key), std::string(param.value));
    }
    StoreReads reads(store);
    auto bundle = SearchBundle(reads, p, params, req.Header("prefer").find("handling=strict") != std::string_view::npos);
    if (!bundle) return ErrorResponse(bundle.error(), p.format);
    return Json(200, std::move(*bundle), p.format);
  }

  // The searchset Bundle of a search with `params` (p names the type or
  // compartment); `strict`: unknown parameters are an error (Prefer:
  // handling=strict).
  fhir::Result<std::string> SearchBundle(Reads& reads, const Parsed& p,
                                         const std::vector<std::pair<std::string, std::string>>& params,
                                         bool strict) const {
    auto indexer = Indexer();
    if (!indexer) return MakeError(ErrorKind::kNotSupported, "search is not available");
    const auto interaction = p.match.route->interaction;
    const auto& registry = indexer->registry();
    std::string search_type = interaction == Interaction::kSearchSystem ? "" : p.match.type;
    std::string path = interaction == Interaction::kSearchSystem ? "" : "/" + p.match.type;
    std::vector<std::string> compartment_types;
    if (interaction == Interaction::kSearchCompartment) {
      const std::string& target = p.match.compartment_target;
      if (!registry.IsCompartment(p.match.type))
        return MakeError(ErrorKind::kNotFound, fmt::format("{} is not a compartment", p.match.type));
      compartment_types = registry.CompartmentTypes(p.match.type);
      if (std::find(compartment_types.begin(), compartment_types.end(), p.match.type) == compartment_types.end())
        compartment_types.push_back(p.match.type);  // the compartment's own resource
      if (target != "*") {
        if (!defs->IsResourceType(target))
          return MakeError(ErrorKind::kNotFound, fmt::format("unknown resource type '{}'", target));
        if (std::find(compartment_types.begin(), compartment_types.end(), target) == compartment_types.end())
          return MakeError(ErrorKind::kInvalid,
                           fmt::format("{} resources are not in the {} compartment", target, p.match.type));
        compartment_types = {target};
      }
      search_type = target == "*" ? "" : target;
      path = fmt::format("/{}/{}/{}", p.match.type, p.match.id, target);
    }
    fhir::SearchOptions options;
    options.default_count = config.history_default_count;
    options.max_count = config.history_max_count;
    options.supported = [&indexer](std::string_view type, const fhir::SearchParamDef& d) {
      if (type == storage::kAuditEventType) return storage::IsAuditEventSearchParam(d.code);
      return indexer->IsIndexed(type, d);
    };
    options.strict = strict;
    {
      // references under this request's base or a configured one are local
      std::vector<std::string> bases = indexer->local_bases().bases();
      bases.push_back(p.base_url);
      options.local_bases = fhir::LocalBases(bases);
    }
    auto query = fhir::ParseSearch(search_type, params, registry, options);
    if (!query) return std::move(query.error());
    if (interaction == Interaction::kSearchCompartment) {
      fhir::CompartmentFilter filter{p.match.type, p.match.id, {}};
      for (const auto& t : compartment_types) {
        if (search_type.empty() && !query->types.empty() &&
            std::find(query->types.begin(), query->types.end(), t) == query->types.end())
          continue;
        auto codes = registry.CompartmentParams(p.match.type, t);
        // reference rows other parameters hold (SharedReferencesOf) for
        // targets of the compartment's type
        for (std::size_t i = 0, n = codes.size(); i < n; ++i) {
          const fhir::SearchParamDef* d = registry.Find(t, codes[i]);
          auto shared = d == nullptr ? std::nullopt : registry.SharedReferencesOf(t, *d);
          if (shared && (shared->target_type.empty() || shared->target_type == p.match.type) &&
              std::find(codes.begin(), codes.end(), shared->code) == codes.end())
            codes.push_back(shared->code);
        }
        filter.params_by_type.emplace_back(t, std::move(codes));
      }
      if (search_type.empty()) {
        query->types.clear();
        for (const auto& [t, ps] : filter.params_by_type) query->types.push_back(t);
        if (query->types.empty()) query->types.push_back(p.match.type);
      }
      query->compartment = std::move(filter);
    }
    auto page = reads.Search(*query);
    if (!page) return std::move(page.error());

    auto link = [&](const std::optional<std::string>& cursor, std::optional<long> offset) {
      std::string url = p.base_url + path + "?";
      bool first = true;
      bool has_count = false;
      for (const auto& [k, v] : query->used) {
        if (k == "_offset" && (offset || cursor)) continue;
        has_count = has_count || k == "_count";
        url += (first ? "" : "&") + UrlEncode(k) + "=" + UrlEncode(v);
        first = false;
      }
      if (!has_count) url += (first ? "" : "&") + std::string("_count=") + std::to_string(*query->count);
      if (offset) url += "&_offset=" + std::to_string(*offset);
      if (cursor) url += "&_cursor=" + UrlEncode(*cursor);
      return url;
    };
    std::string out = R"({"resourceType":"Bundle","type":"searchset",)";
    if (page->total) out += fmt::format(R"("total":{},)", *page->total);
    out += R"("link":[{"relation":"self","url":)";
    fhir::AppendJsonString(out, link(query->cursor, query->cursor ? std::nullopt : query->offset));
    out += "}";
    auto add_link = [&](const char* rel, const std::string& url) {
      out += R"(,{"relation":")";
      out += rel;
      out += R"(","url":)";
      fhir::AppendJsonString(out, url);
      out += "}";
    };
    if (page->next_cursor) add_link("next", link(page->next_cursor, std::nullopt));
    if (page->next_offset) add_link("next", link(std::nullopt, page->next_offset));
    if (page->prev_cursor) add_link("previous", link(page->prev_cursor, std::nullopt));
    if (page->prev_offset) add_link("previous", link(std::nullopt, page->prev_offset));
    out += R"(],"entry":[)";
    bool first = true;
    const bool subset = fhir::WantsSubset(query->summary, query->elements);
    auto entries = [&](const std::vector<fhir::VersionRecord>& records, const char* mode) {
      for (const auto& rec : records) {
        if (!first) out += ",";
        first = false;
        out += R"({"fullUrl":)";
        fhir::AppendJsonString(out, fmt::format("{}/{}/{}", p.base_url, rec.type, rec.id));
        out += R"(,"resource":)";
        // _elements applies to the matches; _summary to every entry
        if (subset && (query->summary != fhir::SummaryMode::kFalse || std::string_view(mode) == "match"))
          out += fhir::SubsetResource(rec.content, query->summary, query->elements, *defs);
        else
          out += rec.content;
        out += R"(,"search":{"mode":")";
        out += mode;
        out += R"("}})";
      }
    };
    entries(page->matches, "match");
    entries(page->included, "include");
    fhir::Outcome notes = query->ignored;
    for (const auto& w : page->warnings) notes.Add({fhir::Severity::kWarning, "incomplete", w, {}});
    if (page->total_is_estimate)
      notes.Add({fhir::Severity::kInformation, "informational", "the total is an estimate (_total=estimate)", {}});
    if (!notes.issues().empty()) {
      if (!first) out += ",";
      out += R"({"resource":)";
      out += notes.ToJson();
      out += R"(,"search":{"mode":"outcome"}})";
    }
    out += "]}";
    return out;
  }

  static std::string UrlEncode(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_' || c == '~' || c == ':') {
        out.push_back(static_cast<char>(c));
      } else {
        out += fmt::format("%{:02X}", c);
      }
    }
    return out;
  }

  // POST [type]/$validate, POST [type]/[id]/$validate: 200 with the outcome
  // whenever validation ran; 400 only when there is nothing to validate.
  HttpResponse Validate(const HttpRequest& req, const Parsed& p) const {
    auto validator = CurrentValidator();
    if (!validator)
      return ErrorResponse(MakeError(ErrorKind::kNotSupported, "validation is not available"), p.format);
    std::string_view ct = req.Header("content-type");
    if (!ct.empty()) {
      std::string mt = MediaType(ct);
      if (mt != "application/fhir+json" && mt != "application/json" && mt != "application/json+fhir")
        return ErrorResponse(MakeError(ErrorKind::kUnsupportedMediaType,
                                       fmt::format("Content-Type '{}' is not supported; send application/fhir+json", ct)),
                             p.format);
    }
    if (req.body.empty())
      return ErrorResponse(MakeError(ErrorKind::kInvalid, "the request has no body; a resource or Parameters is required"),
                           p.format);
    auto parsed = fhir::Resource::Parse(req.body, fhir::JsonLimits{config.json_max_depth});
    if (!parsed) return ErrorResponse(parsed.error(), p.format);
    auto input = fhir::ReadValidateInput(std::move(*parsed), p.match.type);
    if (!input) return ErrorResponse(input.error(), p.format);
    for (const auto& [k, v] : p.params)
      if (k == "profile") input->profiles.push_back(v);
      else if (k == "mode") input->mode = v;
    if (!input->resource)  // mode delete without a resource: nothing to check here
      return Json(200, fhir::Outcome().ToJson(), p.format);
    const fhir::Resource& resource = *input->resource;
    if (resource.type() != p.match.type)
      return ErrorResponse(MakeError(ErrorKind::kInvalid,
                                     fmt::format("resourceType '{}' does not match the type in the URL ({})",
                                                 resource.type(), p.match.type),
                                     "resourceType"),
                           p.format);
    fhir::ValidationOptions options;
    options.declared_profiles = true;
    options.profiles = input->profiles;
    fhir::Outcome outcome = validator->Validate(resource, options);
    if (input->mode == "update" || !p.match.id.empty()) {
      auto id = resource.id();
      if (input->mode == "update" && !id)
        outcome.Add({fhir::Severity::kError, "required", "an update must carry the resource id", p.match.type + ".id"});
      else if (id && !p.match.id.empty() && *id != p.match.id)
        outcome.Add({fhir::Severity::kError, "invalid",
                     fmt::format("the resource id '{}' does not match the id in the URL ({})", *id, p.match.id),
                     p.match.type + ".id"});
    }
    return Json(200, outcome.ToJson(), p.format);
  }

  // ---- pipeline --------------------------------------------------------

  // Parses the target and routes it; on failure returns the error (`allow`:
  // the methods the path takes, for 405; `plain`: answer in the default
  // format, the requested one being the problem).
  std::optional<Error> Match(const HttpRequest& req, Parsed& p, RequestContext& ctx, std::string& allow,
                             bool& plain) const {
    if (req.target.size() > config.url_limit)
      return MakeError(ErrorKind::kUriTooLong, fmt::format("the URL is longer than {} bytes", config.url_limit));
    auto url = boost::urls::parse_origin_form(req.target);
    if (!url)
      return MakeError(ErrorKind::kInvalid, "the request target is not a valid URL");
    for (auto param : url->params(boost::urls::encoding_opts(true)))
      p.params.emplace_back(std::string(param.key), std::string(param.value));
    if (auto e = Negotiate(req, p.format, p.params)) {
      plain = true;
      return e;
    }

    std::vector<std::string> segs;
    for (auto s : url->segments()) segs.emplace_back(s);
    // strip the base path
    bool under_base = segs.size() >= base.size() && std::equal(base.begin(), base.end(), segs.begin());
    if (under_base) segs.erase(segs.begin(), segs.begin() + static_cast<long>(base.size()));
    if (!segs.empty() && segs.back().empty()) segs.pop_back();  // trailing slash
    if (!under_base)
      return MakeError(ErrorKind::kNotFound,
                       fmt::format("no FHIR endpoint here; the FHIR base is {}", config.base_path));

    std::vector<std::string> allowed;
    for (const auto& r : Routes()) {
      if (r.pattern.size() != segs.size()) continue;
      bool ok = true;
      for (std::size_t i = 0; ok && i < segs.size(); ++i) ok = SegmentMatches(r.pattern[i], segs[i]);
      if (!ok) continue;
      if (std::find(allowed.begin(), allowed.end(), r.method) == allowed.end()) allowed.push_back(r.method);
      if (req.method != r.method) continue;
      p.match.route = &r;
      for (std::size_t i = 0; i < segs.size(); ++i) {
        if (r.pattern[i] == "{type}") p.match.type = segs[i];
        else if (r.pattern[i] == "{id}") p.match.id = segs[i];
        else if (r.pattern[i] == "{vid}") p.match.vid = segs[i];
        else if (r.pattern[i] == "{ctype}") p.match.compartment_target = segs[i];
      }
      break;
    }
    if (p.match.route == nullptr) {
      if (allowed.empty()) {
        std::string what = segs.empty() ? std::string("/") : segs[0];
        if (!segs.empty() && fhir::IsTypeNameSyntax(segs[0]) && !defs->IsResourceType(segs[0]))
          return MakeError(ErrorKind::kNotFound, fmt::format("unknown resource type '{}'", segs[0]));
        return MakeError(ErrorKind::kNotFound, fmt::format("no FHIR interaction matches the path {}", url->path()));
      }
      if (!segs.empty() && fhir::IsTypeNameSyntax(segs[0]) && !defs->IsResourceType(segs[0]))
        return MakeError(ErrorKind::kNotFound, fmt::format("unknown resource type '{}'", segs[0]));
      for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
      return MakeError(ErrorKind::kMethodNotAllowed,
                       fmt::format("method {} is not allowed on {}; allowed: {}", req.method, url->path(), allow));
    }
    ctx.interaction = p.match.route->code;
    ctx.resource_type = p.match.type;
    ctx.resource_id = p.match.id;
    if (!p.match.type.empty() && !defs->IsResourceType(p.match.type))
      return MakeError(ErrorKind::kNotFound, fmt::format("unknown resource type '{}'", p.match.type));
    if (!p.match.id.empty() && !fhir::IsValidId(p.match.id))
      return MakeError(ErrorKind::kInvalid, fmt::format("'{}' is not a valid resource id (1-64 of A-Z a-z 0-9 - .)",
                                                 p.match.id));
    if (!p.match.vid.empty() && !ParsePositive(p.match.vid))
      return MakeError(ErrorKind::kNotFound, fmt::format("'{}' is not a version id of {}/{}", p.match.vid,
                                                 p.match.type, p.match.id));
    return std::nullopt;
  }

  std::optional<HttpResponse> Route(const HttpRequest& req, Parsed& p, RequestContext& ctx) const {
    std::string allow;
    bool plain = false;
    auto e = Match(req, p, ctx, allow, plain);
    if (!e) return std::nullopt;
    HttpResponse r = ErrorResponse(*e, plain ? Format{} : p.format);
    if (!allow.empty()) r.SetHeader("Allow", allow);
    return r;
  }

  HttpResponse Dispatch(const HttpRequest& req, RequestContext& ctx) const {
    if (auto op = OperationalPath(req.target); !op.empty()) return Operational(req, op, ctx);
    if (DocumentApi::Serves(req.target)) return documents.Handle(req, ctx);
    Parsed p;
    if (auto early = Route(req, p, ctx)) return std::move(*early);
    p.base_url = BaseUrl(req);
    HttpResponse r = Interact(req, p);
    // a SearchParameter written: its definition joins the indexer at once
    // (resources written before it are found by it once reindexed)
    const bool writes = req.method != "GET" && req.method != "HEAD";
    if (writes && r.status < 300 && indexers &&
        (p.match.type == "SearchParameter" ||
         (p.match.route->interaction == Interaction::kTransaction &&
          req.body.find("\"SearchParameter\"") != std::string::npos)))
      ReloadSearchParameters();
    // profiles and terminology written: they take part in validation at once
    if (writes && r.status < 300 && validator_factory && p.match.route->interaction != Interaction::kValidate) {
      static constexpr std::string_view kConformance[] = {"StructureDefinition", "ValueSet", "CodeSystem"};
      bool conformance = false;
      for (std::string_view t : kConformance) {
        conformance = conformance || p.match.type == t;
        if (p.match.route->interaction == Interaction::kTransaction ||
            p.match.route->interaction == Interaction::kImport)
          conformance = conformance || req.body.find(fmt::format("\"{}\"", t)) != std::string::npos;
      }
      if (conformance) ReloadValidator();
    }
    return r;
  }

  HttpResponse Interact(const HttpRequest& req, Parsed& p) const {
    if (p.match.type == storage::kAuditEventType) {
      // AuditEvents are the audit trail: read-only, answered from it
      const auto i = p.match.route->interaction;
      if (i != Interaction::kRead && i != Interaction::kVread && i != Interaction::kSearchType &&
          i != Interaction::kValidate) {
        HttpResponse r = ErrorResponse(
            MakeError(ErrorKind::kMethodNotAllowed,
                      fmt::format("{} is not allowed on AuditEvent: AuditEvent resources are recorded by the server "
                                  "and can only be read and searched",
                                  p.match.route->code)),
            p.format);
        r.SetHeader("Allow", "GET");
        return r;
      }
    }
    switch (p.match.route->interaction) {
      case Interaction::kCapabilities: return Capabilities(p);
      case Interaction::kCreate: return Create(req, p);
      case Interaction::kRead: return ReadLike(req, p.format, store.Read(p.match.type, p.match.id));
      case Interaction::kVread:
        return ReadLike(req, p.format, store.ReadVersion(p.match.type, p.match.id, *ParsePositive(p.match.vid)));
      case Interaction::kUpdate: return Update(req, p);
      case Interaction::kDelete: return Delete(req, p);
      case Interaction::kHistorySystem:
      case Interaction::kHistoryType:
      case Interaction::kHistoryInstance: return History(p);
      case Interaction::kTransaction: return Transaction(req, p);
      case Interaction::kPatch: return Patch(req, p);
      case Interaction::kSearchType:
      case Interaction::kSearchSystem:
      case Interaction::kSearchCompartment: return Search(req, p);
      case Interaction::kReindex: return Reindex(req, p);
      case Interaction::kValidate: return Validate(req, p);
      case Interaction::kImport: return Import(req, p);
      case Interaction::kConditionalUpdate: return ConditionalUpdate(req, p);
      case Interaction::kConditionalDelete: return ConditionalDelete(req, p);
    }
    return ErrorResponse(MakeError(ErrorKind::kInternal, "unrouted interaction"), p.format);
  }
};

FhirApi::FhirApi(const ServerConfig& config, std::shared_ptr<const fhir::Definitions> defs,
                 storage::ResourceStore& store, std::shared_ptr<fhir::IndexerHolder> indexers,
                 std::shared_ptr<const fhir::Validator> validator)
    : impl_(std::make_unique<Impl>(config, std::move(defs), store, std::move(indexers), nullptr, std::move(validator))) {
  if (impl_->indexers) impl_->reindex = std::make_unique<ReindexJob>(store);
}
FhirApi::~FhirApi() = default;

namespace {

// The patients a request or response names: Patient/id references (and the
// Patient itself), at most 50, found by a scan of the JSON text.
// The start of the next string value of `"key"` at or after `from` in JSON
// text (any whitespace around the colon), or npos.
// `needle` in `hay` at or after `from`, or npos. memmem: JSON is full of
// quotes, which make string_view::find (first character, then compare) slow
// for needles that start with one.
std::size_t FindText(std::string_view hay, std::string_view needle, std::size_t from) {
  if (from > hay.size()) return std::string_view::npos;
  const void* at = memmem(hay.data() + from, hay.size() - from, needle.data(), needle.size());
  return at == nullptr ? std::string_view::npos : static_cast<const char*>(at) - hay.data();
}

std::size_t NextStringValue(std::string_view body, std::string_view key, std::size_t from) {
  for (std::size_t pos = FindText(body, key, from); pos != std::string_view::npos; pos = FindText(body, key, pos + 1)) {
    std::size_t i = pos + key.size();
    auto skip = [&] {
      while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t')) ++i;
    };
    skip();
    if (i >= body.size() || body[i] != ':') continue;
    ++i;
    skip();
    if (i < body.size() && body[i] == '"') return i + 1;
  }
  return std::string_view::npos;
}

void PatientsIn(std::string_view body, const fhir::LocalBases& bases, std::vector<std::string>& out) {
  static constexpr std::string_view kRef = "\"reference\"";
  for (std::size_t pos = NextStringValue(body, kRef, 0); pos != std::string_view::npos && out.size() < 50;
       pos = NextStringValue(body, kRef, pos)) {
    std::string_view value = body.substr(pos);
    value = value.substr(0, value.find('"'));
    if (auto at = value.find("Patient/"); at != std::string_view::npos && (at == 0 || value[at - 1] == '/')) {
      // an absolute reference names one of this server's patients only under
      // one of its own bases; other servers' patients are not ours
      if (at != 0) {
        auto relative = bases.Relative(value);
        if (!relative || relative->rfind("Patient/", 0) != 0) continue;
        at = value.size() - relative->size();
      }
      std::string_view id = value.substr(at + 8);
      id = id.substr(0, id.find('/'));
      if (fhir::IsValidId(id)) {
        std::string ref = "Patient/" + std::string(id);
        if (std::find(out.begin(), out.end(), ref) == out.end()) out.push_back(std::move(ref));
      }
    }
  }
}

void AddPatient(std::vector<std::string>& patients, std::string ref) {
  if (patients.size() < 50 && std::find(patients.begin(), patients.end(), ref) == patients.end())
    patients.push_back(std::move(ref));
}

// What a read answered: the resource read, or the matches of a search
// (Type/id of each entry's fullUrl), at most storage::kMaxAuditEntities.
void EntitiesIn(std::string_view body, storage::AuditRow& row) {
  if (row.interaction == "read" || row.interaction == "vread") {
    if (!row.resource_type.empty() && !row.resource_id.empty())
      row.entities.push_back(row.resource_type + '/' + row.resource_id +
                             (row.version_id ? "/_history/" + std::to_string(*row.version_id) : std::string()));
    return;
  }
  static constexpr std::string_view kFull = "\"fullUrl\":\"";
  for (std::size_t pos = FindText(body, kFull, 0);
       pos != std::string_view::npos && row.entities.size() < storage::kMaxAuditEntities;
       pos = FindText(body, kFull, pos + 1)) {
    std::string_view url = body.substr(pos + kFull.size());
    url = url.substr(0, url.find('"'));
    auto slash = url.rfind('/');
    if (slash == std::string_view::npos || slash == 0) continue;
    auto before = url.rfind('/', slash - 1);
    row.entities.emplace_back(before == std::string_view::npos ? url : url.substr(before + 1));
  }
  // Patients read are patients whose data was touched
  for (const auto& e : row.entities)
    if (e.rfind("Patient/", 0) == 0) AddPatient(row.patients, e.substr(0, e.find('/', 8)));
}

// The role categories of FSE 2.0 subject roles that are citizens acting for
// themselves or as guardians.
bool IsCitizenRole(std::string_view role) { return role == "ASS" || role == "TUT" || role == "GEN"; }

int CountOf(std::string_view body, std::string_view what) {
  int n = 0;
  for (auto pos = FindText(body, what, 0); pos != std::string_view::npos; pos = FindText(body, what, pos + 1)) ++n;
  return n;
}

}  // namespace

namespace {

// Action (C R U D E) and FSE service code of a request: reads are SERV_ASS_xx
// for citizens and SERV_PRO_xx for everyone else (01 read, 02 search,
// 03 history, 04 other), writes SERV_WRITE_01 create (and transactions,
// document publication), 02 update, 03 document metadata, 04 delete.
void Classify(const HttpRequest& request, storage::AuditRow& row) {
  const std::string& i = row.interaction;
  const std::string& m = request.method;
  const bool search = i.rfind("search", 0) == 0;
  if (m == "GET" || m == "HEAD" || search) {
    row.action = "R";
  } else if (i == "create") {
    row.action = "C";
  } else if (i == "update" || i == "patch") {
    row.action = "U";
  } else if (i == "delete") {
    row.action = "D";
  } else if (i == "document") {
    row.action = m == "POST" ? "C" : m == "DELETE" ? "D" : "U";
  } else {
    row.action = "E";
  }
  const bool metadata = request.target.find("/v1/document/metadata") != std::string::npos;
  const bool import = i == "operation" && request.target.find("$import") != std::string::npos;
  if (row.action == "C" || i == "transaction" || i == "batch" || import) row.service = "SERV_WRITE_01";
  else if (row.action == "U") row.service = metadata ? "SERV_WRITE_03" : "SERV_WRITE_02";
  else if (row.action == "D") row.service = "SERV_WRITE_04";
  else
    row.service = std::string(IsCitizenRole(row.caller_role) ? "SERV_ASS_" : "SERV_PRO_") +
                  (i == "read" || i == "vread" ? "01" : search ? "02" : i.rfind("history", 0) == 0 ? "03" : "04");
}

// The audit row fields known from the request alone.
storage::AuditRow BaseAuditRow(const HttpRequest& request, const RequestContext& ctx) {
  storage::AuditRow row;
  row.ts_ms = fhir::NowMs();  // event_id: made where the row is written
  row.request_id = ctx.request_id;
  row.interaction = ctx.interaction.empty() ? "unrouted" : ctx.interaction;
  row.method = request.method;
  row.resource_type = ctx.resource_type;
  row.resource_id = ctx.resource_id;
  row.caller_subject = ctx.principal;
  row.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ctx.start).count();
  row.bytes_in = static_cast<int64_t>(request.body.size());
  if (row.interaction.rfind("search", 0) == 0) {
    if (auto q = request.target.find('?'); q != std::string::npos) row.query = request.target.substr(q + 1);
    if (request.method == "POST") row.query += (row.query.empty() ? "" : "&") + request.body;
  }
  Classify(request, row);
  return row;
}

// The row of a write, completed inside its transaction just before the
// commit, from the versions the transaction wrote (row.entities).
void FinishWriteRow(const HttpRequest& request, const RequestContext& ctx, const fhir::LocalBases& bases,
                    storage::AuditRow& row) {
  storage::AuditRow done = BaseAuditRow(request, ctx);
  done.entities = std::move(row.entities);
  for (auto& p : row.patients) AddPatient(done.patients, std::move(p));
  done.in_transaction = true;
  done.bytes_out_known = false;
  const std::string& i = done.interaction;
  const bool single = i == "create" || i == "update" || i == "patch" || i == "delete";
  for (const auto& e : done.entities) {
    auto slash = e.find('/');
    auto hist = e.find("/_history/");
    if (slash == std::string::npos || hist == std::string::npos) continue;
    const std::string type = e.substr(0, slash);
    const std::string id = e.substr(slash + 1, hist - slash - 1);
    if (type == "Patient") AddPatient(done.patients, "Patient/" + id);
    if (single && done.entities.size() == 1) {
      done.resource_type = type;
      done.resource_id = id;
      done.version_id = std::stoll(e.substr(hist + 10));
    }
  }
  PatientsIn(request.body, bases, done.patients);
  if (i == "create" || (i == "document" && request.method == "POST")) done.status = 201;
  else if ((i == "update" || i == "patch") && done.version_id == 1) done.status = 201;
  else if (i == "delete" && request.Header("prefer").find("return=minimal") != std::string_view::npos) done.status = 204;
  else done.status = 200;
  row = std::move(done);
}

}  // namespace

HttpResponse FhirApi::Handle(const HttpRequest& request, RequestContext& ctx) const {
  HttpResponse r;
  if (impl_->audit != nullptr && impl_->audit->Full() && Impl::OperationalPath(request.target).empty()) {
    // nothing is served that could not be audited
    r = Reject(ErrorKind::kUnavailable, "the audit trail is behind; try again shortly", ctx);
    r.SetHeader("Retry-After", "1");
    return r;
  }
  // a write's audit row is committed with the write (storage::WriteAudit)
  storage::WriteAudit write_audit;
  std::optional<storage::ScopedWriteAudit> audit_scope;
  if (impl_->audit != nullptr && request.method != "GET" && request.method != "HEAD") {
    write_audit.finish = [this, &request, &ctx](storage::AuditRow& row) {
      FinishWriteRow(request, ctx, impl_->OwnBases(request), row);
    };
    audit_scope.emplace(&write_audit);
  }
  try {
    r = impl_->Dispatch(request, ctx);
  } catch (const std::exception& e) {
    Log(LogLevel::kError, fmt::format("request {} {} {} failed: {}", ctx.request_id, request.method,
                                      request.target, e.what()));
    r = Reject(ErrorKind::kInternal,
               fmt::format("internal server error; quote request id {} when reporting it", ctx.request_id),
               ctx);
  }
  ctx.audited_in_transaction = write_audit.committed;
  r.SetHeader("X-Request-Id", ctx.request_id);
  return r;
}

HttpResponse FhirApi::Reject(ErrorKind kind, std::string message, const RequestContext& ctx) const {
  HttpResponse r = impl_->ErrorResponse(MakeError(kind, std::move(message)), Format{});
  r.SetHeader("X-Request-Id", ctx.request_id);
  return r;
}

std::optional<FhirApi::ReadPlan> FhirApi::PlanRead(const HttpRequest& request,
                                                   RequestContext& ctx) const {
  if (request.method != "GET") return std::nullopt;
  Impl::Parsed p;
  if (impl_->Route(request, p, ctx)) return std::nullopt;  // an error: Handle answers it
  if (p.match.route->interaction != Interaction::kRead || p.match.type == storage::kAuditEventType)
    return std::nullopt;
  return ReadPlan{p.match.type, p.match.id, p.format.content_type, p.format.pretty};
}

HttpResponse FhirApi::CompleteRead(const HttpRequest& request, const ReadPlan& plan,
                                   fhir::Result<fhir::VersionRecord> result,
                                   RequestContext& ctx) const {
  Format format{plan.content_type, plan.pretty};
  HttpResponse r = impl_->ReadLike(request, format, std::move(result));
  r.SetHeader("X-Request-Id", ctx.request_id);
  return r;
}

void FhirApi::InFlight(int delta) const { impl_->metrics.InFlight(delta); }

void FhirApi::SetAuditSink(storage::AuditSink* sink) { impl_->audit = sink; }

void FhirApi::SetValidatorFactory(std::function<std::shared_ptr<const fhir::Validator>()> factory) {
  impl_->validator_factory = std::move(factory);
}

void FhirApi::Count(const HttpRequest& request, const HttpResponse& response, const RequestContext& ctx) const {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.start).count();
  impl_->metrics.Observe(ctx.interaction, response.status, seconds, request.body.size(), response.body.size());
}

namespace {

// The audit row of a request answered outside a write's transaction, made
// from the request and its answer.
storage::AuditRow AnsweredRow(const HttpRequest& request, const HttpResponse& response, const RequestContext& ctx,
                              const fhir::LocalBases& bases, int64_t ts_ms, double latency_ms) {
  storage::AuditRow row = BaseAuditRow(request, ctx);
  row.ts_ms = ts_ms;
  if (auto etag = response.Header("etag"); !etag.empty()) {
    // W/"3": the digits
    const auto digit = std::find_if(etag.begin(), etag.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    int64_t v = 0;
    const char* first = etag.data() + (digit - etag.begin());
    if (auto [end, ec] = std::from_chars(first, etag.data() + etag.size(), v); ec == std::errc() && end != first)
      row.version_id = v;
  }
  row.status = response.status;
  if (response.status >= 400) {
    // the first issue code of the OperationOutcome
    static constexpr std::string_view kCode = "\"code\":\"";
    if (auto at = response.body.find(kCode); at != std::string::npos)
      row.outcome_code = response.body.substr(at + kCode.size(), response.body.find('"', at + kCode.size()) - at - kCode.size());
  }
  row.latency_ms = latency_ms;
  row.bytes_out = static_cast<int64_t>(response.body.size());
  // a created resource is named by its Location: .../Type/id/_history/v
  if (auto loc = response.Header("location"); row.resource_id.empty() && !loc.empty()) {
    auto hist = loc.rfind("/_history/");
    std::string_view head = loc.substr(0, hist);
    auto slash = head.rfind('/');
    if (slash != std::string_view::npos) row.resource_id = std::string(head.substr(slash + 1));
  }
  // a write answered with its resource (a conditional create's match) names it by its id
  if (row.resource_id.empty() && response.status < 300 && !row.resource_type.empty() &&
      (row.interaction == "create" || row.interaction == "update")) {
    if (auto at = NextStringValue(response.body, "\"id\"", 0); at != std::string::npos) {
      std::string id = response.body.substr(at, response.body.find('"', at) - at);
      if (fhir::IsValidId(id)) row.resource_id = std::move(id);
    }
  }
  if (row.resource_type == "Patient" && !row.resource_id.empty()) AddPatient(row.patients, "Patient/" + row.resource_id);
  if (response.status < 300) {
    PatientsIn(response.body, bases, row.patients);
    if (request.method != "GET") PatientsIn(request.body, bases, row.patients);
    // a read returns its resource; searches and histories count their matches
    const bool single = row.interaction == "read" || row.interaction == "vread";
    const int matches = single ? 0 : CountOf(response.body, "\"mode\":\"match\"");
    row.resources_returned = matches > 0 ? matches : (request.method == "GET" && !response.body.empty() ? 1 : 0);
  }
  // what was read (a read names its resource even when it failed)
  if (row.action == "R" && (response.status < 300 || row.interaction == "read" || row.interaction == "vread"))
    EntitiesIn(response.body, row);
  return row;
}

}  // namespace

void FhirApi::Observe(const HttpRequest& request, const HttpResponse& response, const RequestContext& ctx) const {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.start).count();
  if (LogEnabled(LogLevel::kInfo)) {
    std::string line = "\"request_id\":";
    fhir::AppendJsonString(line, ctx.request_id);
    line += ",\"method\":";
    fhir::AppendJsonString(line, request.method);
    line += ",\"target\":";
    fhir::AppendJsonString(line, request.target);
    line += fmt::format(",\"status\":{},\"ms\":{:.3f},\"interaction\":", response.status, seconds * 1000);
    fhir::AppendJsonString(line, ctx.interaction);
    if (!ctx.resource_type.empty()) {
      line += ",\"type\":";
      fhir::AppendJsonString(line, ctx.resource_type);
    }
    line += fmt::format(",\"bytes_in\":{},\"bytes_out\":{},\"principal\":", request.body.size(), response.body.size());
    fhir::AppendJsonString(line, ctx.principal);
    AccessLog(line);
  }
  // a committed write's row is already stored, in the write's transaction
  if (impl_->audit == nullptr || ctx.interaction == "metrics" || ctx.interaction == "health" ||
      ctx.audited_in_transaction)
    return;
  if (!impl_->audit->Offer(AnsweredRow(request, response, ctx, impl_->OwnBases(request), fhir::NowMs(), seconds * 1000)))
    Log(LogLevel::kError, "audit queue full: the audit row of request " + ctx.request_id + " was not queued");
}

bool FhirApi::IsCheap(const HttpRequest& request) const {
  if (auto op = Impl::OperationalPath(request.target); op == "/metrics" || op == "/healthz") return true;
  if (request.method != "GET") return false;
  const std::string metadata = impl_->config.base_path + "/metadata";
  std::string_view path = std::string_view(request.target).substr(0, request.target.find('?'));
  return path == metadata || path == metadata + "/";
}

}  // namespace eds::server
