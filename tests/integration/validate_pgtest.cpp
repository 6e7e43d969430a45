// $validate and validation on write, against a real server: 200 with the
// OperationOutcome from $validate, 422 (nothing stored) for invalid writes,
// the per-type policy, declared profiles, transactions and batches, and
// `eds validate` on the command line.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "support.hpp"

using namespace eds::testing;

namespace {

const std::string kText = R"("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"})";

bool HasIssue(const Reply& r, const std::string& severity, const std::string& expression) {
  auto d = r.Json();
  if (!d.IsObject() || !d.HasMember("issue")) return false;
  for (const auto& i : d["issue"].GetArray()) {
    if (std::string(i["severity"].GetString()) != severity) continue;
    if (!i.HasMember("expression")) continue;
    if (std::string(i["expression"][0].GetString()) == expression) return true;
  }
  return false;
}

bool HasErrors(const Reply& r) {
  auto d = r.Json();
  for (const auto& i : d["issue"].GetArray())
    if (std::string(i["severity"].GetString()) == "error") return true;
  return false;
}

const std::string kCfProfile = "https://eds.fse.it/fhir/StructureDefinition/eds-patient";

std::string CfPatient(const std::string& id, const std::string& cf) {
  return R"({"resourceType":"Patient","id":")" + id + R"(","meta":{"profile":[")" + kCfProfile + R"("]},)" + kText +
         R"(,"identifier":[{"system":"http://hl7.it/sid/codiceFiscale","value":")" + cf + R"("}]})";
}

}  // namespace

TEST_CASE("$validate answers 200 with the OperationOutcome", "[validate]") {
  HttpClient c(SharedServer().port());
  auto ok = c.Post("/fhir/Patient/$validate", R"({"resourceType":"Patient",)" + kText + R"(,"gender":"female"})");
  REQUIRE(ok.status == 200);
  CHECK_FALSE(HasErrors(ok));

  auto bad = c.Post("/fhir/Patient/$validate", R"({"resourceType":"Patient",)" + kText + R"(,"gender":"nope"})");
  REQUIRE(bad.status == 200);
  CHECK(HasIssue(bad, "error", "Patient.gender"));

  // structure problems are issues too (validation ran)
  auto structure = c.Post("/fhir/Patient/$validate", R"({"resourceType":"Patient","foo":1})");
  REQUIRE(structure.status == 200);
  CHECK(HasIssue(structure, "error", "Patient.foo"));

  // a Parameters with resource and profile
  std::string params = R"({"resourceType":"Parameters","parameter":[{"name":"resource","resource":)" +
                       CfPatient("p1", "RSSMRA85T10A562") +
                       R"(},{"name":"profile","valueUri":")" + kCfProfile + R"("}]})";
  auto p = c.Post("/fhir/Patient/$validate", params);
  REQUIRE(p.status == 200);
  CHECK(HasIssue(p, "error", "Patient.identifier[0]"));

  // instance level: the id must match
  auto inst = c.Post("/fhir/Patient/abc/$validate", CfPatient("xyz", "RSSMRA85T10A562S"));
  REQUIRE(inst.status == 200);
  CHECK(HasIssue(inst, "error", "Patient.id"));

  // wrong type in the URL, malformed JSON
  CHECK(c.Post("/fhir/Observation/$validate", R"({"resourceType":"Patient"})").status == 400);
  CHECK(c.Post("/fhir/Patient/$validate", "{").status == 400);
  // the $validate route is POST only
  CHECK(c.Get("/fhir/Patient/$validate").status != 200);
}

TEST_CASE("invalid writes are answered 422 and store nothing", "[validate]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-v1";
  auto put = c.Put("/fhir/Patient/" + id,
                   R"({"resourceType":"Patient","id":")" + id + R"(",)" + kText + R"(,"birthDate":"2021-02-30"})");
  REQUIRE(put.status == 422);
  CHECK(HasIssue(put, "error", "Patient.birthDate"));
  CHECK(c.Get("/fhir/Patient/" + id).status == 404);

  auto post = c.Post("/fhir/Observation", R"({"resourceType":"Observation",)" + kText + R"(,"code":{"text":"x"}})");
  REQUIRE(post.status == 422);
  CHECK(HasIssue(post, "error", "Observation.status"));

  // structure errors keep their 400
  CHECK(c.Post("/fhir/Patient", R"({"resourceType":"Patient","foo":1})").status == 400);

  // warnings alone do not stop a write
  auto warn = c.Put("/fhir/Patient/" + id, R"({"resourceType":"Patient","id":")" + id + R"(","active":true})");
  CHECK(warn.status == 201);

  // PATCH whose result is invalid
  auto patch = c.Send("PATCH", "/fhir/Patient/" + id, {{"Content-Type", "application/json-patch+json"}},
                      R"([{"op":"add","path":"/gender","value":"nope"}])");
  CHECK(patch.status == 422);
}

