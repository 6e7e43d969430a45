// HMAC-SHA256 with OpenSSL.
#include "storage/analytics_hash.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace eds::storage {

std::string KeyedHash(std::string_view key, std::string_view value) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // an empty key is still a key for HMAC; OpenSSL wants a non-null pointer for it
  static const unsigned char kEmpty = 0;
  const void* key_data = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  if (HMAC(EVP_sha256(), key_data, static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(value.data()),
           value.size(), digest, &length) == nullptr)
    throw std::runtime_error("HMAC-SHA256 failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string NormalFiscalCode(std::string_view fiscal_code) {
  while (!fiscal_code.empty() && (fiscal_code.front() == ' ' || fiscal_code.front() == '\t'))
    fiscal_code.remove_prefix(1);
  while (!fiscal_code.empty() && (fiscal_code.back() == ' ' || fiscal_code.back() == '\t'))
    fiscal_code.remove_suffix(1);
  std::string out(fiscal_code);
  for (auto& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

std::string RandomKey(std::size_t n) {
  std::string key(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("no random bytes for the analytics key");
  return key;
}

}  // namespace eds::storage
