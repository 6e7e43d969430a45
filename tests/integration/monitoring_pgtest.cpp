// Feeding records of the FSE ingestion API (one per call, accepted or
// refused, fiscal codes only as keyed hashes), the patients' regions, and
// the monitoring views and their materialised copies over known workloads.
#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <pqxx/pqxx>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

namespace {

using Rows = std::vector<std::vector<std::string>>;

const std::string kCfOid = "urn:oid:2.16.840.1.113883.2.9.4.3.2";
const std::string kCf = "BNCLRA85M41H501Z";

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xf];
  }
  return out;
}

std::string Unhex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

// HMAC-SHA256 computed here, independently of the server.
std::string Hmac(const std::string& key, const std::string& value) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(value.data()),
       value.size(), digest, &length);
  return Hex(std::string(reinterpret_cast<const char*>(digest), length));
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string UrlSafe(std::string s) {
  for (auto p = s.find('^'); p != std::string::npos; p = s.find('^', p)) s.replace(p, 1, "%5E");
  return s;
}

// A laboratory report of 7 entries: its Patient (conditional on the fiscal
// code), the custodian Organization, a Practitioner and the Device (the
// producing software) that wrote it, an Observation, the Composition (LOINC
// 11502-2) and the DocumentReference (category `category`). `extra` goes into
// the Observation (to make it invalid).
std::string Document(const std::string& master, const std::string& category, const std::string& extra = "") {
  std::string entries;
  auto add = [&](const std::string& n, const std::string& resource, const std::string& request) {
    entries += (entries.empty() ? "" : ",") + std::string(R"({"fullUrl":"urn:uuid:00000000-0000-0000-0000-00000000000)") +
               n + R"(","resource":)" + resource + R"(,"request":)" + request + "}";
  };
  const std::string post = R"({"method":"POST","url":")";
  const std::string patient = "urn:uuid:00000000-0000-0000-0000-000000000001";
  add("1",
      R"({"resourceType":"Patient","identifier":[{"system":")" + kCfOid + R"(","value":")" + kCf +
          R"("}],"name":[{"family":"Bianchi","given":["Laura"]}]})",
      post + R"(Patient","ifNoneExist":"identifier=)" + kCfOid + "|" + kCf + R"("})");
  add("2",
      R"({"resourceType":"Organization","identifier":[{"system":"urn:oid:2.16.840.1.113883.2.9.4.1.3","value":"120201"}],
          "name":"ASL Roma 1"})",
      post + R"(Organization"})");
  add("3", R"({"resourceType":"Practitioner","name":[{"family":"Verdi"}]})", post + R"(Practitioner"})");
  add("4",
      R"({"resourceType":"Device","identifier":[{"value":"lab-app-01"}],"manufacturer":"Acme Sanita",
          "version":[{"value":"4.2"}]})",
      post + R"(Device"})");
  add("5",
      R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},
          "subject":{"reference":")" + patient + R"("},"valueQuantity":{"value":95,"unit":"mg/dL"})" + extra + "}",
      post + R"(Observation"})");
  add("6",
      R"({"resourceType":"Composition","status":"final","type":{"coding":[{"system":"http://loinc.org","code":"11502-2"}]},
          "subject":{"reference":")" + patient + R"("},"date":"2026-11-20T10:00:00+01:00",
          "author":[{"reference":"urn:uuid:00000000-0000-0000-0000-000000000003"},
                    {"reference":"urn:uuid:00000000-0000-0000-0000-000000000004"}],
          "custodian":{"reference":"urn:uuid:00000000-0000-0000-0000-000000000002"},"title":"Referto di laboratorio",
          "section":[{"entry":[{"reference":"urn:uuid:00000000-0000-0000-0000-000000000005"}]}]})",
      post + R"(Composition"})");
  add("7",
      R"({"resourceType":"DocumentReference","status":"current","masterIdentifier":{"system":"urn:ietf:rfc:3986","value":")" +
          master + R"("},"type":{"coding":[{"system":"http://loinc.org","code":"11502-2"}]},
          "category":[{"coding":[{"code":")" + category + R"("}]}],"subject":{"reference":")" + patient + R"("},
          "content":[{"attachment":{"contentType":"application/pdf","url":"urn:uuid:00000000-0000-0000-0000-000000000006"}}]})",
      post + R"(DocumentReference"})");
  return R"({"resourceType":"Bundle","type":"transaction","meta":{"source":"urn:eds:test-gateway"},"entry":[)" +
         entries + "]}";
}