TEST_CASE("transactions fail whole, batch entries on their own", "[validate]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-tx";
  std::string good = R"({"resourceType":"Patient","id":")" + id + R"(",)" + kText + "}";
  std::string bad = R"({"resourceType":"Observation","id":")" + id + R"(",)" + kText + R"(,"code":{"text":"x"}})";
  auto bundle = [&](const char* type) {
    return std::string(R"({"resourceType":"Bundle","type":")") + type + R"(","entry":[)" + R"({"resource":)" + good +
           R"(,"request":{"method":"PUT","url":"Patient/)" + id + R"("}},)" + R"({"resource":)" + bad +
           R"(,"request":{"method":"PUT","url":"Observation/)" + id + R"("}}]})";
  };
  auto tx = c.Post("/fhir", bundle("transaction"));
  REQUIRE(tx.status == 422);
  CHECK(HasIssue(tx, "error", "Bundle.entry[1].resource.status"));
  CHECK(c.Get("/fhir/Patient/" + id).status == 404);

  auto batch = c.Post("/fhir", bundle("batch"));
  REQUIRE(batch.status == 200);
  auto d = batch.Json();
  CHECK(std::string(d["entry"][0]["response"]["status"].GetString()).substr(0, 3) == "201");
  CHECK(std::string(d["entry"][1]["response"]["status"].GetString()).substr(0, 3) == "422");
}

TEST_CASE("PATCH entries of transactions and batches are validated like PUT", "[validate]") {
  HttpClient c(SharedServer().port());
  const std::string id = UniquePrefix() + "-txpatch";
  const std::string other = id + "-2";
  for (const auto& pid : {id, other})
    REQUIRE(c.Put("/fhir/Patient/" + pid, R"({"resourceType":"Patient","id":")" + pid + R"(",)" + kText +
                                              R"(,"gender":"female"})")
                .status == 201);
  auto replace_gender = [](const std::string& code) {
    return R"({"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},)"
           R"({"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":")" +
           code + R"("}]}]})";
  };
  auto bundle = [&](const char* type, const std::string& first, const std::string& second) {
    return std::string(R"({"resourceType":"Bundle","type":")") + type + R"(","entry":[{"resource":)" + first +
           R"(,"request":{"method":"PATCH","url":"Patient/)" + other + R"("}},{"resource":)" + second +
           R"(,"request":{"method":"PATCH","url":"Patient/)" + id + R"("}}]})";
  };
  // the second entry's result has a gender outside its required value set
  auto tx = c.Post("/fhir", bundle("transaction", replace_gender("male"), replace_gender("nope")));
  REQUIRE(tx.status == 422);
  CHECK(HasIssue(tx, "error", "Bundle.entry[1].resource.gender"));
  // nothing written: both still female, version 1
  for (const auto& pid : {id, other}) {
    auto r = c.Get("/fhir/Patient/" + pid);
    REQUIRE(r.status == 200);
    CHECK(std::string(r.Json()["gender"].GetString()) == "female");
    CHECK(std::string(r.Json()["meta"]["versionId"].GetString()) == "1");
  }
  // a JSON Patch in a Binary is held to the same rules
  // base64 of [{"op":"replace","path":"/gender","value":"nope"}]
  std::string binary = R"({"resourceType":"Binary","contentType":"application/json-patch+json","data":")"
                       "W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9nZW5kZXIiLCJ2YWx1ZSI6Im5vcGUifV0=" R"("})";
  auto tx2 = c.Post("/fhir", bundle("transaction", replace_gender("male"), binary));
  REQUIRE(tx2.status == 422);
  CHECK(HasIssue(tx2, "error", "Bundle.entry[1].resource.gender"));
  // a batch answers the bad entry alone
  auto batch = c.Post("/fhir", bundle("batch", replace_gender("male"), replace_gender("nope")));
  REQUIRE(batch.status == 200);
  auto d = batch.Json();
  CHECK(std::string(d["entry"][0]["response"]["status"].GetString()).substr(0, 3) == "200");
  CHECK(std::string(d["entry"][1]["response"]["status"].GetString()).substr(0, 3) == "422");
  CHECK(std::string(c.Get("/fhir/Patient/" + other).Json()["gender"].GetString()) == "male");
  CHECK(std::string(c.Get("/fhir/Patient/" + id).Json()["gender"].GetString()) == "female");
  // valid patches go through
  auto ok = c.Post("/fhir", bundle("transaction", replace_gender("female"), replace_gender("other")));
  CHECK(ok.status == 200);
  CHECK(std::string(c.Get("/fhir/Patient/" + id).Json()["gender"].GetString()) == "other");
}

