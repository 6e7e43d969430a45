// Decimal arithmetic, partial date/time parsing and comparison, date
// arithmetic, and a small UCUM unit converter for FHIRPath quantities.
#include "fhir/fhirpath/values.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

namespace eds::fhir::fhirpath {
namespace {

constexpr int kMaxDigits = 38;

constexpr std::array<Int128, kMaxDigits + 1> MakePowers() {
  std::array<Int128, kMaxDigits + 1> p{};
  Int128 v = 1;
  for (int i = 0; i <= kMaxDigits; ++i) {
    p[static_cast<std::size_t>(i)] = v;
    if (i < kMaxDigits) v *= 10;
  }
  return p;
}
constexpr auto kPowers = MakePowers();

Int128 Pow10(int n) { return kPowers[static_cast<std::size_t>(n)]; }

std::optional<Int128> Upscale(Int128 m, int by) {
  if (by < 0 || by > kMaxDigits) return std::nullopt;
  Int128 r;
  if (__builtin_mul_overflow(m, Pow10(by), &r)) return std::nullopt;
  return r;
}

// Mantissas of a and b at their common (larger) scale.
bool Align(const Decimal& a, const Decimal& b, Int128& ma, Int128& mb, int& scale) {
  scale = std::max(a.scale(), b.scale());
  auto x = Upscale(a.mantissa(), scale - a.scale());
  auto y = Upscale(b.mantissa(), scale - b.scale());
  if (!x || !y) return false;
  ma = *x;
  mb = *y;
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `n` digits at `i`.
bool ReadDigits(std::string_view t, std::size_t& i, int n, int& out) {
  if (i + static_cast<std::size_t>(n) > t.size()) return false;
  int v = 0;
  for (int k = 0; k < n; ++k) {
    char c = t[i + static_cast<std::size_t>(k)];
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  i += static_cast<std::size_t>(n);
  out = v;
  return true;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, int m, int d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void CivilFromDays(std::int64_t z, int& y, int& m, int& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(yoe + era * 400 + (m <= 2));
}

std::int64_t ToLocalMs(const DateTimeValue& v) {
  return ((DaysFromCivil(v.year, v.month, v.day) * 24 + v.hour) * 60 + v.minute) * 60000LL +
         v.second * 1000LL + v.millisecond;
}

void SetFromLocalMs(DateTimeValue& v, std::int64_t ms) {
  std::int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
  std::int64_t rest = ms - days * 86400000;
  CivilFromDays(days, v.year, v.month, v.day);
  v.hour = static_cast<int>(rest / 3600000);
  v.minute = static_cast<int>(rest / 60000 % 60);
  v.second = static_cast<int>(rest / 1000 % 60);
  v.millisecond = static_cast<int>(rest % 1000);
}

bool ParseDatePart(std::string_view t, std::size_t& i, DateTimeValue& v) {
  if (!ReadDigits(t, i, 4, v.year)) return false;
  v.precision = DatePrecision::kYear;
  if (i < t.size() && t[i] == '-') {
    ++i;
    if (!ReadDigits(t, i, 2, v.month) || v.month < 1 || v.month > 12) return false;
    v.precision = DatePrecision::kMonth;
    if (i < t.size() && t[i] == '-') {
      ++i;
      if (!ReadDigits(t, i, 2, v.day) || v.day < 1 || v.day > DaysInMonth(v.year, v.month)) return false;
      v.precision = DatePrecision::kDay;
    }
  }
  return true;
}

bool ParseTimePart(std::string_view t, std::size_t& i, DateTimeValue& v) {
  if (!ReadDigits(t, i, 2, v.hour) || v.hour > 23) return false;
  v.precision = DatePrecision::kHour;
  if (i < t.size() && t[i] == ':') {
    ++i;
    if (!ReadDigits(t, i, 2, v.minute) || v.minute > 59) return false;
    v.precision = DatePrecision::kMinute;
    if (i < t.size() && t[i] == ':') {
      ++i;
      if (!ReadDigits(t, i, 2, v.second) || v.second > 60) return false;
      v.precision = DatePrecision::kSecond;
      if (i < t.size() && t[i] == '.') {
        ++i;
        std::size_t start = i;
        int ms = 0;
        while (i < t.size() && IsDigit(t[i])) {
          if (i - start < 3) ms = ms * 10 + (t[i] - '0');
          ++i;
        }
        if (i == start) return false;
        for (std::size_t k = i - start; k < 3; ++k) ms *= 10;
        v.millisecond = ms;
        v.precision = DatePrecision::kMillisecond;
      }
    }
  }
  return true;
}

bool ParseZone(std::string_view t, std::size_t& i, DateTimeValue& v) {
  if (i >= t.size()) return true;
  if (t[i] == 'Z') {
    ++i;
    v.has_tz = true;
    v.tz_minutes = 0;
    return true;
  }
  if (t[i] != '+' && t[i] != '-') return false;
  int sign = t[i] == '-' ? -1 : 1;
  ++i;
  int h = 0, m = 0;
  if (!ReadDigits(t, i, 2, h) || i >= t.size() || t[i] != ':') return false;
  ++i;
  if (!ReadDigits(t, i, 2, m) || h > 14 || m > 59) return false;
  v.has_tz = true;
  v.tz_minutes = sign * (h * 60 + m);
  return true;
}

std::string Two(int v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d", v);
  return buf;
}

void AppendTime(std::string& out, const DateTimeValue& v) {
  out += Two(v.hour);
  if (v.precision >= DatePrecision::kMinute) out += ":" + Two(v.minute);
  if (v.precision >= DatePrecision::kSecond) out += ":" + Two(v.second);
  if (v.precision >= DatePrecision::kMillisecond) {
    char buf[16];
    std::snprintf(buf, sizeof buf, ".%03d", v.millisecond);
    out += buf;
  }
}

// Seconds and milliseconds are one level when comparing.
int Level(DatePrecision p) {
  return p == DatePrecision::kMillisecond ? static_cast<int>(DatePrecision::kSecond) : static_cast<int>(p);
}

DateTimeValue ToUtc(const DateTimeValue& v) {
  if (!v.has_tz || !v.HasTime() || v.tz_minutes == 0) return v;
  DateTimeValue u = v;
  SetFromLocalMs(u, ToLocalMs(v) - v.tz_minutes * 60000LL);
  u.tz_minutes = 0;
  return u;
}

// Compares the fields from `first` down to seconds, stopping where either
// value's precision ends.
std::optional<int> CompareFields(const DateTimeValue& a, const DateTimeValue& b, DatePrecision first) {
  const int fields_a[] = {a.year, a.month, a.day, a.hour, a.minute, a.second * 1000 + a.millisecond};
  const int fields_b[] = {b.year, b.month, b.day, b.hour, b.minute, b.second * 1000 + b.millisecond};
  const int la = Level(a.precision), lb = Level(b.precision);
  for (int level = static_cast<int>(first); level <= static_cast<int>(DatePrecision::kSecond); ++level) {
    bool ha = la >= level, hb = lb >= level;
    if (ha && hb) {
      int x = fields_a[level - 1], y = fields_b[level - 1];
      if (x != y) return x < y ? -1 : 1;
    } else if (ha != hb) {
      return std::nullopt;
    } else {
      return 0;
    }
  }
  return 0;
}

// ---- UCUM ----------------------------------------------------------------

using Dims = std::vector<std::pair<std::string, int>>;  // base unit -> exponent, sorted, no zeros

struct Canonical {
  Decimal factor = Decimal(1, 0);
  Dims dims;
};

struct Atom {
  bool metric = false;  // takes prefixes
  Decimal factor;
  Dims dims;
};

void AddDims(Dims& into, const Dims& from, int times) {
  for (const auto& [base, exp] : from) {
    auto it = std::find_if(into.begin(), into.end(), [&](const auto& p) { return p.first == base; });
    if (it == into.end()) into.emplace_back(base, exp * times);
    else it->second += exp * times;
  }
  into.erase(std::remove_if(into.begin(), into.end(), [](const auto& p) { return p.second == 0; }), into.end());
  std::sort(into.begin(), into.end());
}

const std::map<std::string, Atom, std::less<>>& Atoms() {
  // symbol, metric, factor, dimensions (base units: m g s rad K C cd mol, and
  // units UCUM defines without conversion: Cel [degF] [iU] [arb'U])
  struct Row {
    const char* symbol;
    bool metric;
    const char* factor;
    Dims dims;
  };
  static const std::map<std::string, Atom, std::less<>> atoms = [] {
    const Row rows[] = {
        {"m", true, "1", {{"m", 1}}},
        {"g", true, "1", {{"g", 1}}},
        {"s", true, "1", {{"s", 1}}},
        {"rad", true, "1", {{"rad", 1}}},
        {"K", true, "1", {{"K", 1}}},
        {"C", true, "1", {{"C", 1}}},
        {"cd", true, "1", {{"cd", 1}}},
        {"mol", true, "1", {{"mol", 1}}},
        {"eq", true, "1", {{"mol", 1}}},
        {"osm", true, "1", {{"mol", 1}}},
        {"kat", true, "1", {{"mol", 1}, {"s", -1}}},
        {"U", true, "0.0000000166666666666666667", {{"mol", 1}, {"s", -1}}},
        {"l", true, "0.001", {{"m", 3}}},
        {"L", true, "0.001", {{"m", 3}}},
        {"Hz", true, "1", {{"s", -1}}},
        {"N", true, "1000", {{"g", 1}, {"m", 1}, {"s", -2}}},
        {"Pa", true, "1000", {{"g", 1}, {"m", -1}, {"s", -2}}},
        {"bar", true, "100000000", {{"g", 1}, {"m", -1}, {"s", -2}}},
        {"m[Hg]", true, "133322000", {{"g", 1}, {"m", -1}, {"s", -2}}},
        {"m[H2O]", true, "9806650", {{"g", 1}, {"m", -1}, {"s", -2}}},
        {"J", true, "1000", {{"g", 1}, {"m", 2}, {"s", -2}}},
        {"cal", true, "4184", {{"g", 1}, {"m", 2}, {"s", -2}}},
        {"W", true, "1000", {{"g", 1}, {"m", 2}, {"s", -3}}},
        {"A", true, "1", {{"C", 1}, {"s", -1}}},
        {"V", true, "1000", {{"g", 1}, {"m", 2}, {"s", -2}, {"C", -1}}},
        {"t", true, "1000000", {{"g", 1}}},
        {"Cel", true, "1", {{"Cel", 1}}},
        {"[iU]", true, "1", {{"[iU]", 1}}},
        {"[IU]", true, "1", {{"[iU]", 1}}},
        {"[arb'U]", false, "1", {{"[arb'U]", 1}}},
        {"[degF]", false, "1", {{"[degF]", 1}}},
        {"min", false, "60", {{"s", 1}}},
        {"h", false, "3600", {{"s", 1}}},
        {"d", false, "86400", {{"s", 1}}},
        {"wk", false, "604800", {{"s", 1}}},
        {"mo", false, "2629800", {{"s", 1}}},
        {"a", false, "31557600", {{"s", 1}}},
        {"[in_i]", false, "0.0254", {{"m", 1}}},
        {"[ft_i]", false, "0.3048", {{"m", 1}}},
        {"[yd_i]", false, "0.9144", {{"m", 1}}},
        {"[mi_i]", false, "1609.344", {{"m", 1}}},
        {"[lb_av]", false, "453.59237", {{"g", 1}}},
        {"[oz_av]", false, "28.349523125", {{"g", 1}}},
        {"[stone_av]", false, "6350.29318", {{"g", 1}}},
        {"[gr]", false, "0.06479891", {{"g", 1}}},
        {"%", false, "0.01", {}},
        {"[ppth]", false, "0.001", {}},
        {"[ppm]", false, "0.000001", {}},
        {"[ppb]", false, "0.000000001", {}},
        {"deg", false, "0.0174532925199432957692", {{"rad", 1}}},
    };
    std::map<std::string, Atom, std::less<>> m;
    for (const auto& r : rows) m[r.symbol] = Atom{r.metric, *Decimal::Parse(r.factor), r.dims};
    return m;
  }();
  return atoms;
}

const Decimal* PrefixFactor(std::string_view p) {
  static const std::map<std::string, Decimal, std::less<>> prefixes = [] {
    const std::pair<const char*, const char*> rows[] = {
        {"Y", "1e24"}, {"Z", "1e21"}, {"E", "1e18"}, {"P", "1e15"}, {"T", "1e12"}, {"G", "1e9"},
        {"M", "1e6"},  {"k", "1e3"},  {"h", "1e2"},  {"da", "1e1"}, {"d", "1e-1"}, {"c", "1e-2"},
        {"m", "1e-3"}, {"u", "1e-6"}, {"n", "1e-9"}, {"p", "1e-12"}, {"f", "1e-15"}, {"a", "1e-18"},
        {"z", "1e-21"}, {"y", "1e-24"}};
    std::map<std::string, Decimal, std::less<>> m;
    for (const auto& [k, v] : rows) m[k] = *Decimal::Parse(v);
    return m;
  }();
  auto it = prefixes.find(p);
  return it == prefixes.end() ? nullptr : &it->second;
}

std::optional<Decimal> Power(const Decimal& base, int exp) {
  Decimal r(1, 0);
  for (int i = 0; i < std::abs(exp); ++i) {
    auto n = r.Mul(base);
    if (!n) return std::nullopt;
    r = *n;
  }
  if (exp < 0) return Decimal(1, 0).Div(r, Decimal::kMaxScale);
  return r;
}

// Multiplies `into` by `c` raised to `exp`.
bool Combine(Canonical& into, const Canonical& c, int exp) {
  auto f = Power(c.factor, exp);
  if (!f) return false;
  auto product = into.factor.Mul(*f);
  if (!product) return false;
  into.factor = product->Normalized();
  AddDims(into.dims, c.dims, exp);
  return true;
}

bool LookupSymbol(std::string_view symbol, Canonical& out) {
  const auto& atoms = Atoms();
  if (auto it = atoms.find(symbol); it != atoms.end()) {
    out.factor = it->second.factor;
    out.dims = it->second.dims;
    return true;
  }
  for (std::size_t len : {std::size_t{1}, std::size_t{2}}) {
    if (symbol.size() <= len) continue;
    const Decimal* p = PrefixFactor(symbol.substr(0, len));
    if (p == nullptr) continue;
    auto it = atoms.find(symbol.substr(len));
    if (it == atoms.end() || !it->second.metric) continue;
    auto f = it->second.factor.Mul(*p);
    if (!f) return false;
    out.factor = f->Normalized();
    out.dims = it->second.dims;
    return true;
  }
  return false;
}

class UcumParser {
 public:
  explicit UcumParser(std::string_view s) : s_(s) {}

  std::optional<Canonical> Parse() {
    Canonical c;
    if (s_.empty() || !Term(c) || i_ != s_.size()) return std::nullopt;
    return c;
  }

 private:
  bool Term(Canonical& out) {
    int sign = 1;
    if (i_ < s_.size() && s_[i_] == '/') {
      sign = -1;
      ++i_;
    }
    while (true) {
      Canonical c;
      int exp = 1;
      if (!Component(c, exp) || !Combine(out, c, sign * exp)) return false;
      if (i_ < s_.size() && s_[i_] == '.') sign = 1;
      else if (i_ < s_.size() && s_[i_] == '/') sign = -1;
      else return true;
      ++i_;
    }
  }

  bool Component(Canonical& out, int& exp) {
    if (i_ < s_.size() && s_[i_] == '(') {
      ++i_;
      if (!Term(out) || i_ >= s_.size() || s_[i_] != ')') return false;
      ++i_;
      return Exponent(exp);
    }
    std::string symbol;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '.' || c == '/' || c == '(' || c == ')') break;
      if (c == '[' || c == '{') {
        char close = c == '[' ? ']' : '}';
        auto end = s_.find(close, i_);
        if (end == std::string_view::npos) return false;
        if (c == '[') symbol.append(s_.substr(i_, end + 1 - i_));  // annotations {..} carry no meaning
        i_ = end + 1;
        continue;
      }
      symbol.push_back(c);
      ++i_;
    }
    if (symbol.empty()) return true;  // a bare annotation: unity
    // 10*3, 10^3
    if (symbol.size() > 3 && symbol.compare(0, 2, "10") == 0 && (symbol[2] == '*' || symbol[2] == '^')) {
      auto e = ParseInt(std::string_view(symbol).substr(3));
      if (!e) return false;
      auto f = Power(Decimal(10, 0), *e);
      if (!f) return false;
      out.factor = *f;
      return true;
    }
    if (std::all_of(symbol.begin(), symbol.end(), IsDigit)) {
      auto f = Decimal::Parse(symbol);
      if (!f) return false;
      out.factor = *f;
      return true;
    }
    // trailing exponent: m2, s-1
    std::size_t end = symbol.size();
    while (end > 0 && IsDigit(symbol[end - 1])) --end;
    if (end > 0 && end < symbol.size() && (symbol[end - 1] == '-' || symbol[end - 1] == '+')) --end;
    if (end > 0 && end < symbol.size() && symbol.back() != ']') {
      auto e = ParseInt(std::string_view(symbol).substr(end));
      if (!e) return false;
      exp = *e;
      symbol.resize(end);
    }
    return LookupSymbol(symbol, out);
  }

  bool Exponent(int& exp) {
    std::size_t start = i_;
    if (i_ < s_.size() && (s_[i_] == '-' || s_[i_] == '+')) ++i_;
    while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
    if (i_ == start) return true;
    auto e = ParseInt(s_.substr(start, i_ - start));
    if (!e) return false;
    exp = *e;
    return true;
  }

  static std::optional<int> ParseInt(std::string_view t) {
    int sign = 1;
    std::size_t i = 0;
    if (!t.empty() && (t[0] == '-' || t[0] == '+')) {
      sign = t[0] == '-' ? -1 : 1;
      i = 1;
    }
    if (i >= t.size() || t.size() - i > 3) return std::nullopt;
    int v = 0;
    for (; i < t.size(); ++i) {
      if (!IsDigit(t[i])) return std::nullopt;
      v = v * 10 + (t[i] - '0');
    }
    return sign * v;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

std::optional<Canonical> CanonicalUnit(std::string_view unit) {
  // Memoised: the same few units come back for every comparison.
  static thread_local std::map<std::string, std::optional<Canonical>, std::less<>> cache;
  if (auto it = cache.find(unit); it != cache.end()) return it->second;
  auto c = UcumParser(unit).Parse();
  if (cache.size() < 1024) cache.emplace(std::string(unit), c);
  return c;
}

std::string_view CalendarToUcum(std::string_view keyword) {
  static constexpr std::pair<std::string_view, std::string_view> kMap[] = {
      {"year", "a"},   {"month", "mo"},  {"week", "wk"},  {"day", "d"},
      {"hour", "h"},   {"minute", "min"}, {"second", "s"}, {"millisecond", "ms"}};
  if (!keyword.empty() && keyword.back() == 's') keyword.remove_suffix(1);
  for (const auto& [k, u] : kMap)
    if (k == keyword) return u;
  return {};
}

std::string_view UcumOf(const Quantity& q) {
  if (q.calendar) return CalendarToUcum(q.unit);
  return q.unit;
}

// Value in base units, with its dimensions.
std::optional<std::pair<Decimal, Dims>> ToBase(const Quantity& q) {
  auto c = CanonicalUnit(UcumOf(q));
  if (!c) return std::nullopt;
  auto v = q.value.Mul(c->factor);
  if (!v) return std::nullopt;
  return std::make_pair(*v, c->dims);
}

bool IsYearOrMonth(const Quantity& q) {
  if (!q.calendar) return false;
  auto u = CalendarToUcum(q.unit);
  return u == "a" || u == "mo";
}

}  // namespace

// ---- Decimal ---------------------------------------------------------------

std::optional<Decimal> Decimal::Parse(std::string_view t) {
  std::size_t i = 0;
  bool negative = false;
  if (i < t.size() && (t[i] == '-' || t[i] == '+')) negative = t[i++] == '-';
  Int128 m = 0;
  int scale = 0, digits = 0;
  std::size_t start = i;
  auto digit = [&](char c) {
    if (m == 0 && c == '0') return true;  // leading zeros cost no precision
    if (++digits > kMaxDigits) return false;
    m = m * 10 + (c - '0');
    return true;
  };
  while (i < t.size() && IsDigit(t[i]))
    if (!digit(t[i++])) return std::nullopt;
  if (i == start) return std::nullopt;
  if (i < t.size() && t[i] == '.') {
    ++i;
    std::size_t frac = i;
    while (i < t.size() && IsDigit(t[i])) {
      if (!digit(t[i++])) return std::nullopt;
      ++scale;
    }
    if (i == frac) return std::nullopt;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool neg_exp = false;
    if (i < t.size() && (t[i] == '-' || t[i] == '+')) neg_exp = t[i++] == '-';
    std::size_t es = i;
    int e = 0;
    while (i < t.size() && IsDigit(t[i])) {
      e = e * 10 + (t[i++] - '0');
      if (e > 400) return std::nullopt;
    }
    if (i == es) return std::nullopt;
    scale += neg_exp ? e : -e;
  }
  if (i != t.size()) return std::nullopt;
  if (scale < 0) {
    auto up = Upscale(m, -scale);
    if (!up) return std::nullopt;
    m = *up;
    scale = 0;
  }
  if (scale > kMaxDigits) return std::nullopt;
  return Decimal(negative ? -m : m, scale);
}

std::optional<Decimal> Decimal::FromDouble(double v) {
  if (!std::isfinite(v)) return std::nullopt;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  auto d = Parse(buf);
  if (!d) return std::nullopt;
  if (d->scale() > kMaxScale) return d->RoundTo(kMaxScale);
  return d;
}

bool Decimal::IsWhole() const { return scale_ == 0 || mantissa_ % Pow10(scale_) == 0; }

std::string Decimal::ToString() const {
  Int128 a = mantissa_ < 0 ? -mantissa_ : mantissa_;
  std::string digits;
  do {
    digits.push_back(static_cast<char>('0' + static_cast<int>(a % 10)));
    a /= 10;
  } while (a != 0);
  while (digits.size() < static_cast<std::size_t>(scale_) + 1) digits.push_back('0');
  std::reverse(digits.begin(), digits.end());
  if (scale_ > 0) digits.insert(digits.size() - static_cast<std::size_t>(scale_), 1, '.');
  if (mantissa_ < 0) digits.insert(digits.begin(), '-');
  return digits;
}

double Decimal::ToDouble() const {
  return static_cast<double>(static_cast<long double>(mantissa_) / static_cast<long double>(Pow10(scale_)));
}

std::optional<std::int64_t> Decimal::ToInt64() const {
  Int128 whole = mantissa_ / Pow10(scale_);
  if (whole > INT64_MAX || whole < INT64_MIN) return std::nullopt;
  return static_cast<std::int64_t>(whole);
}

std::optional<Decimal> Decimal::Add(const Decimal& o) const {
  Int128 a, b, r;
  int scale;
  if (!Align(Normalized(), o.Normalized(), a, b, scale) || __builtin_add_overflow(a, b, &r))
    return std::nullopt;
  // keep the larger of the operands' precisions: 1.2 + 1.8 is 3.0
  Decimal out(r, scale);
  int keep = std::max(scale_, o.scale_);
  if (keep > scale) return out.WithScale(keep);
  return out;
}

std::optional<Decimal> Decimal::Sub(const Decimal& o) const { return Add(o.Negate()); }

std::optional<Decimal> Decimal::Mul(const Decimal& o) const {
  Int128 r;
  if (!__builtin_mul_overflow(mantissa_, o.mantissa_, &r)) {
    Decimal out(r, scale_ + o.scale_);
    return out.scale() > kMaxScale ? out.RoundTo(kMaxScale) : out;
  }
  Decimal a = Normalized(), b = o.Normalized();
  if (__builtin_mul_overflow(a.mantissa_, b.mantissa_, &r)) return std::nullopt;
  Decimal out(r, a.scale_ + b.scale_);
  return out.scale() > kMaxScale ? out.RoundTo(kMaxScale) : out;
}

std::optional<Decimal> Decimal::Div(const Decimal& o, int min_scale) const {
  if (o.mantissa_ == 0) return std::nullopt;
  int target = std::max({min_scale, scale_, o.scale_});
  target = std::min(target, kMaxScale);
  // q = m * 10^(target - scale + o.scale + 1) / o.m, one extra digit to round
  while (target >= 0) {
    int e = target - scale_ + o.scale_ + 1;
    if (e >= 0) {
      if (auto n = Upscale(mantissa_, e)) {
        Int128 q = *n / o.mantissa_;
        q = q >= 0 ? (q + 5) / 10 : (q - 5) / 10;
        return Decimal(q, target).Normalized();
      }
    } else {
      Int128 q = mantissa_ / Pow10(-e) / o.mantissa_;
      q = q >= 0 ? (q + 5) / 10 : (q - 5) / 10;
      return Decimal(q, target).Normalized();
    }
    --target;
  }
  return std::nullopt;
}

Decimal Decimal::RoundTo(int digits) const {
  if (digits < 0) digits = 0;
  if (scale_ <= digits) return *this;
  Int128 p = Pow10(scale_ - digits);
  Int128 q = mantissa_ / p, r = mantissa_ % p;
  if (r < 0) r = -r;
  if (r * 2 >= p) q += mantissa_ < 0 ? -1 : 1;
  return Decimal(q, digits);
}

Decimal Decimal::TruncateTo(int digits) const {
  if (digits < 0) digits = 0;
  if (scale_ <= digits) return *this;
  return Decimal(mantissa_ / Pow10(scale_ - digits), digits);
}

Decimal Decimal::Floor() const {
  Decimal t = TruncateTo(0);
  if (mantissa_ < 0 && !IsWhole()) return Decimal(t.mantissa_ - 1, 0);
  return t;
}

Decimal Decimal::Ceiling() const {
  Decimal t = TruncateTo(0);
  if (mantissa_ > 0 && !IsWhole()) return Decimal(t.mantissa_ + 1, 0);
  return t;
}

std::optional<Decimal> Decimal::WithScale(int digits) const {
  if (digits <= scale_) return RoundTo(digits);
  auto m = Upscale(mantissa_, digits - scale_);
  if (!m) return std::nullopt;
  return Decimal(*m, digits);
}

Decimal Decimal::Normalized() const {
  Decimal d = *this;
  while (d.scale_ > 0 && d.mantissa_ % 10 == 0) {
    d.mantissa_ /= 10;
    --d.scale_;
  }
  return d;
}

int Decimal::Compare(const Decimal& o) const {
  Int128 a, b;
  int scale;
  if (!Align(*this, o, a, b, scale)) {
    long double x = static_cast<long double>(mantissa_) / static_cast<long double>(Pow10(scale_));
    long double y = static_cast<long double>(o.mantissa_) / static_cast<long double>(Pow10(o.scale_));
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- dates and times -----------------------------------------------------------

std::optional<DateTimeValue> DateTimeValue::ParseDate(std::string_view text) {
  DateTimeValue v;
  std::size_t i = 0;
  if (!ParseDatePart(text, i, v) || i != text.size()) return std::nullopt;
  return v;
}

std::optional<DateTimeValue> DateTimeValue::ParseDateTime(std::string_view text) {
  DateTimeValue v;
  std::size_t i = 0;
  if (!ParseDatePart(text, i, v)) return std::nullopt;
  if (i < text.size() && text[i] == 'T') {
    ++i;
    if (i < text.size() && IsDigit(text[i])) {
      if (v.precision != DatePrecision::kDay || !ParseTimePart(text, i, v) || !ParseZone(text, i, v))
        return std::nullopt;
    }
  }
  if (i != text.size()) return std::nullopt;
  return v;
}

std::optional<DateTimeValue> DateTimeValue::ParseTime(std::string_view text) {
  DateTimeValue v;
  std::size_t i = 0;
  if (!ParseTimePart(text, i, v) || i != text.size()) return std::nullopt;
  v.year = 0;
  return v;
}

DateTimeValue DateTimeValue::FromEpochMs(std::int64_t ms) {
  DateTimeValue v;
  SetFromLocalMs(v, ms);
  v.precision = DatePrecision::kMillisecond;
  v.has_tz = true;
  v.tz_minutes = 0;
  return v;
}

std::string DateTimeValue::FormatDate() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d", year);
  std::string out = buf;
  if (precision >= DatePrecision::kMonth) out += "-" + Two(month);
  if (precision >= DatePrecision::kDay) out += "-" + Two(day);
  return out;
}

std::string DateTimeValue::FormatDateTime() const {
  std::string out = FormatDate();
  if (!HasTime()) return out;
  out += 'T';
  AppendTime(out, *this);
  if (has_tz) {
    if (tz_minutes == 0) {
      out += 'Z';
    } else {
      int a = std::abs(tz_minutes);
      out += tz_minutes < 0 ? '-' : '+';
      out += Two(a / 60) + ":" + Two(a % 60);
    }
  }
  return out;
}

std::string DateTimeValue::FormatTime() const {
  std::string out;
  AppendTime(out, *this);
  return out;
}

std::optional<int> CompareDateTimes(const DateTimeValue& a, const DateTimeValue& b) {
  if (a.HasTime() && b.HasTime()) {
    if (a.has_tz != b.has_tz) return std::nullopt;
    if (a.has_tz) return CompareFields(ToUtc(a), ToUtc(b), DatePrecision::kYear);
  }
  return CompareFields(a, b, DatePrecision::kYear);
}

std::optional<int> CompareTimes(const DateTimeValue& a, const DateTimeValue& b) {
  return CompareFields(a, b, DatePrecision::kHour);
}

bool SamePrecision(const DateTimeValue& a, const DateTimeValue& b) {
  return Level(a.precision) == Level(b.precision);
}

std::optional<TimeUnit> DateArithmeticUnit(std::string_view unit, bool calendar_keyword) {
  std::string_view ucum = CalendarToUcum(unit);
  if (!ucum.empty()) {
    static constexpr std::pair<std::string_view, TimeUnit> kKeywords[] = {
        {"a", TimeUnit::kYear},   {"mo", TimeUnit::kMonth},    {"wk", TimeUnit::kWeek},
        {"d", TimeUnit::kDay},    {"h", TimeUnit::kHour},      {"min", TimeUnit::kMinute},
        {"s", TimeUnit::kSecond}, {"ms", TimeUnit::kMillisecond}};
    for (const auto& [u, t] : kKeywords)
      if (u == ucum) return t;
  }
  if (calendar_keyword) return std::nullopt;
  static constexpr std::pair<std::string_view, TimeUnit> kUcum[] = {
      {"wk", TimeUnit::kWeek}, {"d", TimeUnit::kDay},       {"h", TimeUnit::kHour},
      {"min", TimeUnit::kMinute}, {"s", TimeUnit::kSecond}, {"ms", TimeUnit::kMillisecond}};
  for (const auto& [u, t] : kUcum)
    if (u == unit) return t;
  return std::nullopt;
}

std::optional<DateTimeValue> AddDuration(const DateTimeValue& v, std::int64_t amount, TimeUnit unit) {
  DateTimeValue r = v;
  constexpr std::int64_t kLimit = 10000LL * 366 * 86400000;
  if (amount > kLimit || amount < -kLimit) return std::nullopt;
  switch (unit) {
    case TimeUnit::kYear:
    case TimeUnit::kMonth: {
      std::int64_t months = static_cast<std::int64_t>(r.year) * 12 + (r.month - 1) +
                            (unit == TimeUnit::kYear ? amount * 12 : amount);
      if (months < 12 || months >= 10000 * 12) return std::nullopt;
      r.year = static_cast<int>(months / 12);
      r.month = static_cast<int>(months % 12) + 1;
      r.day = std::min(r.day, DaysInMonth(r.year, r.month));
      return r;
    }
    case TimeUnit::kWeek:
      amount *= 7;
      [[fallthrough]];
    case TimeUnit::kDay:
      amount *= 86400000;
      break;
    case TimeUnit::kHour:
      amount *= 3600000;
      break;
    case TimeUnit::kMinute:
      amount *= 60000;
      break;
    case TimeUnit::kSecond:
      amount *= 1000;
      break;
    case TimeUnit::kMillisecond:
      break;
  }
  SetFromLocalMs(r, ToLocalMs(v) + amount);
  if (r.year < 1 || r.year > 9999) return std::nullopt;
  return r;
}

// ---- quantities ------------------------------------------------------------

bool IsCalendarKeyword(std::string_view word) { return !CalendarToUcum(word).empty(); }

std::optional<Quantity> ParseQuantity(std::string_view text) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  text = trim(text);
  std::size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  while (i < text.size() && (IsDigit(text[i]) || text[i] == '.')) ++i;
  auto value = Decimal::Parse(text.substr(0, i));
  if (!value) return std::nullopt;
  Quantity q;
  q.value = *value;
  std::string_view rest = trim(text.substr(i));
  if (rest.empty()) return q;
  if (rest.size() >= 2 && rest.front() == '\'' && rest.back() == '\'') {
    q.unit = std::string(rest.substr(1, rest.size() - 2));
    return q;
  }
  if (IsCalendarKeyword(rest)) {
    q.unit = std::string(rest);
    q.calendar = true;
    return q;
  }
  return std::nullopt;
}

std::string FormatQuantity(const Quantity& q) {
  std::string out = q.value.ToString();
  out += ' ';
  if (q.calendar) {
    out += q.unit;
  } else {
    out += '\'';
    out += q.unit;
    out += '\'';
  }
  return out;
}

std::optional<bool> QuantitiesEqual(const Quantity& a, const Quantity& b) {
  // A calendar year or month has no fixed length; UCUM a and mo do.
  if ((IsYearOrMonth(a) && !b.calendar) || (IsYearOrMonth(b) && !a.calendar)) return std::nullopt;
  auto c = CompareQuantities(a, b);
  if (!c) return false;
  return *c == 0;
}

bool QuantitiesEquivalent(const Quantity& a, const Quantity& b) {
  auto x = ToBase(a), y = ToBase(b);
  if (!x || !y || x->second != y->second) return false;
  int digits = std::min(x->first.scale(), y->first.scale());
  return x->first.RoundTo(digits).Compare(y->first.RoundTo(digits)) == 0;
}

std::optional<int> CompareQuantities(const Quantity& a, const Quantity& b) {
  if (a.calendar == b.calendar && a.unit == b.unit) return a.value.Compare(b.value);
  auto x = ToBase(a), y = ToBase(b);
  if (!x || !y || x->second != y->second) return std::nullopt;
  return x->first.Compare(y->first);
}

bool QuantitiesComparable(const Quantity& a, const Quantity& b) {
  auto x = CanonicalUnit(UcumOf(a)), y = CanonicalUnit(UcumOf(b));
  return x && y && x->dims == y->dims;
}

std::optional<Decimal> ConvertValue(const Quantity& from, std::string_view to_unit, bool to_calendar) {
  if (from.calendar == to_calendar && from.unit == to_unit) return from.value;
  auto x = CanonicalUnit(UcumOf(from));
  auto y = CanonicalUnit(to_calendar ? CalendarToUcum(to_unit) : to_unit);
  if (!x || !y || x->dims != y->dims) return std::nullopt;
  auto base = from.value.Mul(x->factor);
  if (!base) return std::nullopt;
  return base->Div(y->factor, std::max(from.value.scale(), 8));
}

std::string MultiplyUnits(const Quantity& a, const Quantity& b, bool divide) {
  std::string ua(UcumOf(a)), ub(UcumOf(b));
  auto wrap = [](const std::string& u) {
    return u.find_first_of("./") == std::string::npos ? u : "(" + u + ")";
  };
  if (divide) {
    if (ua == ub) return "1";
    if (ub == "1") return ua;
    return (ua == "1" ? std::string("1") : wrap(ua)) + "/" + wrap(ub);
  }
  if (ua == "1") return ub;
  if (ub == "1") return ua;
  return wrap(ua) + "." + wrap(ub);
}

bool IsKnownUcumUnit(std::string_view unit) { return CanonicalUnit(unit).has_value(); }

}  // namespace eds::fhir::fhirpath
