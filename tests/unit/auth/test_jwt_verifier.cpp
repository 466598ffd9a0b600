// JwtVerifier against tokens minted here with libjwt, and keys generated here with OpenSSL.

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
void PrintTo(TokenError error, std::ostream* os) { *os << to_string(error); }
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

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// type: EVP_PKEY_RSA with param = bits, or EVP_PKEY_EC with param = curve NID.
KeyPair generate_key(int type, int param) {
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

const KeyPair& rsa_key() {
  static const KeyPair key = generate_key(EVP_PKEY_RSA, 2048);
  return key;
}
const KeyPair& other_rsa_key() {
  static const KeyPair key = generate_key(EVP_PKEY_RSA, 2048);
  return key;
}
const KeyPair& ec_key() {
  static const KeyPair key = generate_key(EVP_PKEY_EC, NID_X9_62_prime256v1);
  return key;
}
const KeyPair& other_ec_key() {
  static const KeyPair key = generate_key(EVP_PKEY_EC, NID_X9_62_prime256v1);
  return key;
}

// A token minted by libjwt: `grants_json` is the payload object.
std::string make_token(jwt_alg_t alg, std::string_view key, const std::string& grants_json) {
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

std::string hs256_token(const std::string& grants_json, std::string_view secret = kSecret) {
  return make_token(JWT_ALG_HS256, secret, grants_json);
}

// The same with jwt_add_grant / jwt_add_grant_int: sub and exp only.
std::string hs256_token_sub_exp(const char* subject, long exp) {
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

// A hand-built HS256 token: any header and payload text, correctly signed with `secret`.
std::string hand_signed(std::string_view header_json, std::string_view payload_json,
                        std::string_view secret = kSecret) {
  const std::string input = base64url(header_json) + "." + base64url(payload_json);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_length);
  return input + "." + base64url(std::string_view(reinterpret_cast<const char*>(mac), mac_length));
}

std::string claims(std::string_view extra = {}) {
  std::string json = R"({"sub":"user-1","exp":)" + std::to_string(kNow + 3600);
  if (!extra.empty()) json += "," + std::string(extra);
  return json + "}";
}

// ---------------------------------------------------------------------------------------------
// Verifiers.

JwtVerifier make_verifier(JwtConfig config) {
  auto created = JwtVerifier::create(config);
  if (auto* error = std::get_if<std::string>(&created)) {
    ADD_FAILURE() << "create failed: " << *error;
    return JwtVerifier{};
  }
  return std::get<JwtVerifier>(std::move(created));
}

JwtVerifier hs256_verifier(std::string issuer = {}, std::string audience = {},
                           std::chrono::seconds leeway = std::chrono::seconds(30)) {
  JwtConfig config;
  config.hs256_secret = std::string(kSecret);
  config.issuer = std::move(issuer);
  config.audience = std::move(audience);
  config.leeway = leeway;
  return make_verifier(config);
}

JwtVerifier pem_verifier(const std::string& pem) {
  JwtConfig config;
  config.public_key_pem = pem;
  return make_verifier(config);
}

std::string create_error(const JwtConfig& config) {
  auto created = JwtVerifier::create(config);
  if (auto* error = std::get_if<std::string>(&created)) return *error;
  ADD_FAILURE() << "create unexpectedly succeeded";
  return {};
}

// nullopt when the token is accepted.
std::optional<TokenError> error_of(const JwtVerifier& verifier, std::string_view token,
                                   Clock::time_point now = kNowPoint) {
  auto result = verifier.verify(token, now);
  if (auto* error = std::get_if<TokenError>(&result)) return *error;
  return std::nullopt;
}

TokenClaims accepted(const JwtVerifier& verifier, std::string_view token,
                     Clock::time_point now = kNowPoint) {
  auto result = verifier.verify(token, now);
  if (auto* error = std::get_if<TokenError>(&result)) {
    ADD_FAILURE() << "refused: " << to_string(*error);
    return {};
  }
  return std::get<TokenClaims>(std::move(result));
}

// ---------------------------------------------------------------------------------------------
// Configuration.

TEST(JwtVerifierConfig, DefaultVerifierIsDisabled) {
  const JwtVerifier verifier;
  EXPECT_FALSE(verifier.enabled());
  EXPECT_EQ(verifier.algorithm(), JwtAlgorithm::none);
  EXPECT_EQ(error_of(verifier, hs256_token(claims())), TokenError::not_configured);
  EXPECT_EQ(error_of(verifier, ""), TokenError::not_configured);
}

TEST(JwtVerifierConfig, EmptyConfigIsDisabled) {
  const JwtVerifier verifier = make_verifier(JwtConfig{});
  EXPECT_FALSE(verifier.enabled());
  EXPECT_EQ(error_of(verifier, hs256_token(claims())), TokenError::not_configured);
}

TEST(JwtVerifierConfig, KeyTypeSelectsAlgorithm) {
  EXPECT_EQ(hs256_verifier().algorithm(), JwtAlgorithm::hs256);
  EXPECT_TRUE(hs256_verifier().enabled());
  EXPECT_EQ(pem_verifier(rsa_key().public_pem).algorithm(), JwtAlgorithm::rs256);
  EXPECT_EQ(pem_verifier(ec_key().public_pem).algorithm(), JwtAlgorithm::es256);
  EXPECT_EQ(pem_verifier(rsa_key().certificate_pem).algorithm(), JwtAlgorithm::rs256);
  EXPECT_EQ(pem_verifier(ec_key().certificate_pem).algorithm(), JwtAlgorithm::es256);
}

TEST(JwtVerifierConfig, UnreadablePemIsRefusedWithAReason) {
  JwtConfig config;
  config.public_key_pem =
      "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n";
  EXPECT_NE(create_error(config).find("PEM"), std::string::npos);
  config.public_key_pem = "just some text";
  EXPECT_NE(create_error(config).find("PEM"), std::string::npos);
}

TEST(JwtVerifierConfig, PrivateKeyIsRefused) {
  JwtConfig config;
  config.public_key_pem = rsa_key().private_pem;
  const std::string error = create_error(config);
  EXPECT_NE(error.find("private key"), std::string::npos) << error;
  // The message never echoes the key material.
  EXPECT_EQ(error.find("MII"), std::string::npos) << error;
}

TEST(JwtVerifierConfig, WeakOrUnsupportedKeysAreRefused) {
  JwtConfig config;
  config.public_key_pem = generate_key(EVP_PKEY_RSA, 1024).public_pem;
  EXPECT_NE(create_error(config).find("2048"), std::string::npos);
  config.public_key_pem = generate_key(EVP_PKEY_EC, NID_secp384r1).public_pem;
  EXPECT_NE(create_error(config).find("P-256"), std::string::npos);
}

TEST(JwtVerifierConfig, SecretAndPublicKeyTogetherAreRefused) {
  JwtConfig config;
  config.hs256_secret = std::string(kSecret);
  config.public_key_pem = rsa_key().public_pem;
  EXPECT_NE(create_error(config).find("only one"), std::string::npos);
}

TEST(JwtVerifierConfig, LeewayOutOfRangeIsRefused) {
  JwtConfig config;
  config.hs256_secret = std::string(kSecret);
  config.leeway = std::chrono::seconds(-1);
  EXPECT_NE(create_error(config).find("leeway"), std::string::npos);
  config.leeway = std::chrono::hours(25);
  EXPECT_NE(create_error(config).find("leeway"), std::string::npos);
}

TEST(JwtVerifierConfig, NamesAreStable) {
  EXPECT_EQ(realtime::to_string(TokenError::missing), "missing");
  EXPECT_EQ(realtime::to_string(TokenError::malformed), "malformed");
  EXPECT_EQ(realtime::to_string(TokenError::bad_algorithm), "bad_algorithm");
  EXPECT_EQ(realtime::to_string(TokenError::bad_signature), "bad_signature");
  EXPECT_EQ(realtime::to_string(TokenError::expired), "expired");
  EXPECT_EQ(realtime::to_string(TokenError::not_yet_valid), "not_yet_valid");
  EXPECT_EQ(realtime::to_string(TokenError::bad_issuer), "bad_issuer");
  EXPECT_EQ(realtime::to_string(TokenError::bad_audience), "bad_audience");
  EXPECT_EQ(realtime::to_string(TokenError::no_subject), "no_subject");
  EXPECT_EQ(realtime::to_string(TokenError::not_configured), "not_configured");
  EXPECT_EQ(realtime::to_string(JwtAlgorithm::hs256), "HS256");
  EXPECT_EQ(realtime::to_string(JwtAlgorithm::rs256), "RS256");
  EXPECT_EQ(realtime::to_string(JwtAlgorithm::es256), "ES256");
  EXPECT_EQ(realtime::to_string(JwtAlgorithm::none), "none");
}

// ---------------------------------------------------------------------------------------------
// HS256: signature and algorithm.

TEST(JwtVerifierHs256, ValidTokenYieldsSubjectAndExpiry) {
  const TokenClaims claims_out = accepted(hs256_verifier(), hs256_token(claims()));
  EXPECT_EQ(claims_out.subject, "user-1");
  ASSERT_TRUE(claims_out.expires_at.has_value());
  EXPECT_EQ(*claims_out.expires_at, kNowPoint + std::chrono::hours(1));
}

TEST(JwtVerifierHs256, TokenMadeWithAddGrantIsAccepted) {
  const TokenClaims claims_out =
      accepted(hs256_verifier(), hs256_token_sub_exp("alice", static_cast<long>(kNow + 60)));
  EXPECT_EQ(claims_out.subject, "alice");
}

TEST(JwtVerifierHs256, TokenWithoutExpiryHasNoExpiresAt) {
  const TokenClaims claims_out = accepted(hs256_verifier(), hs256_token(R"({"sub":"u"})"));
  EXPECT_EQ(claims_out.subject, "u");
  EXPECT_FALSE(claims_out.expires_at.has_value());
}

TEST(JwtVerifierHs256, WrongSecretIsRefused) {
  EXPECT_EQ(error_of(hs256_verifier(), hs256_token(claims(), "another-secret")),
            TokenError::bad_signature);
}

TEST(JwtVerifierHs256, TamperedPayloadIsRefused) {
  const std::string original = hs256_token(claims());
  const std::string forged_payload =
      base64url(R"({"sub":"admin","exp":)" + std::to_string(kNow + 3600) + "}");
  const std::size_t first = original.find('.');
  const std::size_t second = original.find('.', first + 1);
  const std::string tampered =
      original.substr(0, first + 1) + forged_payload + original.substr(second);
  EXPECT_EQ(error_of(hs256_verifier(), tampered), TokenError::bad_signature);
  // Control: the untampered token passes.
  EXPECT_EQ(error_of(hs256_verifier(), original), std::nullopt);
}

TEST(JwtVerifierHs256, TamperedSignatureIsRefused) {
  std::string token = hs256_token(claims());
  token[token.size() - 5] = token[token.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(error_of(hs256_verifier(), token), TokenError::bad_signature);
  const std::string without_signature = token.substr(0, token.rfind('.') + 1);
  EXPECT_EQ(error_of(hs256_verifier(), without_signature), TokenError::bad_signature);
}

TEST(JwtVerifierHs256, AlgNoneIsRefused) {
  const std::string payload = base64url(claims());
  const JwtVerifier verifier = hs256_verifier();
  EXPECT_EQ(error_of(verifier, "eyJhbGciOiJub25lIn0." + payload + "."), TokenError::bad_algorithm);
  const std::string with_signature = hs256_token(claims());
  EXPECT_EQ(error_of(verifier, "eyJhbGciOiJub25lIn0." + payload +
                                   with_signature.substr(with_signature.rfind('.'))),
            TokenError::bad_algorithm);
  for (const char* header : {R"({"alg":"None"})", R"({"alg":"NONE","typ":"JWT"})",
                             R"({"alg":"hs256"})", R"({"alg":""})"}) {
    EXPECT_EQ(error_of(verifier, hand_signed(header, claims())), TokenError::bad_algorithm)
        << header;
  }
}

TEST(JwtVerifierHs256, OtherAlgorithmsAreRefused) {
  const JwtVerifier verifier = hs256_verifier();
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_HS384, kSecret, claims())),
            TokenError::bad_algorithm);
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_HS512, kSecret, claims())),
            TokenError::bad_algorithm);
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_RS256, rsa_key().private_pem, claims())),
            TokenError::bad_algorithm);
}

