// Every expression of every R4 SearchParameter in the definitions package
// parses, and evaluates without error over the package's examples of each
// base type the parameter names.
#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fhir/definitions.hpp"
#include "fhir/fhirpath.hpp"
#include "fhir/json.hpp"
#include "test_support.hpp"

namespace eds::fhir::fhirpath {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kExamplesPerType = 3;

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// expression -> base types, from one SearchParameter resource
void AddParameter(const rapidjson::Value& sp, std::map<std::string, std::set<std::string>>& out) {
  auto expr = sp.FindMember("expression");
  if (expr == sp.MemberEnd() || !expr->value.IsString()) return;
  auto& bases = out[expr->value.GetString()];
  auto base = sp.FindMember("base");
  if (base != sp.MemberEnd() && base->value.IsArray())
    for (const auto& b : base->value.GetArray())
      if (b.IsString()) bases.insert(b.GetString());
}

std::map<std::string, std::set<std::string>> LoadParameters(const fs::path& dir) {
  std::map<std::string, std::set<std::string>> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    bool single = name.rfind("SearchParameter-", 0) == 0;
    bool bundle = name.rfind("Bundle-searchParams", 0) == 0;
    if ((!single && !bundle) || entry.path().extension() != ".json") continue;
    rapidjson::Document doc;
    std::string text = ReadText(entry.path());
    doc.Parse(text.data(), text.size());
    if (doc.HasParseError() || !doc.IsObject()) continue;
    if (single) {
      AddParameter(doc, out);
      continue;
    }
    auto entries = doc.FindMember("entry");
    if (entries == doc.MemberEnd() || !entries->value.IsArray()) continue;
    for (const auto& e : entries->value.GetArray()) {
      auto r = e.FindMember("resource");
      if (r != e.MemberEnd() && r->value.IsObject() && r->value.HasMember("resourceType") &&
          std::string_view(r->value["resourceType"].GetString()) == "SearchParameter")
        AddParameter(r->value, out);
    }
  }
  return out;
}

// Up to kExamplesPerType example resources per type; example files are
// named Type-id.json.
std::map<std::string, std::vector<Resource>> LoadExamples(const fs::path& dir, const Definitions& defs) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  std::map<std::string, std::vector<Resource>> out;
  for (const auto& f : files) {
    const std::string name = f.filename().string();
    auto dash = name.find('-');
    if (dash == std::string::npos) continue;
    std::string type = name.substr(0, dash);
    if (!defs.IsResourceType(type) || type == "SearchParameter" || type == "StructureDefinition") continue;
    auto& list = out[type];
    if (list.size() >= kExamplesPerType) continue;
    auto r = Resource::Parse(ReadText(f));
    if (r.ok() && r->type() == type) list.push_back(std::move(*r));
  }
  return out;
}

TEST_CASE("FHIRPath: every R4 SearchParameter expression parses and evaluates over the examples", "[fhirpath]") {
  auto defs = testing::R4Definitions();
  const fs::path dir = testing::DefinitionsDir();
  auto parameters = LoadParameters(dir);
  REQUIRE(parameters.size() > 1000);
  auto examples = LoadExamples(dir, *defs);
  Engine engine(defs);

  std::size_t parsed = 0, evaluations = 0, non_empty = 0, failures = 0;
  std::set<std::string> bases_covered;
  for (const auto& [text, bases] : parameters) {
    auto expr = Expression::Parse(text);
    if (!expr.ok()) {
      INFO(text << "\n  at " << expr.error().position << ": " << expr.error().message);
      CHECK(expr.ok());
      continue;
    }
    ++parsed;
    for (const auto& base : bases) {
      auto it = examples.find(base);
      if (it == examples.end()) continue;
      bases_covered.insert(base);
      for (const auto& resource : it->second) {
        auto result = engine.Evaluate(*expr, resource);
        ++evaluations;
        if (!result.ok()) {
          ++failures;
          INFO(text << "\n  over " << base << "/" << resource.id().value_or("?") << ": "
                    << result.error().message);
          CHECK(result.ok());
          continue;
        }
        if (!result->empty()) ++non_empty;
        for (const auto& item : *result) {
          INFO(text << " gave an item without a type name");
          CHECK_FALSE(item.TypeName().empty());
        }
      }
    }
  }
  WARN("SearchParameter expressions: " << parsed << " of " << parameters.size() << " parse; " << evaluations
                                       << " evaluations over examples of " << bases_covered.size()
                                       << " base types, " << failures << " errors, " << non_empty
                                       << " with results");
  CHECK(parsed == parameters.size());
  CHECK(failures == 0);
  CHECK(bases_covered.size() > 100);
}

}  // namespace
}  // namespace eds::fhir::fhirpath
