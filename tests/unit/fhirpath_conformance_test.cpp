// The HL7 FHIRPath R4 conformance suite (../shared/testdata/fhirpath, located
// through $EDS_FHIRPATH_TESTS): every case runs; the failures we accept are
// listed by name with the reason, and the list must stay exact.
#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fhir/fhirpath.hpp"
#include "fhir/fhirpath/values.hpp"
#include "fhir/json.hpp"
#include "test_support.hpp"

namespace eds::fhir::fhirpath {
namespace {

namespace fs = std::filesystem;

// Cases we fail on purpose or cannot pass yet, by name, with the reason.
const std::map<std::string, std::string> kAcceptedFailures = {
    {"testFHIRPathAsFunction21",
     "as() filters a collection of several items instead of failing: the R4 invariants (dom-3: "
     "descendants().as(canonical)) and search parameters apply it to repeating elements"},
};

struct Expected {
  std::string type;  // empty when the suite gives none
  std::string value;
};

struct Case {
  std::string name;
  std::string expression;
  std::string input;  // file name, empty for none
  bool invalid = false;
  bool strict = false;
  bool check_ordered = false;
  bool predicate = false;
  bool ordered = true;
  std::vector<Expected> outputs;
};

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Member(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return it->value.GetString();
}

bool Flag(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsBool() && it->value.GetBool();
}

std::vector<Case> LoadCases(const fs::path& file) {
  rapidjson::Document doc;
  std::string text = ReadText(file);
  doc.Parse(text.data(), text.size());
  REQUIRE_FALSE(doc.HasParseError());
  REQUIRE(doc.IsArray());
  std::vector<Case> cases;
  for (const auto& t : doc.GetArray()) {
    Case c;
    c.name = Member(t, "name");
    c.expression = Member(t, "expression");
    c.input = Member(t, "inputfile");
    c.invalid = t.HasMember("invalid");
    c.strict = Member(t, "mode") == "strict";
    c.check_ordered = Flag(t, "checkOrderedFunctions");
    c.predicate = Flag(t, "predicate");
    auto ordered = t.FindMember("ordered");
    c.ordered = ordered == t.MemberEnd() || !ordered->value.IsBool() || ordered->value.GetBool();
    for (const auto& o : t["outputs"].GetArray()) c.outputs.push_back({Member(o, "type"), Member(o, "value")});
    cases.push_back(std::move(c));
  }
  return cases;
}

// The suite's name for the type of an item: FHIR types by name, System types
// in lower case (boolean, integer, ...), Quantity as is.
std::string SuiteType(const Item& item) {
  if (item.type != nullptr) return std::string(item.TypeName());
  switch (item.kind) {
    case ValueKind::kBoolean: return "boolean";
    case ValueKind::kInteger: return "integer";
    case ValueKind::kDecimal: return "decimal";
    case ValueKind::kString: return "string";
    case ValueKind::kDate: return "date";
    case ValueKind::kDateTime: return "dateTime";
    case ValueKind::kTime: return "time";
    case ValueKind::kQuantity: return "Quantity";
    default: return "?";
  }
}

// Decimals match by value and precision ("-0.0" is "0.0").
bool SameDecimal(std::string_view a, std::string_view b) {
  auto x = Decimal::Parse(a), y = Decimal::Parse(b);
  return x && y && x->Compare(*y) == 0 && x->scale() == y->scale();
}

bool ValueMatches(const Item& item, const Expected& e) {
  switch (item.kind) {
    case ValueKind::kDate:
    case ValueKind::kDateTime:
      return "@" + std::string(item.text) == e.value;
    case ValueKind::kTime:
      return "@T" + std::string(item.text) == e.value;
    case ValueKind::kDecimal:
      return SameDecimal(item.text, e.value);
    case ValueKind::kQuantity: {
      auto space = e.value.find(' ');
      if (space == std::string::npos) return false;
      std::string unit = e.value.substr(space + 1);
      std::string ours(item.unit);
      if (!item.boolean) ours = "'" + ours + "'";
      return SameDecimal(item.text, e.value.substr(0, space)) && unit == ours;
    }
    default:
      return item.ToText() == e.value;
  }
}

bool ItemMatches(const Item& item, const Expected& e) {
  if (!e.type.empty() && SuiteType(item) != e.type) return false;
  return ValueMatches(item, e);
}

std::string Describe(const Collection& c) {
  std::string s = "[";
  for (const auto& i : c) {
    if (s.size() > 1) s += ", ";
    s += SuiteType(i) + ":" + i.ToText();
  }
  return s + "]";
}

std::string Describe(const std::vector<Expected>& v) {
  std::string s = "[";
  for (const auto& e : v) {
    if (s.size() > 1) s += ", ";
    s += (e.type.empty() ? "?" : e.type) + ":" + e.value;
  }
  return s + "]";
}

// Empty when the case passes, else why not.
std::string Run(const Engine& engine, const Case& c, const fs::path& inputs,
                std::map<std::string, std::unique_ptr<Resource>>& cache) {
  auto expr = Expression::Parse(c.expression);
  if (!expr.ok()) return c.invalid ? "" : "parse error: " + expr.error().message;
  EvalOptions options;
  options.strict = c.strict;
  options.check_ordered_functions = c.check_ordered;
  Result<Collection> result = Error{"not run"};
  if (c.input.empty()) {
    result = engine.Evaluate(*expr, options);
  } else {
    auto& resource = cache[c.input];
    if (!resource) {
      auto parsed = Resource::Parse(ReadText(inputs / c.input));
      if (!parsed.ok()) return "input " + c.input + " does not parse";
      resource = std::make_unique<Resource>(std::move(*parsed));
    }
    result = engine.Evaluate(*expr, *resource, options);
  }
  if (!result.ok()) return c.invalid ? "" : "evaluation error: " + result.error().message;
  if (c.invalid) return "expected an error, got " + Describe(*result);
  std::vector<Item> items(result->begin(), result->end());
  Item predicate_item;
  if (c.predicate) {
    predicate_item.kind = ValueKind::kBoolean;
    predicate_item.boolean = !items.empty();
    items = {predicate_item};
  }
  std::string mismatch = "expected " + Describe(c.outputs) + ", got " + Describe(*result);
  if (items.size() != c.outputs.size()) return mismatch;
  if (c.ordered) {
    for (std::size_t i = 0; i < items.size(); ++i)
      if (!ItemMatches(items[i], c.outputs[i])) return mismatch;
    return "";
  }
  std::vector<bool> used(items.size(), false);
  for (const auto& e : c.outputs) {
    bool found = false;
    for (std::size_t i = 0; i < items.size() && !found; ++i)
      if (!used[i] && ItemMatches(items[i], e)) used[i] = found = true;
    if (!found) return mismatch;
  }
  return "";
}

TEST_CASE("FHIRPath conformance suite (HL7 R4)", "[fhirpath]") {
  const char* env = std::getenv("EDS_FHIRPATH_TESTS");
  fs::path dir = env != nullptr ? env : "";
  if (dir.empty() || !fs::is_regular_file(dir / "tests-fhir-r4.json")) {
    std::cout << "SKIPPED: fhirpath conformance suite (../shared/testdata/fhirpath absent)" << std::endl;
    return;
  }
  Engine engine(testing::R4Definitions());
  auto cases = LoadCases(dir / "tests-fhir-r4.json");
  std::map<std::string, std::unique_ptr<Resource>> cache;
  std::size_t passed = 0, invalid_expected = 0;
  std::set<std::string> failed_names;
  std::vector<std::string> unexpected;
  for (const auto& c : cases) {
    if (c.invalid) ++invalid_expected;
    std::string why = Run(engine, c, dir / "input", cache);
    if (why.empty()) {
      ++passed;
      continue;
    }
    failed_names.insert(c.name);
    if (kAcceptedFailures.count(c.name) == 0) unexpected.push_back(c.name + " `" + c.expression + "`: " + why);
  }
  WARN("FHIRPath R4 suite: " << passed << " of " << cases.size() << " cases pass (" << invalid_expected
                             << " expect an error); " << failed_names.size() << " failing names accepted");
  CHECK(cases.size() == 935);
  for (const auto& u : unexpected) {
    INFO(u);
    CHECK(false);
  }
  for (const auto& [name, reason] : kAcceptedFailures) {
    INFO("accepted failure now passes, remove it from the list: " << name << " (" << reason << ")");
    CHECK(failed_names.count(name) == 1);
  }
  CHECK(passed * 100 >= cases.size() * 95);
}

}  // namespace
}  // namespace eds::fhir::fhirpath