TEST(JwtVerifierHs256, HeaderIsCheckedStrictly) {
  const JwtVerifier verifier = hs256_verifier();
  // Control: a hand-signed token with a normal header is accepted, typ compared without case.
  EXPECT_EQ(error_of(verifier, hand_signed(R"({"alg":"HS256","typ":"jwt"})", claims())),
            std::nullopt);
  EXPECT_EQ(error_of(verifier, hand_signed(R"( { "typ" : "JWT" , "alg" : "HS256" } )", claims())),
            std::nullopt);
  for (const char* header : {
           R"({"alg":"HS256","typ":"JWS"})",         // not a JWT
           R"({"alg":"HS256","typ":"at+jwt"})",      // (RFC 9068: libjwt takes only "JWT")
           R"({"alg":"HS256","crit":["exp"]})",      // unknown critical extension
           R"({"alg":"none","alg":"HS256"})",        // duplicate member
           R"({"alg":"HS256","alg":"HS256"})",       // duplicate member
           R"({"typ":"JWT"})",                       // no alg
           R"({"alg":256})",                         // alg not a string
           R"(["HS256"])",                           // not an object
           R"({"alg":"HS256"} x)",                   // trailing bytes
           R"({"alg":"HS256",})",                    // trailing comma
           "{\"alg\":\"HS256\",\"x\":\"\\u0000\"}",  // NUL escape
           "{\"alg\":\"HS256\",\"x\":\"\xff\"}",     // invalid UTF-8
           "{\"alg\":\"HS256\",\"x\":\"\\ud800\"}",  // lone surrogate
       }) {
    EXPECT_EQ(error_of(verifier, hand_signed(header, claims())), TokenError::malformed) << header;
  }
}