std::string Envelope(const std::string& identifier, const std::string& bundle, const std::string& rda,
                     const std::string& rde, const std::string& priority) {
  return R"({"identifier":")" + identifier + R"(","operation":"PUBLISH","jsonString":")" + Escape(bundle) +
         R"(","priorityType":")" + priority + R"(","rda":")" + rda + R"(","rde":")" + rde +
         R"(","insertionDate":"2026-11-20T10:00:00Z"})";
}

std::vector<std::pair<std::string, std::string>> Headers(const std::string& request_id) {
  return {{"Content-Type", "application/json"}, {"X-Request-Id", request_id}};
}

void RunMigrate(const std::string& dsn) {
  REQUIRE(WaitExit(Spawn({EdsBinary(), "migrate", "--database-url", dsn, "--log-level", "error"})) == 0);
}

const char* const kFeedingColumns =
    "SELECT request_id, operation, workflow_instance_id, identifier, document_type, tipo_documento_liv_alto, rde, rda,"
    " producer_app_id, producer_app_vendor, producer_app_version, producer_org, priority, entries::text,"
    " validation_errors::text, status::text, problem_type, problem_title, patient, fiscal_code_hash,"
    " (received_at <= completed_at AND completed_at <= now())::text"
    " FROM feeding_record";

}  // namespace

