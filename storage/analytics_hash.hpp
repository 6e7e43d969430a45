// Keyed hashes of personal identifiers (fiscal codes) for analytics tables:
// HMAC-SHA256 under a key only the server knows, so analysts can count and
// link patients without ever seeing a fiscal code.
#pragma once

#include <string>
#include <string_view>

namespace eds::storage {

// HMAC-SHA256 of `value` under `key`, as 64 lower-case hex digits.
std::string KeyedHash(std::string_view key, std::string_view value);

// A fiscal code as hashed: surrounding blanks removed, ASCII letters upper
// case (a code written in lower case is the same code).
std::string NormalFiscalCode(std::string_view fiscal_code);

// `n` random bytes from the system's cryptographic generator. Throws
// std::runtime_error when it cannot provide them.
std::string RandomKey(std::size_t n);

}  // namespace eds::storage