TEST(JwtVerifierHs256, PayloadMustBeAJsonObjectWithoutDuplicates) {
  const JwtVerifier verifier = hs256_verifier();
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  EXPECT_EQ(error_of(verifier, hand_signed(header, R"({"sub":"a","sub":"b"})")),
            TokenError::malformed);
  EXPECT_EQ(error_of(verifier, hand_signed(header, R"(["sub"])")), TokenError::malformed);
  EXPECT_EQ(error_of(verifier, hand_signed(header, R"({"sub":"a")")), TokenError::malformed);
  EXPECT_EQ(error_of(verifier, hand_signed(header, "")), TokenError::malformed);
}

// ---------------------------------------------------------------------------------------------
// Time.

std::string token_with_times(std::optional<std::int64_t> exp, std::optional<std::int64_t> nbf) {
  std::string json = R"({"sub":"u")";
  if (exp) json += ",\"exp\":" + std::to_string(*exp);
  if (nbf) json += ",\"nbf\":" + std::to_string(*nbf);
  return hs256_token(json + "}");
}

TEST(JwtVerifierTime, ExpiredTokenIsRefused) {
  EXPECT_EQ(error_of(hs256_verifier(), token_with_times(kNow - 31, std::nullopt)),
            TokenError::expired);
  EXPECT_EQ(error_of(hs256_verifier(), token_with_times(kNow - 86400, std::nullopt)),
            TokenError::expired);
}

