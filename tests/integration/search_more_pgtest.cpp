// Search over HTTP: keyset paging by parameter sorts in both directions
// while writes go on, composite parameters, :identifier and :of-type,
// searches across types (_type) and within a patient's compartment,
// _summary / _elements subsets, totals and _offset paging.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

namespace {

std::vector<std::string> Matches(const rapidjson::Document& bundle) {
  std::vector<std::string> out;
  if (!bundle.HasMember("entry")) return out;
  for (const auto& e : bundle["entry"].GetArray())
    if (std::string(e["search"]["mode"].GetString()) == "match")
      out.push_back(std::string(e["resource"]["resourceType"].GetString()) + "/" + e["resource"]["id"].GetString());
  return out;
}

std::string LinkOf(const rapidjson::Document& d, const std::string& rel) {
  for (const auto& l : d["link"].GetArray())
    if (rel == l["relation"].GetString()) {
      std::string url = l["url"].GetString();
      return url.substr(url.find("/fhir"));
    }
  return {};
}

std::string Tag(const std::string& t) {
  return R"("meta":{"tag":[{"system":"http://eds.test/tags","code":")" + t + R"("}]})";
}

std::string Create(HttpClient& c, const std::string& type, const std::string& body) {
  auto r = c.Post("/fhir/" + type, body);
  INFO(r.body);
  REQUIRE(r.status == 201);
  return type + "/" + r.Json()["id"].GetString();
}

std::vector<std::string> Search(HttpClient& c, const std::string& target) {
  auto r = c.Get(target);
  INFO(target << " -> " << r.body.substr(0, 400));
  REQUIRE(r.status == 200);
  return Matches(r.Json());
}

std::set<std::string> Set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST_CASE("paging by a parameter sort with next and previous links while writes go on", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string t = UniquePrefix() + "-psort";
  // dates chosen so that ties (two on 2021-05-01) and a missing date (last) occur
  const std::vector<std::string> dates = {"2020-01-01", "2021-05-01", "2021-05-01", "2019-07-07",
                                          "2022-02-02", "",           "2018-03-03", "2023-09-09"};
  std::vector<std::pair<std::string, std::string>> made;  // date, id
  for (const auto& d : dates) {
    std::string body = R"({"resourceType":"Observation",)" + Tag(t) +
                       R"(,"status":"final","code":{"text":"x"})" +
                       (d.empty() ? "" : R"(,"effectiveDateTime":")" + d + "\"") + "}";
    made.emplace_back(d, Create(c, "Observation", body));
  }
  // expected order for _sort=-date: newest first, equal dates by id, missing date last
  auto expected = made;
  std::sort(expected.begin(), expected.end(), [](const auto& a, const auto& b) {
    if (a.first.empty() != b.first.empty()) return b.first.empty();
    if (a.first != b.first) return a.first > b.first;
    return a.second > b.second;  // ties: id in the direction of the first key
  });
  std::vector<std::string> expected_ids;
  for (const auto& [d, id] : expected) expected_ids.push_back(id);

  std::vector<std::string> forward;
  std::string next = "/fhir/Observation?_tag=" + t + "&_sort=-date&_count=3";
  std::string last_page;
  int pages = 0;
  while (!next.empty() && pages < 10) {
    auto r = c.Get(next);
    REQUIRE(r.status == 200);
    auto d = r.Json();
    auto ids = Matches(d);
    forward.insert(forward.end(), ids.begin(), ids.end());
    if (pages == 0) {
      // writes between pages: one sorting before the cursor, one after it
      Create(c, "Observation", R"({"resourceType":"Observation",)" + Tag(t + "-x") +
                                   R"(,"status":"final","code":{"text":"x"},"effectiveDateTime":"2024-01-01"})");
    }
    CHECK((pages == 0) == LinkOf(d, "previous").empty());
    last_page = next;
    next = LinkOf(d, "next");
    ++pages;
  }
  CHECK(forward == expected_ids);
  CHECK(pages == 3);

