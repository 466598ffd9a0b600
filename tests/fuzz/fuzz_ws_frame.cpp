// Fuzzes FrameParser (both roles, arbitrary feed splits) and the encode -> parse round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "protocol/utf8.hpp"
#include "protocol/ws_frame.hpp"

namespace {

using realtime::protocol::FrameParser;
using realtime::protocol::FrameSink;
using realtime::protocol::Opcode;

constexpr std::size_t kLimit = 4096;

void check(bool ok) {
  if (!ok) std::abort();
}

// Checks what the parser promises about every event, and keeps the last ones for round trips.
class CheckingSink : public FrameSink {
 public:
  void on_text(std::string_view m) override {
    check(!errored && m.size() <= kLimit && realtime::protocol::is_valid_utf8(m));
    messages.emplace_back(m);
  }
  void on_binary(std::string_view m) override {
    check(!errored && m.size() <= kLimit);
    messages.emplace_back(m);
  }
  void on_ping(std::string_view p) override { check(!errored && p.size() <= 125); }
  void on_pong(std::string_view p) override { check(!errored && p.size() <= 125); }
  void on_close(std::uint16_t code, std::string_view reason) override {
    check(!errored && reason.size() <= 123 && realtime::protocol::is_valid_utf8(reason));
    check(code == 1005 ? reason.empty() : realtime::protocol::is_valid_close_code(code));
  }
  void on_protocol_error(std::uint16_t code, std::string_view why) override {
    check(!errored && (code == 1002 || code == 1007 || code == 1009) && !why.empty());
    errored = true;
  }
  bool errored = false;
  std::vector<std::string> messages;
};

// Feeds `bytes` in pieces whose sizes come from `splits`.
void feed_in_pieces(FrameParser& parser, std::string bytes, const std::uint8_t* splits,
                    std::size_t nsplits, CheckingSink& sink) {
  std::size_t pos = 0;
  std::size_t k = 0;
  while (pos < bytes.size()) {
    std::size_t piece = nsplits == 0 ? bytes.size() : 1 + splits[k++ % nsplits] % 64;
    piece = std::min(piece, bytes.size() - pos);
    const bool ok = parser.feed(bytes.data() + pos, piece, sink);
    check(ok == !sink.errored && parser.failed() == sink.errored);
    if (!ok) {
      check(parser.buffered_bytes() == 0);
      char dummy = 0;
      check(!parser.feed(&dummy, 1, sink));  // dead afterwards
      return;
    }
    check(parser.buffered_bytes() <= kLimit + 2 * realtime::protocol::kMaxFrameHeader + 125);
    pos += piece;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::uint8_t* splits = size > 0 ? data : nullptr;
  const std::size_t nsplits = std::min<std::size_t>(size, 16);

  // 1. Arbitrary bytes, both roles, whole and in pieces: no crash, invariants hold.
  for (auto role : {FrameParser::Role::server, FrameParser::Role::client}) {
    CheckingSink whole_sink;
    FrameParser whole(kLimit, role);
    feed_in_pieces(whole, input, nullptr, 0, whole_sink);
    CheckingSink split_sink;
    FrameParser split(kLimit, role);
    feed_in_pieces(split, input, splits, nsplits, split_sink);
    // How the bytes are split never changes what is parsed.
    check(whole_sink.messages == split_sink.messages && whole_sink.errored == split_sink.errored);
  }

  // 2. Round trip: the input as a payload, fragmented in two, masked by the client encoder.
  if (size >= 5) {
    std::uint32_t key;
    std::memcpy(&key, data, 4);
    const bool binary = (data[4] & 1) != 0;
    const std::string payload = input.substr(5);
    const std::size_t cut = payload.empty() ? 0 : data[4] % (payload.size() + 1);
    std::string first = realtime::protocol::encode_client_frame(
        binary ? Opcode::binary : Opcode::text, payload.substr(0, cut), key);
    first[0] = static_cast<char>(first[0] & 0x7F);  // not FIN
    const std::string ping = realtime::protocol::encode_client_frame(
        Opcode::ping, payload.substr(0, std::min<std::size_t>(cut, 125)), ~key);
    const std::string last =
        realtime::protocol::encode_client_frame(Opcode::continuation, payload.substr(cut), key);
    CheckingSink sink;
    FrameParser parser(kLimit);
    feed_in_pieces(parser, first + ping + last, splits, nsplits, sink);
    const bool expect_ok =
        payload.size() <= kLimit && (binary || realtime::protocol::is_valid_utf8(payload));
    check(sink.errored == !expect_ok);
    if (expect_ok) check(sink.messages.size() == 1 && sink.messages[0] == payload);

    // And the server's own (unmasked) frames read back by the client role.
    CheckingSink client_sink;
    FrameParser client(kLimit, FrameParser::Role::client);
    feed_in_pieces(client, realtime::protocol::encode_frame(Opcode::binary, payload), splits,
                   nsplits, client_sink);
    check(client_sink.errored == (payload.size() > kLimit));
    if (!client_sink.errored) check(client_sink.messages.at(0) == payload);
  }
  return 0;
}
