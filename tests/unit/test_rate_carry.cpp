// RateCarry: what a closed socket left of its rate limit, for the next socket of its client.
#include <chrono>
#include <string>

#include <boost/asio/ip/address.hpp>
#include <gtest/gtest.h>

#include "session/rate_carry.hpp"

namespace realtime::detail {
namespace {

using namespace std::chrono_literals;
using boost::asio::ip::make_address;

TEST(RateCarry, KeysAUserByItsIdAndAnAnonymousClientByItsAddress) {
  const auto here = make_address("127.0.0.1");
  const auto there = make_address("::1");
  EXPECT_EQ(RateCarry::key("ann", here), RateCarry::key("ann", there));
  EXPECT_NE(RateCarry::key("ann", here), RateCarry::key("bob", here));
  EXPECT_NE(RateCarry::key("", here), RateCarry::key("", there));
  EXPECT_EQ(RateCarry::key("", here), RateCarry::key("", make_address("127.0.0.1")));
  EXPECT_NE(RateCarry::key("", here), RateCarry::key("", make_address("127.0.0.2")));
  // An IPv6 client is known by its /64.
  EXPECT_EQ(RateCarry::key("", make_address("2001:db8:1:2::1")),
            RateCarry::key("", make_address("2001:db8:1:2:ffff::9")));
  EXPECT_NE(RateCarry::key("", make_address("2001:db8:1:2::1")),
            RateCarry::key("", make_address("2001:db8:1:3::1")));
  // An IPv4 client of a dual-stack listener is the IPv4 client, not one of "::/64".
  EXPECT_EQ(RateCarry::key("", make_address("::ffff:127.0.0.1")), RateCarry::key("", here));
  EXPECT_NE(RateCarry::key("", make_address("::ffff:127.0.0.1")),
            RateCarry::key("", make_address("::ffff:127.0.0.2")));
  EXPECT_NE(RateCarry::key("", make_address("::ffff:127.0.0.1")),
            RateCarry::key("", make_address("::1")));
  // An address's key is never a user's.
  EXPECT_NE(RateCarry::key("", here), RateCarry::key(std::string("\x7f\0\0\x01", 4), here));
}

TEST(RateCarry, ANewSocketStartsFromWhatTheLastLeftRefilled) {
  RateCarry carry(10, 40);  // 10 a second, burst 40
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(carry.empty());
  carry.leave("k", {2, t0}, t0);
  EXPECT_FALSE(carry.empty());
  const auto left = carry.find("k", t0 + 1s);
  ASSERT_TRUE(left);
  EXPECT_DOUBLE_EQ(left->tokens, 12);
  EXPECT_EQ(left->at, t0 + 1s);
  EXPECT_FALSE(carry.find("other", t0 + 1s));
  // Kept for another socket of the key opening meanwhile, until it would be full again (3.8 s).
  EXPECT_TRUE(carry.find("k", t0 + 2s));
  EXPECT_FALSE(carry.find("k", t0 + 4s));
  EXPECT_TRUE(carry.empty());
}

TEST(RateCarry, OpeningsTakeFromABucketOfTheirOwnSharedByTheClientsSockets) {
  RateCarry carry(10, 40, 2, 3);  // messages 10 a second, burst 40; openings 2 a second, burst 3
  const auto t0 = std::chrono::steady_clock::now();
  const auto ann = *RateCarry::client_key("ann", make_address("127.0.0.1"), false);
  EXPECT_EQ(carry.take_connect(ann, t0), 0);
  EXPECT_EQ(carry.take_connect(ann, t0), 0);
  EXPECT_EQ(carry.take_connect(ann, t0), 0);
  // Spent: the seconds until the next token, and nothing taken meanwhile.
  EXPECT_DOUBLE_EQ(carry.take_connect(ann, t0), 0.5);
  EXPECT_DOUBLE_EQ(carry.take_connect(ann, t0 + 250ms), 0.25);
  EXPECT_EQ(carry.take_connect(ann, t0 + 500ms), 0);
  // Another client is not held back, and the client's messages keep their own bucket.
  EXPECT_EQ(carry.take_connect(*RateCarry::client_key("bob", make_address("127.0.0.1"), false),
                               t0 + 500ms),
            0);
  EXPECT_FALSE(carry.find(ann, t0 + 500ms));
  // Full again after burst / rate: forgotten.
  EXPECT_FALSE(carry.empty());
  EXPECT_FALSE(carry.find("x", t0 + 10s));
  EXPECT_EQ(carry.take_connect(ann, t0 + 10s), 0);
}

TEST(RateCarry, OpeningsWithoutALimitAreNeverRefusedNorHeld) {
  RateCarry carry(10, 40, 0, 1);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(carry.take_connect("uann", t0), 0);
  EXPECT_TRUE(carry.empty());
}

TEST(RateCarry, ClientKeyIsTheUserOrWhereAddressesTellClientsApartTheAddress) {
  const auto here = make_address("127.0.0.1");
  EXPECT_EQ(RateCarry::client_key("ann", here, false), RateCarry::key("ann", here));
  EXPECT_EQ(RateCarry::client_key("ann", here, true), RateCarry::key("ann", here));
  EXPECT_EQ(RateCarry::client_key("", here, true), RateCarry::key("", here));
  EXPECT_FALSE(RateCarry::client_key("", here, false));
}

TEST(RateCarry, AFullBucketIsNotKept) {
  RateCarry carry(10, 40);
  const auto t0 = std::chrono::steady_clock::now();
  carry.leave("k", {40, t0}, t0);
  EXPECT_TRUE(carry.empty());
  carry.leave("k", {30, t0}, t0 + 1s);  // full again by the time it ends
  EXPECT_TRUE(carry.empty());
}

TEST(RateCarry, EntriesFullAgainArePrunedAsTheMapGrows) {
  RateCarry carry(10, 40);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) carry.leave("old" + std::to_string(i), {0, t0}, t0);
  // Four seconds later every one of those is full: a new entry prunes them (a second passed).
  carry.leave("new", {0, t0 + 5s}, t0 + 5s);
  EXPECT_TRUE(carry.find("new", t0 + 5s));
  EXPECT_FALSE(carry.find("old1", t0 + 5s));
  carry.leave("new", {40, t0 + 10s}, t0 + 10s);  // (full: nothing stored)
  EXPECT_FALSE(carry.find("new", t0 + 10s));
  EXPECT_TRUE(carry.empty());
}

TEST(RateCarry, HoldsABoundedNumberOfEntries) {
  RateCarry carry(0.001, 40);  // entries that live hours
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t past = RateCarry::kMaxEntries + 10;
  for (std::size_t i = 0; i < past; ++i) carry.leave(std::to_string(i), {0, t0}, t0);
  EXPECT_TRUE(carry.find("0", t0));
  EXPECT_FALSE(carry.find(std::to_string(past - 1), t0));  // forgotten: starts full
}

}  // namespace
}  // namespace realtime::detail