  // back from the last page to the first with previous links
  std::vector<std::string> backward;
  std::string prev = last_page;
  pages = 0;
  while (!prev.empty() && pages < 10) {
    auto d = c.Get(prev).Json();
    auto ids = Matches(d);
    backward.insert(backward.begin(), ids.begin(), ids.end());
    prev = LinkOf(d, "previous");
    ++pages;
  }
  CHECK(backward == expected_ids);
  CHECK(c.Get("/fhir/Observation?_tag=" + t + "&_sort=-date&_cursor=n.zz").status == 400);
  // a cursor of another sort does not fit
  CHECK(c.Get("/fhir/Observation?_tag=" + t + "&_sort=-date,code&_cursor=n.v31.v32").status == 400);
}

TEST_CASE("composite parameters match within one component", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string t = UniquePrefix() + "-comp";
  auto bp = [&](int systolic, int diastolic) {
    return Create(c, "Observation",
                  R"({"resourceType":"Observation",)" + Tag(t) +
                      R"(,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
      "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
                    "valueQuantity":{"value":)" + std::to_string(systolic) + R"(,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
                   {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},
                    "valueQuantity":{"value":)" + std::to_string(diastolic) + R"(,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]})");
  };
  const std::string high = bp(150, 80), normal = bp(118, 76), both = bp(170, 105);
  const std::string base = "/fhir/Observation?_tag=" + t + "&component-code-value-quantity=";
  // diastolic > 100: only `both`; `high` has 150 > 100 but in its systolic component
  CHECK(Set(Search(c, base + "http://loinc.org%7C8462-4%24gt100")) == std::set<std::string>{both});
  CHECK(Set(Search(c, base + "http://loinc.org%7C8480-6%24gt140")) == std::set<std::string>{high, both});
  CHECK(Set(Search(c, base + "http://loinc.org%7C8480-6%24lt120,http://loinc.org%7C8462-4%24ge105")) ==
        std::set<std::string>{normal, both});
  CHECK(Search(c, base + "http://loinc.org%7C8480-6%24gt999").empty());
  // combo: the Observation's own code and value, or a component's
  CHECK(Set(Search(c, "/fhir/Observation?_tag=" + t + "&combo-code-value-quantity=http://loinc.org%7C8462-4%24lt80")) ==
        std::set<std::string>{normal});
  CHECK(c.Get(base + "http://loinc.org%7C8480-6").status == 400);  // a component missing
}

