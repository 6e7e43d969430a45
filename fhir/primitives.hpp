// Syntax of FHIR ids and instants, and the time formats the REST API uses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace eds::fhir {

// FHIR id: [A-Za-z0-9\-\.]{1,64}
bool IsValidId(std::string_view id);

// Resource type name syntax: [A-Z][A-Za-z]* (whether it is known is up to Definitions).
bool IsTypeNameSyntax(std::string_view name);

// A half-open range of instants, in milliseconds since the Unix epoch.
struct InstantRange {
  int64_t low_ms = 0;
  int64_t high_ms = 0;  // exclusive
};

// Parses a FHIR date, dateTime or instant ("2024", "2024-05", "2024-05-06",
// "2024-05-06T10:11:12.345+02:00") into the range its precision implies.
// Times without a zone are taken as UTC. Returns nullopt when malformed.
std::optional<InstantRange> ParseDateTimeRange(std::string_view text);

// Milliseconds since the epoch as a FHIR instant: 2024-05-06T10:11:12.345Z.
std::string FormatInstant(int64_t epoch_ms);

// Milliseconds since the epoch as an HTTP date: Mon, 06 May 2024 10:11:12 GMT.
std::string FormatHttpDate(int64_t epoch_ms);

// A fresh resource id: a time-ordered (version 7) UUID, the creation time
// in milliseconds then 74 random bits. Ids made later sort later, so the
// B-tree entries of new resources go to the right edge of the indexes
// keyed by id instead of a random page each.
std::string NewResourceId();

// Decodes base64 (RFC 4648, padding optional, whitespace ignored) as FHIR
// base64Binary carries it; nullopt when `text` is not base64.
std::optional<std::string> DecodeBase64(std::string_view text);
// True when DecodeBase64 would decode `text`, without decoding it.
bool IsBase64(std::string_view text);

// Current time in milliseconds since the epoch.
int64_t NowMs();

}  // namespace eds::fhir
