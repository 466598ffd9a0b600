// JwtVerifier: configuration, HS256 tokens, and the RS256 and ES256 keys (the time, claim and
// input checks: test_jwt_claims.cpp), against tokens minted here with libjwt and keys generated
// here with OpenSSL.

#include "unit/auth/jwt_test_support.hpp"

namespace {

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
