// RFC 6455 framing without I/O: bytes in, events out (parsing), and frame bytes out (encoding).
//
// FrameParser is a value owned by one connection and used from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/utf8.hpp"

namespace realtime::protocol {

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

// What the parser reports. Implemented by the connection (or a test, or the bench client).
// Every string_view points into the fed buffer or the parser's own storage and is valid only during
// the call: copy what must outlive it. A sink must not feed the same parser from inside a callback.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // A complete text message (all fragments joined); valid UTF-8.
  virtual void on_text(std::string_view message) = 0;
  // A complete binary message.
  virtual void on_binary(std::string_view message) = 0;
  virtual void on_ping(std::string_view payload) = 0;
  virtual void on_pong(std::string_view payload) = 0;
  // A valid close frame. code is 1005 (no status) when the frame had no payload.
  virtual void on_close(std::uint16_t code, std::string_view reason) = 0;
  // The peer broke the protocol; the parser is dead afterwards. close_code is 1002 (framing),
  // 1007 (bad UTF-8 in text or close reason) or 1009 (message over the size limit).
  virtual void on_protocol_error(std::uint16_t close_code, std::string_view why) = 0;
};

class FrameParser {
 public:
  enum class Role : std::uint8_t {
    server,  // parses client frames: they must be masked
    client,  // parses server frames: they must not be masked
  };
  explicit FrameParser(std::size_t max_message_bytes, Role role = Role::server) noexcept;

  // Consumes all of `bytes`, reporting each complete event to `sink` in order. Bytes of an
  // incomplete frame are kept until the next call. Returns false once a protocol error has been
  // reported (then and on every later call, which does nothing). `bytes` may be modified in place
  // (unmasking).
  bool feed(char* bytes, std::size_t size, FrameSink& sink);
  bool failed() const noexcept { return failed_; }
  // Bytes currently held for incomplete frames/messages (memory accounting).
  std::size_t buffered_bytes() const noexcept {
    return buffers_ ? buffers_->partial.size() + buffers_->message.size() : 0;
  }

 private:
  // Parses a frame header at p[0..n). Returns its length once complete, 0 when more bytes are
  // needed, or -1 after reporting a protocol error. Rules that need only the first two bytes are
  // checked as soon as those two bytes arrive, so a bad frame fails before the rest of its header
  // is sent.
  int parse_header(const char* p, std::size_t n, FrameSink& sink);
  // Consumes payload bytes of a data frame (unmasked in place); delivers the message when complete.
  bool on_data_payload(char* chunk, std::size_t size, FrameSink& sink);
  // A complete control frame (payload already unmasked).
  bool on_control_frame(std::string_view payload, FrameSink& sink);
  bool fail(FrameSink& sink, std::uint16_t close_code, std::string_view why);
  void release_idle_buffers() noexcept;

  std::size_t max_message_bytes_;
  Role role_;
  bool failed_ = false;
  // A fragmented message under way: its opcode, and the fragments received so far.
  Opcode message_opcode_ = Opcode::continuation;
  bool in_message_ = false;
  // The frame whose payload is being received (valid while have_header_).
  bool have_header_ = false;
  bool frame_fin_ = false;
  bool frame_masked_ = false;
  Opcode frame_opcode_ = Opcode::continuation;
  std::uint32_t mask_key_ = 0;
  std::uint64_t payload_left_ = 0;  // payload bytes of the frame not yet received
  std::uint64_t payload_seen_ = 0;  // payload bytes of the frame received (the mask offset)
  Utf8Validator utf8_;
  // What an incomplete frame or message keeps between feeds; allocated only then (an idle
  // connection's parser holds a pointer, not two strings).
  struct Buffers {
    std::string partial;  // header, or control payload, of a frame not yet complete
    std::string message;  // data of a message not yet complete
  };
  Buffers& buffers();
  bool partial_empty() const noexcept { return !buffers_ || buffers_->partial.empty(); }
  std::unique_ptr<Buffers> buffers_;
};

inline constexpr std::size_t kMaxFrameHeader = 14;  // 2 + 8 (length) + 4 (mask)

// Writes the header of a final (FIN) frame into out[0..kMaxFrameHeader) and returns its length.
// mask_key == 0 means unmasked (server frames); otherwise the header carries the mask key and the
// caller must mask the payload with mask_payload().
std::size_t write_frame_header(std::uint8_t* out, Opcode opcode, std::size_t payload_size,
                               std::uint32_t mask_key = 0) noexcept;
// XORs `data` with the mask key, starting at byte `offset` of the payload.
void mask_payload(char* data, std::size_t size, std::uint32_t mask_key,
                  std::size_t offset = 0) noexcept;

// A complete unmasked frame (header + payload): what the server sends.
std::string encode_frame(Opcode opcode, std::string_view payload);
// A close frame with a status code and a reason (truncated to fit the 125-byte control payload).
std::string encode_close_frame(std::uint16_t code, std::string_view reason = {});
// A complete masked frame: what a client sends.
std::string encode_client_frame(Opcode opcode, std::string_view payload, std::uint32_t mask_key);

// Close codes a peer may send in a close frame (RFC 6455 7.4, plus 3000-4999).
bool is_valid_close_code(std::uint16_t code) noexcept;

}  // namespace realtime::protocol
