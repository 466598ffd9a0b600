#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/ws_frame.hpp"

namespace realtime::protocol {
namespace {

constexpr std::uint32_t kKey = 0x37FA213D;  // the key of the RFC 6455 5.7 examples
constexpr std::size_t kLimit = 1024;

// Records every event as a short line, so tests compare whole sequences.
class Recorder : public FrameSink {
 public:
  void on_text(std::string_view m) override { events.push_back("text:" + std::string(m)); }
  void on_binary(std::string_view m) override { events.push_back("binary:" + std::string(m)); }
  void on_ping(std::string_view p) override { events.push_back("ping:" + std::string(p)); }
  void on_pong(std::string_view p) override { events.push_back("pong:" + std::string(p)); }
  void on_close(std::uint16_t code, std::string_view reason) override {
    events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
  }
  void on_protocol_error(std::uint16_t code, std::string_view) override {
    events.push_back("error:" + std::to_string(code));
  }
  std::vector<std::string> events;
};

using Events = std::vector<std::string>;

// A client frame with explicit header bits, for the malformed cases encode_client_frame cannot
// make.
std::string raw_frame(std::uint8_t b0, std::string_view payload, bool masked = true,
                      std::uint32_t key = kKey) {
  std::string f = encode_client_frame(Opcode::text, payload, key);
  f[0] = static_cast<char>(b0);
  if (!masked) {
    // Rebuild without mask: same length encoding, mask bit cleared, key removed, payload plain.
    std::uint8_t header[kMaxFrameHeader];
    const std::size_t n = write_frame_header(header, Opcode::text, payload.size());
    std::string g(reinterpret_cast<char*>(header), n);
    g[0] = static_cast<char>(b0);
    g.append(payload);
    return g;
  }
  return f;
}

Events feed_all(FrameParser& parser, std::string bytes) {
  Recorder r;
  parser.feed(bytes.data(), bytes.size(), r);
  return r.events;
}

Events parse(std::string bytes, std::size_t limit = kLimit) {
  FrameParser parser(limit);
  return feed_all(parser, std::move(bytes));
}

// Feeds one byte per call: every header and payload split point is exercised.
Events parse_bytewise(const std::string& bytes, std::size_t limit = kLimit) {
  FrameParser parser(limit);
  Recorder r;
  for (char c : bytes) {
    char b = c;
    if (!parser.feed(&b, 1, r)) break;
  }
  return r.events;
}

TEST(WsFrame, EncodesTheRfcExamples) {
  // RFC 6455 5.7: a single-frame unmasked text message "Hello", and its masked version.
  EXPECT_EQ(encode_frame(Opcode::text, "Hello"), std::string("\x81\x05Hello"));
  EXPECT_EQ(encode_client_frame(Opcode::text, "Hello", kKey),
            std::string("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11));
  // Unmasked ping "Hello".
  EXPECT_EQ(encode_frame(Opcode::ping, "Hello"), std::string("\x89\x05Hello"));
}

TEST(WsFrame, EncodesLengthsAtTheBoundaries) {
  EXPECT_EQ(encode_frame(Opcode::binary, std::string(125, 'x')).size(), 2u + 125);
  const std::string f126 = encode_frame(Opcode::binary, std::string(126, 'x'));
  ASSERT_EQ(f126.size(), 4u + 126);
  EXPECT_EQ(static_cast<unsigned char>(f126[1]), 126);
  EXPECT_EQ(f126.substr(2, 2), std::string("\x00\x7E", 2));
  const std::string f64k = encode_frame(Opcode::binary, std::string(65535, 'x'));
  EXPECT_EQ(f64k.substr(1, 3), std::string("\x7E\xFF\xFF", 3));
  const std::string big = encode_frame(Opcode::binary, std::string(65536, 'x'));
  ASSERT_EQ(big.size(), 10u + 65536);
  EXPECT_EQ(big.substr(1, 9), std::string("\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 9));
  std::uint8_t header[kMaxFrameHeader];
  EXPECT_EQ(write_frame_header(header, Opcode::binary, 70000, 0x01020304), 14u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(header) + 10, 4), "\x01\x02\x03\x04");
  EXPECT_EQ(header[1] & 0x80, 0x80);
}

TEST(WsFrame, MaskingIsAnInvolutionAtAnyOffset) {
  std::string data(1000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  const std::string original = data;
  for (std::size_t offset : {0u, 1u, 2u, 3u, 5u, 13u}) {
    mask_payload(data.data(), data.size(), kKey, offset);
    EXPECT_NE(data, original);
    // Masking in two pieces equals masking at once, whatever the split.
    mask_payload(data.data(), 3, kKey, offset);
    mask_payload(data.data() + 3, data.size() - 3, kKey, offset + 3);
    EXPECT_EQ(data, original);
  }
  // Byte i is XORed with key byte (offset + i) % 4, in wire order.
  char one[2] = {0, 0};
  mask_payload(one, 2, 0x11223344, 3);
  EXPECT_EQ(static_cast<unsigned char>(one[0]), 0x44);
  EXPECT_EQ(static_cast<unsigned char>(one[1]), 0x11);
}

TEST(WsFrame, ParsesMaskedTextAndBinary) {
  EXPECT_EQ(parse(encode_client_frame(Opcode::text, "Hello", kKey)), Events{"text:Hello"});
  EXPECT_EQ(parse(encode_client_frame(Opcode::binary, std::string("\0\xFF", 2), kKey)),
            Events{"binary:" + std::string("\0\xFF", 2)});
  EXPECT_EQ(parse(encode_client_frame(Opcode::text, "", kKey)), Events{"text:"});
  // A zero key still sets the mask bit and is accepted.
  EXPECT_EQ(parse(encode_client_frame(Opcode::text, "k0", 0)), Events{"text:k0"});
}

TEST(WsFrame, ParsesSeveralFramesInOneBufferAndByteByByte) {
  const std::string stream = encode_client_frame(Opcode::text, "one", kKey) +
                             encode_client_frame(Opcode::ping, "p", kKey + 1) +
                             encode_client_frame(Opcode::binary, std::string(300, 'b'), kKey + 2) +
                             encode_client_frame(Opcode::text, std::string(70000, 't'), kKey + 3) +
                             encode_client_frame(Opcode::pong, "", kKey + 4);
  const Events expected{"text:one", "ping:p", "binary:" + std::string(300, 'b'),
                        "text:" + std::string(70000, 't'), "pong:"};
  EXPECT_EQ(parse(stream, 100000), expected);
  EXPECT_EQ(parse_bytewise(stream, 100000), expected);
  // And every split into two feeds.
  for (std::size_t split = 0; split <= 400 && split <= stream.size(); ++split) {
    FrameParser parser(100000);
    Recorder r;
    std::string copy = stream;
    parser.feed(copy.data(), split, r);
    parser.feed(copy.data() + split, copy.size() - split, r);
    ASSERT_EQ(r.events, expected) << "split at " << split;
  }
}

TEST(WsFrame, DeliversAWholeFrameInPlaceWithoutBuffering) {
  FrameParser parser(kLimit);
  std::string frame = encode_client_frame(Opcode::text, "zero copy", kKey);
  struct ViewSink : Recorder {
    void on_text(std::string_view m) override {
      seen = m.data();
      Recorder::on_text(m);
    }
    const char* seen = nullptr;
  } sink;
  ASSERT_TRUE(parser.feed(frame.data(), frame.size(), sink));
  // The view points into the caller's buffer, unmasked in place.
  EXPECT_EQ(sink.seen, frame.data() + 6);
  EXPECT_EQ(frame.substr(6), "zero copy");
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

TEST(WsFrame, HoldsOnlyTheIncompleteTail) {
  FrameParser parser(100000);
  Recorder r;
  std::string first = encode_client_frame(Opcode::text, "done", kKey);
  std::string second = encode_client_frame(Opcode::text, std::string(5000, 'x'), kKey);
  std::string buf = first + second.substr(0, 3);  // a complete frame and 3 header bytes
  ASSERT_TRUE(parser.feed(buf.data(), buf.size(), r));
  EXPECT_EQ(r.events, Events{"text:done"});
  EXPECT_EQ(parser.buffered_bytes(), 3u);
  std::string rest = second.substr(3, 1000);
  ASSERT_TRUE(parser.feed(rest.data(), rest.size(), r));
  EXPECT_EQ(parser.buffered_bytes(), 1000u - 5);  // 8-byte header (3 + 5 from rest), payload so far
  std::string tail = second.substr(1003);
  ASSERT_TRUE(parser.feed(tail.data(), tail.size(), r));
  EXPECT_EQ(r.events.back(), "text:" + std::string(5000, 'x'));
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

TEST(WsFrame, FragmentedMessageWithInterleavedControlFrames) {
  std::string stream;
  std::string f1 = encode_client_frame(Opcode::text, "Hel", kKey);
  f1[0] = static_cast<char>(0x01);  // text, not FIN
  std::string f2 = encode_client_frame(Opcode::continuation, "lo, ", kKey);
  f2[0] = static_cast<char>(0x00);  // continuation, not FIN
  std::string f3 = encode_client_frame(Opcode::continuation, "world", kKey);  // FIN
  stream = f1 + encode_client_frame(Opcode::ping, "mid", kKey) + f2 +
           encode_client_frame(Opcode::pong, "", kKey) + f3;
  const Events expected{"ping:mid", "pong:", "text:Hello, world"};
  EXPECT_EQ(parse(stream), expected);
  EXPECT_EQ(parse_bytewise(stream), expected);
}

TEST(WsFrame, FragmentedBinaryWithEmptyFragments) {
  std::string f1 = encode_client_frame(Opcode::binary, "", kKey);
  f1[0] = static_cast<char>(0x02);
  std::string f2 = encode_client_frame(Opcode::continuation, "ab", kKey);
  f2[0] = static_cast<char>(0x00);
  std::string f3 = encode_client_frame(Opcode::continuation, "", kKey);
  EXPECT_EQ(parse(f1 + f2 + f3), Events{"binary:ab"});
  EXPECT_EQ(parse(f1 + f3), Events{"binary:"});
}

TEST(WsFrame, RejectsUnmaskedClientFrames) {
  EXPECT_EQ(parse(encode_frame(Opcode::text, "hi")), Events{"error:1002"});
  EXPECT_EQ(parse(encode_frame(Opcode::ping, "")), Events{"error:1002"});
}

TEST(WsFrame, ClientRoleRequiresUnmaskedFrames) {
  FrameParser client(kLimit, FrameParser::Role::client);
  EXPECT_EQ(feed_all(client, encode_frame(Opcode::text, "hi") + encode_close_frame(1000, "bye")),
            (Events{"text:hi", "close:1000:bye"}));
  FrameParser strict(kLimit, FrameParser::Role::client);
  EXPECT_EQ(feed_all(strict, encode_client_frame(Opcode::text, "hi", kKey)), Events{"error:1002"});
}

TEST(WsFrame, RejectsReservedBits) {
  for (std::uint8_t rsv : {0x40, 0x20, 0x10, 0x70}) {
    EXPECT_EQ(parse(raw_frame(static_cast<std::uint8_t>(0x81 | rsv), "x")), Events{"error:1002"});
  }
}

TEST(WsFrame, RejectsReservedOpcodes) {
  for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    EXPECT_EQ(parse(raw_frame(static_cast<std::uint8_t>(0x80 | op), "")), Events{"error:1002"})
        << int(op);
  }
}

TEST(WsFrame, ReportsAHeaderErrorBeforeTheRestOfTheHeader) {
  FrameParser parser(kLimit);
  Recorder r;
  char two[2] = {static_cast<char>(0x83), static_cast<char>(0xFF)};  // reserved opcode, 64-bit len
  EXPECT_FALSE(parser.feed(two, 2, r));
  EXPECT_EQ(r.events, Events{"error:1002"});
}

TEST(WsFrame, RejectsBadControlFrames) {
  // Fragmented ping.
  EXPECT_EQ(parse(raw_frame(0x09, "x")), Events{"error:1002"});
  // Ping of 126 bytes (length in the 16-bit form).
  EXPECT_EQ(parse(encode_client_frame(Opcode::ping, std::string(126, 'p'), kKey)),
            Events{"error:1002"});
  // 125 is fine.
  EXPECT_EQ(parse(encode_client_frame(Opcode::ping, std::string(125, 'p'), kKey)),
            Events{"ping:" + std::string(125, 'p')});
}

TEST(WsFrame, RejectsContinuationWithoutAMessage) {
  EXPECT_EQ(parse(encode_client_frame(Opcode::continuation, "x", kKey)), Events{"error:1002"});
  // Also after a complete message.
  EXPECT_EQ(parse(encode_client_frame(Opcode::text, "a", kKey) +
                  encode_client_frame(Opcode::continuation, "x", kKey)),
            (Events{"text:a", "error:1002"}));
}

TEST(WsFrame, RejectsANewMessageInsideAFragmentedOne) {
  std::string f1 = encode_client_frame(Opcode::text, "a", kKey);
  f1[0] = static_cast<char>(0x01);
  EXPECT_EQ(parse(f1 + encode_client_frame(Opcode::text, "b", kKey)), Events{"error:1002"});
  EXPECT_EQ(parse(f1 + encode_client_frame(Opcode::binary, "b", kKey)), Events{"error:1002"});
}

TEST(WsFrame, RejectsA64BitLengthWithTheHighBitSet) {
  std::string f("\x82\xFF\x80\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00", 14);
  EXPECT_EQ(parse(f), Events{"error:1002"});
}

TEST(WsFrame, EnforcesTheMessageLimitFromTheHeader) {
  // Exactly the limit passes; one more fails with 1009 on the header alone.
  EXPECT_EQ(parse(encode_client_frame(Opcode::binary, std::string(kLimit, 'x'), kKey)),
            Events{"binary:" + std::string(kLimit, 'x')});
  std::string big = encode_client_frame(Opcode::binary, std::string(kLimit + 1, 'x'), kKey);
  FrameParser parser(kLimit);
  Recorder r;
  EXPECT_FALSE(parser.feed(big.data(), 8, r));  // header only
  EXPECT_EQ(r.events, Events{"error:1009"});
  EXPECT_EQ(parser.buffered_bytes(), 0u);
  // A 2^62-byte announcement is refused without any allocation.
  std::string huge("\x82\xFF\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 14);
  EXPECT_EQ(parse(huge), Events{"error:1009"});
}

TEST(WsFrame, EnforcesTheLimitOnTheSumOfFragments) {
  std::string f1 = encode_client_frame(Opcode::text, std::string(600, 'a'), kKey);
  f1[0] = static_cast<char>(0x01);
  std::string f2 = encode_client_frame(Opcode::continuation, std::string(424, 'b'), kKey);
  f2[0] = static_cast<char>(0x00);
  std::string f3 = encode_client_frame(Opcode::continuation, "c", kKey);
  EXPECT_EQ(parse(f1 + f2 + f3), Events{"error:1009"});
  std::string f3_empty = encode_client_frame(Opcode::continuation, "", kKey);
  EXPECT_EQ(parse(f1 + f2 + f3_empty),
            Events{"text:" + std::string(600, 'a') + std::string(424, 'b')});
}

TEST(WsFrame, RejectsInvalidUtf8InText) {
  EXPECT_EQ(parse(encode_client_frame(Opcode::text, "\xCE\xBA\xE1\xBD\xB9\xED\xA0\x80", kKey)),
            Events{"error:1007"});
  // Truncated at the end of the message.
  EXPECT_EQ(parse(encode_client_frame(Opcode::text, "ok\xE2\x82", kKey)), Events{"error:1007"});
  // Binary is not checked.
  EXPECT_EQ(parse(encode_client_frame(Opcode::binary, "\xFF", kKey)), Events{"binary:\xFF"});
}

TEST(WsFrame, AcceptsUtf8SplitAcrossFragments) {
  // U+20AC split 1 + 2 across fragments, U+1F600 split 3 + 1.
  std::string f1 = encode_client_frame(Opcode::text, "a\xE2", kKey);
  f1[0] = static_cast<char>(0x01);
  std::string f2 = encode_client_frame(Opcode::continuation, "\x82\xAC\xF0\x9F\x98", kKey);
  f2[0] = static_cast<char>(0x00);
  std::string f3 = encode_client_frame(Opcode::continuation, "\x80z", kKey);
  const Events expected{"text:a\xE2\x82\xAC\xF0\x9F\x98\x80z"};
  EXPECT_EQ(parse(f1 + f2 + f3), expected);
  EXPECT_EQ(parse_bytewise(f1 + f2 + f3), expected);
}

TEST(WsFrame, FailsFastOnInvalidUtf8BeforeTheFrameEnds) {
  // The frame announces 100 bytes; the surrogate in the first few is refused at once.
  std::string frame =
      encode_client_frame(Opcode::text, "ab\xED\xA0\x80" + std::string(95, 'x'), kKey);
  FrameParser parser(kLimit);
  Recorder r;
  EXPECT_FALSE(parser.feed(frame.data(), 6 + 2 + 5, r));
  EXPECT_EQ(r.events, Events{"error:1007"});
}

TEST(WsFrame, FailsFastOnInvalidUtf8InAnEarlyFragment) {
  std::string f1 = encode_client_frame(Opcode::text, "ok\xC0\xAF", kKey);
  f1[0] = static_cast<char>(0x01);
  // The first fragment alone already fails; the message never completes.
  EXPECT_EQ(parse(f1), Events{"error:1007"});
}

TEST(WsFrame, ParsesCloseFrames) {
  EXPECT_EQ(parse(encode_client_frame(Opcode::close, "", kKey)), Events{"close:1005:"});
  EXPECT_EQ(parse(encode_client_frame(Opcode::close, std::string("\x03\xE8", 2), kKey)),
            Events{"close:1000:"});
  EXPECT_EQ(
      parse(encode_client_frame(Opcode::close, std::string("\x0F\xA0gone \xE2\x82\xAC", 10), kKey)),
      Events{"close:4000:gone \xE2\x82\xAC"});
}

TEST(WsFrame, RejectsBadCloseFrames) {
  EXPECT_EQ(parse(encode_client_frame(Opcode::close, "\x03", kKey)), Events{"error:1002"});
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    const std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
    EXPECT_EQ(parse(encode_client_frame(Opcode::close, payload, kKey)), Events{"error:1002"})
        << code;
  }
  EXPECT_EQ(parse(encode_client_frame(Opcode::close, std::string("\x03\xE8\xFF", 3), kKey)),
            Events{"error:1007"});
}

TEST(WsFrame, CloseCodeValidity) {
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                             3000, 3999, 4000, 4001, 4999}) {
    EXPECT_TRUE(is_valid_close_code(code)) << code;
  }
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000}) {
    EXPECT_FALSE(is_valid_close_code(code)) << code;
  }
}

TEST(WsFrame, EncodesCloseFramesWithinTheControlLimit) {
  EXPECT_EQ(encode_close_frame(1001, "bye"), std::string("\x88\x05\x03\xE9"
                                                         "bye",
                                                         7));
  // A long reason is cut to 123 bytes, and not in the middle of a code point.
  std::string reason(122, 'r');
  reason += "\xE2\x82\xAC";  // 3 bytes straddling the cut
  const std::string frame = encode_close_frame(1000, reason);
  ASSERT_EQ(frame.size(), 2u + 2 + 122);
  FrameParser client(kLimit, FrameParser::Role::client);
  EXPECT_EQ(feed_all(client, frame), Events{"close:1000:" + std::string(122, 'r')});
}

TEST(WsFrame, ParserIsDeadAfterAnError) {
  FrameParser parser(kLimit);
  Recorder r;
  std::string bad = encode_frame(Opcode::text, "unmasked");
  EXPECT_FALSE(parser.feed(bad.data(), bad.size(), r));
  EXPECT_TRUE(parser.failed());
  std::string good = encode_client_frame(Opcode::text, "fine", kKey);
  EXPECT_FALSE(parser.feed(good.data(), good.size(), r));
  EXPECT_EQ(r.events, Events{"error:1002"});
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

TEST(WsFrame, ReleasesMemoryBetweenMessages) {
  FrameParser parser(100000);
  Recorder r;
  std::string frame = encode_client_frame(Opcode::binary, std::string(50000, 'm'), kKey);
  ASSERT_TRUE(parser.feed(frame.data(), 20000, r));
  EXPECT_GT(parser.buffered_bytes(), 0u);
  ASSERT_TRUE(parser.feed(frame.data() + 20000, frame.size() - 20000, r));
  EXPECT_EQ(parser.buffered_bytes(), 0u);
  ASSERT_EQ(r.events.size(), 1u);
}

}  // namespace
}  // namespace realtime::protocol