TEST_CASE("every call of the document API leaves a feeding record", "[monitoring]") {
  const std::string dsn = CreateDatabase("eds_feed_" + UniquePrefix());
  const std::string key = "feeding-test-key-0123456789";
  ServerProcess server(dsn, {"--migrate", "--analytics-hash-key", key});
  HttpClient c(server.port());
  const std::string id1 = "2.16.840.1.113883.2.9.2.120.4.4^doc1";
  const std::string id2 = "2.16.840.1.113883.2.9.2.120.4.4^doc2";
  const std::string wii = "2.16.840.1.113883.2.9.2.120.4.4.wf1";
  const std::string path = "/v1/document/workflowinstanceid/" + wii;
  auto send = [&](const std::string& method, const std::string& target, const std::string& request_id,
                  const std::string& body) {
    auto r = c.Send(method, target, Headers(request_id), body);
    INFO(method << " " << target << ": " << r.body);
    return r.status;
  };

  // the scripted workload
  CHECK(send("POST", path, "feed-01", Envelope(id1, Document(id1, "LAB"), "120", "030", "HIGH")) == 201);
  CHECK(send("POST", path, "feed-02", Envelope(id1, Document(id1, "LAB"), "120", "030", "LOW")) == 409);
  CHECK(send("POST", path, "feed-03",
             Envelope(id1 + "x", Document(id1 + "x", "LAB", R"(,"effectiveDateTime":"2026-13-45")"), "120", "030",
                      "NULL")) == 422);
  CHECK(send("POST", path, "feed-04", Envelope(id1 + "y", Document(id1 + "y", "LAB", R"(,"colour":"red")"), "", "", "LOW"))
        == 400);
  CHECK(send("PUT", "/v1/document/metadata", "feed-05",
             R"({"workflowInstanceId":")" + wii + R"(","fiscalCode":")" + kCf +
                 R"(","body":{"tipoDocumentoLivAlto":"REF","tipologiaStruttura":"Ospedale"}})") == 200);
  CHECK(send("PUT", "/v1/document/metadata", "feed-06",
             R"({"workflowInstanceId":"nope","fiscalCode":")" + kCf + R"(","body":{}})") == 404);
  CHECK(send("PUT", path, "feed-07", Envelope(id1, Document(id2, "LAB"), "130", "030", "HIGH")) == 200);
  CHECK(send("DELETE", "/v1/document/identifier/" + UrlSafe(id2), "feed-08", "") == 200);
  CHECK(send("DELETE", "/v1/document/identifier/" + UrlSafe(id2), "feed-09", "") == 404);
  CHECK(send("GET", "/v1/document/identifier/" + UrlSafe(id2), "feed-10", "") == 405);  // no operation: no record

  auto found = c.Get("/fhir/Patient?identifier=" + kCfOid + "%7C" + kCf);
  REQUIRE(found.status == 200);
  auto bundle = found.Json();
  REQUIRE(bundle["entry"].Size() == 1);
  const std::string patient = std::string("Patient/") + bundle["entry"][0]["resource"]["id"].GetString();
  const std::string hash = Hmac(key, kCf);

  auto rows = Sql(dsn, std::string(kFeedingColumns) + " ORDER BY request_id");
  REQUIRE(rows.size() == 9);
  using Row = std::vector<std::string>;
  // columns: request_id, operation, wii, identifier, document type, tipoDocumentoLivAlto, rde, rda, app id,
  // vendor, version, organisation, priority, entries, validation errors, status, problem type, title,
  // patient, fiscal-code hash, times in order
  CHECK(rows[0] == Row{"feed-01", "PUBLISH", wii, id1, "11502-2", "LAB", "030", "120", "lab-app-01", "Acme Sanita",
                       "4.2", "120201", "HIGH", "7", "0", "201", "", "", patient, hash, "true"});
  // refused: what the call and its Bundle said; the patient only by the hash (nothing was stored)
  CHECK(rows[1] == Row{"feed-02", "PUBLISH", wii, id1, "11502-2", "LAB", "030", "120", "lab-app-01", "Acme Sanita",
                       "4.2", "120201", "LOW", "7", "0", "409", "/err/client", "Conflict", "", hash, "true"});
  REQUIRE(rows[2].size() == 21);
  CHECK(rows[2][1] == "PUBLISH");
  CHECK(rows[2][3] == id1 + "x");
  CHECK(rows[2][12] == "NULL");
  CHECK(std::stoi(rows[2][14]) >= 1);  // validation errors
  CHECK(rows[2][15] == "422");
  CHECK(rows[2][16] == "/err/client");
  CHECK(rows[2][17] == "Unprocessable document");
  CHECK(rows[2][19] == hash);
  CHECK(rows[3][0] == "feed-04");
  CHECK(std::stoi(rows[3][14]) >= 1);
  CHECK(rows[3][15] == "400");
  CHECK(rows[3][17] == "Bad request");
  // UPDATE: the stored document's facts, the new category
  CHECK(rows[4] == Row{"feed-05", "UPDATE", wii, id1, "11502-2", "REF", "030", "120", "lab-app-01", "Acme Sanita",
                       "4.2", "120201", "", "1", "0", "200", "", "", patient, hash, "true"});
  CHECK(rows[5] == Row{"feed-06", "UPDATE", "nope", "", "", "", "", "", "", "", "", "", "", "1", "0", "404",
                       "/err/resource", "Document not found", "", hash, "true"});
  // REPLACE names the document it replaces; the new Bundle's facts
  CHECK(rows[6] == Row{"feed-07", "REPLACE", wii, id1, "11502-2", "LAB", "030", "130", "lab-app-01", "Acme Sanita",
                       "4.2", "120201", "HIGH", "7", "0", "200", "", "", patient, hash, "true"});
  // DELETE: read from the stored document before its resources went (Observation, Composition, DocumentReference)
  CHECK(rows[7] == Row{"feed-08", "DELETE", wii, id2, "11502-2", "LAB", "030", "130", "lab-app-01", "Acme Sanita",
                       "4.2", "120201", "", "3", "0", "200", "", "", patient, hash, "true"});
  CHECK(rows[8] == Row{"feed-09", "DELETE", "", id2, "", "", "", "", "", "", "", "", "", "0", "0", "404",
                       "/err/resource", "Document not found", "", "", "true"});

  // the fiscal code is nowhere in clear
  CHECK(Sql(dsn, "SELECT count(*) FROM feeding_record f WHERE strpos(row_to_json(f)::text, $1) > 0", {kCf})[0][0] ==
        "0");
  CHECK(Sql(dsn, "SELECT count(*) FROM patient_region r WHERE strpos(row_to_json(r)::text, $1) > 0", {kCf})[0][0] ==
        "0");
  // the patient's region: set by the PUBLISH, moved by the REPLACE
  CHECK(Sql(dsn, "SELECT patient, rda, identifier FROM patient_region") == Rows{{patient, "130", id2}});
  // append-only
  CHECK_THROWS(Sql(dsn, "UPDATE feeding_record SET status = 200 WHERE request_id = 'feed-02'"));
  CHECK_THROWS(Sql(dsn, "DELETE FROM feeding_record WHERE request_id = 'feed-02'"));
  // the documents view counts them
  auto daily = Sql(dsn,
                   "SELECT operation, rda, producer_org, document_type, calls::text, accepted::text, rejected::text,"
                   " rejected_invalid::text, (validation_errors >= 1)::text, entries::text"
                   " FROM monitoring.feeding_documents_daily WHERE day = current_date AND rda <> ''"
                   " ORDER BY operation, rda");
  CHECK(daily == Rows{{"DELETE", "130", "120201", "11502-2", "1", "1", "0", "0", "false", "3"},
                      {"PUBLISH", "120", "120201", "11502-2", "3", "1", "2", "1", "true", "7"},
                      {"REPLACE", "130", "120201", "11502-2", "1", "1", "0", "0", "false", "7"},
                      {"UPDATE", "120", "120201", "11502-2", "1", "1", "0", "0", "false", "1"}});
}

