// FHIR primitive syntax and time formatting.
#include "fhir/primitives.hpp"

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <climits>
#include <ctime>
#include <random>

namespace eds::fhir {

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool IsTypeNameSyntax(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] < 'A' || name[0] > 'Z') return false;
  for (char c : name)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  return true;
}

namespace {

bool Digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

// Days from 1970-01-01 to y-m-d (proleptic Gregorian), after H. Hinnant.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

constexpr int64_t kMsPerDay = 86'400'000;

}  // namespace

std::optional<InstantRange> ParseDateTimeRange(std::string_view s) {
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  if (!Digits(s, 0, 4, year) || year < 1) return std::nullopt;
  if (s.size() == 4) {
    int64_t lo = DaysFromCivil(year, 1, 1) * kMsPerDay;
    return InstantRange{lo, DaysFromCivil(year + 1, 1, 1) * kMsPerDay};
  }
  if (s[4] != '-' || !Digits(s, 5, 2, month) || month < 1 || month > 12) return std::nullopt;
  if (s.size() == 7) {
    int64_t lo = DaysFromCivil(year, month, 1) * kMsPerDay;
    return InstantRange{lo, lo + DaysInMonth(year, month) * kMsPerDay};
  }
  if (s[7] != '-' || !Digits(s, 8, 2, day) || day < 1 || day > DaysInMonth(year, month))
    return std::nullopt;
  if (s.size() == 10) {
    int64_t lo = DaysFromCivil(year, month, day) * kMsPerDay;
    return InstantRange{lo, lo + kMsPerDay};
  }
  if (s[10] != 'T' || !Digits(s, 11, 2, hour) || s.size() < 16 || s[13] != ':' ||
      !Digits(s, 14, 2, minute) || hour > 23 || minute > 59)
    return std::nullopt;
  std::size_t pos = 16;
  int64_t precision_ms = 60'000;
  int64_t frac_ms = 0;
  if (pos < s.size() && s[pos] == ':') {
    if (!Digits(s, pos + 1, 2, second) || second > 60) return std::nullopt;
    pos += 3;
    precision_ms = 1000;
    if (pos < s.size() && s[pos] == '.') {
      std::size_t start = ++pos;
      int64_t scale = 100;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (scale > 0) frac_ms += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
      if (pos == start) return std::nullopt;
      precision_ms = 1;
    }
  }
  int64_t offset_min = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      int oh = 0, om = 0;
      if (!Digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
          !Digits(s, pos + 4, 2, om) || oh > 14 || om > 59)
        return std::nullopt;
      offset_min = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
      pos += 6;
    } else {
      return std::nullopt;
    }
  }
  if (pos != s.size()) return std::nullopt;
  int64_t lo = DaysFromCivil(year, month, day) * kMsPerDay +
               ((hour * 60 + minute) * 60 + second) * 1000LL + frac_ms - offset_min * 60'000;
  return InstantRange{lo, lo + precision_ms};
}

