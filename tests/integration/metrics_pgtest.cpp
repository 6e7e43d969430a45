// Operator endpoints over HTTP: /metrics parses as the Prometheus text
// format and counts requests by interaction and status; /healthz; /readyz
// reports a schema the server does not match.
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "support.hpp"

using namespace eds::testing;

namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// A strict reading of the text exposition format (version 0.0.4): HELP and
// TYPE comments, then samples `name{label="value",...} number`; fails the
// test on any other line.
std::vector<Sample> ParseExposition(const std::string& text, std::map<std::string, std::string>& types) {
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$)");
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (-?[0-9.eE+-]+|\+Inf|NaN)$)");
  static const std::regex kLabel(R"(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)\"(,|$))");
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    INFO("line: " << line);
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) continue;
    if (std::regex_match(line, m, kType)) {
      types[m[1]] = m[2];
      continue;
    }
    REQUIRE(std::regex_match(line, m, kSample));
    Sample s;
    s.name = m[1];
    s.value = m[4] == "+Inf" ? 1e300 : std::stod(m[4]);
    std::string labels = m[3];
    for (std::sregex_iterator it(labels.begin(), labels.end(), kLabel), end; it != end; ++it)
      s.labels[(*it)[1]] = (*it)[2];
    // every sample belongs to a declared metric family
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (!types.count(family) && family.size() > std::string(suffix).size() &&
          family.compare(family.size() - std::string(suffix).size(), std::string::npos, suffix) == 0)
        family.resize(family.size() - std::string(suffix).size());
    CHECK(types.count(family) == 1);
    out.push_back(std::move(s));
  }
  return out;
}

double Value(const std::vector<Sample>& samples, const std::string& name, const std::map<std::string, std::string>& labels) {
  for (const auto& s : samples)
    if (s.name == name && s.labels == labels) return s.value;
  return -1;
}

}  // namespace

TEST_CASE("metrics, health and readiness endpoints", "[e2e]") {
  const std::string dsn = CreateDatabase("eds_metrics_" + UniquePrefix());
  ServerProcess server(dsn, {"--migrate"});
  HttpClient c(server.port());
  for (int i = 0; i < 3; ++i) REQUIRE(c.Get("/fhir/Patient/nope").status == 404);
  REQUIRE(c.Post("/fhir/Patient", R"({"resourceType":"Patient"})").status == 201);

  auto r = c.Get("/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.Header("content-type").find("text/plain") == 0);
  std::map<std::string, std::string> types;
  auto samples = ParseExposition(r.body, types);
  CHECK(types["eds_http_requests_total"] == "counter");
  CHECK(types["eds_http_request_duration_seconds"] == "histogram");
  CHECK(types["eds_db_pool_in_use"] == "gauge");
  CHECK(Value(samples, "eds_http_requests_total", {{"interaction", "read"}, {"status", "404"}}) == 3);
  CHECK(Value(samples, "eds_http_requests_total", {{"interaction", "create"}, {"status", "201"}}) == 1);
  // histogram buckets never decrease and end at the count
  double previous = 0;
  for (const auto& s : samples)
    if (s.name == "eds_http_request_duration_seconds_bucket" && s.labels.at("interaction") == "read") {
      CHECK(s.value >= previous);
      previous = s.value;
    }
  CHECK(previous == Value(samples, "eds_http_request_duration_seconds_count", {{"interaction", "read"}}));
  CHECK(Value(samples, "eds_process_resident_memory_bytes", {}) > 0);
  CHECK(Value(samples, "eds_db_pool_connections", {}) > 0);

  auto health = c.Get("/healthz");
  CHECK(health.status == 200);
  CHECK(c.Get("/readyz").status == 200);
  CHECK(c.Send("POST", "/metrics").status == 405);
  // a schema this server does not match: not ready
  Sql(dsn, "INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')");
  auto not_ready = c.Get("/readyz");
  CHECK(not_ready.status == 503);
  CHECK(not_ready.body.find("999") != std::string::npos);
  Sql(dsn, "DELETE FROM schema_migrations WHERE version = 999");
  CHECK(c.Get("/readyz").status == 200);
}
