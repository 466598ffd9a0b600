#include <gtest/gtest.h>

#include "redis/redis_url.hpp"

namespace realtime::detail {
namespace {

RedisUrl parse_ok(std::string_view text) {
  auto result = parse_redis_url(text);
  EXPECT_TRUE(result) << text << ": " << result.error;
  return result.url.value_or(RedisUrl{});
}

std::string parse_error(std::string_view text) {
  auto result = parse_redis_url(text);
  EXPECT_FALSE(result) << text << " parsed";
  EXPECT_FALSE(result.error.empty());
  return result.error;
}

TEST(RedisUrl, HostOnlyUsesDefaults) {
  const RedisUrl url = parse_ok("redis://cache.internal");
  EXPECT_EQ(url.host, "cache.internal");
  EXPECT_EQ(url.port, 6379);
  EXPECT_EQ(url.db, 0);
  EXPECT_TRUE(url.username.empty());
  EXPECT_TRUE(url.password.empty());
}

TEST(RedisUrl, HostPortDb) {
  const RedisUrl url = parse_ok("redis://10.0.0.5:6380/3");
  EXPECT_EQ(url.host, "10.0.0.5");
  EXPECT_EQ(url.port, 6380);
  EXPECT_EQ(url.db, 3);
}

TEST(RedisUrl, TrailingSlashIsDbZero) { EXPECT_EQ(parse_ok("redis://localhost:6379/").db, 0); }

TEST(RedisUrl, SchemeIsCaseInsensitive) { EXPECT_EQ(parse_ok("REDIS://h").host, "h"); }

TEST(RedisUrl, PasswordOnly) {
  const RedisUrl url = parse_ok("redis://:s3cret@redis");
  EXPECT_TRUE(url.username.empty());
  EXPECT_EQ(url.password, "s3cret");
  EXPECT_EQ(url.host, "redis");
}

TEST(RedisUrl, UserAndPassword) {
  const RedisUrl url = parse_ok("redis://app:pw@redis:7000/2");
  EXPECT_EQ(url.username, "app");
  EXPECT_EQ(url.password, "pw");
  EXPECT_EQ(url.port, 7000);
  EXPECT_EQ(url.db, 2);
}

TEST(RedisUrl, PercentDecodedCredentials) {
  const RedisUrl url = parse_ok("redis://us%65r:p%40ss%3Aw%2Fd%25@h");
  EXPECT_EQ(url.username, "user");
  EXPECT_EQ(url.password, "p@ss:w/d%");
}

TEST(RedisUrl, UnencodedAtInPasswordUsesLastAt) {
  const RedisUrl url = parse_ok("redis://:a@b@h:1/0");
  EXPECT_EQ(url.password, "a@b");
  EXPECT_EQ(url.host, "h");
}

TEST(RedisUrl, Ipv6) {
  RedisUrl url = parse_ok("redis://[::1]:6390/1");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 6390);
  EXPECT_EQ(url.db, 1);
  url = parse_ok("redis://:pw@[2001:db8::7]");
  EXPECT_EQ(url.host, "2001:db8::7");
  EXPECT_EQ(url.port, 6379);
  EXPECT_EQ(url.password, "pw");
}

TEST(RedisUrl, Errors) {
  EXPECT_NE(parse_error("").find("empty"), std::string::npos);
  EXPECT_NE(parse_error("http://h").find("redis://"), std::string::npos);
  EXPECT_NE(parse_error("rediss://h").find("TLS"), std::string::npos);
  EXPECT_NE(parse_error("redis://").find("no host"), std::string::npos);
  EXPECT_NE(parse_error("redis://:6379").find("no host"), std::string::npos);
  EXPECT_NE(parse_error("redis://h:0").find("port"), std::string::npos);
  EXPECT_NE(parse_error("redis://h:65536").find("port"), std::string::npos);
  EXPECT_NE(parse_error("redis://h:abc").find("port"), std::string::npos);
  EXPECT_NE(parse_error("redis://h:").find("port"), std::string::npos);
  EXPECT_NE(parse_error("redis://h/x").find("database"), std::string::npos);
  EXPECT_NE(parse_error("redis://h/-1").find("database"), std::string::npos);
  EXPECT_NE(parse_error("redis://h/99999999999").find("database"), std::string::npos);
  EXPECT_NE(parse_error("redis://::1:6379").find("brackets"), std::string::npos);
  EXPECT_NE(parse_error("redis://[::1").find("'['"), std::string::npos);
  EXPECT_NE(parse_error("redis://[nothex]:1").find("IPv6"), std::string::npos);
  EXPECT_NE(parse_error("redis://[::1]x").find("']'"), std::string::npos);
  EXPECT_NE(parse_error("redis://pw@h").find("':'"), std::string::npos);
  EXPECT_NE(parse_error("redis://:p%4@h").find("percent"), std::string::npos);
  EXPECT_NE(parse_error("redis://:p%zz@h").find("percent"), std::string::npos);
  EXPECT_NE(parse_error("redis://h?db=1").find("query"), std::string::npos);
  EXPECT_NE(parse_error("redis://bad host").find("host"), std::string::npos);
  EXPECT_NE(parse_error("redis://user:@h").find("password"), std::string::npos);
}

TEST(RedisUrl, RedactedStringHidesPassword) {
  const RedisUrl url = parse_ok("redis://app:topsecret@[::1]:7000/4");
  const std::string text = to_redacted_string(url);
  EXPECT_EQ(text, "redis://app:***@[::1]:7000/4");
  EXPECT_EQ(to_redacted_string(parse_ok("redis://h")), "redis://h:6379/0");
}

}  // namespace
}  // namespace realtime::detail