TEST(JwtVerifierTime, ExpiredWithinLeewayIsAccepted) {
  EXPECT_EQ(error_of(hs256_verifier(), token_with_times(kNow - 29, std::nullopt)), std::nullopt);
  // Boundary: exp + leeway == now is expired.
  EXPECT_EQ(error_of(hs256_verifier(), token_with_times(kNow - 30, std::nullopt)),
            TokenError::expired);
}

TEST(JwtVerifierTime, ZeroLeewayIsExact) {
  const JwtVerifier verifier = hs256_verifier({}, {}, std::chrono::seconds(0));
  EXPECT_EQ(error_of(verifier, token_with_times(kNow, std::nullopt)), TokenError::expired);
  EXPECT_EQ(error_of(verifier, token_with_times(kNow + 1, std::nullopt)), std::nullopt);
  EXPECT_EQ(error_of(verifier, token_with_times(kNow + 1, std::nullopt),
                     kNowPoint + std::chrono::milliseconds(999)),
            std::nullopt);
  EXPECT_EQ(error_of(verifier, token_with_times(kNow + 1, std::nullopt),
                     kNowPoint + std::chrono::seconds(1)),
            TokenError::expired);
  EXPECT_EQ(error_of(verifier, token_with_times(std::nullopt, kNow)), std::nullopt);
  EXPECT_EQ(error_of(verifier, token_with_times(std::nullopt, kNow + 1)),
            TokenError::not_yet_valid);
}