TEST_CASE("StructureDefinitions and ValueSets written through the API take part in validation at once",
          "[validate]") {
  HttpClient c(SharedServer().port());
  const std::string u = UniquePrefix() + "-api";
  const std::string vs_url = "http://example.org/fhir/ValueSet/" + u + "-marital";
  const std::string sd_url = "http://example.org/fhir/StructureDefinition/" + u + "-patient";
  // a value set of one marital status, and a differential-only profile
  // binding to it (required), with birthDate and name.family required (a
  // path into HumanName that its snapshot must unroll)
  auto vs = c.Put("/fhir/ValueSet/" + u + "-marital",
                  R"({"resourceType":"ValueSet","id":")" + u + R"(-marital",)" + kText + R"(,"url":")" + vs_url +
                      R"(","status":"active","compose":{"include":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","concept":[{"code":"M"}]}]}})");
  REQUIRE(vs.status == 201);
  auto sd = c.Put(
      "/fhir/StructureDefinition/" + u + "-patient",
      R"({"resourceType":"StructureDefinition","id":")" + u + R"(-patient",)" + kText + R"(,"url":")" + sd_url +
          R"(","name":"ApiPatient","status":"active","kind":"resource","abstract":false,"type":"Patient",)"
          R"("baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",)"
          R"("differential":{"element":[{"id":"Patient.birthDate","path":"Patient.birthDate","min":1},)"
          R"({"id":"Patient.maritalStatus","path":"Patient.maritalStatus","binding":{"strength":"required","valueSet":")" +
          vs_url + R"("}},{"id":"Patient.name.family","path":"Patient.name.family","min":1}]}})");
  INFO(sd.body);
  REQUIRE(sd.status == 201);
  auto patient = [&](const std::string& id, const std::string& rest) {
    return R"({"resourceType":"Patient","id":")" + id + R"(","meta":{"profile":[")" + sd_url + R"("]},)" + kText +
           (rest.empty() ? "" : "," + rest) + "}";
  };
  const std::string bad = R"("name":[{"given":["A"]}],"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"S"}]})";
  auto v = c.Post("/fhir/Patient/$validate", patient(u, bad));
  REQUIRE(v.status == 200);
  INFO(v.body);
  CHECK(HasIssue(v, "error", "Patient.birthDate"));
  CHECK(HasIssue(v, "error", "Patient.name[0].family"));
  CHECK(HasIssue(v, "error", "Patient.maritalStatus"));
  const std::string good = R"("name":[{"family":"Rossi"}],"birthDate":"1980-01-01","maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M"}]})";
  CHECK_FALSE(HasErrors(c.Post("/fhir/Patient/$validate", patient(u, good))));

  // a server started later reads them from the database; writes follow the policy
  ServerProcess server(TestDsn(), {"--validation", "base,Patient=profiles"});
  HttpClient c2(server.port());
  auto put = c2.Put("/fhir/Patient/" + u, patient(u, bad));
  REQUIRE(put.status == 422);
  CHECK(HasIssue(put, "error", "Patient.birthDate"));
  CHECK(c2.Put("/fhir/Patient/" + u, patient(u, good)).status == 201);

  // deleted: the profile is unknown again (a warning for a declared profile)
  REQUIRE(c2.Send("DELETE", "/fhir/StructureDefinition/" + u + "-patient").status == 200);
  auto after = c2.Post("/fhir/Patient/$validate", patient(u, bad));
  CHECK_FALSE(HasErrors(after));
  CHECK(HasIssue(after, "warning", "Patient.meta.profile[0]"));
}