TEST_CASE("parameters that repeat other parameters' rows are searched through those rows", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string t = UniquePrefix() + "-shared";
  const std::string pat = Create(c, "Patient", R"({"resourceType":"Patient",)" + Tag(t) + R"(,"name":[{"family":"Rossi"}]})");
  const std::string grp = Create(c, "Group", R"({"resourceType":"Group",)" + Tag(t) + R"(,"type":"person","actual":true})");
  const std::string pid = pat.substr(8), gid = grp.substr(6);
  auto obs = [&](const std::string& subject, const std::string& code, int value) {
    return Create(c, "Observation",
                  R"({"resourceType":"Observation",)" + Tag(t) + R"(,"status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":")" + code + R"("}]},
      "subject":{"reference":")" + subject + R"("},"valueQuantity":{"value":)" + std::to_string(value) +
                      R"(,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}})");
  };
  const std::string o_pat = obs(pat, "8480-6", 120), o_grp = obs(grp, "8480-6", 140);
  const std::string ext = "http://other.example/fhir/Patient/x" + pid;  // another server's patient
  const std::string o_ext = obs(ext, "8462-4", 80);
  const std::string cond = Create(c, "Condition", R"({"resourceType":"Condition",)" + Tag(t) +
                                                     R"(,"code":{"text":"x"},"subject":{"reference":")" + pat + R"("}})");

  // the rows: subject only, and no composite rows for the Observation's own code and value
  auto rows = Sql(TestDsn(),
                  "SELECT param FROM search_reference WHERE res_type = 'Observation' AND res_id = $1 ORDER BY param",
                  {o_pat.substr(12)});
  REQUIRE(rows.size() == 1);
  CHECK(rows[0][0] == "subject");
  CHECK(Sql(TestDsn(),
            "SELECT count(*) FROM search_token WHERE res_type = 'Observation' AND res_id = $1 AND param LIKE '%$%'",
            {o_pat.substr(12)})[0][0] == "0");

  const std::string tag = "&_tag=" + t;
  CHECK(Set(Search(c, "/fhir/Observation?patient=" + pat + tag)) == std::set<std::string>{o_pat});
  CHECK(Set(Search(c, "/fhir/Observation?patient=" + pid + tag)) == std::set<std::string>{o_pat});
  CHECK(Set(Search(c, "/fhir/Observation?patient=" + ext + tag)) ==
        std::set<std::string>{o_ext});
  CHECK(Search(c, "/fhir/Observation?patient=" + grp + tag).empty());  // a Group subject is no patient
  CHECK(Set(Search(c, "/fhir/Observation?subject=" + gid + tag)) == std::set<std::string>{o_grp});
  CHECK(Set(Search(c, "/fhir/Observation?patient:missing=true" + tag)) == std::set<std::string>{o_grp});
  CHECK(Set(Search(c, "/fhir/Observation?patient:missing=false" + tag)) == std::set<std::string>{o_pat, o_ext});
  CHECK(Set(Search(c, "/fhir/Condition?patient=" + pat + tag)) == std::set<std::string>{cond});
  // chains, reverse chains, includes, compartments
  CHECK(Set(Search(c, "/fhir/Observation?patient.family=rossi" + tag)) == std::set<std::string>{o_pat});
  CHECK(Set(Search(c, "/fhir/Patient?_has:Observation:patient:code=8480-6" + tag)) == std::set<std::string>{pat});
  CHECK(Search(c, "/fhir/Patient?_has:Observation:patient:code=8462-4" + tag).empty());  // external reference
  {
    auto included = [&](const std::string& target) {
      auto r = c.Get(target);
      INFO(target << " -> " << r.body.substr(0, 400));
      REQUIRE(r.status == 200);
      const auto d = r.Json();
      std::set<std::string> out;
      for (const auto& e : d["entry"].GetArray())
        if (std::string(e["search"]["mode"].GetString()) == "include")
          out.insert(std::string(e["resource"]["resourceType"].GetString()) + "/" + e["resource"]["id"].GetString());
      return out;
    };
    CHECK(included("/fhir/Observation?_id=" + o_pat.substr(12) + "," + o_grp.substr(12) +
                   "&_include=Observation:patient") == std::set<std::string>{pat});
    CHECK(included("/fhir/Patient?_id=" + pid + "&_revinclude=Observation:patient&_revinclude=Condition:patient") ==
          std::set<std::string>{o_pat, cond});
  }
  CHECK(Set(Search(c, "/fhir/Patient/" + pid + "/Condition")) == std::set<std::string>{cond});  // through `patient`
  CHECK(Set(Search(c, "/fhir/Patient/" + pid + "/Observation")) == std::set<std::string>{o_pat});
  CHECK(Set(Search(c, "/fhir?_type=Observation,Condition&patient=" + pat + tag)) ==
        std::set<std::string>{o_pat, cond});

  // composites of the Observation itself read code and value-quantity
  const std::string cvq = "/fhir/Observation?_tag=" + t + "&code-value-quantity=";
  CHECK(Set(Search(c, cvq + "http://loinc.org%7C8480-6%24gt130")) == std::set<std::string>{o_grp});
  CHECK(Set(Search(c, cvq + "8480-6%24lt130,8462-4%24le80")) == std::set<std::string>{o_pat, o_ext});
  CHECK(Search(c, cvq + "8462-4%24gt80").empty());
  CHECK(Set(Search(c, "/fhir/Observation?_tag=" + t + "&combo-code-value-quantity=8480-6%24ge120")) ==
        std::set<std::string>{o_pat, o_grp});
  CHECK(Set(Search(c, "/fhir/Observation?_tag=" + t + "&combo-value-quantity=gt100")) ==
        std::set<std::string>{o_pat, o_grp});
  CHECK(Set(Search(c, "/fhir/Observation?_tag=" + t + "&combo-code=8462-4")) == std::set<std::string>{o_ext});
  CHECK(Set(Search(c, "/fhir/Observation?_tag=" + t + "&code-value-quantity:missing=false")) ==
        std::set<std::string>{o_pat, o_grp, o_ext});
  CHECK(Set(Search(c, "/fhir/Observation?_tag=" + t + "&_sort=patient")).size() == 3);

  // code-value-string keeps rows of its own: value-string also holds a
  // valueCodeableConcept's text, which the composite's component does not
  auto coded = [&](const std::string& value) {
    return Create(c, "Observation",
                  R"({"resourceType":"Observation",)" + Tag(t) +
                      R"(,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"5778-6"}]},)" + value +
                      "}");
  };
  const std::string o_string = coded(R"("valueString":"amber")");
  coded(R"("valueCodeableConcept":{"text":"amber"})");
  CHECK(Set(Search(c, "/fhir/Observation?_tag=" + t + "&code-value-string=5778-6%24amber")) ==
        std::set<std::string>{o_string});
  CHECK(Search(c, "/fhir/Observation?_tag=" + t + "&value-string=amber").size() == 2);
}