TEST(JwtVerifierTime, NotBeforeInTheFutureIsRefused) {
  EXPECT_EQ(error_of(hs256_verifier(), token_with_times(kNow + 3600, kNow + 60)),
            TokenError::not_yet_valid);
  EXPECT_EQ(error_of(hs256_verifier(), token_with_times(kNow + 3600, kNow + 10)), std::nullopt);
  EXPECT_EQ(error_of(hs256_verifier(), token_with_times(kNow + 3600, kNow - 10)), std::nullopt);
}

TEST(JwtVerifierTime, NumericDatesMustBeNumbers) {
  const JwtVerifier verifier = hs256_verifier();
  EXPECT_EQ(error_of(verifier, hs256_token(R"({"sub":"u","exp":"9999999999"})")),
            TokenError::malformed);
  EXPECT_EQ(error_of(verifier, hs256_token(R"({"sub":"u","nbf":"0"})")), TokenError::malformed);
  EXPECT_EQ(error_of(verifier, hs256_token(R"({"sub":"u","exp":null})")), TokenError::malformed);
  EXPECT_EQ(error_of(verifier, hs256_token(R"({"sub":"u","exp":true})")), TokenError::malformed);
  EXPECT_EQ(error_of(verifier, hs256_token(R"({"sub":"u","exp":[1]})")), TokenError::malformed);
}

TEST(JwtVerifierTime, FractionalAndHugeDatesAreHandled) {
  const JwtVerifier verifier = hs256_verifier({}, {}, std::chrono::seconds(0));
  const std::string fractional = R"({"sub":"u","exp":)" + std::to_string(kNow + 100) + ".75}";
  const TokenClaims claims_out = accepted(verifier, hs256_token(fractional));
  ASSERT_TRUE(claims_out.expires_at.has_value());
  EXPECT_EQ(*claims_out.expires_at, kNowPoint + std::chrono::seconds(100));
  EXPECT_EQ(error_of(verifier, hs256_token(R"({"sub":"u","exp":1.7e9})")), TokenError::expired);

  const TokenClaims far = accepted(verifier, hs256_token(R"({"sub":"u","exp":99999999999999})"));
  ASSERT_TRUE(far.expires_at.has_value());
  EXPECT_EQ(*far.expires_at, Clock::time_point::max());
  EXPECT_EQ(error_of(verifier, hs256_token(R"({"sub":"u","exp":-99999999999999})")),
            TokenError::expired);
  EXPECT_EQ(error_of(verifier, hs256_token(R"({"sub":"u","nbf":1e300})")),
            TokenError::not_yet_valid);

  // The largest integer libjwt reads; past it the payload cannot be read: malformed, not a bad
  // signature (the issuer is to fix its claims, not its key). libjwt cannot mint those tokens.
  constexpr std::string_view kHs256Header = R"({"alg":"HS256","typ":"JWT"})";
  const TokenClaims last =
      accepted(verifier, hs256_token(R"({"sub":"u","exp":9223372036854775807})"));
  EXPECT_EQ(last.expires_at, Clock::time_point::max());
  for (const char* payload :
       {R"({"sub":"u","exp":9223372036854775808})", R"({"sub":"u","nbf":-9223372036854775809})",
        R"({"sub":"u","n":[99999999999999999999]})"}) {
    EXPECT_EQ(error_of(verifier, hand_signed(kHs256Header, payload)), TokenError::malformed)
        << payload;
  }
  // (A fraction is a double, which libjwt reads.)
  EXPECT_EQ(
      error_of(verifier, hand_signed(kHs256Header, R"({"sub":"u","n":99999999999999999999.0})")),
      std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Issuer, audience, subject.

TEST(JwtVerifierClaims, IssuerMustMatchWhenConfigured) {
  const JwtVerifier verifier = hs256_verifier("https://issuer.test");
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("iss":"https://issuer.test")"))),
            std::nullopt);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("iss":"https://evil.test")"))),
            TokenError::bad_issuer);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("iss":"https://issuer.test/")"))),
            TokenError::bad_issuer);
  EXPECT_EQ(error_of(verifier, hs256_token(claims())), TokenError::bad_issuer);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("iss":["https://issuer.test"])"))),
            TokenError::bad_issuer);
  // Not configured: not checked.
  EXPECT_EQ(error_of(hs256_verifier(), hs256_token(claims(R"("iss":"https://evil.test")"))),
            std::nullopt);
}

TEST(JwtVerifierClaims, StringAudienceMustMatchWhenConfigured) {
  const JwtVerifier verifier = hs256_verifier({}, "realtime");
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("aud":"realtime")"))), std::nullopt);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("aud":"billing")"))),
            TokenError::bad_audience);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("aud":"Realtime")"))),
            TokenError::bad_audience);
  EXPECT_EQ(error_of(verifier, hs256_token(claims())), TokenError::bad_audience);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("aud":7)"))), TokenError::bad_audience);
  EXPECT_EQ(error_of(hs256_verifier(), hs256_token(claims(R"("aud":"billing")"))), std::nullopt);
}

