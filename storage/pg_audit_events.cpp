// AuditEvent resources rendered from audit_event rows, read and searched
// with SQL on the audit tables. Every condition on a row's instant or
// patients is doubled with the same condition on its batch's bounds
// (audit_event_scan), which PostgreSQL checks before it unpacks a batch: a
// row's ts lies within [batch_first_ts, batch_last_ts] and its patients
// among batch_patients, so the doubled condition never changes the answer.
#include "storage/pg_audit_events.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <array>

#include "fhir/json.hpp"
#include "fhir/primitives.hpp"
#include "fhir/search_query.hpp"
#include "storage/pg_search.hpp"

namespace eds::storage {
namespace {

using fhir::ErrorKind;
using fhir::MakeError;

constexpr std::string_view kDicom = "http://dicom.nema.org/resources/ontology/DCM";
constexpr std::string_view kRestful = "http://hl7.org/fhir/restful-interaction";
constexpr std::string_view kServiceSystem = "https://fascicolosanitario.gov.it/codesystem/auditevent-entity-type";
constexpr std::string_view kActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
constexpr std::string_view kSubjectRole = "https://fascicolosanitario.gov.it/codesystem/subject-role";
constexpr std::size_t kMaxPatientsPerSearch = 1000;

constexpr const char* kColumns =
    "SELECT " "(extract(epoch FROM ts) * 1000)::bigint, request_id, interaction, method, resource_type, resource_id,"
    " version_id, array_to_json(patients)::text, caller_subject, caller_role, caller_org, caller_region,"
    " purpose_of_use, client_app, status, outcome_code, latency_ms, bytes_in, bytes_out, resources_returned, query,"
    " event_id, action, array_to_json(entities)::text, in_transaction, service FROM audit_event_scan";

// ["a","b"] as written by array_to_json over text values without quotes.
std::vector<std::string> JsonTextArray(std::string_view list) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < list.size(); ++i)
    if (list[i] == '"') {
      std::string value;
      std::size_t j = i + 1;
      for (; j < list.size() && list[j] != '"'; ++j) {
        if (list[j] == '\\' && j + 1 < list.size()) ++j;
        value += list[j];
      }
      out.push_back(std::move(value));
      i = j;
    }
  return out;
}

AuditRow RowOf(const pqxx::row& r) {
  AuditRow a;
  a.ts_ms = r[0].as<int64_t>();
  a.request_id = r[1].c_str();
  a.interaction = r[2].c_str();
  a.method = r[3].c_str();
  a.resource_type = r[4].c_str();
  a.resource_id = r[5].c_str();
  if (!r[6].is_null()) a.version_id = r[6].as<int64_t>();
  a.patients = JsonTextArray(r[7].c_str());
  a.caller_subject = r[8].c_str();
  a.caller_role = r[9].c_str();
  a.caller_org = r[10].c_str();
  a.caller_region = r[11].c_str();
  a.purpose_of_use = r[12].c_str();
  a.client_app = r[13].c_str();
  a.status = r[14].as<int>();
  a.outcome_code = r[15].c_str();
  a.latency_ms = r[16].as<double>();
  a.bytes_in = r[17].as<int64_t>();
  a.bytes_out_known = !r[18].is_null();
  if (a.bytes_out_known) a.bytes_out = r[18].as<int64_t>();
  a.resources_returned = r[19].as<int>();
  a.query = r[20].c_str();
  a.event_id = r[21].c_str();
  a.action = r[22].c_str();
  a.entities = JsonTextArray(r[23].c_str());
  a.in_transaction = r[24].as<bool>();
  a.service = r[25].c_str();
  return a;
}

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// DICOM event type of an action, as FSE 2.0 records them.
std::string_view TypeCode(std::string_view action) {
  if (action == "R") return "110106";
  if (action == "C") return "110121";
  if (action == "U" || action == "D") return "110107";
  return "110100";  // application activity (operations)
}

// AuditEvent.outcome from the HTTP status class.
std::string_view OutcomeCode(int status) {
  if (status < 400) return "0";
  if (status < 500) return "4";
  if (status == 500) return "12";
  return "8";
}

bool IsRestfulInteraction(std::string_view code) {
  static constexpr std::array<std::string_view, 15> kCodes = {
      "read", "vread", "update", "patch", "delete", "history-instance", "history-type", "history-system",
      "create", "search-type", "search-system", "capabilities", "transaction", "batch", "operation"};
  return std::find(kCodes.begin(), kCodes.end(), code) != kCodes.end();
}