TEST_CASE(":identifier on references and :of-type on identifiers", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string u = UniquePrefix();
  const std::string cf = u + "RSSMRA80A01H501U";
  const std::string by_identifier = Create(
      c, "Observation",
      R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"identifier":{"system":"http://hl7.it/sid/codiceFiscale","value":")" +
          cf + R"("}}})");
  Create(c, "Observation",
         R"({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"identifier":{"system":"http://other","value":")" +
             cf + R"("}}})");
  CHECK(Search(c, "/fhir/Observation?subject:identifier=http://hl7.it/sid/codiceFiscale%7C" + cf) ==
        std::vector<std::string>{by_identifier});
  CHECK(Search(c, "/fhir/Observation?subject:identifier=" + cf).size() == 2);

  const std::string mr = Create(
      c, "Patient",
      R"({"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:oid:1.2.3","value":")" +
          u + R"(-1"},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"SS"}]},"value":")" + u +
          R"(-2"}]})");
  const std::string of_type = "/fhir/Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203%7C";
  CHECK(Search(c, of_type + "MR%7C" + u + "-1") == std::vector<std::string>{mr});
  CHECK(Search(c, of_type + "MR%7C" + u + "-2").empty());  // that value has type SS
  CHECK(Search(c, of_type + "SS%7C" + u + "-2") == std::vector<std::string>{mr});
  CHECK(c.Get(of_type + "MR").status == 400);
}