TEST(JwtVerifierClaims, ArrayAudienceMustContainTheAudience) {
  const JwtVerifier verifier = hs256_verifier({}, "realtime");
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("aud":["billing","realtime"])"))),
            std::nullopt);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("aud":["realtime"])"))), std::nullopt);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("aud":["billing","search"])"))),
            TokenError::bad_audience);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("aud":[])"))), TokenError::bad_audience);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("aud":[["realtime"]])"))),
            TokenError::bad_audience);
}

TEST(JwtVerifierClaims, IssuerAndAudienceTogether) {
  const JwtVerifier verifier = hs256_verifier("issuer", "realtime");
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("iss":"issuer","aud":["realtime"])"))),
            std::nullopt);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("iss":"issuer","aud":"x")"))),
            TokenError::bad_audience);
  EXPECT_EQ(error_of(verifier, hs256_token(claims(R"("iss":"x","aud":"realtime")"))),
            TokenError::bad_issuer);
}

TEST(JwtVerifierClaims, RoomsClaimListsRoomsAndPrefixes) {
  const JwtVerifier verifier = hs256_verifier();
  EXPECT_EQ(accepted(verifier, hs256_token(claims())).rooms, std::nullopt);  // no claim: any room
  const TokenClaims listed =
      accepted(verifier, hs256_token(claims(R"("rooms":["general","team-7:*","*"])")));
  EXPECT_EQ(listed.rooms, (std::vector<std::string>{"general", "team-7:*", "*"}));
  EXPECT_EQ(accepted(verifier, hs256_token(claims(R"("rooms":[])"))).rooms,
            std::vector<std::string>{});  // no room at all
  // Anything else is a token its issuer got wrong: refused, not read as "any room".
  for (const char* rooms : {R"("general")", "null", R"({"general":true})", "[1]", R"(["bad room"])",
                            R"([""])", R"(["a**"])", R"(["general",7])", "true"}) {
    EXPECT_EQ(error_of(verifier, hs256_token(claims(std::string(R"("rooms":)") + rooms))),
              TokenError::malformed)
        << rooms;
  }
}

TEST(JwtVerifierClaims, RoomsClaimAllowsNamesAndPrefixes) {
  const std::vector<std::string> rooms{"general", "team-7:*"};
  EXPECT_TRUE(rooms_claim_allows(rooms, "general"));
  EXPECT_TRUE(rooms_claim_allows(rooms, "team-7:random"));
  EXPECT_TRUE(rooms_claim_allows(rooms, "team-7:"));
  EXPECT_FALSE(rooms_claim_allows(rooms, "general2"));
  EXPECT_FALSE(rooms_claim_allows(rooms, "team-70:random"));
  EXPECT_FALSE(rooms_claim_allows(rooms, "team-7"));
  EXPECT_FALSE(rooms_claim_allows({}, "general"));
  EXPECT_TRUE(rooms_claim_allows({"*"}, "anything"));
}

