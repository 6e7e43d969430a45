// Unit tests of the in-memory ResourceStore used by the API tests, so that
// its semantics match the documented ResourceStore interface.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <set>

#include "fake_resource_store.hpp"
#include "fhir/json.hpp"

namespace eds::testing {
namespace {

using fhir::ErrorKind;
using fhir::Resource;
using fhir::WriteMethod;

Resource Parse(std::string_view json) {
  auto r = Resource::Parse(json);
  REQUIRE(r.ok());
  return std::move(*r);
}

TEST_CASE("FakeResourceStore create, read and vread", "[server]") {
  FakeResourceStore store;
  store.SetTime(1700000000123);
  auto res = Parse(R"({"resourceType":"Patient","id":"ignored","active":true})");
  auto w = store.Create(res);
  REQUIRE(w.ok());
  CHECK(w->created);
  CHECK(w->changed);
  const auto& rec = w->record;
  CHECK(rec.type == "Patient");
  CHECK(rec.id != "ignored");
  CHECK(rec.version == 1);
  CHECK(rec.method == WriteMethod::kCreate);
  CHECK(rec.last_updated_ms == 1700000000123);
  CHECK(rec.content ==
        R"({"resourceType":"Patient","id":")" + rec.id +
            R"(","meta":{"versionId":"1","lastUpdated":"2023-11-14T22:13:20.123Z"},"active":true})");
  CHECK(res.id() == rec.id);

  auto other = Parse(R"({"resourceType":"Patient"})");
  auto w2 = store.Create(other);
  REQUIRE(w2.ok());
  CHECK(w2->record.id != rec.id);

  auto read = store.Read("Patient", rec.id);
  REQUIRE(read.ok());
  CHECK(read->content == rec.content);
  CHECK(store.ReadVersion("Patient", rec.id, 1)->content == rec.content);
  CHECK(store.ReadVersion("Patient", rec.id, 2).error().kind == ErrorKind::kNotFound);
  CHECK(store.ReadVersion("Patient", rec.id, 0).error().kind == ErrorKind::kNotFound);
  CHECK(store.Read("Patient", "nope").error().kind == ErrorKind::kNotFound);
  CHECK(store.Read("Observation", rec.id).error().kind == ErrorKind::kNotFound);
  CHECK(store.version_count() == 2);
}

TEST_CASE("FakeResourceStore update semantics", "[server]") {
  FakeResourceStore store;
  store.SetTime(1000);
  auto v1 = Parse(R"({"resourceType":"Patient","id":"p1","active":true})");
  auto w = store.Update(v1, "p1", std::nullopt);
  REQUIRE(w.ok());
  CHECK(w->created);
  CHECK(w->record.version == 1);
  CHECK(w->record.method == WriteMethod::kUpdate);

  SECTION("If-Match on a missing resource fails") {
    auto x = Parse(R"({"resourceType":"Patient","id":"p2"})");
    CHECK(store.Update(x, "p2", 1).error().kind == ErrorKind::kPreconditionFailed);
  }
  SECTION("changed content writes a new version") {
    store.SetTime(2000);
    auto v2 = Parse(R"({"resourceType":"Patient","id":"p1","active":false})");
    auto u = store.Update(v2, "p1", 1);
    REQUIRE(u.ok());
    CHECK_FALSE(u->created);
    CHECK(u->changed);
    CHECK(u->record.version == 2);
    CHECK(u->record.last_updated_ms == 2000);
    CHECK_THAT(u->record.content, Catch::Contains(R"("versionId":"2")"));
    auto stale = Parse(R"({"resourceType":"Patient","id":"p1"})");
    CHECK(store.Update(stale, "p1", 1).error().kind == ErrorKind::kPreconditionFailed);
  }
  SECTION("unchanged content writes nothing") {
    store.SetTime(3000);
    auto same = Parse(
        R"({"active":true,"resourceType":"Patient","id":"p1","meta":{"versionId":"9","lastUpdated":"2020-01-01T00:00:00Z"}})");
    auto u = store.Update(same, "p1", std::nullopt);
    REQUIRE(u.ok());
    CHECK_FALSE(u->changed);
    CHECK_FALSE(u->created);
    CHECK(u->record.version == 1);
    CHECK(u->record.last_updated_ms == 1000);
    CHECK(store.version_count() == 1);
  }
  SECTION("a new meta tag is a change") {
    auto tagged = Parse(R"({"resourceType":"Patient","id":"p1","active":true,"meta":{"tag":[{"code":"x"}]}})");
    auto u = store.Update(tagged, "p1", std::nullopt);
    REQUIRE(u.ok());
    CHECK(u->changed);
    CHECK(u->record.version == 2);
  }
  SECTION("time never goes backwards within a resource") {
    store.SetTime(500);
    auto v2 = Parse(R"({"resourceType":"Patient","id":"p1","active":false})");
    CHECK(store.Update(v2, "p1", std::nullopt)->record.last_updated_ms == 1000);
  }
}

