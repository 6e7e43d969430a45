// FHIRPath System values with their own arithmetic and comparison rules:
// decimals that keep their precision, partial dates and times with time
// zones, and quantities with UCUM units and calendar durations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eds::fhir::fhirpath {

__extension__ typedef __int128 Int128;  // __extension__: -Wpedantic knows no __int128

// A decimal number: mantissa * 10^-scale. Arithmetic is exact where the
// result fits 38 digits, so 1.2 + 1.8 is 3.0 and 1.8 - 1.2 is 0.6.
class Decimal {
 public:
  static constexpr int kMaxScale = 30;

  Decimal() = default;
  Decimal(Int128 mantissa, int scale) : mantissa_(mantissa), scale_(scale) {}
  static Decimal FromInteger(std::int64_t v) { return Decimal(v, 0); }
  // [+-]digits[.digits][(e|E)[+-]digits]; nullopt when malformed or too long.
  static std::optional<Decimal> Parse(std::string_view text);
  // Up to 15 significant digits; nullopt for NaN and infinities.
  static std::optional<Decimal> FromDouble(double v);

  Int128 mantissa() const { return mantissa_; }
  int scale() const { return scale_; }
  bool IsZero() const { return mantissa_ == 0; }
  bool IsNegative() const { return mantissa_ < 0; }
  bool IsWhole() const;
  std::string ToString() const;
  double ToDouble() const;
  // The integer part when it fits 64 bits.
  std::optional<std::int64_t> ToInt64() const;

  // nullopt on overflow (or division by zero).
  std::optional<Decimal> Add(const Decimal& o) const;
  std::optional<Decimal> Sub(const Decimal& o) const;
  std::optional<Decimal> Mul(const Decimal& o) const;
  // Keeps at least `min_scale` digits after the point, then drops trailing zeros.
  std::optional<Decimal> Div(const Decimal& o, int min_scale = 8) const;
  Decimal Negate() const { return Decimal(-mantissa_, scale_); }
  Decimal Abs() const { return mantissa_ < 0 ? Negate() : *this; }

  // Half away from zero, to `digits` after the point (never adds digits).
  Decimal RoundTo(int digits) const;
  // Towards zero, to `digits` after the point.
  Decimal TruncateTo(int digits) const;
  Decimal Floor() const;
  Decimal Ceiling() const;
  // The same value with exactly `digits` after the point (rounding if fewer).
  std::optional<Decimal> WithScale(int digits) const;
  // Trailing fractional zeros dropped.
  Decimal Normalized() const;

  int Compare(const Decimal& o) const;

 private:
  Int128 mantissa_ = 0;
  int scale_ = 0;
};

enum class DatePrecision : std::uint8_t { kYear = 1, kMonth, kDay, kHour, kMinute, kSecond, kMillisecond };

// A date, date-time or time of some precision, with an optional time zone.
struct DateTimeValue {
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0, millisecond = 0;
  DatePrecision precision = DatePrecision::kYear;
  bool has_tz = false;
  int tz_minutes = 0;  // offset east of UTC

  // Lexical forms without '@': date "2015-02-04", dateTime
  // "2015-02-04T14:34:28.123+10:00" (also "2015T" and "2015-02-04T14" as
  // FHIRPath literals allow), time "14:34:28.123". nullopt when malformed.
  static std::optional<DateTimeValue> ParseDate(std::string_view text);
  static std::optional<DateTimeValue> ParseDateTime(std::string_view text);
  static std::optional<DateTimeValue> ParseTime(std::string_view text);
  // The instant in UTC, at millisecond precision.
  static DateTimeValue FromEpochMs(std::int64_t ms);

  std::string FormatDate() const;
  std::string FormatDateTime() const;
  std::string FormatTime() const;
  bool HasTime() const { return precision >= DatePrecision::kHour; }
};

// FHIRPath ordering of dates and date-times (a date compares as a date-time
// of day precision): -1, 0, 1, or nullopt when precision or a missing time
// zone leaves it undecided.
std::optional<int> CompareDateTimes(const DateTimeValue& a, const DateTimeValue& b);
// The same for times of day.
std::optional<int> CompareTimes(const DateTimeValue& a, const DateTimeValue& b);
// Same precision, where seconds and milliseconds count as one.
bool SamePrecision(const DateTimeValue& a, const DateTimeValue& b);

// Calendar units of date arithmetic.
enum class TimeUnit { kYear, kMonth, kWeek, kDay, kHour, kMinute, kSecond, kMillisecond };
// The unit of a quantity added to a date: calendar keywords (year, months,
// ...) and the UCUM units wk, d, h, min, s, ms. nullopt for others, also for
// UCUM a and mo, whose length is not a calendar year or month.
std::optional<TimeUnit> DateArithmeticUnit(std::string_view unit, bool calendar_keyword);
// `v` moved by `amount` units; month and year steps clamp the day to the
// month's end. nullopt when the year leaves 1..9999.
std::optional<DateTimeValue> AddDuration(const DateTimeValue& v, std::int64_t amount, TimeUnit unit);

// A System.Quantity. `unit` is a UCUM code, or a calendar keyword (year,
// month, week, day, hour, minute, second, millisecond, singular or plural)
// when `calendar` is set.
struct Quantity {
  Decimal value;
  std::string unit = "1";
  bool calendar = false;
};

// FHIRPath quantity text: "4.5 'mg'", "1 day", "3" (unit '1').
std::optional<Quantity> ParseQuantity(std::string_view text);
std::string FormatQuantity(const Quantity& q);
// Whether `word` is a calendar duration keyword.
bool IsCalendarKeyword(std::string_view word);

// Equality of quantities: units converted through UCUM; calendar years and
// months against UCUM a and mo give nullopt (not comparable).
std::optional<bool> QuantitiesEqual(const Quantity& a, const Quantity& b);
// Equivalence: converted values equal at the precision of the less precise.
bool QuantitiesEquivalent(const Quantity& a, const Quantity& b);
// -1, 0, 1; nullopt when the units do not convert.
std::optional<int> CompareQuantities(const Quantity& a, const Quantity& b);
// Whether the units of `a` and `b` convert into each other.
bool QuantitiesComparable(const Quantity& a, const Quantity& b);
// `b` expressed in the unit of `a`; nullopt when they do not convert.
std::optional<Decimal> ConvertValue(const Quantity& from, std::string_view to_unit, bool to_calendar);
// Unit of a product or quotient: "cm.m", "g/m"; '1' is dropped.
std::string MultiplyUnits(const Quantity& a, const Quantity& b, bool divide);
// Whether `unit` parses as a UCUM unit this engine knows.
bool IsKnownUcumUnit(std::string_view unit);

}  // namespace eds::fhir::fhirpath
