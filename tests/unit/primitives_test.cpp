// Unit tests of fhir/primitives: id and type-name syntax, dateTime ranges and
// the instant and HTTP date formats.
#include <catch2/catch.hpp>

#include <cstdio>
#include <ctime>
#include <set>
#include <string>
#include <vector>

#include "fhir/primitives.hpp"

namespace eds::fhir {
namespace {

constexpr int64_t kMinute = 60'000;
constexpr int64_t kDay = 86'400'000;

TEST_CASE("IsValidId", "[fhir]") {
  CHECK(IsValidId("a"));
  CHECK(IsValidId("Patient-1.2"));
  CHECK(IsValidId("0123456789abcdefABCDEF-."));
  CHECK(IsValidId(std::string(64, 'x')));
  CHECK_FALSE(IsValidId(std::string(65, 'x')));
  CHECK_FALSE(IsValidId(""));
  for (const char* bad : {"a b", "a_b", "a/b", "a%20", "a:b", "é", "a\nb", "a$", "a+b", "#1"})
    CHECK_FALSE(IsValidId(bad));
}

TEST_CASE("IsTypeNameSyntax", "[fhir]") {
  CHECK(IsTypeNameSyntax("Patient"));
  CHECK(IsTypeNameSyntax("P"));
  CHECK(IsTypeNameSyntax("MedicationRequest"));
  CHECK(IsTypeNameSyntax("Foo"));  // syntax only; whether it exists is up to Definitions
  CHECK_FALSE(IsTypeNameSyntax(""));
  CHECK_FALSE(IsTypeNameSyntax("patient"));
  CHECK_FALSE(IsTypeNameSyntax("_history"));
  CHECK_FALSE(IsTypeNameSyntax("Patient1"));
  CHECK_FALSE(IsTypeNameSyntax("Patient-x"));
  CHECK_FALSE(IsTypeNameSyntax("$meta"));
  CHECK(IsTypeNameSyntax("A" + std::string(63, 'a')));
  CHECK_FALSE(IsTypeNameSyntax("A" + std::string(64, 'a')));
}

void CheckRange(const char* text, int64_t low, int64_t high) {
  INFO(text);
  auto r = ParseDateTimeRange(text);
  REQUIRE(r.has_value());
  CHECK(r->low_ms == low);
  CHECK(r->high_ms == high);
}

TEST_CASE("ParseDateTimeRange covers the precision of its input", "[fhir]") {
  SECTION("year") {
    CheckRange("2024", 1704067200000, 1735689600000);
    CheckRange("1970", 0, 365 * kDay);
  }
  SECTION("month, including February") {
    CheckRange("2024-02", 1706745600000, 1709251200000);  // leap year: 29 days
    CHECK(1709251200000 - 1706745600000 == 29 * kDay);
    CheckRange("2023-02", 1675209600000, 1677628800000);  // 28 days
    CheckRange("2024-12", 1733011200000, 1735689600000);  // into the next year
  }
  SECTION("day") {
    CheckRange("2024-05-06", 1714953600000, 1715040000000);
    CheckRange("2024-02-29", 1709164800000, 1709251200000);
    CheckRange("2000-02-29", 951782400000, 951868800000);
  }
  SECTION("minute and second") {
    CheckRange("2024-05-06T10:11Z", 1714990260000, 1714990260000 + kMinute);
    CheckRange("2024-05-06T10:11", 1714990260000, 1714990260000 + kMinute);  // no zone: UTC
    CheckRange("2024-05-06T10:11:12Z", 1714990272000, 1714990273000);
    CheckRange("2024-05-06T10:11:12", 1714990272000, 1714990273000);
  }
  SECTION("milliseconds") {
    CheckRange("2024-05-06T10:11:12.345Z", 1714990272345, 1714990272346);
    CheckRange("2024-05-06T10:11:12.3Z", 1714990272300, 1714990272301);
    CheckRange("2024-05-06T10:11:12.123456Z", 1714990272123, 1714990272124);
    CheckRange("1970-01-01T00:00:00.000Z", 0, 1);
  }
  SECTION("zones") {
    CheckRange("2024-05-06T10:11:12+02:00", 1714983072000, 1714983073000);
    CheckRange("2024-05-06T10:11:12.345+02:00", 1714983072345, 1714983072346);
    CheckRange("2024-05-06T10:11:12-05:30", 1714990272000 + 330 * kMinute,
               1714990273000 + 330 * kMinute);
    CheckRange("2024-05-06T10:11:12+00:00", 1714990272000, 1714990273000);
    CheckRange("2024-05-06T10:11+02:00", 1714983060000, 1714983060000 + kMinute);
    CheckRange("1970-01-01T01:00:00+01:00", 0, 1000);
  }
}

TEST_CASE("ParseDateTimeRange rejects malformed input", "[fhir]") {
  for (const char* bad :
       {"", "24", "202", "20245", "0000", "abcd", "2024-", "2024-1", "2024-00", "2024-13", "2024/05",
        "2024-05-", "2024-05-1", "2024-02-30", "2023-02-29", "2024-04-31", "2024-05-00", "2024-05-32",
        "2024-05-06x", "2024-05-06T", "2024-05-06T10", "2024-05-06T10:1", "2024-05-06T24:00",
        "2024-05-06T10:60", "2024-05-06T10:11:61", "2024-05-06T10:11:1", "2024-05-06T10:11:12.",
        "2024-05-06T10:11:12.Z", "2024-05-06T10:11:12Zjunk", "2024-05-06T10:11:12 ", "2024junk",
        "2024-05junk", "2024-05-06 10:11:12", "2024-05-06T10:11:12+0200", "2024-05-06T10:11:12+02",
        "2024-05-06T10:11:12+2:00", "2024-05-06T10:11:12+02:0", "2024-05-06T10:11:12+15:00",
        "2024-05-06T10:11:12+02:60", "2024-05-06T10:11:12X", "2024-05-06T10:11:12z",
        "2024-05-06T10:11:12+02:00Z"}) {
    INFO("input: '" << bad << "'");
    CHECK_FALSE(ParseDateTimeRange(bad).has_value());
  }
}

TEST_CASE("FormatInstant", "[fhir]") {
  CHECK(FormatInstant(0) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatInstant(1700000000123) == "2023-11-14T22:13:20.123Z");
  CHECK(FormatInstant(951868799000) == "2000-02-29T23:59:59.000Z");
  CHECK(FormatInstant(1714990272005) == "2024-05-06T10:11:12.005Z");
  CHECK(FormatInstant(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(FormatInstant(-62135596800000) == "0001-01-01T00:00:00.000Z");
  CHECK(FormatInstant(253402300799999) == "9999-12-31T23:59:59.999Z");
  SECTION("the same as gmtime over four centuries, leap days and negative instants included") {
    // a step of a prime number of seconds visits every day, hour and month
    for (int64_t ms = -2208988800000; ms < 10413792000000; ms += 7'919'017'333) {
      std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
      std::tm tm{};
      gmtime_r(&secs, &tm);
      char expected[96];
      std::snprintf(expected, sizeof expected, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    static_cast<int>(((ms % 1000) + 1000) % 1000));
      INFO(ms);
      CHECK(FormatInstant(ms) == expected);
    }
  }
  SECTION("round trip through ParseDateTimeRange") {
    for (int64_t ms : {int64_t{0}, int64_t{1700000000123}, int64_t{951868799000}, int64_t{4102444799999}}) {
      auto r = ParseDateTimeRange(FormatInstant(ms));
      REQUIRE(r.has_value());
      CHECK(r->low_ms == ms);
      CHECK(r->high_ms == ms + 1);
    }
  }
}

TEST_CASE("FormatHttpDate", "[fhir]") {
  CHECK(FormatHttpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(FormatHttpDate(1700000000123) == "Tue, 14 Nov 2023 22:13:20 GMT");
  CHECK(FormatHttpDate(951868799999) == "Tue, 29 Feb 2000 23:59:59 GMT");
  CHECK(FormatHttpDate(1714990272345) == "Mon, 06 May 2024 10:11:12 GMT");
}

TEST_CASE("DecodeBase64", "[fhir]") {
  CHECK(DecodeBase64("") == std::string());
  CHECK(DecodeBase64("TWFu") == std::string("Man"));
  CHECK(DecodeBase64("TWE=") == std::string("Ma"));
  CHECK(DecodeBase64("TWE") == std::string("Ma"));
  CHECK(DecodeBase64("TQ==") == std::string("M"));
  CHECK(DecodeBase64("W3sib3AiOiJyZW1vdmUiLCJwYXRoIjoiL2FjdGl2ZSJ9XQ==") ==
        std::string(R"([{"op":"remove","path":"/active"}])"));
  CHECK(DecodeBase64("TW\nFu") == std::string("Man"));
  CHECK_FALSE(DecodeBase64("T"));
  CHECK_FALSE(DecodeBase64("TW*u"));
  // IsBase64 says the same without decoding
  for (const char* text : {"", "TWFu", "TWE=", "TWE", "TQ==", "TW\nFu", " T W F u ", "TWFuTWE"}) {
    CHECK(IsBase64(text));
    CHECK(DecodeBase64(text));
  }
  for (const char* text : {"T", "TW*u", "TQ=x", "TQ===", "TWFuT", "TW=u", "T===", "é"})
    CHECK((!IsBase64(text) && !DecodeBase64(text)));
  CHECK_FALSE(DecodeBase64("TQ==TQ=="));
  CHECK_FALSE(DecodeBase64("TWFu="));
}

TEST_CASE("NowMs is the current time", "[fhir]") {
  const int64_t now = NowMs();
  CHECK(now > 1700000000000);  // after November 2023
  CHECK(NowMs() >= now);
}

TEST_CASE("new resource ids are version 7 UUIDs in creation order", "[fhir]") {
  const int64_t before = NowMs();
  std::vector<std::string> ids;
  for (int i = 0; i < 2000; ++i) ids.push_back(NewResourceId());
  const int64_t after = NowMs();
  std::set<std::string> distinct(ids.begin(), ids.end());
  CHECK(distinct.size() == ids.size());
  std::string previous_ms;
  for (const auto& id : ids) {
    REQUIRE(id.size() == 36);
    CHECK(IsValidId(id));
    CHECK(id[8] == '-');
    CHECK(id[13] == '-');
    CHECK(id[14] == '7');                                   // version
    CHECK(std::string("89ab").find(id[19]) != std::string::npos);  // RFC 9562 variant
    // the first 48 bits: the creation time in milliseconds
    const std::string ms_hex = id.substr(0, 8) + id.substr(9, 4);
    const int64_t ms = std::stoll(ms_hex, nullptr, 16);
    CHECK(ms >= before);
    CHECK(ms <= after);
    CHECK(ms_hex >= previous_ms);  // later ids sort after earlier ones, to the millisecond
    previous_ms = ms_hex;
  }
}

}  // namespace
}  // namespace eds::fhir
