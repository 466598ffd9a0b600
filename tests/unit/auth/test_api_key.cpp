// api_key_matches and bearer_token.

#include <optional>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "realtime/auth.hpp"

namespace {

using realtime::api_key_matches;
using realtime::bearer_token;

TEST(ApiKey, EqualKeysMatch) {
  EXPECT_TRUE(api_key_matches("s3cret-key", "s3cret-key"));
  const std::string long_key(4096, 'k');
  EXPECT_TRUE(api_key_matches(long_key, long_key));
}

TEST(ApiKey, DifferentKeysOfTheSameLengthDoNotMatch) {
  EXPECT_FALSE(api_key_matches("s3cret-key", "s3cret-kez"));
  EXPECT_FALSE(api_key_matches("s3cret-key", "t3cret-key"));
  EXPECT_FALSE(api_key_matches("s3cret-key", "S3CRET-KEY"));
}

TEST(ApiKey, LengthDifferencesDoNotMatch) {
  EXPECT_FALSE(api_key_matches("s3cret-key", "s3cret-ke"));
  EXPECT_FALSE(api_key_matches("s3cret-key", "s3cret-key-and-more"));
  EXPECT_FALSE(api_key_matches("s3cret-key", "s3cret-key "));
  EXPECT_FALSE(api_key_matches("s3cret-key", ""));
}

TEST(ApiKey, EmptyExpectedKeyNeverMatches) {
  EXPECT_FALSE(api_key_matches("", ""));
  EXPECT_FALSE(api_key_matches("", "anything"));
}

TEST(ApiKey, BinaryBytesAreCompared) {
  const std::string a("ab\0cd", 5);
  const std::string b("ab\0ce", 5);
  EXPECT_TRUE(api_key_matches(a, a));
  EXPECT_FALSE(api_key_matches(a, b));
  EXPECT_FALSE(api_key_matches(a, "ab"));
}

TEST(BearerToken, ExtractsTheCredentials) {
  EXPECT_EQ(bearer_token("Bearer abc.def.ghi"), std::optional<std::string_view>("abc.def.ghi"));
  EXPECT_EQ(bearer_token("bearer abc"), std::optional<std::string_view>("abc"));
  EXPECT_EQ(bearer_token("BEARER abc"), std::optional<std::string_view>("abc"));
  EXPECT_EQ(bearer_token("BeArEr abc"), std::optional<std::string_view>("abc"));
  EXPECT_EQ(bearer_token("  Bearer   abc  "), std::optional<std::string_view>("abc"));
  EXPECT_EQ(bearer_token("Bearer\tabc\t"), std::optional<std::string_view>("abc"));
  EXPECT_EQ(bearer_token("Bearer a+b/c=="), std::optional<std::string_view>("a+b/c=="));
}

TEST(BearerToken, PointsIntoTheHeader) {
  const std::string header = "Bearer token-value";
  const auto token = bearer_token(header);
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->data(), header.data() + 7);
}

TEST(BearerToken, RefusesOtherSchemesAndEmptyCredentials) {
  EXPECT_EQ(bearer_token(""), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer "), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer \t "), std::nullopt);
  EXPECT_EQ(bearer_token("Bearerabc"), std::nullopt);
  EXPECT_EQ(bearer_token("Basic dXNlcjpwYXNz"), std::nullopt);
  EXPECT_EQ(bearer_token("Token abc"), std::nullopt);
  EXPECT_EQ(bearer_token("Beare abc"), std::nullopt);
  EXPECT_EQ(bearer_token("abc"), std::nullopt);
}

TEST(BearerToken, RefusesSpacesAndControlsInsideTheToken) {
  EXPECT_EQ(bearer_token("Bearer abc def"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer abc\r\nX-Injected: 1"), std::nullopt);
  EXPECT_EQ(bearer_token(std::string_view("Bearer ab\0c", 11)), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer ab\x7f"), std::nullopt);
}

}  // namespace
