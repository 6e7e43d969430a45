// The FSE 2.0 ingestion API over HTTP: PUBLISH, REPLACE, metadata UPDATE and
// DELETE of documents sent as transaction Bundles in the Gateway's envelope,
// each atomic, with 409/404 on the master identifier, and problem JSON errors.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

namespace {

const std::string kCfOid = "urn:oid:2.16.840.1.113883.2.9.4.3.2";

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// '^' is not allowed in a URL as such.
std::string UrlSafe(std::string s) {
  for (auto p = s.find('^'); p != std::string::npos; p = s.find('^', p)) s.replace(p, 1, "%5E");
  return s;
}

// A lab report as the Gateway converts it: Composition (LOINC 11502-2),
// DocumentReference, DiagnosticReport, Observations, Specimen, and the
// Patient, Organization and Practitioner it names.
std::string LabBundle(const std::string& master, const std::string& cf, const std::vector<std::string>& tests,
                      const std::string& bad_element = "") {
  std::string entries;
  auto add = [&](const std::string& uuid, const std::string& resource, const std::string& request) {
    entries += (entries.empty() ? "" : ",") + std::string(R"({"fullUrl":"urn:uuid:)") + uuid + R"(","resource":)" +
               resource + R"(,"request":)" + request + "}";
  };
  const std::string post = R"({"method":"POST","url":")";
  add("00000000-0000-0000-0000-0000000000a1",
      R"({"resourceType":"Patient","identifier":[{"system":")" + kCfOid + R"(","value":")" + cf +
          R"("}],"name":[{"family":"Rossi","given":["Mario"]}]})",
      post + R"(Patient","ifNoneExist":"identifier=)" + kCfOid + "|" + cf + R"("})");
  add("00000000-0000-0000-0000-0000000000a2", R"({"resourceType":"Organization","name":"Laboratorio Analisi"})",
      post + R"(Organization"})");
  add("00000000-0000-0000-0000-0000000000a3",
      R"({"resourceType":"Practitioner","name":[{"family":"Bianchi"}]})", post + R"(Practitioner"})");
  add("00000000-0000-0000-0000-0000000000a4",
      R"({"resourceType":"Specimen","subject":{"reference":"urn:uuid:00000000-0000-0000-0000-0000000000a1"}})",
      post + R"(Specimen"})");
  std::string results;
  for (std::size_t i = 0; i < tests.size(); ++i) {
    const std::string uuid = "00000000-0000-0000-0000-00000000010" + std::to_string(i);
    add(uuid,
        R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":")" +
            tests[i] + R"("}]},"subject":{"reference":"urn:uuid:00000000-0000-0000-0000-0000000000a1"},
            "specimen":{"reference":"urn:uuid:00000000-0000-0000-0000-0000000000a4"},"valueQuantity":{"value":)" +
            std::to_string(100 + i) + R"(,"unit":"mg/dL"})" + (i == 0 ? bad_element : std::string()) + "}",
        post + R"(Observation"})");
    results += (i ? "," : "") + std::string(R"({"reference":"urn:uuid:)") + uuid + R"("})";
  }
  add("00000000-0000-0000-0000-0000000000a5",
      R"({"resourceType":"DiagnosticReport","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"11502-2"}]},
          "subject":{"reference":"urn:uuid:00000000-0000-0000-0000-0000000000a1"},"result":[)" + results + "]}",
      post + R"(DiagnosticReport"})");
  add("00000000-0000-0000-0000-0000000000a6",
      R"({"resourceType":"Composition","status":"final","type":{"coding":[{"system":"http://loinc.org","code":"11502-2"}]},
          "subject":{"reference":"urn:uuid:00000000-0000-0000-0000-0000000000a1"},"date":"2026-11-20T10:00:00+01:00",
          "author":[{"reference":"urn:uuid:00000000-0000-0000-0000-0000000000a3"}],"title":"Referto di laboratorio",
          "section":[{"entry":[{"reference":"urn:uuid:00000000-0000-0000-0000-0000000000a5"}]}]})",
      post + R"(Composition"})");
  add("00000000-0000-0000-0000-0000000000a7",
      R"({"resourceType":"DocumentReference","status":"current","masterIdentifier":{"system":"urn:ietf:rfc:3986","value":")" +
          master + R"("},"type":{"coding":[{"system":"http://loinc.org","code":"11502-2"}]},
          "subject":{"reference":"urn:uuid:00000000-0000-0000-0000-0000000000a1"},
          "content":[{"attachment":{"contentType":"application/pdf","url":"urn:uuid:00000000-0000-0000-0000-0000000000a6"}}],
          "context":{"related":[{"reference":"urn:uuid:00000000-0000-0000-0000-0000000000a6"}]}})",
      post + R"(DocumentReference"})");
  return R"({"resourceType":"Bundle","type":"transaction","entry":[)" + entries + "]}";
}

