// FSE 2.0 ingestion API.
#include "server/document_api.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <vector>

#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "fhir/primitives.hpp"
#include "fhir/transaction.hpp"
#include "server/feeding.hpp"
#include "server/fhir_api.hpp"
#include "server/log.hpp"
#include "server/transaction_processor.hpp"
#include "storage/analytics_hash.hpp"
#include "storage/resource_store.hpp"

namespace eds::server {

PriorityGate::Slot PriorityGate::Acquire(Priority p) {
  std::unique_lock<std::mutex> lock(mutex_);
  const int rank = static_cast<int>(p);
  ++waiting_[rank];
  cv_.wait(lock, [&] {
    if (free_ == 0) return false;
    for (int r = 0; r < rank; ++r)
      if (waiting_[r] > 0) return false;  // a more urgent request goes first
    return true;
  });
  --waiting_[rank];
  --free_;
  return Slot(this);
}

void PriorityGate::Release() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++free_;
  }
  cv_.notify_all();
}

namespace {

using fhir::ErrorKind;
using fhir::MakeError;
using Json = rapidjson::Document;

// Resources a document refers to but does not own: replacing or deleting
// the document leaves them.
const std::set<std::string, std::less<>> kSharedTypes = {"Patient", "Practitioner", "PractitionerRole",
                                                          "Organization", "Location", "Device", "RelatedPerson"};

std::string Str(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

void AppendString(std::string& out, std::string_view s) { fhir::AppendJsonString(out, s); }

const char* ProblemType(int status) {
  return status == 404 ? "/err/resource" : status >= 500 ? "/err/server" : "/err/client";
}

const char* ProblemTitle(int status) {
  return status == 400   ? "Bad request"
         : status == 404 ? "Document not found"
         : status == 409 ? "Conflict"
         : status == 412 ? "Precondition failed"
         : status == 413 ? "Payload too large"
         : status == 415 ? "Unsupported media type"
         : status == 422 ? "Unprocessable document"
         : status == 503 ? "Service unavailable"
         : status >= 500 ? "Server error"
                         : "Client error";
}

HttpResponse Problem(const RequestContext& ctx, int status, std::string_view detail) {
  const char* type = ProblemType(status);
  const char* title = ProblemTitle(status);
  std::string body = "{\"traceID\":";
  AppendString(body, ctx.request_id);
  body += ",\"spanID\":";
  AppendString(body, ctx.request_id);
  body += fmt::format(",\"type\":\"{}\",\"title\":\"{}\",\"detail\":", type, title);
  AppendString(body, detail);
  body += fmt::format(",\"status\":{},\"instance\":\"{}\"}}", status, type);
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.SetHeader("Content-Type", "application/problem+json");
  return r;
}

HttpResponse Problem(const RequestContext& ctx, const fhir::Error& e) {
  std::string detail;
  for (const auto& i : e.outcome.issues()) {
    if (!detail.empty()) detail += "; ";
    detail += i.diagnostics;
    if (!i.expression.empty()) detail += " (at " + i.expression + ")";
  }
  int status = HttpStatusOf(e.kind);
  return Problem(ctx, status >= 500 && status != 503 ? 500 : status,
                 status >= 500 && status != 503 ? "an unexpected error occurred on the server" : detail);
}

HttpResponse Ok(const RequestContext& ctx, int status) {
  HttpResponse r;
  r.status = status;
  r.body = "{\"traceID\":";
  AppendString(r.body, ctx.request_id);
  r.body += ",\"spanID\":";
  AppendString(r.body, ctx.request_id);
  r.body += ",\"result\":true}";
  r.SetHeader("Content-Type", "application/json");
  return r;
}

std::string Serialize(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

// A FHIR dateTime from the Gateway's yyyyMMdd[HHmmss] or an ISO value; the
// compact form carries no time zone, so it is kept to the day.
std::optional<std::string> FhirDate(const std::string& v) {
  if (v.size() >= 8 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return v.substr(0, 4) + "-" + v.substr(4, 2) + "-" + v.substr(6, 2);
  if (fhir::ParseDateTimeRange(v)) return v;
  return std::nullopt;
}

struct Envelope {
  std::string identifier;
  std::string json_string;
  std::string priority;  // HIGH, LOW, NULL or empty
  std::string rda, rde;
};

}  // namespace

struct DocumentApi::Impl {
  Impl(std::shared_ptr<const fhir::Definitions> d, storage::ResourceStore& s, const TransactionProcessor& p,
       int concurrency, EntryCheck c, std::string key)
      : defs(std::move(d)),
        store(s),
        processor(p),
        gate(concurrency),
        check(std::move(c)),
        analytics_key(std::move(key)) {}
  std::shared_ptr<const fhir::Definitions> defs;
  storage::ResourceStore& store;
  const TransactionProcessor& processor;
  mutable PriorityGate gate;
  EntryCheck check;
  const std::string analytics_key;

  // The keyed hash stored for a fiscal code (none without a key).
  std::string FiscalCodeHash(const std::string& fiscal_code) const {
    if (analytics_key.empty() || fiscal_code.empty()) return {};
    return storage::KeyedHash(analytics_key, storage::NormalFiscalCode(fiscal_code));
  }

  // What the document says, into its feeding record.
  void Apply(storage::FeedingRecord& rec, const DocumentFacts& f) const {
    rec.document_type = f.document_type;
    rec.tipo_documento_liv_alto = f.tipo_documento_liv_alto;
    rec.producer_app_id = f.producer_app_id;
    rec.producer_app_vendor = f.producer_app_vendor;
    rec.producer_app_version = f.producer_app_version;
    rec.producer_org = f.producer_org;
    if (!f.patient.empty()) rec.patient = f.patient;
    if (!f.fiscal_code.empty()) rec.fiscal_code_hash = FiscalCodeHash(f.fiscal_code);
  }

  // The problem answer to `e`; a document refused as invalid (400, 422)
  // counts its errors in the feeding record.
  static HttpResponse Reject(const RequestContext& ctx, storage::FeedingRecord& rec, const fhir::Error& e) {
    const int status = HttpStatusOf(e.kind);
    if (status == 400 || status == 422) {
      rec.validation_errors = 0;
      for (const auto& i : e.outcome.issues())
        rec.validation_errors += i.severity == fhir::Severity::kError || i.severity == fhir::Severity::kFatal;
    }
    return Problem(ctx, e);
  }

  // The facts of a stored document, read in `scope`; `document_reference`:
  // its DocumentReference's content when the caller has it at hand.
  DocumentFacts StoredFacts(storage::TxScope& scope, const storage::DocumentRecord& d,
                            std::string document_reference = {}) const {
    auto read = [&scope](const std::string& type, const std::string& id) -> std::optional<std::string> {
      auto r = scope.Read(type, id);
      if (!r) return std::nullopt;
      return std::move(r->content);
    };
    std::string composition;
    for (const auto& ref : d.resources)
      if (ref.rfind("Composition/", 0) == 0) {
        composition = read("Composition", ref.substr(12)).value_or("");
        break;
      }
    if (auto slash = d.document_reference.find('/'); document_reference.empty() && slash != std::string::npos)
      document_reference =
          read(d.document_reference.substr(0, slash), d.document_reference.substr(slash + 1)).value_or("");
    return FactsOfStored(composition, document_reference, read, processor.local_bases());
  }

  // Patient/id of the patient a stored document is about: the subject of
  // its Composition, else of its DocumentReference, else the Patient entry
  // it wrote or matched.
  static std::string PatientOf(const std::vector<std::optional<EntryResult>>& results) {
    std::string composition, document_reference, entry;
    auto subject_of = [](const std::string& content) -> std::string {
      Json r;
      r.Parse(content.data(), content.size());
      if (r.HasParseError() || !r.IsObject() || !r.HasMember("subject")) return {};
      std::string ref = Str(r["subject"], "reference");
      return ref.rfind("Patient/", 0) == 0 ? ref : std::string();
    };
    for (const auto& r : results) {
      if (!r || !r->record || r->record->deleted) continue;
      const auto& rec = *r->record;
      if (rec.type == "Composition" && composition.empty()) composition = subject_of(rec.content);
      if (rec.type == "DocumentReference" && document_reference.empty()) document_reference = subject_of(rec.content);
      if (rec.type == "Patient" && entry.empty()) entry = "Patient/" + rec.id;
    }
    return !composition.empty() ? composition : !document_reference.empty() ? document_reference : entry;
  }

  // The feeding record of a call that was refused, in its own transaction.
  // A failure to write it is logged; the answer stands.
  void RecordRejected(storage::FeedingRecord rec, int status) const {
    rec.status = status;
    rec.problem_type = ProblemType(status);
    rec.problem_title = ProblemTitle(status);
    rec.completed_ms = fhir::NowMs();
    try {
      auto err = store.RunTransaction([&rec](storage::TxScope& scope) { return scope.RecordFeeding(rec); });
      if (err && err->kind != ErrorKind::kNotSupported)
        Log(LogLevel::kError, fmt::format("the feeding record of request {} was not written: {}", rec.request_id,
                                          err->outcome.issues().empty() ? "" : err->outcome.issues()[0].diagnostics));
    } catch (const std::exception& e) {
      Log(LogLevel::kError,
          fmt::format("the feeding record of request {} was not written: {}", rec.request_id, e.what()));
    }
  }

  // Envelope of PUBLISH / REPLACE.
  std::optional<HttpResponse> ReadEnvelope(const HttpRequest& req, const RequestContext& ctx,
                                           const std::vector<std::pair<std::string, std::string>>& query,
                                           Envelope& env) const {
    Json body;
    body.Parse(req.body.data(), req.body.size());
    if (body.HasParseError() || !body.IsObject()) return Problem(ctx, 400, "the body is not a JSON object");
    env.identifier = Str(body, "identifier");
    env.json_string = Str(body, "jsonString");
    if (env.identifier.empty()) return Problem(ctx, 400, "'identifier' (the document's master identifier) is required");
    if (env.json_string.empty()) return Problem(ctx, 400, "'jsonString' (the document's FHIR Bundle) is required");
    if (auto p = body.FindMember("priorityType"); p != body.MemberEnd() && !p->value.IsNull()) {
      if (!p->value.IsString()) return Problem(ctx, 400, "'priorityType' must be NULL, LOW or HIGH");
      env.priority = p->value.GetString();
      if (env.priority != "NULL" && env.priority != "LOW" && env.priority != "HIGH")
        return Problem(ctx, 400, fmt::format("'priorityType' must be NULL, LOW or HIGH, not '{}'", env.priority));
    }
    env.rda = Str(body, "rda");
    env.rde = Str(body, "rde");
    for (const auto& [k, v] : query) {
      if (k == "rda") env.rda = v;
      if (k == "rde") env.rde = v;
    }
    return std::nullopt;
  }

  static PriorityGate::Priority PriorityOf(const std::string& p) {
    if (p == "HIGH") return PriorityGate::Priority::kHigh;
    if (p == "LOW") return PriorityGate::Priority::kLow;
    return PriorityGate::Priority::kNormal;
  }

  // The document's Bundle: a transaction Bundle with one DocumentReference,
  // whose master identifier it returns.
  fhir::Result<fhir::TransactionPlan> ReadBundle(const std::string& text, std::string& master) const {
    Json doc;
    doc.Parse(text.data(), text.size());
    if (doc.HasParseError() || !doc.IsObject()) return MakeError(ErrorKind::kInvalid, "jsonString is not JSON");
    if (Str(doc, "resourceType") != "Bundle" || Str(doc, "type") != "transaction")
      return MakeError(ErrorKind::kInvalid, "jsonString must hold a FHIR Bundle of type transaction");
    int references = 0;
    if (auto entries = doc.FindMember("entry"); entries != doc.MemberEnd() && entries->value.IsArray())
      for (const auto& e : entries->value.GetArray()) {
        if (!e.IsObject() || !e.HasMember("resource")) continue;
        const auto& r = e["resource"];
        if (Str(r, "resourceType") != "DocumentReference") continue;
        ++references;
        if (r.IsObject() && r.HasMember("masterIdentifier")) master = Str(r["masterIdentifier"], "value");
      }
    if (references != 1)
      return MakeError(ErrorKind::kInvalid,
                       fmt::format("the Bundle must hold exactly one DocumentReference, it holds {}", references));
    if (master.empty())
      return MakeError(ErrorKind::kInvalid, "the DocumentReference has no masterIdentifier.value",
                       "DocumentReference.masterIdentifier");
    auto bundle = fhir::Resource::Parse(text);
    if (!bundle) return std::move(bundle.error());
    auto issues = defs->CheckStructure(*bundle);
    if (issues.HasErrors()) return fhir::Error{ErrorKind::kInvalid, std::move(issues)};
    return fhir::PlanTransaction(*bundle, *defs);
  }

  static storage::DocumentRecord RecordOf(const std::string& identifier, const std::string& wii, const Envelope& env,
                                          const fhir::TransactionPlan& plan,
                                          const std::vector<std::optional<EntryResult>>& results) {
    storage::DocumentRecord d{identifier, wii, {}, {}, env.rda, env.rde, env.priority};
    for (std::size_t i = 0; i < results.size() && i < plan.entries.size(); ++i) {
      if (!results[i] || !results[i]->record || results[i]->record->deleted) continue;
      const auto& rec = *results[i]->record;
      if (rec.type == "DocumentReference") d.document_reference = rec.type + "/" + rec.id;
      if (kSharedTypes.count(rec.type) == 0) d.resources.push_back(rec.type + "/" + rec.id);
    }
    return d;
  }

  // Deletes the resources a document wrote, in `scope`.
  static std::optional<fhir::Error> DeleteResources(storage::TxScope& scope, const storage::DocumentRecord& d) {
    std::vector<std::pair<std::string, std::string>> keys;
    for (const auto& ref : d.resources)
      if (auto slash = ref.find('/'); slash != std::string::npos)
        keys.emplace_back(ref.substr(0, slash), ref.substr(slash + 1));
    return scope.DeleteMany(keys);
  }

  HttpResponse Publish(const HttpRequest& req, RequestContext& ctx, const std::string& wii,
                       const std::vector<std::pair<std::string, std::string>>& query, bool replace,
                       storage::FeedingRecord& rec) const {
    Envelope env;
    auto bad = ReadEnvelope(req, ctx, query, env);
    rec.workflow_instance_id = wii;
    rec.identifier = env.identifier;
    rec.priority = env.priority;
    rec.rda = env.rda;
    rec.rde = env.rde;
    if (bad) return std::move(*bad);
    auto slot = gate.Acquire(PriorityOf(env.priority));
    const DocumentFacts facts = FactsOfBundle(env.json_string, processor.local_bases());
    Apply(rec, facts);
    rec.entries = facts.entries;
    std::string master;
    auto plan = ReadBundle(env.json_string, master);
    if (!plan) return Reject(ctx, rec, plan.error());
    if (check)
      if (auto invalid = check(*plan)) return Reject(ctx, rec, *invalid);
    // PUBLISH: the Bundle's master identifier is the one announced; REPLACE:
    // the announced one is replaced by the Bundle's (it may stay the same)
    if (!replace && master != env.identifier)
      return Problem(ctx, 400,
                     fmt::format("identifier '{}' is not the DocumentReference's masterIdentifier '{}'", env.identifier,
                                 master));
    auto before = [&](storage::TxScope& scope) -> std::optional<fhir::Error> {
      std::vector<std::string> keys{env.identifier, master};
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      for (const auto& k : keys) scope.LockCriteria("fse_document", k);
      auto existing = scope.GetDocument(env.identifier);
      if (!existing) return std::move(existing.error());
      if (!replace) {
        if (*existing)
          return MakeError(ErrorKind::kConflict,
                           fmt::format("document '{}' is already published; REPLACE it instead", env.identifier));
        return std::nullopt;
      }
      if (!*existing) return MakeError(ErrorKind::kNotFound, fmt::format("document '{}' is not known", env.identifier));
      if (master != env.identifier) {
        auto clash = scope.GetDocument(master);
        if (!clash) return std::move(clash.error());
        if (*clash) return MakeError(ErrorKind::kConflict, fmt::format("document '{}' is already published", master));
      }
      if (auto e = DeleteResources(scope, **existing)) return e;
      return scope.DeleteDocument(env.identifier);
    };
    const int status = replace ? 200 : 201;
    auto after = [&](storage::TxScope& scope,
                     const std::vector<std::optional<EntryResult>>& results) -> std::optional<fhir::Error> {
      if (auto e = scope.PutDocument(RecordOf(master, wii, env, *plan, results))) return e;
      // the feeding record and the patient's region commit with the document
      storage::FeedingRecord accepted = rec;
      if (auto patient = PatientOf(results); !patient.empty()) accepted.patient = patient;
      if (!env.rda.empty() && !accepted.patient.empty())
        if (auto e = scope.SetPatientRegion(accepted.patient, env.rda, master)) return e;
      accepted.status = status;
      accepted.completed_ms = fhir::NowMs();
      return scope.RecordFeeding(accepted);
    };
    std::optional<std::size_t> failed;
    auto done = processor.RunTransaction(store, *plan, failed, before, after);
    if (!done) return Reject(ctx, rec, done.error());
    return Ok(ctx, status);
  }

  HttpResponse Delete(RequestContext& ctx, const std::string& identifier, storage::FeedingRecord& rec) const {
    rec.identifier = identifier;
    auto err = store.RunTransaction([&](storage::TxScope& scope) -> std::optional<fhir::Error> {
      scope.LockCriteria("fse_document", identifier);
      auto existing = scope.GetDocument(identifier);
      if (!existing) return std::move(existing.error());
      if (!*existing) return MakeError(ErrorKind::kNotFound, fmt::format("document '{}' is not known", identifier));
      const storage::DocumentRecord& d = **existing;
      rec.workflow_instance_id = d.workflow_instance_id;
      rec.rda = d.rda;
      rec.rde = d.rde;
      rec.entries = static_cast<int>(d.resources.size());
      Apply(rec, StoredFacts(scope, d));  // read before the resources go
      if (auto e = DeleteResources(scope, d)) return e;
      if (auto e = scope.DeleteDocument(identifier)) return e;
      storage::FeedingRecord accepted = rec;
      accepted.status = 200;
      accepted.completed_ms = fhir::NowMs();
      return scope.RecordFeeding(accepted);
    });
    if (err) return Problem(ctx, *err);
    return Ok(ctx, 200);
  }

  // UPDATE: the metadata of a published document, onto its DocumentReference.
  HttpResponse UpdateMetadata(const HttpRequest& req, RequestContext& ctx, storage::FeedingRecord& rec) const {
    Json body;
    body.Parse(req.body.data(), req.body.size());
    if (body.HasParseError() || !body.IsObject()) return Problem(ctx, 400, "the body is not a JSON object");
    const std::string wii = Str(body, "workflowInstanceId");
    rec.workflow_instance_id = wii;
    rec.fiscal_code_hash = FiscalCodeHash(Str(body, "fiscalCode"));
    rec.entries = 1;  // the DocumentReference
    if (wii.empty()) return Problem(ctx, 400, "'workflowInstanceId' is required");
    auto meta = body.FindMember("body");
    if (meta == body.MemberEnd() || !meta->value.IsObject()) return Problem(ctx, 400, "'body' (the metadata) is required");
    const auto& m = meta->value;
    rec.tipo_documento_liv_alto = Str(m, "tipoDocumentoLivAlto");
    for (const char* date : {"dataInizioPrestazione", "dataFinePrestazione"})
      if (!Str(m, date).empty() && !FhirDate(Str(m, date)))
        return Problem(ctx, 400, fmt::format("'{}' must be yyyyMMdd[HHmmss] or a FHIR dateTime", date));
    auto err = store.RunTransaction([&](storage::TxScope& scope) -> std::optional<fhir::Error> {
      auto doc = scope.GetDocumentByWorkflow(wii);
      if (!doc) return std::move(doc.error());
      if (!*doc) return MakeError(ErrorKind::kNotFound, fmt::format("no document of workflow instance '{}'", wii));
      rec.identifier = (*doc)->identifier;
      rec.rda = (*doc)->rda;
      rec.rde = (*doc)->rde;
      const std::string& ref = (*doc)->document_reference;
      auto slash = ref.find('/');
      if (slash == std::string::npos) return MakeError(ErrorKind::kInternal, "the document has no DocumentReference");
      const std::string id = ref.substr(slash + 1);
      auto current = scope.ReadForUpdate("DocumentReference", id);
      if (!current) return std::move(current.error());
      if (current->deleted) return MakeError(ErrorKind::kNotFound, "the document's DocumentReference was deleted");
      Json dr;
      dr.Parse(current->content.data(), current->content.size());
      if (dr.HasParseError() || !dr.IsObject()) return MakeError(ErrorKind::kInternal, "stored DocumentReference unreadable");
      ApplyMetadata(dr, m);
      auto updated = fhir::Resource::Parse(Serialize(dr));
      if (!updated) return std::move(updated.error());
      auto w = scope.Update(*updated, id, std::nullopt);
      if (!w) return std::move(w.error());
      storage::FeedingRecord accepted = rec;
      Apply(accepted, StoredFacts(scope, **doc, w->record.content));
      accepted.status = 200;
      accepted.completed_ms = fhir::NowMs();
      return scope.RecordFeeding(accepted);
    });
    if (err) return Reject(ctx, rec, *err);
    return Ok(ctx, 200);
  }

  // Where each metadata field goes in the DocumentReference (docs/fse-ingestion.md).
  static void ApplyMetadata(Json& dr, const rapidjson::Value& m) {
    auto& a = dr.GetAllocator();
    auto concept_of = [&](const std::string& code) {
      rapidjson::Value coding(rapidjson::kObjectType);
      coding.AddMember("code", rapidjson::Value(code.c_str(), a), a);
      rapidjson::Value codings(rapidjson::kArrayType);
      codings.PushBack(coding, a);
      rapidjson::Value cc(rapidjson::kObjectType);
      cc.AddMember("coding", codings, a);
      return cc;
    };
    auto set = [&](rapidjson::Value& obj, const char* key, rapidjson::Value v) {
      obj.RemoveMember(key);
      obj.AddMember(rapidjson::Value(key, a), v, a);
    };
    auto object = [&](rapidjson::Value& obj, const char* key) -> rapidjson::Value& {
      auto it = obj.FindMember(key);
      if (it == obj.MemberEnd() || !it->value.IsObject()) set(obj, key, rapidjson::Value(rapidjson::kObjectType));
      return obj[key];
    };
    if (auto v = Str(m, "tipoDocumentoLivAlto"); !v.empty()) {
      rapidjson::Value arr(rapidjson::kArrayType);
      arr.PushBack(concept_of(v), a);
      set(dr, "category", std::move(arr));
    }
    if (auto it = m.FindMember("attiCliniciRegoleAccesso"); it != m.MemberEnd() && it->value.IsArray()) {
      rapidjson::Value arr(rapidjson::kArrayType);
      for (const auto& x : it->value.GetArray())
        if (x.IsString()) arr.PushBack(concept_of(x.GetString()), a);
      set(dr, "securityLabel", std::move(arr));
    }
    auto& context = object(dr, "context");
    if (auto v = Str(m, "tipologiaStruttura"); !v.empty()) set(context, "facilityType", concept_of(v));
    if (auto v = Str(m, "assettoOrganizzativo"); !v.empty()) set(context, "practiceSetting", concept_of(v));
    if (auto it = m.FindMember("tipoAttivitaClinica"); it != m.MemberEnd() && it->value.IsString()) {
      rapidjson::Value arr(rapidjson::kArrayType);
      arr.PushBack(concept_of(it->value.GetString()), a);
      set(context, "event", std::move(arr));
    }
    auto start = FhirDate(Str(m, "dataInizioPrestazione")), end = FhirDate(Str(m, "dataFinePrestazione"));
    if (start || end) {
      auto& period = object(context, "period");
      if (start) set(period, "start", rapidjson::Value(start->c_str(), a));
      if (end) set(period, "end", rapidjson::Value(end->c_str(), a));
    }
    auto extension = [&](const char* url, rapidjson::Value value, const char* value_key) {
      auto it = dr.FindMember("extension");
      if (it == dr.MemberEnd() || !it->value.IsArray()) set(dr, "extension", rapidjson::Value(rapidjson::kArrayType));
      auto& list = dr["extension"];
      for (auto x = list.Begin(); x != list.End(); ++x)
        if (Str(*x, "url") == url) {
          list.Erase(x);
          break;
        }
      rapidjson::Value ext(rapidjson::kObjectType);
      ext.AddMember("url", rapidjson::Value(url, a), a);
      ext.AddMember(rapidjson::Value(value_key, a), value, a);
      list.PushBack(ext, a);
    };
    if (auto it = m.FindMember("conservazioneANorma"); it != m.MemberEnd() && it->value.IsString())
      extension("urn:eds:fse:conservazioneANorma", rapidjson::Value(it->value.GetString(), a), "valueString");
    if (auto v = Str(m, "identificativoSottomissione"); !v.empty()) {
      auto it = dr.FindMember("identifier");
      if (it == dr.MemberEnd() || !it->value.IsArray()) set(dr, "identifier", rapidjson::Value(rapidjson::kArrayType));
      auto& ids = dr["identifier"];
      for (auto x = ids.Begin(); x != ids.End(); ++x)
        if (Str(*x, "system") == "urn:eds:fse:identificativoSottomissione") {
          ids.Erase(x);
          break;
        }
      rapidjson::Value ident(rapidjson::kObjectType);
      ident.AddMember("system", "urn:eds:fse:identificativoSottomissione", a);
      ident.AddMember("value", rapidjson::Value(v.c_str(), a), a);
      ids.PushBack(ident, a);
    }
  }
};

DocumentApi::DocumentApi(std::shared_ptr<const fhir::Definitions> defs, storage::ResourceStore& store,
                         const TransactionProcessor& processor, int concurrency, EntryCheck check,
                         std::string analytics_key)
    : impl_(std::make_unique<Impl>(std::move(defs), store, processor, std::max(1, concurrency), std::move(check),
                                   std::move(analytics_key))) {}
DocumentApi::~DocumentApi() = default;

bool DocumentApi::Serves(std::string_view target) {
  return target.substr(0, 13) == "/v1/document/" || target.substr(0, 13) == "/v1/document?" ||
         target == "/v1/document";
}

HttpResponse DocumentApi::Handle(const HttpRequest& req, RequestContext& ctx) const {
  std::string_view target = req.target;
  std::string_view path = target.substr(0, target.find('?'));
  std::vector<std::pair<std::string, std::string>> query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
      auto amp = rest.find('&');
      std::string_view part = rest.substr(0, amp);
      auto eq = part.find('=');
      query.emplace_back(PercentDecode(part.substr(0, eq)),
                         eq == std::string_view::npos ? std::string() : PercentDecode(part.substr(eq + 1)));
      if (amp == std::string_view::npos) break;
      rest.remove_prefix(amp + 1);
    }
  }
  std::vector<std::string> segs;
  for (std::size_t start = 1; start <= path.size();) {
    auto slash = path.find('/', start);
    auto seg = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!seg.empty()) segs.push_back(PercentDecode(seg));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  ctx.interaction = "document";
  // every call of an operation leaves a feeding record: an accepted one with
  // its document, a refused one afterwards
  storage::FeedingRecord rec;
  if (segs.size() == 4 && segs[2] == "workflowinstanceid" && req.method == "POST") rec.operation = "PUBLISH";
  if (segs.size() == 4 && segs[2] == "workflowinstanceid" && req.method == "PUT") rec.operation = "REPLACE";
  if (segs.size() == 3 && segs[2] == "metadata" && req.method == "PUT") rec.operation = "UPDATE";
  if (segs.size() == 4 && segs[2] == "identifier" && req.method == "DELETE") rec.operation = "DELETE";
  rec.request_id = ctx.request_id;
  rec.received_ms = fhir::NowMs() - std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - ctx.start)
                                        .count();
  HttpResponse r = Route(req, ctx, path, segs, query, rec);
  if (!rec.operation.empty() && r.status >= 400) impl_->RecordRejected(std::move(rec), r.status);
  return r;
}