TEST_CASE("without a configured key the fiscal codes are hashed under one kept in the database", "[monitoring]") {
  const std::string dsn = CreateDatabase("eds_feedkey_" + UniquePrefix());
  const std::string id = "2.16.840.1.113883.2.9.2.190.4.4^key1";
  std::string key_hex;
  {
    ServerProcess server(dsn, {"--migrate"});
    HttpClient c(server.port());
    auto r = c.Send("POST", "/v1/document/workflowinstanceid/wf-key", Headers("key-01"),
                    Envelope(id, Document(id, "LAB"), "190", "190", "HIGH"));
    REQUIRE(r.status == 201);
    auto keys = Sql(dsn, "SELECT encode(key, 'hex') FROM analytics_key");
    REQUIRE(keys.size() == 1);
    key_hex = keys[0][0];
    CHECK(key_hex.size() == 64);  // 32 random bytes
    CHECK(Sql(dsn, "SELECT fiscal_code_hash FROM feeding_record WHERE request_id = 'key-01'") ==
          Rows{{Hmac(Unhex(key_hex), kCf)}});
  }
  // a restarted server keeps the key, so the hashes of one patient stay equal
  ServerProcess server(dsn);
  HttpClient c(server.port());
  REQUIRE(c.Send("DELETE", "/v1/document/identifier/" + UrlSafe(id), Headers("key-02")).status == 200);
  CHECK(Sql(dsn, "SELECT encode(key, 'hex') FROM analytics_key") == Rows{{key_hex}});
  CHECK(Sql(dsn, "SELECT count(DISTINCT fiscal_code_hash)::text FROM feeding_record") == Rows{{"1"}});
}

TEST_CASE("a document and its feeding record commit together", "[monitoring]") {
  const std::string dsn = CreateDatabase("eds_feedtx_" + UniquePrefix());
  ServerProcess server(dsn, {"--migrate", "--analytics-hash-key", "feeding-test-key-0123456789"});
  HttpClient c(server.port());
  const std::string id = "2.16.840.1.113883.2.9.2.030.4.4^tx1";
  const std::string envelope = Envelope(id, Document(id, "LAB"), "030", "030", "HIGH");
  // without this month's partition the feeding record cannot be written: neither is the document
  const std::string month = Sql(dsn, "SELECT to_char(now(), 'YYYY_MM')")[0][0];
  Sql(dsn, "DROP TABLE feeding_record_" + month);
  CHECK(c.Send("POST", "/v1/document/workflowinstanceid/wf-tx", Headers("tx-01"), envelope).status == 500);
  CHECK(Sql(dsn, "SELECT count(*)::text FROM fse_document") == Rows{{"0"}});
  CHECK(Sql(dsn, "SELECT count(*)::text FROM resource WHERE res_type IN ('DocumentReference', 'Composition')") ==
        Rows{{"0"}});
  // with the partition back, the same call stores both
  Sql(dsn, "SELECT eds_feeding_partitions(0)");
  CHECK(c.Send("POST", "/v1/document/workflowinstanceid/wf-tx", Headers("tx-02"), envelope).status == 201);
  CHECK(Sql(dsn, "SELECT count(*)::text FROM fse_document") == Rows{{"1"}});
  CHECK(Sql(dsn, "SELECT request_id, operation, status::text FROM feeding_record") ==
        Rows{{"tx-02", "PUBLISH", "201"}});
}