std::string Envelope(const std::string& identifier, const std::string& bundle, const std::string& priority = "HIGH") {
  return R"({"identifier":")" + identifier + R"(","operation":"PUBLISH","jsonString":")" + Escape(bundle) +
         R"(","priorityType":")" + priority + R"(","insertionDate":"2026-11-20T10:00:00Z"})";
}

int Count(HttpClient& c, const std::string& query) {
  auto r = c.Get("/fhir/" + UrlSafe(query) + (query.find('?') == std::string::npos ? "?" : "&") + "_summary=count");
  REQUIRE(r.status == 200);
  return r.Json()["total"].GetInt();
}

const std::vector<std::pair<std::string, std::string>> kJson = {{"Content-Type", "application/json"}};

}  // namespace

TEST_CASE("FSE documents: publish, conflicts, metadata update, replace, delete", "[document]") {
  HttpClient c(SharedServer().port());
  const std::string u = UniquePrefix();
  const std::string id1 = "2.16.840.1.113883.2.9.2.120.4.4^" + u + "1";
  const std::string cf = "RSSMRA80A01H501U";
  const std::string wii = "2.16.840.1.113883.2.9.2.120.4.4." + u + "wf1";
  const std::string path = "/v1/document/workflowinstanceid/" + wii;

  auto published = c.Post(path, Envelope(id1, LabBundle(id1, cf, {"2345-7", "2093-3"})), kJson);
  INFO(published.body);
  REQUIRE(published.status == 201);
  {
    auto d = published.Json();
    CHECK(d["result"].GetBool());
    CHECK(std::string(d["traceID"].GetString()).size() > 0);
  }
  const std::string by_master = "DocumentReference?identifier=" + id1;
  CHECK(Count(c, by_master) == 1);
  // the fiscal code is found under either of its systems
  CHECK(Count(c, "Patient?identifier=http://hl7.it/sid/codiceFiscale%7C" + cf) >= 1);
  CHECK(Count(c, "Patient?identifier=" + kCfOid + "%7C" + cf) >= 1);
  const int patients = Count(c, "Patient?identifier=" + kCfOid + "%7C" + cf);
  auto observations = [&] { return Count(c, "Observation?subject.identifier=" + kCfOid + "%7C" + cf); };
  const int obs_before = observations();
  CHECK(obs_before >= 2);

  // the same identifier again: 409, nothing written
  auto again = c.Post(path, Envelope(id1, LabBundle(id1, cf, {"2345-7"})), kJson);
  CHECK(again.status == 409);
  CHECK(again.Header("content-type") == "application/problem+json");
  CHECK(std::string(again.Json()["type"].GetString()) == "/err/client");
  CHECK(observations() == obs_before);

  // bad envelopes and bundles: 400, nothing written
  CHECK(c.Post(path, R"({"identifier":"x"})", kJson).status == 400);
  CHECK(c.Post(path, R"({"identifier":"x","jsonString":"{\"resourceType\":\"Patient\"}"})", kJson).status == 400);
  CHECK(c.Post(path, Envelope("other-id", LabBundle(id1, cf, {"2345-7"})), kJson).status == 400);
  CHECK(c.Post(path, Envelope(id1 + "x", LabBundle(id1 + "x", cf, {"2345-7"}), "URGENT"), kJson).status == 400);
  // one invalid Observation: the whole document is refused, nothing stored
  const std::string id_bad = id1 + "bad";
  auto bad = c.Post(path, Envelope(id_bad, LabBundle(id_bad, cf, {"2345-7", "718-7"}, R"(,"colour":"red")")), kJson);
  CHECK(bad.status == 400);
  CHECK(bad.body.find("colour") != std::string::npos);
  CHECK(Count(c, "DocumentReference?identifier=" + id_bad) == 0);
  // one Observation failing validation (a date that does not exist): 422, nothing stored
  auto invalid = c.Post(path, Envelope(id_bad, LabBundle(id_bad, cf, {"2345-7"}, R"(,"effectiveDateTime":"2026-13-45")")), kJson);
  CHECK(invalid.status == 422);
  CHECK(invalid.body.find("Bundle.entry[") != std::string::npos);
  CHECK(Count(c, "DocumentReference?identifier=" + id_bad) == 0);
  CHECK(observations() == obs_before);
  CHECK(Count(c, "Patient?identifier=" + kCfOid + "%7C" + cf) == patients);

  // UPDATE of the metadata: onto the DocumentReference
  auto meta = c.Send("PUT", "/v1/document/metadata",
                     kJson,
                     R"({"workflowInstanceId":")" + wii + R"(","fiscalCode":")" + cf +
                         R"(","body":{"tipologiaStruttura":"Ospedale","attiCliniciRegoleAccesso":["P99"],
                         "tipoDocumentoLivAlto":"REF","assettoOrganizzativo":"AD_PSC001","dataInizioPrestazione":"20261120100000",
                         "dataFinePrestazione":"20261120110000","conservazioneANorma":"no","tipoAttivitaClinica":"CON",
                         "identificativoSottomissione":"sub-1"}})");
  INFO(meta.body);
  CHECK(meta.status == 200);
  {
    auto r = c.Get("/fhir/" + UrlSafe(by_master));
    auto d = r.Json();
    REQUIRE(d["entry"].Size() == 1);
    const auto& dr = d["entry"][0]["resource"];
    CHECK(std::string(dr["category"][0]["coding"][0]["code"].GetString()) == "REF");
    CHECK(std::string(dr["context"]["period"]["start"].GetString()) == "2026-11-20");
    CHECK(std::string(dr["context"]["facilityType"]["coding"][0]["code"].GetString()) == "Ospedale");
    CHECK(std::string(dr["meta"]["versionId"].GetString()) == "2");
  }
  CHECK(c.Send("PUT", "/v1/document/metadata", kJson, R"({"workflowInstanceId":"nope","body":{}})").status == 404);

  // REPLACE: the old document's resources go, the new ones come; the Patient stays
  const std::string id2 = id1 + "v2";
  CHECK(c.Send("PUT", path, kJson, Envelope(id1 + "missing", LabBundle(id2, cf, {"1742-6"}))).status == 404);
  auto replaced = c.Send("PUT", path, kJson, Envelope(id1, LabBundle(id2, cf, {"1742-6", "1920-8", "6768-6"})));
  INFO(replaced.body);
  CHECK(replaced.status == 200);
  CHECK(Count(c, by_master) == 0);
  CHECK(Count(c, "DocumentReference?identifier=" + id2) == 1);
  CHECK(observations() == obs_before - 2 + 3);
  CHECK(Count(c, "Patient?identifier=" + kCfOid + "%7C" + cf) == patients);

  // DELETE
  CHECK(c.Send("DELETE", "/v1/document/identifier/" + UrlSafe(id1)).status == 404);  // replaced: no longer known
  const auto refs = Sql(TestDsn(), "SELECT unnest(resources) FROM fse_document WHERE identifier = $1", {id2});
  REQUIRE(refs.size() >= 7);  // Specimen, 3 Observations, DiagnosticReport, Composition, DocumentReference
  auto deleted = c.Send("DELETE", "/v1/document/identifier/" + UrlSafe(id2));
  CHECK(deleted.status == 200);
  CHECK(Count(c, "DocumentReference?identifier=" + id2) == 0);
  CHECK(observations() == obs_before - 2);
  // each resource of the document: a deletion version, the version before
  // still readable, no index rows left
  for (const auto& row : refs) {
    const std::string& ref = row[0];
    const std::string type = ref.substr(0, ref.find('/')), rid = ref.substr(ref.find('/') + 1);
    INFO(ref);
    const auto cur = Sql(TestDsn(), "SELECT deleted::text, version_id::text FROM resource WHERE res_type = $1 AND res_id = $2",
                         {type, rid});
    REQUIRE(cur.size() == 1);
    CHECK(cur[0][0] == "true");
    const int v = std::stoi(cur[0][1]);
    CHECK(Sql(TestDsn(), "SELECT method FROM resource_history WHERE res_type = $1 AND res_id = $2 AND version_id = $3",
              {type, rid, std::to_string(v)})[0][0] == "DELETE");
    CHECK(c.Get("/fhir/" + ref).status == 410);
    auto before = c.Get("/fhir/" + ref + "/_history/" + std::to_string(v - 1));
    CHECK(before.status == 200);
    CHECK(std::string(before.Json()["id"].GetString()) == rid);
    CHECK(Sql(TestDsn(),
              "SELECT (SELECT count(*) FROM search_string WHERE res_type = $1 AND res_id = $2)"
              " + (SELECT count(*) FROM search_token WHERE res_type = $1 AND res_id = $2)"
              " + (SELECT count(*) FROM search_date WHERE res_type = $1 AND res_id = $2)"
              " + (SELECT count(*) FROM search_reference WHERE res_type = $1 AND res_id = $2)"
              " + (SELECT count(*) FROM search_quantity WHERE res_type = $1 AND res_id = $2)"
              " + (SELECT count(*) FROM search_uri WHERE res_type = $1 AND res_id = $2)",
              {type, rid})[0][0] == "0");
  }
  // the deletion's audit row names the patient the deleted resources referred to
  auto audit = WaitRows(TestDsn(),
                        "SELECT array_length(entities, 1)::text, array_to_string(patients, ',') FROM audit_event"
                        " WHERE request_id = '" + deleted.Header("x-request-id") + "'",
                        1);
  REQUIRE(audit.size() == 1);
  CHECK(audit[0][0] == std::to_string(refs.size()));
  CHECK(audit[0][1].rfind("Patient/", 0) == 0);
  auto gone = c.Send("DELETE", "/v1/document/identifier/" + UrlSafe(id2));
  CHECK(gone.status == 404);
  CHECK(std::string(gone.Json()["type"].GetString()) == "/err/resource");
  CHECK(c.Get("/v1/document/nothing").status == 404);
}

TEST_CASE("FSE documents: concurrent publishes of one identifier store it once", "[document]") {
  const std::string u = UniquePrefix();
  const std::string id = "2.16.840.1.113883.2.9.2.150.4.4^" + u + "race";
  const std::string bundle = LabBundle(id, "VRDLGU70B02F205X", {"2345-7"});
  std::atomic<int> created{0}, conflicts{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      HttpClient c(SharedServer().port());
      auto r = c.Post("/v1/document/workflowinstanceid/" + u + "wf" + std::to_string(i), Envelope(id, bundle), kJson);
      if (r.status == 201) ++created;
      else if (r.status == 409) ++conflicts;
      else ++other;
    });
  for (auto& t : threads) t.join();
  CHECK(created == 1);
  CHECK(conflicts == 7);
  CHECK(other == 0);
  HttpClient c(SharedServer().port());
  CHECK(Count(c, "DocumentReference?identifier=" + id) == 1);
}