TEST(JwtVerifierClaims, SubjectIsRequiredAndSane) {
  const JwtVerifier verifier = hs256_verifier();
  const std::string exp = R"("exp":)" + std::to_string(kNow + 60);
  auto token = [&](const std::string& subject_member) {
    return hs256_token("{" + exp + (subject_member.empty() ? "" : "," + subject_member) + "}");
  };
  EXPECT_EQ(error_of(verifier, token("")), TokenError::no_subject);
  EXPECT_EQ(error_of(verifier, token(R"("sub":"")")), TokenError::no_subject);
  EXPECT_EQ(error_of(verifier, token(R"("sub":42)")), TokenError::no_subject);
  EXPECT_EQ(error_of(verifier, token(R"("sub":null)")), TokenError::no_subject);
  EXPECT_EQ(error_of(verifier, token(R"("sub":"a\nb")")), TokenError::no_subject);
  EXPECT_EQ(error_of(verifier, token(R"("sub":"a\u007fb")")), TokenError::no_subject);
  EXPECT_EQ(error_of(verifier, token(R"("sub":"a\u0085b")")), TokenError::no_subject);
  EXPECT_EQ(error_of(verifier, token(R"("sub":")" + std::string(257, 'x') + "\"")),
            TokenError::no_subject);
  EXPECT_EQ(accepted(verifier, token(R"("sub":")" + std::string(256, 'x') + "\"")).subject,
            std::string(256, 'x'));
  EXPECT_EQ(accepted(verifier, token(R"("sub":"Zo\u00eb \ud83d\ude00")")).subject,
            "Zo\xc3\xab \xf0\x9f\x98\x80");
}

// ---------------------------------------------------------------------------------------------
// Garbage and size.

TEST(JwtVerifierInput, EmptyTokenIsMissing) {
  EXPECT_EQ(error_of(hs256_verifier(), ""), TokenError::missing);
}

TEST(JwtVerifierInput, GarbageIsMalformed) {
  const JwtVerifier verifier = hs256_verifier();
  const std::string valid = hs256_token(claims());
  const std::vector<std::string> garbage = {
      "x",
      "Bearer " + valid,
      valid + " ",
      " " + valid,
      valid + ".",
      valid + "=",
      "a.b",
      "a.b.c.d",
      "..",
      "...",
      ".e30.sig",
      "eyJhbGciOiJIUzI1NiJ9..sig",
      "eyJhbGciOiJIUzI1NiJ9.e30=.sig",
      "eyJhbGciOiJIUzI1NiJ9.e3+/.sig",
      "e.e30.sig",
      "not base64!.e30.x",
      std::string("eyJhbGciOiJIUzI1NiJ9\0.e30.x", 26),
      "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
      "bm90IGpzb24.e30.c2ln",
      "\xff\xfe.\x01\x02.\x03",
      std::string(100, '.'),
  };
  for (const auto& token : garbage) {
    EXPECT_EQ(error_of(verifier, token), TokenError::malformed) << token;
  }
}

TEST(JwtVerifierInput, OversizedTokenIsMalformedEvenIfValid) {
  const JwtVerifier verifier = hs256_verifier();
  const std::string big = hs256_token(claims(R"("pad":")" + std::string(7000, 'p') + "\""));
  ASSERT_GT(big.size(), JwtVerifier::max_token_bytes);
  EXPECT_EQ(error_of(verifier, big), TokenError::malformed);
  const std::string fits = hs256_token(claims(R"("pad":")" + std::string(5000, 'p') + "\""));
  ASSERT_LE(fits.size(), JwtVerifier::max_token_bytes);
  EXPECT_EQ(error_of(verifier, fits), std::nullopt);
  EXPECT_EQ(error_of(verifier, std::string(1 << 20, 'a')), TokenError::malformed);
}

TEST(JwtVerifierInput, DeeplyNestedPayloadIsMalformed) {
  const std::string nested = std::string(200, '[') + std::string(200, ']');
  EXPECT_EQ(
      error_of(hs256_verifier(), hand_signed(R"({"alg":"HS256"})", claims(R"("deep":)" + nested))),
      TokenError::malformed);
}

TEST(JwtVerifierInput, SharedAcrossThreads) {
  const JwtVerifier verifier = hs256_verifier();
  const std::string good = hs256_token(claims());
  const std::string bad = hs256_token(claims(), "wrong");
  std::atomic<int> mistakes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (error_of(verifier, good) != std::nullopt) ++mistakes;
        if (error_of(verifier, bad) != TokenError::bad_signature) ++mistakes;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mistakes.load(), 0);
}

// ---------------------------------------------------------------------------------------------
// RS256 and ES256.

TEST(JwtVerifierRs256, ValidTokenIsAccepted) {
  const JwtVerifier verifier = pem_verifier(rsa_key().public_pem);
  const std::string token = make_token(JWT_ALG_RS256, rsa_key().private_pem, claims());
  EXPECT_EQ(accepted(verifier, token).subject, "user-1");
  EXPECT_EQ(accepted(pem_verifier(rsa_key().certificate_pem), token).subject, "user-1");
}

