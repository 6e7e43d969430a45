// FHIR package tarballs: the tar reader over hand-made headers, and .tgz
// files made with tar(1) loaded by the conformance store and the
// terminology, corrupt ones reported and skipped.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "fhir/conformance.hpp"
#include "fhir/definitions.hpp"
#include "fhir/json.hpp"
#include "fhir/package_archive.hpp"
#include "fhir/terminology.hpp"
#include "fhir/validator.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using eds::fhir::PackageFile;
using eds::fhir::Severity;

namespace {

// One ustar header and its data, padded to whole blocks.
std::string TarEntry(const std::string& prefix, const std::string& name, const std::string& data, char type = '0') {
  std::string h(512, '\0');
  h.replace(0, name.size(), name);
  h.replace(100, 7, "0000644");
  h.replace(108, 7, "0000000");
  h.replace(116, 7, "0000000");
  char size[13];
  std::snprintf(size, sizeof size, "%011o", static_cast<unsigned>(data.size()));
  h.replace(124, 11, size);
  h.replace(136, 11, "00000000000");
  h[156] = type;
  h.replace(257, 6, std::string("ustar\0", 6));
  h.replace(263, 2, "00");
  h.replace(345, prefix.size(), prefix);
  h.replace(148, 8, "        ");
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  char chk[8];
  std::snprintf(chk, sizeof chk, "%06o", sum);
  h.replace(148, 7, std::string(chk, 6) + '\0');
  std::string padded = data;
  padded.resize((data.size() + 511) / 512 * 512, '\0');
  return h + padded;
}

const std::string kEnd(1024, '\0');

void Write(const fs::path& f, const std::string& text) {
  fs::create_directories(f.parent_path());
  std::ofstream(f, std::ios::binary) << text;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("eds-package-test-" + std::to_string(::getpid()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const std::string kUrl = "http://example.org/fhir/StructureDefinition/tgz-patient";

}  // namespace

TEST_CASE("package archive: tar entries with a ustar prefix, directories skipped", "[fhir][package]") {
  std::string tar = TarEntry("", "package/", "", '5') + TarEntry("package", "package.json", R"({"name":"x"})") +
                    TarEntry("package", "StructureDefinition-a.json", std::string(700, 'a')) + kEnd;
  std::vector<PackageFile> files;
  std::string problem;
  REQUIRE(eds::fhir::ReadTar(tar, files, problem));
  REQUIRE(files.size() == 2);
  CHECK(files[0].name == "package/package.json");
  CHECK(files[1].name == "package/StructureDefinition-a.json");
  CHECK(files[1].text == std::string(700, 'a'));

  SECTION("a bad checksum") {
    tar[600] ^= 1;  // in the second header
    files.clear();
    CHECK_FALSE(eds::fhir::ReadTar(tar, files, problem));
    CHECK(problem.find("checksum") != std::string::npos);
  }
  SECTION("data cut short") {
    files.clear();
    CHECK_FALSE(eds::fhir::ReadTar(tar.substr(0, 512 * 4), files, problem));
    CHECK(problem.find("truncated") != std::string::npos);
  }
  SECTION("no end-of-archive blocks") {
    files.clear();
    CHECK_FALSE(eds::fhir::ReadTar(tar.substr(0, tar.size() - kEnd.size()), files, problem));
    CHECK(problem.find("end-of-archive") != std::string::npos);
  }
}

TEST_CASE("package archive: a .tgz in the profiles directory is loaded; corrupt ones are reported and skipped",
          "[fhir][package]") {
  TempDir tmp;
  const fs::path pkg = tmp.path / "src" / "package";
  Write(pkg / "package.json", R"({"name":"example.tgz.test","version":"0.1.0","fhirVersions":["4.0.1"]})");
  Write(pkg / "StructureDefinition-tgz-patient.json",
        R"({"resourceType":"StructureDefinition","url":")" + kUrl +
            R"(","name":"TgzPatient","status":"draft","kind":"resource","abstract":false,"type":"Patient",)"
            R"("baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",)"
            R"("differential":{"element":[{"id":"Patient.birthDate","path":"Patient.birthDate","min":1},)"
            R"({"id":"Patient.gender","path":"Patient.gender","binding":{"strength":"required",)"
            R"("valueSet":"http://example.org/fhir/ValueSet/tgz-gender"}}]}})");
  Write(pkg / "ValueSet-tgz-gender.json",
        R"({"resourceType":"ValueSet","url":"http://example.org/fhir/ValueSet/tgz-gender","status":"active",)"
        R"("compose":{"include":[{"system":"http://hl7.org/fhir/administrative-gender","concept":[{"code":"other"}]}]}})");
  // not a resource of the package: examples are left out
  Write(pkg / "example" / "StructureDefinition-example.json",
        R"({"resourceType":"StructureDefinition","url":"http://example.org/fhir/StructureDefinition/not-loaded",)"
        R"("name":"X","status":"draft","kind":"resource","abstract":false,"type":"Patient",)"
        R"("baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",)"
        R"("differential":{"element":[{"id":"Patient.active","path":"Patient.active","min":1}]}})");
  const fs::path profiles = tmp.path / "profiles";
  fs::create_directories(profiles);
  const std::string cmd = "tar -czf '" + (profiles / "example.tgz").string() + "' -C '" + (tmp.path / "src").string() +
                          "' package";
  REQUIRE(std::system(cmd.c_str()) == 0);
  // a truncated copy and a file that is no gzip at all
  {
    std::ifstream in(profiles / "example.tgz", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(bytes.size() > 100);
    Write(profiles / "truncated.tgz", bytes.substr(0, bytes.size() / 2));
  }
  Write(profiles / "junk.tgz", "this is not a package");

  auto defs = eds::testing::R4Definitions();
  auto terminology = eds::fhir::Terminology::Load({eds::testing::DefinitionsDir(), profiles.string()});
  auto store = eds::fhir::ConformanceStore::Load(*defs, {profiles.string()});
  REQUIRE(store->Find(kUrl) != nullptr);
  CHECK(store->Find("http://example.org/fhir/StructureDefinition/not-loaded") == nullptr);
  bool truncated = false, junk = false;
  for (const auto& n : store->notes()) {
    UNSCOPED_INFO(n);
    truncated = truncated || (n.find("truncated.tgz") != std::string::npos && n.find("truncated") != std::string::npos);
    junk = junk || (n.find("junk.tgz") != std::string::npos && n.find("not gzip") != std::string::npos);
  }
  CHECK(truncated);
  CHECK(junk);
  CHECK(store->notes().size() == 2);

  eds::fhir::Validator validator(defs, terminology, store);
  eds::fhir::ValidationOptions options;
  options.declared_profiles = true;
  const std::string meta = R"({"resourceType":"Patient","meta":{"profile":[")" + kUrl + R"("]},)";
  auto bad = eds::fhir::Resource::Parse(meta + R"("gender":"male"})");
  REQUIRE(bad.ok());
  auto outcome = validator.Validate(*bad, options);
  bool birth = false, gender = false;
  for (const auto& i : outcome.issues()) {
    UNSCOPED_INFO(i.expression << ": " << i.diagnostics);
    birth = birth || (i.severity == Severity::kError && i.expression == "Patient.birthDate" && i.code == "required");
    gender = gender || (i.severity == Severity::kError && i.expression == "Patient.gender" && i.code == "code-invalid");
  }
  CHECK(birth);
  CHECK(gender);
  auto good = eds::fhir::Resource::Parse(meta + R"("gender":"other","birthDate":"1980-01-01"})");
  REQUIRE(good.ok());
  outcome = validator.Validate(*good, options);
  for (const auto& i : outcome.issues()) UNSCOPED_INFO(i.expression << ": " << i.diagnostics);
  CHECK_FALSE(outcome.HasErrors());
}
