// PostgreSQL COPY text format and array literals (storage-internal): rows
// encoded by hand and sent as one buffer, cheaper than encoding field by
// field through libpqxx.
#pragma once

#include <pqxx/transaction_base>

#include <string>
#include <string_view>
#include <vector>

namespace eds::storage {

// Appends `s` as a field of PostgreSQL's COPY text format.
void AppendCopyField(std::string& out, std::string_view s);

// Appends one COPY line: the fields, tab-separated, then a newline.
template <class... Fields>
void AppendCopyLine(std::string& out, const Fields&... fields) {
  bool first = true;
  auto one = [&](std::string_view f) {
    if (!first) out += '\t';
    first = false;
    AppendCopyField(out, f);
  };
  (one(fields), ...);
  out += '\n';
}

// The COPY text of SQL NULL (a field appended as is, not through AppendCopyField).
inline constexpr std::string_view kCopyNull = "\\N";

// A PostgreSQL array literal of text values: {"a","b"}.
std::string TextArrayLiteral(const std::vector<std::string>& values);

// Streams `data` (whole COPY text lines) into `table` in `tx`, in one call.
// `data` is left without its last newline.
void CopyLines(pqxx::transaction_base& tx, const char* table, const std::vector<std::string>& columns,
               std::string& data);

}  // namespace eds::storage