TEST(JwtVerifierRs256, OtherKeyIsRefused) {
  const JwtVerifier verifier = pem_verifier(rsa_key().public_pem);
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_RS256, other_rsa_key().private_pem, claims())),
            TokenError::bad_signature);
}

TEST(JwtVerifierRs256, TamperedPayloadIsRefused) {
  const JwtVerifier verifier = pem_verifier(rsa_key().public_pem);
  const std::string token = make_token(JWT_ALG_RS256, rsa_key().private_pem, claims());
  const std::size_t first = token.find('.');
  const std::size_t second = token.find('.', first + 1);
  const std::string tampered =
      token.substr(0, first + 1) + base64url(R"({"sub":"admin"})") + token.substr(second);
  EXPECT_EQ(error_of(verifier, tampered), TokenError::bad_signature);
}

TEST(JwtVerifierRs256, Hs256SignedWithThePublicKeyIsRefused) {
  const std::string& public_pem = rsa_key().public_pem;
  const std::string forged = make_token(JWT_ALG_HS256, public_pem, claims());
  // The attack is real: libjwt alone, given the public key, lets the token's header pick HMAC.
  jwt_t* raw = nullptr;
  const int rc =
      jwt_decode(&raw, forged.c_str(), reinterpret_cast<const unsigned char*>(public_pem.data()),
                 static_cast<int>(public_pem.size()));
  jwt_free(raw);
  EXPECT_EQ(rc, 0);

  EXPECT_EQ(error_of(pem_verifier(public_pem), forged), TokenError::bad_algorithm);
  EXPECT_EQ(error_of(pem_verifier(rsa_key().certificate_pem), forged), TokenError::bad_algorithm);
}

TEST(JwtVerifierRs256, OtherAlgorithmsAreRefused) {
  const JwtVerifier verifier = pem_verifier(rsa_key().public_pem);
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_RS512, rsa_key().private_pem, claims())),
            TokenError::bad_algorithm);
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_ES256, ec_key().private_pem, claims())),
            TokenError::bad_algorithm);
  EXPECT_EQ(error_of(verifier, "eyJhbGciOiJub25lIn0." + base64url(claims()) + "."),
            TokenError::bad_algorithm);
}

TEST(JwtVerifierRs256, ClaimsAreCheckedToo) {
  const JwtVerifier verifier = pem_verifier(rsa_key().public_pem);
  EXPECT_EQ(
      error_of(verifier, make_token(JWT_ALG_RS256, rsa_key().private_pem,
                                    R"({"sub":"u","exp":)" + std::to_string(kNow - 60) + "}")),
      TokenError::expired);
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_RS256, rsa_key().private_pem, R"({"a":1})")),
            TokenError::no_subject);
}

TEST(JwtVerifierEs256, ValidTokenIsAccepted) {
  const JwtVerifier verifier = pem_verifier(ec_key().public_pem);
  const std::string token = make_token(JWT_ALG_ES256, ec_key().private_pem, claims());
  EXPECT_EQ(accepted(verifier, token).subject, "user-1");
  EXPECT_EQ(accepted(pem_verifier(ec_key().certificate_pem), token).subject, "user-1");
}

TEST(JwtVerifierEs256, OtherKeyAndTamperingAreRefused) {
  const JwtVerifier verifier = pem_verifier(ec_key().public_pem);
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_ES256, other_ec_key().private_pem, claims())),
            TokenError::bad_signature);
  std::string token = make_token(JWT_ALG_ES256, ec_key().private_pem, claims());
  token[token.size() - 10] = token[token.size() - 10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(error_of(verifier, token), TokenError::bad_signature);
  // A signature of the wrong length.
  const std::string good = make_token(JWT_ALG_ES256, ec_key().private_pem, claims());
  EXPECT_EQ(error_of(verifier, good.substr(0, good.size() - 4)), TokenError::bad_signature);
}

TEST(JwtVerifierEs256, OtherAlgorithmsAreRefused) {
  const JwtVerifier verifier = pem_verifier(ec_key().public_pem);
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_RS256, rsa_key().private_pem, claims())),
            TokenError::bad_algorithm);
  EXPECT_EQ(error_of(verifier, make_token(JWT_ALG_HS256, ec_key().public_pem, claims())),
            TokenError::bad_algorithm);
}

}  // namespace