TEST_CASE("FakeResourceStore delete semantics", "[server]") {
  FakeResourceStore store;
  auto v1 = Parse(R"({"resourceType":"Patient","id":"p1"})");
  REQUIRE(store.Update(v1, "p1", std::nullopt).ok());

  CHECK(store.Delete("Patient", "never", std::nullopt).error().kind == ErrorKind::kNotFound);
  CHECK(store.Delete("Patient", "p1", 7).error().kind == ErrorKind::kPreconditionFailed);

  auto d = store.Delete("Patient", "p1", 1);
  REQUIRE(d.ok());
  CHECK(d->changed);
  CHECK_FALSE(d->created);
  CHECK(d->record.deleted);
  CHECK(d->record.version == 2);
  CHECK(d->record.method == WriteMethod::kDelete);
  CHECK(d->record.content.empty());

  auto read = store.Read("Patient", "p1");
  REQUIRE(read.ok());
  CHECK(read->deleted);
  CHECK(store.ReadVersion("Patient", "p1", 2)->deleted);

  auto again = store.Delete("Patient", "p1", std::nullopt);
  REQUIRE(again.ok());
  CHECK_FALSE(again->changed);
  CHECK(again->record.version == 2);
  CHECK(store.version_count() == 2);

  SECTION("updating a deleted resource brings it back") {
    auto back = Parse(R"({"resourceType":"Patient","id":"p1"})");
    auto u = store.Update(back, "p1", std::nullopt);
    REQUIRE(u.ok());
    CHECK(u->created);
    CHECK(u->changed);
    CHECK(u->record.version == 3);
    CHECK_FALSE(store.Read("Patient", "p1")->deleted);
  }
}

TEST_CASE("FakeResourceStore history filters and pages", "[server]") {
  FakeResourceStore store;
  int64_t now = 1000;
  store.SetClock([&now] { return now; });
  auto put = [&](const char* type, const char* id, int n) {
    auto r = Parse(fmt::format(R"({{"resourceType":"{}","id":"{}","n":{}}})", type, id, n));
    REQUIRE(store.Update(r, id, std::nullopt).ok());
    now += 1000;
  };
  put("Patient", "a", 1);      // seq 1, t=1000
  put("Patient", "b", 1);      // seq 2, t=2000
  put("Patient", "a", 2);      // seq 3, t=3000
  put("Observation", "a", 1);  // seq 4, t=4000
  put("Patient", "a", 3);      // seq 5, t=5000

  auto ids = [](const storage::HistoryPage& p) {
    std::vector<std::string> out;
    for (const auto& e : p.entries) out.push_back(e.type + "/" + e.id + "/" + std::to_string(e.version));
    return out;
  };
  storage::HistoryQuery q;
  CHECK(ids(*store.History(q)) == std::vector<std::string>{"Patient/a/3", "Observation/a/1", "Patient/a/2",
                                                           "Patient/b/1", "Patient/a/1"});
  q.type = "Patient";
  CHECK(ids(*store.History(q)) ==
        std::vector<std::string>{"Patient/a/3", "Patient/a/2", "Patient/b/1", "Patient/a/1"});
  q.id = "a";
  CHECK(ids(*store.History(q)) == std::vector<std::string>{"Patient/a/3", "Patient/a/2", "Patient/a/1"});
  q.since_ms = 3000;
  CHECK(ids(*store.History(q)) == std::vector<std::string>{"Patient/a/3", "Patient/a/2"});

  SECTION("paging by count and cursor") {
    storage::HistoryQuery p;
    p.count = 2;
    auto first = store.History(p);
    CHECK(ids(*first) == std::vector<std::string>{"Patient/a/3", "Observation/a/1"});
    REQUIRE(first->next_before_seq == 4);
    p.before_seq = 4;
    auto second = store.History(p);
    CHECK(ids(*second) == std::vector<std::string>{"Patient/a/2", "Patient/b/1"});
    REQUIRE(second->next_before_seq == 2);
    p.before_seq = 2;
    auto third = store.History(p);
    CHECK(ids(*third) == std::vector<std::string>{"Patient/a/1"});
    CHECK_FALSE(third->next_before_seq.has_value());
    p.count = 0;
    CHECK(store.History(p)->entries.empty());
    CHECK_FALSE(store.History(p)->next_before_seq.has_value());
  }
  SECTION("versions current at a time") {
    storage::HistoryQuery p;
    p.type = "Patient";
    p.at = fhir::InstantRange{2500, 2600};
    CHECK(ids(*store.History(p)) == std::vector<std::string>{"Patient/b/1", "Patient/a/1"});
    p.at = fhir::InstantRange{3000, 3001};
    CHECK(ids(*store.History(p)) == std::vector<std::string>{"Patient/a/2", "Patient/b/1"});
  }
}

}  // namespace
}  // namespace eds::testing