HttpResponse DocumentApi::Route(const HttpRequest& req, RequestContext& ctx, std::string_view path,
                                const std::vector<std::string>& segs,
                                const std::vector<std::pair<std::string, std::string>>& query,
                                storage::FeedingRecord& rec) const {
  if (req.method != "DELETE" && !req.body.empty()) {
    std::string_view ct = req.Header("content-type");
    if (!ct.empty() && ct.substr(0, 16) != "application/json")
      return Problem(ctx, 415, fmt::format("Content-Type '{}' is not supported; send application/json", ct));
  }
  try {
    if (segs.size() == 4 && segs[2] == "workflowinstanceid") {
      if (req.method == "POST") return impl_->Publish(req, ctx, segs[3], query, false, rec);
      if (req.method == "PUT") return impl_->Publish(req, ctx, segs[3], query, true, rec);
      return Problem(ctx, 405, fmt::format("method {} is not allowed here; POST publishes, PUT replaces", req.method));
    }
    if (segs.size() == 3 && segs[2] == "metadata") {
      if (req.method == "PUT") return impl_->UpdateMetadata(req, ctx, rec);
      return Problem(ctx, 405, "only PUT updates a document's metadata");
    }
    if (segs.size() == 4 && segs[2] == "identifier") {
      if (req.method == "DELETE") return impl_->Delete(ctx, segs[3], rec);
      return Problem(ctx, 405, "only DELETE is served on a document identifier");
    }
  } catch (const storage::StorageError&) {
    return Problem(ctx, 500, "an unexpected error occurred on the server");
  }
  return Problem(ctx, 404, fmt::format("no document operation at {}", path));
}

}  // namespace eds::server