void Coding(std::string& out, std::string_view system, std::string_view code) {
  out += R"({"system":)";
  fhir::AppendJsonString(out, system);
  out += R"(,"code":)";
  fhir::AppendJsonString(out, code);
  out += "}";
}

}  // namespace

bool IsAuditEventSearchParam(std::string_view code) {
  static constexpr std::array<std::string_view, 10> kCodes = {"_id",    "_lastUpdated", "date",   "patient", "agent",
                                                              "entity", "type",         "subtype", "action", "outcome"};
  return std::find(kCodes.begin(), kCodes.end(), code) != kCodes.end();
}

std::string RenderAuditEvent(const AuditRow& a) {
  const std::string when = fhir::FormatInstant(a.ts_ms);
  std::string out = R"({"resourceType":"AuditEvent","id":)";
  fhir::AppendJsonString(out, a.event_id);
  out += R"(,"meta":{"versionId":"1","lastUpdated":")" + when + R"("},"type":)";
  Coding(out, kDicom, TypeCode(a.action));
  if (IsRestfulInteraction(a.interaction)) {
    out += R"(,"subtype":[)";
    Coding(out, kRestful, a.interaction);
    out += "]";
  }
  if (!a.action.empty()) {
    out += R"(,"action":)";
    fhir::AppendJsonString(out, a.action);
  }
  out += R"(,"recorded":")" + when + R"(","outcome":")" + std::string(OutcomeCode(a.status)) + "\"";
  if (a.status >= 400) {
    out += R"(,"outcomeDesc":)";
    fhir::AppendJsonString(out, fmt::format("HTTP {}{}{}", a.status, a.outcome_code.empty() ? "" : ": ",
                                            a.outcome_code));
  }
  if (!a.purpose_of_use.empty()) {
    out += R"(,"purposeOfEvent":[{"coding":[)";
    Coding(out, kActReason, a.purpose_of_use);
    out += "]}]";
  }
  // the requester, then each patient whose data the request touched
  out += R"(,"agent":[{)";
  if (!a.caller_role.empty()) {
    out += R"("role":[{"coding":[)";
    Coding(out, kSubjectRole, a.caller_role);
    out += "]}],";
  }
  out += R"("who":{)";
  if (a.caller_subject.find('/') != std::string::npos && a.caller_subject != "anonymous") {
    out += R"("reference":)";
    fhir::AppendJsonString(out, a.caller_subject);
  } else {
    out += R"("display":)";
    fhir::AppendJsonString(out, a.caller_subject);
  }
  out += "}";
  if (!a.caller_org.empty()) {
    out += R"(,"location":{"display":)";
    fhir::AppendJsonString(out, a.caller_org);
    out += "}";
  }
  if (!a.client_app.empty()) {
    out += R"(,"name":)";
    fhir::AppendJsonString(out, a.client_app);
  }
  out += R"(,"requestor":true})";
  for (const auto& p : a.patients) {
    out += R"(,{"type":{"coding":[)";
    Coding(out, "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "PAT");
    out += R"(]},"who":{"reference":)";
    fhir::AppendJsonString(out, p);
    out += R"(},"requestor":false})";
  }
  out += R"(],"source":{"observer":{"display":"EDS core"},"type":[)";
  Coding(out, "http://terminology.hl7.org/CodeSystem/security-source-type", "4");
  out += "]}";
  // what the request touched, each with the service code of the access
  const bool search = a.interaction.rfind("search", 0) == 0;
  if (!a.entities.empty() || search || !a.resource_type.empty()) {
    out += R"(,"entity":[)";
    bool first = true;
    auto open_entity = [&] {
      out += first ? "{" : ",{";
      first = false;
      out += R"("type":)";
      Coding(out, kServiceSystem, a.service);
    };
    if (search) {
      open_entity();
      if (!a.resource_type.empty()) {
        out += R"(,"description":)";
        fhir::AppendJsonString(out, a.resource_type);
      }
      out += R"(,"query":")" + Base64(a.query) + "\"}";
    }
    for (const auto& e : a.entities) {
      open_entity();
      out += R"(,"what":{"reference":)";
      fhir::AppendJsonString(out, e);
      out += "}}";
    }
    if (first && !a.resource_type.empty()) {
      open_entity();
      out += R"(,"what":{"reference":)";
      fhir::AppendJsonString(out, a.resource_id.empty() ? a.resource_type : a.resource_type + "/" + a.resource_id);
      out += "}}";
    }
    out += "]";
  }
  out += "}";
  return out;
}

