// COPY text encoding and streaming.
#include "storage/pg_copy.hpp"

#include <array>

#include <pqxx/pqxx>
#include <pqxx/tablewriter>

namespace eds::storage {

void AppendCopyField(std::string& out, std::string_view s) {
  // the bytes COPY text needs escaped, looked up rather than compared
  static constexpr auto kSpecial = [] {
    std::array<bool, 256> t{};
    t['\\'] = t['\n'] = t['\r'] = t['\t'] = true;
    return t;
  }();
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (!kSpecial[static_cast<unsigned char>(c)]) continue;
    const char* esc = c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t";
    out.append(s.data() + start, i - start);
    out += esc;
    start = i + 1;
  }
  out.append(s.data() + start, s.size() - start);
}

std::string TextArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

// tablewriter is the libpqxx 6 interface that takes pre-encoded lines
// (stream_to encodes field by field); one call sends the whole buffer.
// write_raw_line copies a line that ends in a newline once more to drop it
// (and then appends one), so the last newline is taken off here: the buffer
// is copied once instead of twice.
void CopyLines(pqxx::transaction_base& tx, const char* table, const std::vector<std::string>& columns,
               std::string& data) {
  if (data.empty()) return;
  if (data.back() == '\n') data.pop_back();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  pqxx::tablewriter writer(tx, table, columns.begin(), columns.end());
#pragma GCC diagnostic pop
  writer.write_raw_line(data);
  writer.complete();
}

}  // namespace eds::storage