TEST_CASE("searching across types and within a patient's compartment", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string t = UniquePrefix() + "-sys";
  const std::string p1 = Create(c, "Patient", R"({"resourceType":"Patient",)" + Tag(t) + R"(,"name":[{"family":"Bianchi"}]})");
  const std::string p2 = Create(c, "Patient", R"({"resourceType":"Patient",)" + Tag(t) + R"(,"name":[{"family":"Verdi"}]})");
  auto obs = [&](const std::string& subject, const std::string& performer) {
    return Create(c, "Observation",
                  R"({"resourceType":"Observation",)" + Tag(t) + R"(,"status":"final","code":{"text":"x"},"subject":{"reference":")" +
                      subject + R"("})" + (performer.empty() ? "" : R"(,"performer":[{"reference":")" + performer + R"("}])") + "}");
  };
  const std::string o1 = obs(p1, ""), o2 = obs(p2, ""), o3 = obs(p2, p1);
  const std::string e1 = Create(c, "Encounter", R"({"resourceType":"Encounter",)" + Tag(t) +
                                                    R"(,"status":"finished","class":{"code":"AMB"},"subject":{"reference":")" +
                                                    p1 + R"("}})");
  const std::string practitioner =
      Create(c, "Practitioner", R"({"resourceType":"Practitioner",)" + Tag(t) + R"(,"name":[{"family":"Bianchi"}]})");

  CHECK(Set(Search(c, "/fhir?_type=Patient,Observation&_tag=" + t)) == std::set<std::string>{p1, p2, o1, o2, o3});
  CHECK(Set(Search(c, "/fhir?_tag=" + t)) == std::set<std::string>{p1, p2, o1, o2, o3, e1, practitioner});
  CHECK(Set(Search(c, "/fhir?_type=Patient,Practitioner&name=bianchi&_tag=" + t)) ==
        std::set<std::string>{p1, practitioner});
  // POST [base]/_search takes the same parameters as a form
  auto form = c.Post("/fhir/_search", "_type=Encounter&_tag=" + t, {{"Content-Type", "application/x-www-form-urlencoded"}});
  REQUIRE(form.status == 200);
  CHECK(Matches(form.Json()) == std::vector<std::string>{e1});
  // a parameter not shared by every type is not applied silently
  auto mixed = c.Get("/fhir?_type=Patient,Observation&birthdate=2000&_tag=" + t);
  REQUIRE(mixed.status == 200);
  CHECK(mixed.body.find("\"outcome\"") != std::string::npos);
  CHECK(c.Send("GET", "/fhir?_type=Patient,Observation&birthdate=2000", {{"Prefer", "handling=strict"}}).status == 400);

  const std::string id1 = p1.substr(p1.find('/') + 1);
  // Observation is in the compartment through subject or performer
  CHECK(Set(Search(c, "/fhir/Patient/" + id1 + "/Observation")) == std::set<std::string>{o1, o3});
  CHECK(Set(Search(c, "/fhir/Patient/" + id1 + "/Observation?_id=" + o3.substr(12))) == std::set<std::string>{o3});
  CHECK(Set(Search(c, "/fhir/Patient/" + id1 + "/*")) == std::set<std::string>{p1, o1, o3, e1});
  CHECK(Set(Search(c, "/fhir/Patient/" + id1 + "/*?_type=Encounter")) == std::set<std::string>{e1});
  CHECK(c.Get("/fhir/Patient/" + id1 + "/Practitioner").status == 400);  // not in the Patient compartment
  CHECK(c.Get("/fhir/Observation/" + o1.substr(12) + "/Patient").status == 404);  // not a compartment
  CHECK(c.Get("/fhir/Patient/" + id1 + "/Nope").status == 404);
}

TEST_CASE("a version-specific reference value matches the references to that version", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string p = Create(c, "Patient", R"({"resourceType":"Patient","name":[{"family":"Verdi"}]})");
  const std::string id = p.substr(8);
  REQUIRE(c.Put("/fhir/" + p, R"({"resourceType":"Patient","id":")" + id + R"(","name":[{"family":"Verdi"}],)"
                                  R"("gender":"female"})")
              .status == 200);
  auto obs = [&](const std::string& subject) {
    return Create(c, "Observation", R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)"
                                    R"("subject":{"reference":")" + subject + R"("}})");
  };
  const std::string v1 = obs(p + "/_history/1"), v2 = obs(p + "/_history/2"), any = obs(p);

  CHECK(Set(Search(c, "/fhir/Observation?subject=" + p)) == std::set<std::string>{v1, v2, any});
  CHECK(Set(Search(c, "/fhir/Observation?patient=" + id)) == std::set<std::string>{v1, v2, any});
  CHECK(Set(Search(c, "/fhir/Observation?subject=" + p + "/_history/1")) == std::set<std::string>{v1});
  CHECK(Set(Search(c, "/fhir/Observation?patient=" + id + "/_history/2")) == std::set<std::string>{v2});
  CHECK(Set(Search(c, "/fhir/Observation?subject:Patient=" + id + "/_history/2")) == std::set<std::string>{v2});
  CHECK(Search(c, "/fhir/Observation?subject=" + p + "/_history/3").empty());
  CHECK(Set(Search(c, "/fhir/Observation?subject=" + p + "/_history/1," + p + "/_history/2")) ==
        std::set<std::string>{v1, v2});
}

