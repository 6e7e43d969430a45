// Facts of FSE documents for feeding records, and the keyed hash of fiscal
// codes.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <stdexcept>
#include <optional>
#include <string>
#include <vector>

#include "fhir/local_bases.hpp"
#include "server/config.hpp"
#include "server/feeding.hpp"
#include "storage/analytics_hash.hpp"

namespace eds::server {
namespace {

std::string Entry(const std::string& full_url, const std::string& resource) {
  return R"({"fullUrl":")" + full_url + R"(","resource":)" + resource + "}";
}

std::string Bundle(const std::string& meta, const std::vector<std::string>& entries) {
  std::string out = R"({"resourceType":"Bundle","type":"transaction")" + meta + R"(,"entry":[)";
  for (std::size_t i = 0; i < entries.size(); ++i) out += (i ? "," : "") + entries[i];
  return out + "]}";
}

const fhir::LocalBases kLocal({"https://eds.example.it/fhir"});

const std::string kPatient = Entry("urn:uuid:p", R"({"resourceType":"Patient","identifier":[
    {"system":"http://example.org/mrn","value":"42"},
    {"system":"http://hl7.it/sid/codiceFiscale","value":"RSSMRA80A01H501U"}]})");

TEST_CASE("feeding facts from a document Bundle", "[server]") {
  SECTION("the Composition's type, custodian and author Device, the DocumentReference's category") {
    auto f = FactsOfBundle(Bundle(
        R"(,"meta":{"source":"urn:app:gateway"})",
        {kPatient,
         Entry("urn:uuid:o", R"({"resourceType":"Organization","identifier":[{"value":"080105"}],"name":"AUSL"})"),
         Entry("urn:uuid:d", R"({"resourceType":"Device","identifier":[{"value":"app-7"}],"manufacturer":"Vendor",
               "version":[{"value":"1.0.3"}]})"),
         Entry("urn:uuid:c", R"({"resourceType":"Composition","type":{"coding":[{"system":"urn:other","code":"X"},
               {"system":"http://loinc.org","code":"57833-6"}]},"subject":{"reference":"urn:uuid:p"},
               "author":[{"reference":"urn:uuid:d"}],"custodian":{"reference":"urn:uuid:o"}})"),
         Entry("urn:uuid:r", R"({"resourceType":"DocumentReference","type":{"coding":[{"code":"Y"}]},
               "category":[{"coding":[{"code":"PRS"}]}],"subject":{"reference":"urn:uuid:p"}})")}),
        kLocal);
    CHECK(f.document_type == "57833-6");  // the LOINC coding, not the first one
    CHECK(f.tipo_documento_liv_alto == "PRS");
    CHECK(f.producer_org == "080105");
    CHECK(f.producer_app_id == "app-7");
    CHECK(f.producer_app_vendor == "Vendor");
    CHECK(f.producer_app_version == "1.0.3");
    CHECK(f.fiscal_code == "RSSMRA80A01H501U");
    CHECK(f.patient.empty());  // not stored yet
    CHECK(f.entries == 5);
  }
  SECTION("no Device: the source system; no custodian: the organisation of an author PractitionerRole") {
    auto f = FactsOfBundle(Bundle(
        R"(,"meta":{"source":"urn:app:gateway"})",
        {Entry("http://example.org/fhir/Organization/o1", R"({"resourceType":"Organization","name":"Ospedale"})"),
         Entry("urn:uuid:pr", R"({"resourceType":"PractitionerRole","organization":{"reference":"Organization/o1"}})"),
         Entry("urn:uuid:c", R"({"resourceType":"Composition","subject":{"reference":"Patient/123"},
               "author":[{"reference":"urn:uuid:pr"}]})"),
         Entry("urn:uuid:r", R"({"resourceType":"DocumentReference","type":{"coding":[{"system":"http://loinc.org",
               "code":"11488-4"}]}})")}),
        kLocal);
    CHECK(f.document_type == "11488-4");  // from the DocumentReference: the Composition has no type
    CHECK(f.producer_org == "Ospedale");
    CHECK(f.producer_app_id == "urn:app:gateway");
    CHECK(f.producer_app_vendor.empty());
    CHECK(f.patient == "Patient/123");  // a stored Patient the document names
    CHECK(f.fiscal_code.empty());
  }
  SECTION("the Bundle's Patient when the subject is not resolved") {
    auto f = FactsOfBundle(Bundle("", {kPatient, Entry("urn:uuid:r", R"({"resourceType":"DocumentReference"})")}),
                           kLocal);
    CHECK(f.fiscal_code == "RSSMRA80A01H501U");
  }
  SECTION("an absolute subject names a stored Patient only under the server's own bases") {
    auto local = FactsOfBundle(
        Bundle("", {Entry("urn:uuid:c", R"({"resourceType":"Composition",
                          "subject":{"reference":"https://EDS.example.it/fhir/Patient/123"}})")}),
        kLocal);
    CHECK(local.patient == "Patient/123");
    auto foreign = FactsOfBundle(
        Bundle("", {kPatient, Entry("urn:uuid:c", R"({"resourceType":"Composition",
                                     "subject":{"reference":"http://other.example/fhir/Patient/123"}})")}),
        kLocal);
    CHECK(foreign.patient.empty());                      // not the local Patient/123
    CHECK(foreign.fiscal_code == "RSSMRA80A01H501U");  // the Bundle's Patient instead
  }
  SECTION("what is not a Bundle gives nothing") {
    CHECK(FactsOfBundle("not json", kLocal).entries == 0);
    CHECK(FactsOfBundle(R"({"resourceType":"Patient"})", kLocal).document_type.empty());
  }
}

TEST_CASE("feeding facts from a stored document", "[server]") {
  std::map<std::string, std::string> stored = {
      {"Patient/7", R"({"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.840.1.113883.2.9.4.3.2",
                       "value":"VRDGPP70B02F205X"}]})"},
      {"Organization/9", R"({"resourceType":"Organization","identifier":[{"value":"190105"}]})"},
      {"Device/3", R"({"resourceType":"Device","deviceName":[{"name":"LIS","type":"model-name"}]})"}};
  int reads = 0;
  auto read = [&](const std::string& type, const std::string& id) -> std::optional<std::string> {
    ++reads;
    auto it = stored.find(type + "/" + id);
    if (it == stored.end()) return std::nullopt;
    return it->second;
  };
  auto f = FactsOfStored(
      R"({"resourceType":"Composition","type":{"coding":[{"system":"http://loinc.org","code":"11502-2"}]},
          "subject":{"reference":"Patient/7"},"author":[{"reference":"Practitioner/1"},{"reference":"Device/3"}],
          "custodian":{"reference":"Organization/9"}})",
      R"({"resourceType":"DocumentReference","category":[{"coding":[{"code":"REF"}]}],
          "subject":{"reference":"Patient/7"}})",
      read, kLocal);
  CHECK(f.document_type == "11502-2");
  CHECK(f.tipo_documento_liv_alto == "REF");
  CHECK(f.patient == "Patient/7");
  CHECK(f.fiscal_code == "VRDGPP70B02F205X");
  CHECK(f.producer_org == "190105");
  CHECK(f.producer_app_id == "LIS");
  CHECK(reads > 0);
  // an empty Composition: the DocumentReference alone
  auto g = FactsOfStored("", R"({"resourceType":"DocumentReference","subject":{"reference":"Patient/8"}})", read,
                         kLocal);
  CHECK(g.patient == "Patient/8");
  CHECK(g.fiscal_code.empty());
  // another server's Patient/7 is not read as the local one
  reads = 0;
  auto h = FactsOfStored(
      "", R"({"resourceType":"DocumentReference","subject":{"reference":"http://other.example/fhir/Patient/7"}})",
      read, kLocal);
  CHECK(h.patient.empty());
  CHECK(h.fiscal_code.empty());
  CHECK(reads == 0);
  auto i = FactsOfStored(
      "", R"({"resourceType":"DocumentReference","subject":{"reference":"https://eds.example.it/fhir/Patient/7"}})",
      read, kLocal);
  CHECK(i.patient == "Patient/7");
  CHECK(i.fiscal_code == "VRDGPP70B02F205X");
}

TEST_CASE("keyed hashes of fiscal codes", "[server]") {
  // RFC 4231, test case 2
  CHECK(storage::KeyedHash("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(storage::NormalFiscalCode(" rssmra80a01h501u\t") == "RSSMRA80A01H501U");
  CHECK(storage::KeyedHash("k", "RSSMRA80A01H501U") != storage::KeyedHash("k2", "RSSMRA80A01H501U"));
  CHECK(storage::RandomKey(32).size() == 32);
  CHECK(storage::RandomKey(32) != storage::RandomKey(32));
}

TEST_CASE("analytics flags: the hash key and the refresh interval of the monitoring views", "[server]") {
  auto defaults = ParseConfig({});
  CHECK(defaults.monitoring_refresh == std::chrono::seconds(300));
  auto c = ParseConfig({"--analytics-hash-key", "a-long-secret-key", "--monitoring-refresh-seconds", "0"});
  CHECK(c.analytics_hash_key == "a-long-secret-key");
  CHECK(c.monitoring_refresh == std::chrono::seconds(0));
  CHECK_THROWS_AS(ParseConfig({"--monitoring-refresh-seconds", "-1"}), std::invalid_argument);
}

}  // namespace
}  // namespace eds::server