namespace {
std::tm UtcTm(int64_t epoch_ms, int& millis) {
  int64_t secs = epoch_ms / 1000;
  millis = static_cast<int>(epoch_ms % 1000);
  if (millis < 0) {
    millis += 1000;
    --secs;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}
}  // namespace

namespace {

// Days since 1970-01-01 to a proleptic Gregorian date (the era arithmetic
// of Howard Hinnant's public-domain date algorithms).
void CivilFromDays(int64_t days, int64_t& year, unsigned& month, unsigned& day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  day = doy - (153 * mp + 2) / 5 + 1;
  month = mp < 10 ? mp + 3 : mp - 9;
  year = static_cast<int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0);
}

void PutDigits(char* out, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

}  // namespace

// Without gmtime_r, which takes a process-wide lock in glibc: bulk loads
// format two instants per date index row on every preparing thread.
std::string FormatInstant(int64_t epoch_ms) {
  int64_t secs = epoch_ms / 1000;
  int ms = static_cast<int>(epoch_ms % 1000);
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  int64_t year = 0;
  unsigned month = 0, day = 0;
  CivilFromDays(days, year, month, day);
  if (year < 0 || year > 9999) {
    std::tm tm = UtcTm(epoch_ms, ms);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  }
  std::string out = "0000-00-00T00:00:00.000Z";
  PutDigits(&out[0], static_cast<unsigned>(year), 4);
  PutDigits(&out[5], month, 2);
  PutDigits(&out[8], day, 2);
  PutDigits(&out[11], static_cast<unsigned>(rem / 3600), 2);
  PutDigits(&out[14], static_cast<unsigned>(rem / 60 % 60), 2);
  PutDigits(&out[17], static_cast<unsigned>(rem % 60), 2);
  PutDigits(&out[20], static_cast<unsigned>(ms), 3);
  return out;
}

std::string FormatHttpDate(int64_t epoch_ms) {
  // Responses in the same second share the text: cache the last one per thread.
  thread_local int64_t cached_second = INT64_MIN;
  thread_local std::string cached;
  const int64_t second = epoch_ms >= 0 ? epoch_ms / 1000 : (epoch_ms - 999) / 1000;
  if (second == cached_second) return cached;
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int ms = 0;
  std::tm tm = UtcTm(epoch_ms, ms);
  cached = fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday], tm.tm_mday,
                       kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  cached_second = second;
  return cached;
}

std::string NewResourceId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  // RFC 9562 version 7: the first 48 bits are the Unix time in milliseconds
  const auto ms = static_cast<uint64_t>(NowMs()) & 0xffffffffffffULL;
  uint64_t hi = (ms << 16) | 0x7000ULL | (rng() & 0x0fffULL);
  uint64_t lo = rng();
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                     lo & 0xffffffffffffULL);
}

namespace {

// The value of each base64 character; kSpace for the white space allowed
// between them, kPad for '=', kBad for anything else.
constexpr int8_t kBad = -1, kSpace = -2, kPad = -3;
constexpr std::array<int8_t, 256> kBase64 = [] {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = kBad;
  for (int i = 0; i < 26; ++i) {
    t['A' + i] = static_cast<int8_t>(i);
    t['a' + i] = static_cast<int8_t>(26 + i);
  }
  for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<int8_t>(52 + i);
  t['+'] = 62;
  t['/'] = 63;
  t[' '] = t['\n'] = t['\r'] = t['\t'] = kSpace;
  t['='] = kPad;
  return t;
}();

// Checks `text` as base64 and, when `out` is not null, decodes it there.
bool ScanBase64(std::string_view text, std::string* out) {
  char* w = nullptr;
  if (out != nullptr) {
    out->resize(text.size() / 4 * 3 + 3);
    w = out->data();
  }
  uint32_t bits = 0;
  int count = 0;  // sextets in `bits`
  std::size_t padding = 0;
  for (unsigned char c : text) {
    const int v = kBase64[c];
    if (v >= 0) {
      if (padding > 0) return false;  // nothing may follow the padding
      bits = (bits << 6) | static_cast<uint32_t>(v);
      if (++count == 4) {
        if (w != nullptr) {
          *w++ = static_cast<char>((bits >> 16) & 0xff);
          *w++ = static_cast<char>((bits >> 8) & 0xff);
          *w++ = static_cast<char>(bits & 0xff);
        }
        bits = 0;
        count = 0;
      }
    } else if (v == kPad) {
      ++padding;
    } else if (v != kSpace) {
      return false;
    }
  }
  if (count == 1 || padding > 2 || (padding > 0 && count + padding != 4)) return false;
  if (w == nullptr) return true;
  if (count == 2) *w++ = static_cast<char>((bits >> 4) & 0xff);
  if (count == 3) {
    *w++ = static_cast<char>((bits >> 10) & 0xff);
    *w++ = static_cast<char>((bits >> 2) & 0xff);
  }
  out->resize(static_cast<std::size_t>(w - out->data()));
  return true;
}

}  // namespace

std::optional<std::string> DecodeBase64(std::string_view text) {
  std::string out;
  if (!ScanBase64(text, &out)) return std::nullopt;
  return out;
}

bool IsBase64(std::string_view text) { return ScanBase64(text, nullptr); }

int64_t NowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace eds::fhir