namespace {

// An audit row of a known workload, at noon of `days_ago`.
struct Access {
  std::string request_id, interaction, resource_type, patients, subject, role, org, region, purpose;
  int status = 200;
  int returned = 0;
  int days_ago = 0;
  std::string method = "GET";
};

// Every other access is stored the way the audit sink stores it, in a
// batch of audit_event_batch (here a batch of one), the others as the rows
// of writes are: the views see both.
void Insert(const std::string& dsn, const Access& a) {
  static int n = 0;
  const std::vector<std::string> params = {
      std::to_string(a.days_ago), a.request_id, a.interaction, a.method, a.resource_type, a.patients, a.subject,
      a.role, a.org, a.region, a.purpose, std::to_string(a.status), std::to_string(a.returned)};
  if (n++ % 2 == 0) {
    Sql(dsn,
        "INSERT INTO audit_event_row (ts, request_id, interaction, method, resource_type, patients, caller_subject,"
        " caller_role, caller_org, caller_region, purpose_of_use, status, latency_ms, bytes_in, bytes_out,"
        " resources_returned)"
        " VALUES (((current_date - $1::int) + time '12:00')::timestamptz, $2, $3, $4, $5, $6::text[], $7, $8, $9, $10,"
        " $11, $12::int, 5, 0, 100, $13::int)",
        params);
    return;
  }
  Sql(dsn,
      "WITH r AS (SELECT ((current_date - $1::int) + time '12:00')::timestamptz AS ts, $6::text[] AS patients)"
      " INSERT INTO audit_event_batch (first_ts, last_ts, row_count, patients, records)"
      " SELECT ts, ts, 1, patients, ARRAY[ROW(ts, $2, $3, $4, $5, '', NULL, patients, $7, $8, $9, $10, $11, '',"
      " $12::int, '', 5, 0, 100, $13::int, '', '', '', '{}', false, '')::audit_record]::text FROM r",
      params);
}

struct Feeding {
  std::string request_id, operation;
  int status = 201;
  int ms = 0;
  int entries = 0;
  int validation_errors = 0;
  int days_ago = 0;
};

void Insert(const std::string& dsn, const Feeding& f) {
  Sql(dsn,
      "INSERT INTO feeding_record (received_at, completed_at, request_id, operation, identifier, document_type, rde,"
      " rda, producer_org, entries, validation_errors, status)"
      " VALUES (((current_date - $1::int) + time '12:00')::timestamptz,"
      " ((current_date - $1::int) + time '12:00')::timestamptz + $2::int * interval '1 millisecond',"
      " $3, $4, $3, '11502-2', '030', '120', 'ORG1', $5::int, $6::int, $7::int)",
      {std::to_string(f.days_ago), std::to_string(f.ms), f.request_id, f.operation, std::to_string(f.entries),
       std::to_string(f.validation_errors), std::to_string(f.status)});
}

// Rows in one relation and not in the other, both ways.
std::string Difference(const std::string& dsn, const std::string& a, const std::string& b) {
  return Sql(dsn, "SELECT count(*)::text FROM ((TABLE " + a + " EXCEPT ALL TABLE " + b + ") UNION ALL (TABLE " + b +
                      " EXCEPT ALL TABLE " + a + ")) d")[0][0];
}

}  // namespace