TEST_CASE("versions of a profile written through the API resolve by |version", "[validate]") {
  HttpClient c(SharedServer().port());
  const std::string u = UniquePrefix() + "-ver";
  const std::string url = "http://example.org/fhir/StructureDefinition/" + u + "-patient";
  auto sd = [&](const std::string& id, const std::string& version, const std::string& required) {
    return R"({"resourceType":"StructureDefinition",)" + (id.empty() ? "" : R"("id":")" + id + R"(",)") + kText +
           R"(,"url":")" + url +
           R"(","version":")" + version +
           R"(","name":"VersionedPatient","status":"active","kind":"resource","abstract":false,"type":"Patient",)"
           R"("baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",)"
           R"("differential":{"element":[{"id":"Patient.)" +
           required + R"(","path":"Patient.)" + required + R"(","min":1}]}})";
  };
  auto patient = [&](const std::string& profile) {
    return R"({"resourceType":"Patient","meta":{"profile":[")" + profile + R"("]},)" + kText + "}";
  };
  auto required = [&](const std::string& profile) {
    auto v = c.Post("/fhir/Patient/$validate", patient(profile));
    REQUIRE(v.status == 200);
    std::string out;
    for (const char* e : {"birthDate", "gender", "name"})
      if (HasIssue(v, "error", std::string("Patient.") + e)) out += std::string(out.empty() ? "" : ",") + e;
    return out;
  };
  // v1.0.0 (birthDate) first, then v2.0.0 (gender) created beside it
  REQUIRE(c.Put("/fhir/StructureDefinition/" + u + "-v1", sd(u + "-v1", "1.0.0", "birthDate")).status == 201);
  CHECK(required(url) == "birthDate");
  auto created = c.Post("/fhir/StructureDefinition", sd("", "2.0.0", "gender"));
  INFO(created.body);
  REQUIRE(created.status == 201);
  const std::string v2_id = created.Json()["id"].GetString();
  CHECK(required(url + "|1.0.0") == "birthDate");
  CHECK(required(url + "|2.0.0") == "gender");
  CHECK(required(url) == "gender");  // the latest

  // the $validate profile parameter takes a version too
  auto params = R"({"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient",)" +
                kText + R"(}},{"name":"profile","valueCanonical":")" + url + R"(|1.0.0"}]})";
  auto p = c.Post("/fhir/Patient/$validate", params);
  REQUIRE(p.status == 200);
  CHECK(HasIssue(p, "error", "Patient.birthDate"));
  CHECK_FALSE(HasIssue(p, "error", "Patient.gender"));

  // an unknown version: an unknown profile, named with its version
  auto unknown = c.Post("/fhir/Patient/$validate", patient(url + "|3.0.0"));
  REQUIRE(unknown.status == 200);
  CHECK_FALSE(HasErrors(unknown));
  CHECK(HasIssue(unknown, "warning", "Patient.meta.profile[0]"));
  CHECK(unknown.body.find(url + "|3.0.0") != std::string::npos);

  // an update with the same url and version replaces that version
  REQUIRE(c.Put("/fhir/StructureDefinition/" + v2_id, sd(v2_id, "2.0.0", "name")).status == 200);
  CHECK(required(url + "|2.0.0") == "name");
  CHECK(required(url) == "name");
  CHECK(required(url + "|1.0.0") == "birthDate");

  // v2 deleted: the bare URL finds v1 again
  REQUIRE(c.Send("DELETE", "/fhir/StructureDefinition/" + v2_id).status == 200);
  CHECK(required(url) == "birthDate");
  REQUIRE(c.Send("DELETE", "/fhir/StructureDefinition/" + u + "-v1").status == 200);
}

TEST_CASE("the write policy per type: off, base, declared profiles", "[validate]") {
  ServerProcess server(TestDsn(), {"--validation", "base,Patient=profiles,Observation=off"});
  HttpClient c(server.port());
  const std::string id = UniquePrefix() + "-pol";
  // Observation: off
  auto obs = c.Put("/fhir/Observation/" + id,
                   R"({"resourceType":"Observation","id":")" + id + R"(","status":"done","code":{"text":"x"}})");
  CHECK(obs.status == 201);
  // Patient: declared profiles checked
  auto bad = c.Put("/fhir/Patient/" + id, CfPatient(id, "RSSMRA85T10A562"));
  REQUIRE(bad.status == 422);
  CHECK(HasIssue(bad, "error", "Patient.identifier[0]"));
  auto good = c.Put("/fhir/Patient/" + id, CfPatient(id, "RSSMRA85T10A562S"));
  CHECK(good.status == 201);
  // Encounter: base
  auto enc = c.Put("/fhir/Encounter/" + id, R"({"resourceType":"Encounter","id":")" + id +
                                                R"(","status":"nope","class":{"code":"AMB"}})");
  CHECK(enc.status == 422);
}

TEST_CASE("eds validate prints the issues and exits 1 on errors", "[validate]") {
  const std::string dir = "/tmp/" + UniquePrefix() + "-validate";
  std::string mk = "mkdir -p " + dir;
  REQUIRE(std::system(mk.c_str()) == 0);
  {
    std::ofstream(dir + "/good.json") << R"({"resourceType":"Patient",)" + kText + R"(,"gender":"male"})";
    std::ofstream(dir + "/bad.json") << R"({"resourceType":"Patient",)" + kText + R"(,"gender":"nope"})";
  }
  auto run = [&](const std::string& file) {
    std::string cmd = EdsBinary() + " validate " + dir + "/" + file + " > " + dir + "/out.txt 2>&1";
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  CHECK(run("good.json") == 0);
  CHECK(run("bad.json") == 1);
  std::ifstream in(dir + "/out.txt");
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(out.find("Patient.gender") != std::string::npos);
  std::string rm = "rm -rf " + dir;
  CHECK(std::system(rm.c_str()) == 0);
}