TEST_CASE("absolute references to other servers never match a local resource", "[search]") {
  const std::string dsn = CreateDatabase("eds_local_bases_" + UniquePrefix());
  ServerProcess server(dsn, {"--migrate", "--public-url", "http://eds.test/fhir", "--local-bases",
                             "https://alias.test/fhir/"});
  HttpClient c(server.port());
  const std::string own = "http://127.0.0.1:" + std::to_string(server.port()) + "/fhir";
  const std::string p = Create(c, "Patient", R"({"resourceType":"Patient","name":[{"family":"Rossi"}]})");
  const std::string id = p.substr(8);
  auto obs = [&](const std::string& subject) {
    return Create(c, "Observation", R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)"
                                    R"("subject":{"reference":")" + subject + R"("}})");
  };
  const std::string relative = obs(p);
  const std::string public_url = obs("http://eds.test/fhir/" + p);
  const std::string alias = obs("https://ALIAS.test/fhir/" + p);
  const std::string other = obs("http://other.example/fhir/" + p);
  // an absolute URL under a base the server was not told about is another server's
  const std::string request_base = obs(own + "/" + p);
  const std::set<std::string> local{relative, public_url, alias};

  CHECK(Set(Search(c, "/fhir/Observation?patient=" + id)) == local);
  CHECK(Set(Search(c, "/fhir/Observation?subject=" + p)) == local);
  CHECK(Set(Search(c, "/fhir/Observation?subject:Patient=" + id)) == local);
  CHECK(Set(Search(c, "/fhir/Observation?subject.name=rossi")) == local);
  CHECK(Set(Search(c, "/fhir/Patient/" + id + "/Observation")) == local);
  CHECK(Set(Search(c, "/fhir/Patient?_has:Observation:subject:status=final")) == std::set<std::string>{p});
  // another server's patient is matched by its URL only
  CHECK(Set(Search(c, "/fhir/Observation?subject=http://other.example/fhir/" + p)) ==
        std::set<std::string>{other});
  CHECK(Set(Search(c, "/fhir/Observation?patient=http://other.example/fhir/" + p)) ==
        std::set<std::string>{other});
  // a URL under one of the server's bases is the local resource
  CHECK(Set(Search(c, "/fhir/Observation?subject=http://eds.test/fhir/" + p)) == local);
  CHECK(Set(Search(c, "/fhir/Observation?subject=https://alias.test/fhir/" + p)) == local);
  // conditional criteria too: the If-None-Exist below finds the Observation
  // that refers to the Patient relatively, and nothing is created
  auto conditional = c.Send("POST", "/fhir/Observation",
                            {{"Content-Type", "application/fhir+json"},
                             {"If-None-Exist", "_id=" + relative.substr(12) + "&subject=http://eds.test/fhir/" + p}},
                            R"({"resourceType":"Observation","status":"final","code":{"text":"x"}})");
  CHECK(conditional.status == 200);
  // with a public URL set, the address a request came to is not one of them
  CHECK(Set(Search(c, "/fhir/Observation?patient=" + own + "/" + p)) == std::set<std::string>{request_base});
  {
    // without one, it is (the base the server's links use): the local resource,
    // and rows holding that very URL too
    ServerProcess plain(dsn);
    HttpClient pc(plain.port());
    const std::string base = "http://127.0.0.1:" + std::to_string(plain.port()) + "/fhir";
    const std::string at_base = Create(pc, "Observation",
                                       R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)"
                                       R"("subject":{"reference":")" + base + "/" + p + R"("}})");
    CHECK(Set(Search(pc, "/fhir/Observation?patient=" + base + "/" + p)) ==
          std::set<std::string>{relative, public_url, alias, at_base});
    // written without configured bases, its row names no local patient
    CHECK(Set(Search(pc, "/fhir/Observation?patient=" + id)) == std::set<std::string>{relative, public_url, alias});
  }
  // _include follows local references only
  auto inc = c.Get("/fhir/Observation?_id=" + other.substr(12) + "," + alias.substr(12) +
                   "&_include=Observation:subject");
  REQUIRE(inc.status == 200);
  auto d = inc.Json();
  std::set<std::string> included;
  for (const auto& e : d["entry"].GetArray())
    if (std::string(e["search"]["mode"].GetString()) == "include")
      included.insert(std::string(e["resource"]["resourceType"].GetString()) + "/" + e["resource"]["id"].GetString());
  CHECK(included == std::set<std::string>{p});
  CHECK(Sql(dsn, "SELECT count(*) FROM search_reference WHERE res_id = $1 AND target_id = ''", {other.substr(12)})[0][0] ==
        "1");
}