TEST_CASE("the monitoring views aggregate a known workload; the materialised ones match after a refresh",
          "[monitoring]") {
  const std::string dsn = CreateDatabase("eds_views_" + UniquePrefix());
  RunMigrate(dsn);
  Sql(dsn, "INSERT INTO patient_region (patient, rda) VALUES ('Patient/p1', '120'), ('Patient/p2', '190'),"
           " ('Patient/p3', '120')");
  // callers are anonymous until authentication exists: their identity is written here as it will be
  const std::vector<Access> workload = {
      {"m01", "read", "Patient", "{Patient/p1}", "dr-a", "APR", "ORG1", "120", "TREATMENT", 200, 1, 0, "GET"},
      {"m02", "search-type", "Observation", "{Patient/p1,Patient/p2}", "dr-a", "APR", "ORG1", "120", "TREATMENT", 200, 5, 0, "GET"},
      {"m03", "read", "Patient", "{Patient/p3}", "nurse-b", "INF", "ORG2", "190", "TREATMENT", 200, 1, 0, "GET"},
      {"m04", "search-type", "Observation", "{Patient/p2,Patient/p3}", "dr-c", "DRS", "ORG2", "190", "BTG", 200, 4, 0, "GET"},
      {"m05", "read", "Patient", "{Patient/p2}", "dr-e", "RSA", "ORG1", "120", "BTG", 403, 0, 0, "GET"},
      {"m06", "read", "Patient", "{Patient/p1}", "cit-f", "ASS", "", "120", "", 200, 1, 0, "GET"},
      {"m07", "search-type", "Observation", "{}", "cit-g", "TUT", "", "120", "", 401, 0, 0, "GET"},
      {"m08", "read", "MedicationRequest", "{Patient/p2}", "ph-h", "FAR", "ORG3", "190", "TREATMENT", 200, 1, 0, "GET"},
      {"m09", "read", "Patient", "{Patient/p1}", "svc", "", "", "", "", 200, 1, 0, "GET"},
      {"m10", "read", "Patient", "{Patient/p2}", "app-x", "XYZ", "ORG1", "120", "", 500, 0, 0, "GET"},
      {"m11", "read", "Patient", "{Patient/p1}", "dr-i", "apr", "ORG2", "190", "TREATMENT", 200, 1, 1, "GET"},
      {"m12", "create", "Observation", "{Patient/p1}", "dr-a", "APR", "ORG1", "120", "TREATMENT", 201, 0, 0, "POST"},
      {"m13", "create", "Observation", "{Patient/p1}", "dr-a", "APR", "ORG1", "120", "TREATMENT", 422, 0, 0, "POST"},
  };
  for (const auto& a : workload) Insert(dsn, a);
  for (const auto& f : std::vector<Feeding>{{"f1", "PUBLISH", 201, 100, 10, 0, 0},
                                            {"f2", "PUBLISH", 201, 300, 12, 0, 0},
                                            {"f3", "PUBLISH", 422, 50, 9, 2, 0},
                                            {"f4", "DELETE", 200, 20, 7, 0, 0},
                                            {"f5", "PUBLISH", 409, 10, 8, 0, 1}})
    Insert(dsn, f);

  SECTION("role categories") {
    auto categories = Sql(dsn,
                          "SELECT r, monitoring.role_category(r) FROM unnest(ARRAY['ASS', 'TUT', 'GEN', 'APR', 'AAS',"
                          " 'DRS', 'RSA', 'MRP', 'DSA', 'INF', 'FAR', 'apr', ' INF ', 'OAM', '']) AS r");
    CHECK(categories == Rows{{"ASS", "citizen"},  {"TUT", "citizen"},    {"GEN", "citizen"}, {"APR", "doctor"},
                             {"AAS", "doctor"},   {"DRS", "doctor"},     {"RSA", "doctor"},  {"MRP", "doctor"},
                             {"DSA", "doctor"},   {"INF", "nurse"},      {"FAR", "pharmacist"}, {"apr", "doctor"},
                             {" INF ", "nurse"},  {"OAM", "system"},     {"", "system"}});
  }

  SECTION("usage per day, region, role category, purpose, interaction and resource type") {
    auto usage = Sql(dsn,
                     "SELECT region, role_category, purpose_of_use, interaction, resource_type, requests::text,"
                     " failed::text, denied::text, resources_returned::text, callers::text"
                     " FROM monitoring.usage_category_daily WHERE day = current_date"
                     " ORDER BY region, role_category, purpose_of_use, interaction, resource_type");
    CHECK(usage == Rows{{"", "system", "", "read", "Patient", "1", "0", "0", "1", "1"},
                        {"120", "citizen", "", "read", "Patient", "1", "0", "0", "1", "1"},
                        {"120", "citizen", "", "search-type", "Observation", "1", "1", "1", "0", "1"},
                        {"120", "doctor", "BTG", "read", "Patient", "1", "1", "1", "0", "1"},
                        {"120", "doctor", "TREATMENT", "create", "Observation", "2", "1", "0", "0", "1"},
                        {"120", "doctor", "TREATMENT", "read", "Patient", "1", "0", "0", "1", "1"},
                        {"120", "doctor", "TREATMENT", "search-type", "Observation", "1", "0", "0", "5", "1"},
                        {"120", "system", "", "read", "Patient", "1", "1", "0", "0", "1"},
                        {"190", "doctor", "BTG", "search-type", "Observation", "1", "0", "0", "4", "1"},
                        {"190", "nurse", "TREATMENT", "read", "Patient", "1", "0", "0", "1", "1"},
                        {"190", "pharmacist", "TREATMENT", "read", "MedicationRequest", "1", "0", "0", "1", "1"}});
    CHECK(Sql(dsn, "SELECT region, role_category, requests::text FROM monitoring.usage_category_daily"
                   " WHERE day = current_date - 1") == Rows{{"190", "doctor", "1"}});
  }

  SECTION("cross-region accesses: the caller's region is not the patient's region of assistance") {
    auto rows = Sql(dsn,
                    "SELECT request_id, patient, caller_region, patient_rda, role_category, purpose_of_use, status::text"
                    " FROM monitoring.cross_region_access ORDER BY request_id, patient");
    CHECK(rows == Rows{{"m02", "Patient/p2", "120", "190", "doctor", "TREATMENT", "200"},
                       {"m03", "Patient/p3", "190", "120", "nurse", "TREATMENT", "200"},
                       {"m04", "Patient/p3", "190", "120", "doctor", "BTG", "200"},
                       {"m05", "Patient/p2", "120", "190", "doctor", "BTG", "403"},
                       {"m10", "Patient/p2", "120", "190", "system", "", "500"},
                       {"m11", "Patient/p1", "190", "120", "doctor", "TREATMENT", "200"}});
    auto daily = Sql(dsn,
                     "SELECT (current_date - day)::text, caller_region, patient_rda, role_category, accesses::text,"
                     " patients::text, callers::text, denied::text, break_glass::text"
                     " FROM monitoring.cross_region_daily ORDER BY day DESC, caller_region, role_category");
    CHECK(daily == Rows{{"0", "120", "190", "doctor", "2", "1", "2", "1", "1"},
                        {"0", "120", "190", "system", "1", "1", "1", "0", "0"},
                        {"0", "190", "120", "doctor", "1", "1", "1", "0", "1"},
                        {"0", "190", "120", "nurse", "1", "1", "1", "0", "0"},
                        {"1", "190", "120", "doctor", "1", "1", "1", "0", "0"}});
  }

  SECTION("break-the-glass and denied accesses") {
    CHECK(Sql(dsn, "SELECT request_id, role_category, caller_region, array_to_string(patients, ','), status::text"
                   " FROM monitoring.break_glass_access ORDER BY request_id") ==
          Rows{{"m04", "doctor", "190", "Patient/p2,Patient/p3", "200"}, {"m05", "doctor", "120", "Patient/p2", "403"}});
    CHECK(Sql(dsn, "SELECT region, role_category, requests::text, denied::text, callers::text, patients::text"
                   " FROM monitoring.break_glass_daily WHERE day = current_date ORDER BY region") ==
          Rows{{"120", "doctor", "1", "1", "1", "1"}, {"190", "doctor", "1", "0", "1", "2"}});
    CHECK(Sql(dsn, "SELECT request_id, role_category, status::text FROM monitoring.denied_access ORDER BY request_id") ==
          Rows{{"m05", "doctor", "403"}, {"m07", "citizen", "401"}});
    CHECK(Sql(dsn, "SELECT region, role_category, purpose_of_use, interaction, status::text, requests::text,"
                   " callers::text FROM monitoring.denied_daily WHERE day = current_date ORDER BY role_category") ==
          Rows{{"120", "citizen", "", "search-type", "401", "1", "1"},
               {"120", "doctor", "BTG", "read", "403", "1", "1"}});
  }

  SECTION("feeding: documents per day and operation with processing times") {
    CHECK(Sql(dsn, "SELECT (current_date - day)::text, operation, rde, rda, producer_org, document_type, calls::text,"
                   " accepted::text, rejected::text, rejected_invalid::text, validation_errors::text, entries::text,"
                   " mean_ms::text, p95_ms::text FROM monitoring.feeding_documents_daily ORDER BY day DESC, operation") ==
          Rows{{"0", "DELETE", "030", "120", "ORG1", "11502-2", "1", "1", "0", "0", "0", "7", "20.000", "20"},
               {"0", "PUBLISH", "030", "120", "ORG1", "11502-2", "3", "2", "1", "1", "2", "22", "150.000", "280"},
               {"1", "PUBLISH", "030", "120", "ORG1", "11502-2", "1", "0", "1", "0", "0", "0", "10.000", "10"}});
    CHECK(Sql(dsn, "SELECT region, organisation, resource_type, created::text, rejected::text"
                   " FROM monitoring.feeding_daily WHERE day = current_date") ==
          Rows{{"120", "ORG1", "Observation", "1", "1"}});
  }

  SECTION("the materialised views equal the plain ones after eds_monitoring_refresh()") {
    const std::vector<std::pair<std::string, std::string>> pairs = {
        {"monitoring.usage_category_daily", "monitoring.usage_category_daily_mv"},
        {"monitoring.feeding_daily", "monitoring.feeding_daily_mv"},
        {"monitoring.feeding_documents_daily", "monitoring.feeding_documents_daily_mv"}};
    for (const auto& [view, mv] : pairs) CHECK(Difference(dsn, view, mv) != "0");  // made before the workload
    CHECK(Sql(dsn, "SELECT eds_monitoring_refresh()") == Rows{{"t"}});
    for (const auto& [view, mv] : pairs) {
      INFO(mv);
      CHECK(Difference(dsn, view, mv) == "0");
      CHECK(Sql(dsn, "SELECT count(*) > 0 FROM " + mv)[0][0] == "t");
    }
    CHECK(Sql(dsn, "SELECT view_name FROM monitoring.refresh_log ORDER BY 1") ==
          Rows{{"feeding_daily_mv"}, {"feeding_documents_daily_mv"}, {"usage_category_daily_mv"}});

    // the server refreshes them on its schedule
    Insert(dsn,
           Access{"m20", "read", "Patient", "{Patient/p1}", "dr-z", "APR", "ORG9", "150", "TREATMENT", 200, 1, 0, "GET"});
    const std::string late = "SELECT count(*)::text FROM monitoring.usage_category_daily_mv WHERE region = '150'";
    CHECK(Sql(dsn, late)[0][0] == "0");
    ServerProcess server(dsn, {"--monitoring-refresh-seconds", "1"});
    std::string seen = "0";
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
         seen == "0" && std::chrono::steady_clock::now() < deadline;
         std::this_thread::sleep_for(std::chrono::milliseconds(100)))
      seen = Sql(dsn, late)[0][0];
    CHECK(seen == "1");
  }
}

