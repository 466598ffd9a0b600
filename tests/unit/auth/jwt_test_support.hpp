// What the JwtVerifier tests share: tokens minted with libjwt or signed by hand, keys generated
// with OpenSSL, and verifiers made from them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "realtime/auth.hpp"

namespace realtime {
inline void PrintTo(TokenError error, std::ostream* os) { *os << to_string(error); }
}  // namespace realtime

namespace {

using realtime::Clock;
using realtime::JwtAlgorithm;
using realtime::JwtConfig;
using realtime::JwtVerifier;
using realtime::rooms_claim_allows;
using realtime::TokenClaims;
using realtime::TokenError;

constexpr std::int64_t kNow = 1'700'000'000;
const Clock::time_point kNowPoint{std::chrono::seconds(kNow)};
constexpr std::string_view kSecret = "a-test-secret-of-reasonable-length-0123456789";

// ---------------------------------------------------------------------------------------------
// Keys and tokens.

struct KeyPair {
  std::string private_pem;
  std::string public_pem;
  std::string certificate_pem;  // self-signed, over the public key
};

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct JwtDeleter {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};

inline std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// type: EVP_PKEY_RSA with param = bits, or EVP_PKEY_EC with param = curve NID.
inline KeyPair generate_key(int type, int param) {
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(EVP_PKEY_CTX_new_id(type, nullptr));
  EXPECT_TRUE(ctx);
  EXPECT_EQ(EVP_PKEY_keygen_init(ctx.get()), 1);
  if (type == EVP_PKEY_RSA) {
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), param), 1);
  } else {
    EXPECT_EQ(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), param), 1);
  }
  EVP_PKEY* raw = nullptr;
  EXPECT_EQ(EVP_PKEY_keygen(ctx.get(), &raw), 1);
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(raw);

  KeyPair pair;
  std::unique_ptr<BIO, BioDeleter> private_bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(
      PEM_write_bio_PrivateKey(private_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr),
      1);
  pair.private_pem = bio_text(private_bio.get());
  std::unique_ptr<BIO, BioDeleter> public_bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PUBKEY(public_bio.get(), key.get()), 1);
  pair.public_pem = bio_text(public_bio.get());

  std::unique_ptr<X509, X509Deleter> cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("issuer.test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  EXPECT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
  std::unique_ptr<BIO, BioDeleter> cert_bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_X509(cert_bio.get(), cert.get()), 1);
  pair.certificate_pem = bio_text(cert_bio.get());
  return pair;
}

inline const KeyPair& rsa_key() {
  static const KeyPair key = generate_key(EVP_PKEY_RSA, 2048);
  return key;
}
inline const KeyPair& other_rsa_key() {
  static const KeyPair key = generate_key(EVP_PKEY_RSA, 2048);
  return key;
}
inline const KeyPair& ec_key() {
  static const KeyPair key = generate_key(EVP_PKEY_EC, NID_X9_62_prime256v1);
  return key;
}
inline const KeyPair& other_ec_key() {
  static const KeyPair key = generate_key(EVP_PKEY_EC, NID_X9_62_prime256v1);
  return key;
}

// A token minted by libjwt: `grants_json` is the payload object.
inline std::string make_token(jwt_alg_t alg, std::string_view key, const std::string& grants_json) {
  jwt_t* raw = nullptr;
  EXPECT_EQ(jwt_new(&raw), 0);
  std::unique_ptr<jwt_t, JwtDeleter> jwt(raw);
  EXPECT_EQ(jwt_add_grants_json(jwt.get(), grants_json.c_str()), 0) << grants_json;
  EXPECT_EQ(jwt_set_alg(jwt.get(), alg, reinterpret_cast<const unsigned char*>(key.data()),
                        static_cast<int>(key.size())),
            0);
  char* encoded = jwt_encode_str(jwt.get());
  EXPECT_NE(encoded, nullptr);
  std::string token = encoded != nullptr ? encoded : "";
  std::free(encoded);
  return token;
}

inline std::string hs256_token(const std::string& grants_json, std::string_view secret = kSecret) {
  return make_token(JWT_ALG_HS256, secret, grants_json);
}

// The same with jwt_add_grant / jwt_add_grant_int: sub and exp only.
inline std::string hs256_token_sub_exp(const char* subject, long exp) {
  jwt_t* raw = nullptr;
  EXPECT_EQ(jwt_new(&raw), 0);
  std::unique_ptr<jwt_t, JwtDeleter> jwt(raw);
  EXPECT_EQ(jwt_add_grant(jwt.get(), "sub", subject), 0);
  EXPECT_EQ(jwt_add_grant_int(jwt.get(), "exp", exp), 0);
  EXPECT_EQ(
      jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(kSecret.data()),
                  static_cast<int>(kSecret.size())),
      0);
  char* encoded = jwt_encode_str(jwt.get());
  std::string token = encoded != nullptr ? encoded : "";
  std::free(encoded);
  return token;
}

inline std::string base64url(std::string_view bytes) {
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

// A hand-built HS256 token: any header and payload text, correctly signed with `secret`.
inline std::string hand_signed(std::string_view header_json, std::string_view payload_json,
                               std::string_view secret = kSecret) {
  const std::string input = base64url(header_json) + "." + base64url(payload_json);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_length);
  return input + "." + base64url(std::string_view(reinterpret_cast<const char*>(mac), mac_length));
}

inline std::string claims(std::string_view extra = {}) {
  std::string json = R"({"sub":"user-1","exp":)" + std::to_string(kNow + 3600);
  if (!extra.empty()) json += "," + std::string(extra);
  return json + "}";
}

// ---------------------------------------------------------------------------------------------
// Verifiers.

inline JwtVerifier make_verifier(JwtConfig config) {
  auto created = JwtVerifier::create(config);
  if (auto* error = std::get_if<std::string>(&created)) {
    ADD_FAILURE() << "create failed: " << *error;
    return JwtVerifier{};
  }
  return std::get<JwtVerifier>(std::move(created));
}

inline JwtVerifier hs256_verifier(std::string issuer = {}, std::string audience = {},
                                  std::chrono::seconds leeway = std::chrono::seconds(30)) {
  JwtConfig config;
  config.hs256_secret = std::string(kSecret);
  config.issuer = std::move(issuer);
  config.audience = std::move(audience);
  config.leeway = leeway;
  return make_verifier(config);
}

inline JwtVerifier pem_verifier(const std::string& pem) {
  JwtConfig config;
  config.public_key_pem = pem;
  return make_verifier(config);
}

inline std::string create_error(const JwtConfig& config) {
  auto created = JwtVerifier::create(config);
  if (auto* error = std::get_if<std::string>(&created)) return *error;
  ADD_FAILURE() << "create unexpectedly succeeded";
  return {};
}

// nullopt when the token is accepted.
inline std::optional<TokenError> error_of(const JwtVerifier& verifier, std::string_view token,
                                          Clock::time_point now = kNowPoint) {
  auto result = verifier.verify(token, now);
  if (auto* error = std::get_if<TokenError>(&result)) return *error;
  return std::nullopt;
}

inline TokenClaims accepted(const JwtVerifier& verifier, std::string_view token,
                            Clock::time_point now = kNowPoint) {
  auto result = verifier.verify(token, now);
  if (auto* error = std::get_if<TokenError>(&result)) {
    ADD_FAILURE() << "refused: " << to_string(*error);
    return {};
  }
  return std::get<TokenClaims>(std::move(result));
}

}  // namespace