TEST_CASE("_summary, _elements, totals and _offset paging", "[search]") {
  HttpClient c(SharedServer().port());
  const std::string t = UniquePrefix() + "-sum";
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(Create(c, "Patient", R"({"resourceType":"Patient",)" + Tag(t) +
                                           R"(,"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">p</div>"},
      "active":true,"name":[{"family":"Neri"}],"birthDate":"1980-01-0)" + std::to_string(i + 1) +
                                           R"(","maritalStatus":{"text":"single"}})"));
  auto keys = [](const rapidjson::Value& resource) {
    std::set<std::string> out;
    for (const auto& m : resource.GetObject()) out.insert(m.name.GetString());
    return out;
  };
  auto subsetted = [](const rapidjson::Value& resource) {
    for (const auto& tag : resource["meta"]["tag"].GetArray())
      if (std::string(tag["code"].GetString()) == "SUBSETTED") return true;
    return false;
  };
  const std::string q = "/fhir/Patient?_tag=" + t;
  {
    auto d = c.Get(q + "&_summary=true").Json();
    const auto& r = d["entry"][0]["resource"];
    // maritalStatus and text are not summary elements of Patient
    CHECK(keys(r) == std::set<std::string>{"resourceType", "id", "meta", "active", "name", "birthDate"});
    CHECK(subsetted(r));
  }
  {
    auto d = c.Get(q + "&_elements=birthDate").Json();
    CHECK(keys(d["entry"][0]["resource"]) == std::set<std::string>{"resourceType", "id", "meta", "birthDate"});
  }
  {
    auto d = c.Get(q + "&_summary=text").Json();
    CHECK(keys(d["entry"][0]["resource"]) == std::set<std::string>{"resourceType", "id", "meta", "text"});
    auto data = c.Get(q + "&_summary=data").Json();
    CHECK(keys(data["entry"][0]["resource"]).count("text") == 0);
    CHECK(keys(data["entry"][0]["resource"]).count("maritalStatus") == 1);
  }
  {
    auto d = c.Get(q + "&_summary=count").Json();
    CHECK(d["total"].GetInt() == 5);
    CHECK_FALSE((d.HasMember("entry") && d["entry"].Size() > 0));
  }
  {
    auto none = c.Get(q + "&_count=2").Json();
    CHECK_FALSE(none.HasMember("total"));  // totals are opt-in
    auto accurate = c.Get(q + "&_count=2&_total=accurate").Json();
    CHECK(accurate["total"].GetInt() == 5);
    auto estimate = c.Get(q + "&_count=2&_total=estimate").Json();
    CHECK(estimate["total"].IsInt());
    auto whole = c.Get(q + "&_count=10&_total=estimate").Json();
    CHECK(whole["total"].GetInt() == 5);  // a complete first page knows its total
  }
  {
    std::vector<std::string> all = Search(c, q + "&_sort=birthdate");
    REQUIRE(all == ids);
    auto d = c.Get(q + "&_sort=birthdate&_count=2&_offset=2").Json();
    CHECK(Matches(d) == std::vector<std::string>{ids[2], ids[3]});
    std::string next = LinkOf(d, "next"), prev = LinkOf(d, "previous");
    CHECK(next.find("_offset=4") != std::string::npos);
    CHECK(next.find("_cursor") == std::string::npos);
    CHECK(prev.find("_offset=0") != std::string::npos);
    CHECK(Search(c, next) == std::vector<std::string>{ids[4]});
    CHECK(Search(c, prev) == std::vector<std::string>{ids[0], ids[1]});
  }
}