TEST_CASE("documents of a patient whose region is unchanged do not wait for each other", "[monitoring]") {
  const std::string dsn = CreateDatabase("eds_region_" + UniquePrefix());
  ServerProcess server(dsn, {"--migrate"});
  HttpClient c(server.port());
  const std::string wii = "2.16.840.1.113883.2.9.2.120.4.4.wf-region";
  const std::string path = "/v1/document/workflowinstanceid/" + wii;
  auto publish = [&](const std::string& id, const std::string& rda) {
    HttpClient own(server.port());
    return own.Send("POST", path, Headers("region-" + id), Envelope(id, Document(id, "LAB"), rda, "030", "HIGH"));
  };
  const std::string base = "2.16.840.1.113883.2.9.2.120.4.4^region";
  REQUIRE(publish(base + "1", "120").status == 201);
  const auto region = Sql(dsn, "SELECT patient, rda FROM patient_region");
  REQUIRE(region.size() == 1);
  REQUIRE(region[0][1] == "120");

  std::future<Reply> same, moved;  // before the holder: a failed check ends its transaction first
  pqxx::connection holder(dsn);
  pqxx::work held(holder);
  held.exec_params("SELECT 1 FROM patient_region WHERE patient = $1 FOR UPDATE", region[0][0]);
  // the same region: nothing to write, no wait
  same = std::async(std::launch::async, [&] { return publish(base + "2", "120"); });
  REQUIRE(same.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(same.get().status == 201);
  // another region waits for the row, then moves the patient
  moved = std::async(std::launch::async, [&] { return publish(base + "3", "150"); });
  CHECK(moved.wait_for(std::chrono::milliseconds(700)) == std::future_status::timeout);
  held.commit();
  REQUIRE(moved.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(moved.get().status == 201);
  CHECK(Sql(dsn, "SELECT patient, rda, identifier FROM patient_region") ==
        Rows{{region[0][0], "150", base + "3"}});
}
