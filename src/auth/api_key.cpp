// API-key comparison and Authorization header parsing.

#include <cstddef>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "realtime/auth.hpp"

namespace realtime {
namespace {

bool is_space_or_tab(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space_or_tab(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space_or_tab(text.back())) text.remove_suffix(1);
  return text;
}

char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

}  // namespace

bool api_key_matches(std::string_view expected, std::string_view presented) noexcept {
  if (expected.empty()) return false;
  // Digests have the same length whatever the inputs, so the comparison time says nothing about
  // the key's length or the position of the first difference.
  unsigned char expected_digest[EVP_MAX_MD_SIZE];
  unsigned char presented_digest[EVP_MAX_MD_SIZE];
  unsigned int expected_length = 0;
  unsigned int presented_length = 0;
  if (EVP_Digest(expected.data(), expected.size(), expected_digest, &expected_length, EVP_sha256(),
                 nullptr) != 1 ||
      EVP_Digest(presented.data(), presented.size(), presented_digest, &presented_length,
                 EVP_sha256(), nullptr) != 1) {
    return false;
  }
  return expected_length == presented_length &&
         CRYPTO_memcmp(expected_digest, presented_digest, expected_length) == 0;
}

namespace {
constexpr std::string_view kBearerScheme = "bearer";  // matched case-insensitively
}  // namespace

bool names_bearer_scheme(std::string_view authorization_header) noexcept {
  constexpr std::string_view scheme = kBearerScheme;
  const std::string_view header = trim(authorization_header);
  if (header.size() < scheme.size() ||
      (header.size() > scheme.size() && !is_space_or_tab(header[scheme.size()]))) {
    return false;
  }
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (lower_ascii(header[i]) != scheme[i]) return false;
  }
  return true;
}

std::optional<std::string_view> bearer_token(std::string_view authorization_header) noexcept {
  if (!names_bearer_scheme(authorization_header)) return std::nullopt;
  const std::string_view token = trim(trim(authorization_header).substr(kBearerScheme.size()));
  if (token.empty()) return std::nullopt;
  for (const char c : token) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7F) return std::nullopt;
  }
  return token;
}

}  // namespace realtime
