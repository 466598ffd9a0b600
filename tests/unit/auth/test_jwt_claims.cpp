// JwtVerifier: "exp" and "nbf", "iss", "aud", "sub" and "rooms", and malformed input, against
// tokens minted here with libjwt or signed by hand.

#include "unit/auth/jwt_test_support.hpp"

namespace {

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

}  // namespace