fhir::Result<fhir::VersionRecord> ReadAuditEvent(pqxx::transaction_base& tx, const std::string& id) {
  auto ts = AuditEventIdTime(id);
  if (!ts) return MakeError(ErrorKind::kNotFound, fmt::format("AuditEvent/{} is not known", id));
  auto r = tx.exec_params(std::string(kColumns) +
                              " WHERE ts >= timestamptz 'epoch' + $1::bigint * interval '1 millisecond'"
                              " AND ts < timestamptz 'epoch' + ($1::bigint + 1) * interval '1 millisecond'"
                              " AND batch_last_ts >= timestamptz 'epoch' + $1::bigint * interval '1 millisecond'"
                              " AND batch_first_ts < timestamptz 'epoch' + ($1::bigint + 1) * interval '1 millisecond'"
                              " AND event_id = $2 LIMIT 1",
                          *ts, id);
  if (r.empty()) return MakeError(ErrorKind::kNotFound, fmt::format("AuditEvent/{} is not known", id));
  AuditRow row = RowOf(r[0]);
  return fhir::VersionRecord{std::string(kAuditEventType), id, 1, row.ts_ms, fhir::WriteMethod::kCreate, false,
                             RenderAuditEvent(row)};
}

namespace {

// Builds the WHERE clause of an AuditEvent search.
class AuditFilterBuilder {
 public:
  explicit AuditFilterBuilder(pqxx::transaction_base& tx) : tx_(tx) {}

  std::optional<fhir::Error> Add(const fhir::SearchCriterion& c) {
    if (!c.reverse.empty())
      return MakeError(ErrorKind::kNotSupported, fmt::format("'{}': _has is not supported on AuditEvent", c.name));
    const std::string code = c.chain.empty() ? c.param->code : c.chain.front().param->code;
    if (!c.chain.empty()) {
      if (code != "patient")
        return MakeError(ErrorKind::kNotSupported,
                         fmt::format("'{}': on AuditEvent only the patient parameter can be chained", c.name));
      return AddPatientChain(c);
    }
    const bool negate = c.modifier == "not";
    if (!c.modifier.empty() && !negate && !(c.modifier == "Patient" && code == "patient"))
      return MakeError(ErrorKind::kNotSupported,
                       fmt::format("'{}': the modifier :{} is not supported on AuditEvent", c.name, c.modifier));
    std::vector<std::string> any;
    for (const auto& v : c.values) {
      auto cond = Condition(code, v, c.name);
      if (!cond) return std::move(cond.error());
      any.push_back(std::move(*cond));
    }
    std::string clause = "(" + Join(any, " OR ") + ")";
    where_.push_back(negate ? "NOT " + clause : clause);
    return std::nullopt;
  }

  std::string Where() const { return where_.empty() ? "" : " WHERE " + Join(where_, " AND "); }
  std::string Param(std::string value) {
    params_.push_back(std::move(value));
    return "$" + std::to_string(params_.size());
  }
  std::vector<std::string>& params() { return params_; }
  void AddRaw(std::string clause) { where_.push_back(std::move(clause)); }

