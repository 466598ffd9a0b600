// Fuzz target for realtime_auth: JwtVerifier::verify, bearer_token and api_key_matches.
//
// An input without a newline is a token, verified as is by an HS256, an RS256 and an ES256
// verifier. An input "HEADER\nPAYLOAD" is turned into a token with those JSON texts, correctly
// signed with the HS256 secret, so the claim checks behind the signature are reached too.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>

#include "realtime/auth.hpp"

namespace {

using realtime::Clock;
using realtime::JwtConfig;
using realtime::JwtVerifier;
using realtime::TokenClaims;
using realtime::TokenError;

constexpr std::string_view kSecret = "fuzz-secret";
const Clock::time_point kNow{std::chrono::seconds(1'700'000'000)};

std::string generated_public_pem(int type, int param) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(type, nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 &&
      (type == EVP_PKEY_RSA ? EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, param)
                            : EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, param)) == 1) {
    EVP_PKEY_keygen(ctx, &key);
  }
  EVP_PKEY_CTX_free(ctx);
  std::string pem;
  BIO* bio = BIO_new(BIO_s_mem());
  if (key != nullptr && bio != nullptr && PEM_write_bio_PUBKEY(bio, key) == 1) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    pem.assign(data, static_cast<std::size_t>(size));
  }
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

JwtVerifier make_verifier(const JwtConfig& config) {
  auto created = JwtVerifier::create(config);
  if (std::holds_alternative<std::string>(created)) __builtin_trap();
  return std::get<JwtVerifier>(std::move(created));
}

struct Verifiers {
  JwtVerifier hs256;
  JwtVerifier rs256;
  JwtVerifier es256;
};

const Verifiers& verifiers() {
  static const Verifiers instance = [] {
    JwtConfig hs;
    hs.hs256_secret = std::string(kSecret);
    hs.issuer = "issuer";
    hs.audience = "realtime";
    JwtConfig rs;
    rs.public_key_pem = generated_public_pem(EVP_PKEY_RSA, 2048);
    JwtConfig es;
    es.public_key_pem = generated_public_pem(EVP_PKEY_EC, NID_X9_62_prime256v1);
    return Verifiers{make_verifier(hs), make_verifier(rs), make_verifier(es)};
  }();
  return instance;
}

std::string base64url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (const char c : bytes) {
    bits = (bits << 8) | static_cast<unsigned char>(c);
    count += 8;
    while (count >= 6) {
      count -= 6;
      out.push_back(kAlphabet[(bits >> count) & 0x3F]);
    }
  }
  if (count > 0) out.push_back(kAlphabet[(bits << (6 - count)) & 0x3F]);
  return out;
}

std::string hs256_signed(std::string_view header, std::string_view payload) {
  const std::string input = base64url(header) + "." + base64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &length);
  return input + "." + base64url(std::string_view(reinterpret_cast<const char*>(mac), length));
}

// What every accepted token must satisfy, whatever the input.
void check(const std::variant<TokenClaims, TokenError>& result, std::string_view token) {
  const auto* claims = std::get_if<TokenClaims>(&result);
  if (claims == nullptr) {
    if (realtime::to_string(std::get<TokenError>(result)).empty()) __builtin_trap();
    return;
  }
  if (token.size() > JwtVerifier::max_token_bytes) __builtin_trap();
  const std::string& subject = claims->subject;
  if (subject.empty() || subject.size() > JwtVerifier::max_subject_bytes) __builtin_trap();
  for (const char c : subject) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) __builtin_trap();
  }
  // A "rooms" claim that was accepted holds room names and prefixes of one only.
  if (claims->rooms) {
    for (const std::string& entry : *claims->rooms) {
      const std::string_view name =
          entry.ends_with('*') ? std::string_view(entry).substr(0, entry.size() - 1) : entry;
      if (name.find('*') != std::string_view::npos || name.size() > 128) __builtin_trap();
      if (!realtime::rooms_claim_allows(*claims->rooms, entry.ends_with('*') ? name : entry)) {
        __builtin_trap();
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const Verifiers& v = verifiers();

  const std::size_t newline = input.find('\n');
  if (newline == std::string_view::npos) {
    for (const JwtVerifier* verifier : {&v.hs256, &v.rs256, &v.es256}) {
      check(verifier->verify(input, kNow), input);
    }
    if (const auto token = realtime::bearer_token(input)) {
      if (token->empty() || token->data() < input.data() ||
          token->data() + token->size() > input.data() + input.size()) {
        __builtin_trap();
      }
    }
    const std::string_view first = input.substr(0, size / 2);
    const std::string_view second = input.substr(size / 2);
    if (realtime::api_key_matches(first, second) != (!first.empty() && first == second)) {
      __builtin_trap();
    }
    return 0;
  }

  const std::string token = hs256_signed(input.substr(0, newline), input.substr(newline + 1));
  check(v.hs256.verify(token, kNow), token);
  // Also unsigned and with the alg rewritten: never accepted.
  const std::string unsigned_token = token.substr(0, token.rfind('.') + 1);
  if (std::holds_alternative<TokenClaims>(v.hs256.verify(unsigned_token, kNow))) __builtin_trap();
  if (std::holds_alternative<TokenClaims>(v.rs256.verify(token, kNow))) __builtin_trap();
  return 0;
}
