#include <string>

#include <gtest/gtest.h>

#include "protocol/utf8.hpp"

namespace realtime::protocol {
namespace {

TEST(Utf8, AcceptsValidText) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii, long enough to use the word-at-a-time path"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9"));                   // U+00E9
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC"));                  // U+20AC
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));              // U+1F600
  EXPECT_TRUE(is_valid_utf8("\xC2\x80"));                      // lowest 2-byte
  EXPECT_TRUE(is_valid_utf8("\xDF\xBF"));                      // highest 2-byte
  EXPECT_TRUE(is_valid_utf8("\xE0\xA0\x80"));                  // lowest 3-byte
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));                  // U+D7FF, just below surrogates
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));                  // U+E000, just above surrogates
  EXPECT_TRUE(is_valid_utf8("\xEF\xBF\xBF"));                  // U+FFFF
  EXPECT_TRUE(is_valid_utf8("\xF0\x90\x80\x80"));              // U+10000
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));              // U+10FFFF, the last code point
  EXPECT_TRUE(is_valid_utf8(std::string("nul\0inside", 10)));  // NUL is valid UTF-8
  EXPECT_TRUE(
      is_valid_utf8("12345678\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"
                    "abcdefgh"));
}

TEST(Utf8, RejectsInvalidText) {
  EXPECT_FALSE(is_valid_utf8("\x80"));  // lone continuation
  EXPECT_FALSE(is_valid_utf8("\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xC1\xBF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong 3-byte
  EXPECT_FALSE(is_valid_utf8("\xE0\x9F\xBF"));      // overlong 3-byte, upper edge
  EXPECT_FALSE(is_valid_utf8("\xF0\x80\x80\xAF"));  // overlong 4-byte
  EXPECT_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));  // overlong 4-byte, upper edge
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // U+D800 surrogate
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));      // U+DFFF surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xFE"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));  // truncated at the end
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
  EXPECT_FALSE(is_valid_utf8("\xF0\x9F\x98"));
  EXPECT_FALSE(is_valid_utf8("\xC3(a"));                          // continuation missing
  EXPECT_FALSE(is_valid_utf8("abcdefgh\xE2\x28\xA1"));            // after an ASCII word
  EXPECT_FALSE(is_valid_utf8("abcdefghijklmnopqrstuvwxyz\x80"));  // in the ASCII tail
}

TEST(Utf8, EveryTwoByteSequenceAgreesWithTheRules) {
  // Exhaustive over lead bytes C0..DF with every second byte.
  for (int lead = 0xC0; lead <= 0xDF; ++lead) {
    for (int second = 0; second < 256; ++second) {
      const char s[2] = {static_cast<char>(lead), static_cast<char>(second)};
      const bool expected = lead >= 0xC2 && second >= 0x80 && second <= 0xBF;
      EXPECT_EQ(is_valid_utf8(std::string_view(s, 2)), expected) << lead << " " << second;
    }
  }
}

TEST(Utf8, EveryCodePointEncodesToValidUtf8) {
  // Encodes each scalar value and checks acceptance, and rejects every surrogate.
  auto encode = [](std::uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  };
  int failures = 0;
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x20000 ? 1 : 97)) {
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    if (is_valid_utf8(encode(cp)) == surrogate) ++failures;
  }
  EXPECT_EQ(failures, 0);
  EXPECT_TRUE(is_valid_utf8(encode(0x10FFFF)));
}

TEST(Utf8Validator, CodePointSplitAcrossFeeds) {
  const std::string text = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5 \xF0\x9F\x98\x80";
  Utf8Validator v;
  for (char c : text) {
    ASSERT_TRUE(v.feed(std::string_view(&c, 1)));
  }
  EXPECT_TRUE(v.complete());

  Utf8Validator half;
  EXPECT_TRUE(half.feed("\xF0\x9F"));
  EXPECT_FALSE(half.complete());
  EXPECT_TRUE(half.feed("\x98"));
  EXPECT_FALSE(half.complete());
  EXPECT_TRUE(half.feed("\x80"));
  EXPECT_TRUE(half.complete());
}

TEST(Utf8Validator, FailsFastAndStaysFailed) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("hello "));
  // The second byte of an ED sequence above 9F is already a surrogate: refused at once.
  EXPECT_TRUE(v.feed("\xED"));
  EXPECT_FALSE(v.feed("\xA0"));
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.feed("valid again"));
  v.reset();
  EXPECT_TRUE(v.complete());
  EXPECT_TRUE(v.feed("valid again"));
}

TEST(Utf8Validator, FailsOnFirstBadByteOfALongInput) {
  // F4 90 can never begin a code point; the validator says so before the rest arrives.
  Utf8Validator v;
  EXPECT_FALSE(v.feed("\xF4\x90"));
}

TEST(Utf8Validator, EmptyFeedKeepsState) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("\xE2"));
  EXPECT_TRUE(v.feed(""));
  EXPECT_FALSE(v.complete());
  EXPECT_TRUE(v.feed("\x82\xAC"));
  EXPECT_TRUE(v.complete());
}

}  // namespace
}  // namespace realtime::protocol