 private:
  static std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? std::string(sep) : "") + parts[i];
    return out;
  }

  std::string Ms(int64_t ms) {
    return "(timestamptz 'epoch' + " + Param(std::to_string(ms)) + "::bigint * interval '1 millisecond')";
  }
  // ts >= ms, and ts < ms, each with its batch's bound
  std::string AtOrAfter(int64_t ms) {
    const std::string t = Ms(ms);
    return "ts >= " + t + " AND batch_last_ts >= " + t;
  }
  std::string Before(int64_t ms) {
    const std::string t = Ms(ms);
    return "ts < " + t + " AND batch_first_ts < " + t;
  }

  // A reference value as Type/id (the last two segments of a URL).
  static std::string Reference(const std::string& value, std::string_view default_type) {
    std::string v = value;
    if (auto h = v.find("/_history/"); h != std::string::npos) v.resize(h);
    auto slash = v.rfind('/');
    if (slash == std::string::npos) return default_type.empty() ? v : std::string(default_type) + "/" + v;
    auto before = v.rfind('/', slash - 1);
    return before == std::string::npos ? v : v.substr(before + 1);
  }

  fhir::Result<std::string> Condition(const std::string& code, const fhir::SearchValue& v, const std::string& name) {
    if (code == "date" || code == "_lastUpdated") {
      auto range = fhir::ParseDateTimeRange(v.text);
      if (!range) return MakeError(ErrorKind::kInvalid, fmt::format("'{}': '{}' is not a date", name, v.text));
      switch (v.prefix) {
        case fhir::Prefix::kEq:
        case fhir::Prefix::kAp: return "(" + AtOrAfter(range->low_ms) + " AND " + Before(range->high_ms) + ")";
        case fhir::Prefix::kNe: return "(ts < " + Ms(range->low_ms) + " OR ts >= " + Ms(range->high_ms) + ")";
        case fhir::Prefix::kGt:
        case fhir::Prefix::kSa: return AtOrAfter(range->high_ms);
        case fhir::Prefix::kGe: return AtOrAfter(range->low_ms);
        case fhir::Prefix::kLt:
        case fhir::Prefix::kEb: return Before(range->low_ms);
        case fhir::Prefix::kLe: return Before(range->high_ms);
      }
    }
    if (code == "_id") {
      const std::string id = Param(v.text);
      if (auto t = AuditEventIdTime(v.text)) return "(event_id = " + id + " AND " + AtOrAfter(*t) + " AND " + Before(*t + 1) + ")";
      return "event_id = " + id;
    }
    if (code == "patient") {
      const std::string p = Param(Reference(v.text, "Patient"));
      return "(patients @> ARRAY[" + p + "]::text[] AND batch_patients @> ARRAY[" + p + "]::text[])";
    }
    if (code == "agent") return "caller_subject = " + Param(v.text);
    if (code == "entity") {
      const std::string ref = Reference(v.text, "");
      return "EXISTS (SELECT 1 FROM unnest(entities) e WHERE e = " + Param(ref) + " OR starts_with(e, " +
             Param(ref + "/_history/") + "))";
    }
    // tokens: system|code, |code, code
    const std::string system = v.has_separator ? v.parts[0] : std::string();
    const std::string token = v.has_separator ? (v.parts.size() > 1 ? v.parts[1] : "") : v.text;
    auto system_is = [&](std::string_view expected) { return !v.has_separator || system == expected; };
    if (code == "action") return system_is("http://hl7.org/fhir/audit-event-action") ? "action = " + Param(token) : "false";
    if (code == "type") {
      if (!system_is(kDicom)) return std::string("false");
      if (token == "110106") return std::string("action = 'R'");
      if (token == "110121") return std::string("action = 'C'");
      if (token == "110107") return std::string("action IN ('U', 'D')");
      if (token == "110100") return std::string("action NOT IN ('R', 'C', 'U', 'D')");
      return std::string("false");
    }
    if (code == "subtype") return system_is(kRestful) ? "interaction = " + Param(token) : "false";
    if (code == "outcome") {
      if (!system_is("http://hl7.org/fhir/audit-event-outcome")) return std::string("false");
      if (token == "0") return std::string("status < 400");
      if (token == "4") return std::string("(status >= 400 AND status < 500)");
      if (token == "8") return std::string("(status > 500)");
      if (token == "12") return std::string("status = 500");
      return std::string("false");
    }
    return MakeError(ErrorKind::kNotSupported, fmt::format("'{}' is not supported on AuditEvent", name));
  }

  // patient.identifier=..., patient.name=...: the matching Patients (at
  // most kMaxPatientsPerSearch), then the rows naming any of them.
  std::optional<fhir::Error> AddPatientChain(const fhir::SearchCriterion& c) {
    fhir::SearchQuery q;
    q.resource_type = c.chain.front().target_type.empty() ? "Patient" : c.chain.front().target_type;
    if (q.resource_type != "Patient")
      return MakeError(ErrorKind::kNotSupported, fmt::format("'{}': the patient chain leads to Patient", c.name));
    fhir::SearchCriterion inner = c;
    inner.chain.erase(inner.chain.begin());
    q.criteria.push_back(std::move(inner));
    q.count = static_cast<int>(kMaxPatientsPerSearch) + 1;
    auto page = RunSearchIn(tx_, q);
    if (!page) return std::move(page.error());
    if (page->matches.size() > kMaxPatientsPerSearch)
      return MakeError(ErrorKind::kInvalid, fmt::format("'{}' matches more than {} patients; narrow it", c.name,
                                                        kMaxPatientsPerSearch));
    std::string list = "{";
    for (std::size_t i = 0; i < page->matches.size(); ++i)
      list += (i ? ",\"Patient/" : "\"Patient/") + page->matches[i].id + "\"";
    list += "}";
    const std::string p = Param(list);
    where_.push_back(page->matches.empty() ? "false"
                                           : "patients && " + p + "::text[] AND batch_patients && " + p + "::text[]");
    return std::nullopt;
  }

  pqxx::transaction_base& tx_;
  std::vector<std::string> where_;
  std::vector<std::string> params_;
};

// "ae." + ts hex + "." + event id: the last row of a page.
std::string CursorOf(const AuditRow& r, bool backward) {
  return fmt::format("ae{}.{:x}.{}", backward ? "p" : "n", r.ts_ms, r.event_id);
}

}  // namespace

fhir::Result<SearchPage> SearchAuditEvents(pqxx::transaction_base& tx, const fhir::SearchQuery& query) {
  if (!query.includes.empty() || !query.revincludes.empty())
    return MakeError(ErrorKind::kNotSupported, "_include and _revinclude are not supported on AuditEvent");
  if (query.offset) return MakeError(ErrorKind::kNotSupported, "AuditEvent searches page with cursors, not _offset");
  bool ascending = false;
  if (!query.sort.empty()) {
    const auto& key = query.sort.front();
    if (query.sort.size() > 1 || (key.code != "date" && key.code != "_lastUpdated"))
      return MakeError(ErrorKind::kNotSupported, "AuditEvent searches sort by date (_sort=date or -date) only");
    ascending = !key.descending;
  }
  AuditFilterBuilder filter(tx);
  for (const auto& c : query.criteria)
    if (auto err = filter.Add(c)) return std::move(*err);
  if (query.compartment) {
    // GET /Patient/[id]/AuditEvent: the events that touched that patient
    if (query.compartment->type != "Patient")
      return MakeError(ErrorKind::kNotSupported,
                       fmt::format("AuditEvent is searched in the Patient compartment only, not {}",
                                   query.compartment->type));
    const std::string p = filter.Param("Patient/" + query.compartment->id);
    filter.AddRaw("patients @> ARRAY[" + p + "]::text[] AND batch_patients @> ARRAY[" + p + "]::text[]");
  }
  const int count = query.count.value_or(50);
  SearchPage page;
  if (query.total == fhir::TotalMode::kAccurate || query.total == fhir::TotalMode::kEstimate ||
      query.summary == fhir::SummaryMode::kCount) {
    auto r = tx.exec_params("SELECT count(*) FROM audit_event_scan" + filter.Where(), pqxx::prepare::make_dynamic_params(filter.params()));
    page.total = r[0][0].as<int64_t>();
    if (query.summary == fhir::SummaryMode::kCount) return page;
  }
  // a cursor continues after (forward) or before (backward) a row, in the
  // order of the search
  bool backward = false;
  if (query.cursor) {
    const std::string& cur = *query.cursor;
    auto dot = cur.find('.', 4);
    if (cur.size() < 6 || cur.rfind("ae", 0) != 0 || (cur[2] != 'n' && cur[2] != 'p') || cur[3] != '.' ||
        dot == std::string::npos)
      return MakeError(ErrorKind::kInvalid, "the _cursor does not belong to this search");
    backward = cur[2] == 'p';
    int64_t ts = 0;
    try {
      ts = std::stoll(cur.substr(4, dot - 4), nullptr, 16);
    } catch (const std::exception&) {
      return MakeError(ErrorKind::kInvalid, "the _cursor does not belong to this search");
    }
    const bool later = ascending != backward;  // rows after the cursor in time
    const std::string t = filter.Param(std::to_string(ts));
    filter.AddRaw(fmt::format("(ts, event_id) {} ((timestamptz 'epoch' + {}::bigint * interval '1 millisecond'), {})",
                              later ? ">" : "<", t, filter.Param(cur.substr(dot + 1))));
    filter.AddRaw(fmt::format("batch_{} (timestamptz 'epoch' + {}::bigint * interval '1 millisecond')",
                              later ? "last_ts >=" : "first_ts <=", t));
  }
  const bool scan_ascending = ascending != backward;
  const char* dir = scan_ascending ? "ASC" : "DESC";
  auto r = tx.exec_params(std::string(kColumns) + filter.Where() +
                              fmt::format(" ORDER BY ts {0}, event_id {0} LIMIT {1}", dir,
                                          count + 1),
                          pqxx::prepare::make_dynamic_params(filter.params()));
  std::vector<AuditRow> rows;
  for (const auto& row : r) rows.push_back(RowOf(row));
  const bool more = static_cast<int>(rows.size()) > count;
  if (more) rows.resize(count);
  if (backward) std::reverse(rows.begin(), rows.end());
  for (const auto& row : rows)
    page.matches.push_back({std::string(kAuditEventType), row.event_id, 1, row.ts_ms, fhir::WriteMethod::kCreate,
                            false, RenderAuditEvent(row)});
  if (!rows.empty()) {
    if (backward ? true : more) page.next_cursor = CursorOf(rows.back(), false);
    if (backward ? more : query.cursor.has_value()) page.prev_cursor = CursorOf(rows.front(), true);
  }
  if (!page.total && !query.cursor && !more) page.total = static_cast<int64_t>(rows.size());
  return page;
}

}  // namespace eds::storage
