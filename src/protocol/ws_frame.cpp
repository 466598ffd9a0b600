#include "protocol/ws_frame.hpp"

#include <algorithm>
#include <cstring>

namespace realtime::protocol {
namespace {

constexpr std::size_t kMaxControlPayload = 125;  // RFC 6455 5.5
constexpr std::size_t kMaxCloseReason = kMaxControlPayload - 2;
constexpr std::uint16_t kCloseProtocolError = 1002;
constexpr std::uint16_t kCloseNoStatus = 1005;
constexpr std::uint16_t kCloseInvalidPayload = 1007;
constexpr std::uint16_t kCloseTooBig = 1009;

constexpr bool is_control(Opcode op) noexcept { return (static_cast<unsigned>(op) & 0x8U) != 0; }

constexpr bool is_known_opcode(unsigned op) noexcept {
  return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

inline std::uint64_t load_be(const unsigned char* p, std::size_t n) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

std::size_t write_header(std::uint8_t* out, Opcode opcode, std::size_t payload_size, bool masked,
                         std::uint32_t mask_key) noexcept {
  out[0] = static_cast<std::uint8_t>(0x80U | static_cast<unsigned>(opcode));
  const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
  std::size_t n = 2;
  if (payload_size < 126) {
    out[1] = static_cast<std::uint8_t>(mask_bit | payload_size);
  } else if (payload_size <= 0xFFFF) {
    out[1] = static_cast<std::uint8_t>(mask_bit | 126U);
    out[2] = static_cast<std::uint8_t>(payload_size >> 8);
    out[3] = static_cast<std::uint8_t>(payload_size);
    n = 4;
  } else {
    out[1] = static_cast<std::uint8_t>(mask_bit | 127U);
    const auto size64 = static_cast<std::uint64_t>(payload_size);
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(size64 >> (56 - 8 * i));
    n = 10;
  }
  if (masked) {
    for (int i = 0; i < 4; ++i) out[n++] = static_cast<std::uint8_t>(mask_key >> (24 - 8 * i));
  }
  return n;
}

std::string encode(Opcode opcode, std::string_view payload, bool masked, std::uint32_t mask_key) {
  std::uint8_t header[kMaxFrameHeader];
  const std::size_t header_size = write_header(header, opcode, payload.size(), masked, mask_key);
  std::string frame;
  frame.resize(header_size + payload.size());
  std::memcpy(frame.data(), header, header_size);
  if (!payload.empty()) std::memcpy(frame.data() + header_size, payload.data(), payload.size());
  if (masked) mask_payload(frame.data() + header_size, payload.size(), mask_key);
  return frame;
}

// The longest prefix of s, at most max bytes, that does not end inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t max) noexcept {
  if (s.size() <= max) return s;
  std::size_t n = max;
  // Back off over continuation bytes to the lead byte of the cut sequence, and drop that too.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0U) == 0x80U) --n;
  return s.substr(0, n);
}

}  // namespace

FrameParser::FrameParser(std::size_t max_message_bytes, Role role) noexcept
    : max_message_bytes_(max_message_bytes), role_(role) {}

bool FrameParser::fail(FrameSink& sink, std::uint16_t close_code, std::string_view why) {
  failed_ = true;
  have_header_ = false;
  in_message_ = false;
  buffers_.reset();
  sink.on_protocol_error(close_code, why);
  return false;
}

FrameParser::Buffers& FrameParser::buffers() {
  if (!buffers_) buffers_ = std::make_unique<Buffers>();
  return *buffers_;
}

void FrameParser::release_idle_buffers() noexcept {
  // An idle connection should hold no heap memory for framing; the next frame usually arrives
  // whole in the read buffer and is parsed there without copying.
  if (!buffers_) return;
  if (buffers_->partial.empty() && buffers_->message.empty()) {
    buffers_.reset();
    return;
  }
  if (buffers_->partial.empty()) std::string{}.swap(buffers_->partial);
  if (buffers_->message.empty()) std::string{}.swap(buffers_->message);
}

int FrameParser::parse_header(const char* data, std::size_t n, FrameSink& sink) {
  if (n < 2) return 0;
  auto header_error = [&](std::uint16_t close_code, std::string_view why) {
    fail(sink, close_code, why);
    return -1;
  };
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  const unsigned b0 = p[0];
  const unsigned b1 = p[1];
  if ((b0 & 0x70U) != 0) return header_error(kCloseProtocolError, "reserved bits set");
  const unsigned op_bits = b0 & 0x0FU;
  if (!is_known_opcode(op_bits)) return header_error(kCloseProtocolError, "reserved opcode");
  const auto opcode = static_cast<Opcode>(op_bits);
  const bool fin = (b0 & 0x80U) != 0;
  const bool masked = (b1 & 0x80U) != 0;
  if (role_ == Role::server && !masked) {
    return header_error(kCloseProtocolError, "client frame not masked");
  }
  if (role_ == Role::client && masked) {
    return header_error(kCloseProtocolError, "server frame masked");
  }
  const unsigned len7 = b1 & 0x7FU;
  if (is_control(opcode)) {
    if (!fin) return header_error(kCloseProtocolError, "fragmented control frame");
    if (len7 > kMaxControlPayload) {
      return header_error(kCloseProtocolError, "control frame payload over 125 bytes");
    }
  } else if (opcode == Opcode::continuation) {
    if (!in_message_) return header_error(kCloseProtocolError, "continuation without a message");
  } else if (in_message_) {
    return header_error(kCloseProtocolError, "new message inside a fragmented message");
  }

  const std::size_t length_bytes = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0);
  const std::size_t header_size = 2 + length_bytes + (masked ? 4 : 0);
  if (n < header_size) return 0;

  std::uint64_t payload_size = len7;
  if (length_bytes != 0) {
    payload_size = load_be(p + 2, length_bytes);
    if (length_bytes == 8 && (payload_size >> 63) != 0) {
      return header_error(kCloseProtocolError, "payload length with the high bit set");
    }
  }
  if (!is_control(opcode)) {
    // Checked against the announced length, before any of the payload is buffered.
    const std::uint64_t already =
        opcode == Opcode::continuation && buffers_ ? buffers_->message.size() : 0;
    if (already > max_message_bytes_ || payload_size > max_message_bytes_ - already) {
      return header_error(kCloseTooBig, "message too big");
    }
  }

  have_header_ = true;
  frame_fin_ = fin;
  frame_masked_ = masked;
  frame_opcode_ = opcode;
  mask_key_ = masked ? static_cast<std::uint32_t>(load_be(p + 2 + length_bytes, 4)) : 0;
  payload_left_ = payload_size;
  payload_seen_ = 0;
  if (opcode == Opcode::text || opcode == Opcode::binary) {
    message_opcode_ = opcode;
    utf8_.reset();
    in_message_ = !fin;
  }
  return static_cast<int>(header_size);
}

bool FrameParser::on_control_frame(std::string_view payload, FrameSink& sink) {
  switch (frame_opcode_) {
    case Opcode::ping:
      sink.on_ping(payload);
      return true;
    case Opcode::pong:
      sink.on_pong(payload);
      return true;
    case Opcode::close: {
      if (payload.empty()) {
        sink.on_close(kCloseNoStatus, {});
        return true;
      }
      if (payload.size() == 1) return fail(sink, kCloseProtocolError, "close payload of one byte");
      const auto* p = reinterpret_cast<const unsigned char*>(payload.data());
      const auto code = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
      if (!is_valid_close_code(code)) return fail(sink, kCloseProtocolError, "invalid close code");
      const std::string_view reason = payload.substr(2);
      if (!is_valid_utf8(reason)) return fail(sink, kCloseInvalidPayload, "close reason not UTF-8");
      sink.on_close(code, reason);
      return true;
    }
    default:
      return true;  // unreachable: parse_header admits only the control opcodes above
  }
}

bool FrameParser::on_data_payload(char* chunk, std::size_t size, FrameSink& sink) {
  const bool whole_frame = payload_seen_ == 0 && size == payload_left_;
  if (frame_masked_) mask_payload(chunk, size, mask_key_, static_cast<std::size_t>(payload_seen_));
  payload_seen_ += size;
  payload_left_ -= size;
  const bool text = message_opcode_ == Opcode::text;
  // Fail fast: a text message is refused at the first byte that cannot be valid UTF-8, without
  // waiting for the rest of the frame or the message.
  if (text && !utf8_.feed(std::string_view(chunk, size))) {
    return fail(sink, kCloseInvalidPayload, "invalid UTF-8 in text message");
  }
  const bool message_done = payload_left_ == 0 && frame_fin_;
  if (message_done && (!buffers_ || buffers_->message.empty()) && whole_frame) {
    // Fast path: an unfragmented message entirely in the caller's buffer, delivered in place.
    have_header_ = false;
    in_message_ = false;
    if (text) {
      if (!utf8_.complete()) return fail(sink, kCloseInvalidPayload, "truncated UTF-8 sequence");
      sink.on_text(std::string_view(chunk, size));
    } else {
      sink.on_binary(std::string_view(chunk, size));
    }
    return true;
  }
  std::string& message = buffers().message;
  message.append(chunk, size);
  if (payload_left_ != 0) return true;
  have_header_ = false;
  if (!frame_fin_) return true;
  in_message_ = false;
  if (text && !utf8_.complete())
    return fail(sink, kCloseInvalidPayload, "truncated UTF-8 sequence");
  if (text) {
    sink.on_text(message);
  } else {
    sink.on_binary(message);
  }
  std::string{}.swap(message);
  return true;
}

bool FrameParser::feed(char* bytes, std::size_t size, FrameSink& sink) {
  if (failed_) return false;
  std::size_t pos = 0;
  while (!failed_) {
    if (!have_header_) {
      if (pos == size) break;
      if (partial_empty()) {
        const int header_size = parse_header(bytes + pos, size - pos, sink);
        if (header_size < 0) return false;
        if (header_size == 0) {
          // Only the incomplete tail is copied.
          buffers().partial.assign(bytes + pos, size - pos);
          pos = size;
          break;
        }
        pos += static_cast<std::size_t>(header_size);
      } else {
        // Complete a header split across feeds, taking no byte beyond it from the input.
        std::string& partial = buffers_->partial;
        int header_size = 0;
        while (header_size == 0) {
          std::size_t want = 2;
          if (partial.size() >= 2) {
            const auto b1 = static_cast<unsigned char>(partial[1]);
            const unsigned len7 = b1 & 0x7FU;
            want += (len7 == 126 ? 2 : (len7 == 127 ? 8 : 0)) + ((b1 & 0x80U) != 0 ? 4 : 0);
          }
          if (partial.size() < want) {
            const std::size_t take = std::min(want - partial.size(), size - pos);
            partial.append(bytes + pos, take);
            pos += take;
          }
          header_size = parse_header(partial.data(), partial.size(), sink);
          if (header_size < 0) return false;
          if (header_size == 0 && pos == size) break;
        }
        if (header_size == 0) break;
        partial.clear();
      }
      if (payload_left_ == 0) {
        // Empty payload: the frame is complete with its header.
        if (is_control(frame_opcode_)) {
          have_header_ = false;
          if (!on_control_frame({}, sink)) return false;
        } else if (!on_data_payload(bytes + pos, 0, sink)) {
          return false;
        }
        continue;
      }
    }
    if (pos == size) break;
    const std::size_t available = size - pos;
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(available, payload_left_));
    char* chunk = bytes + pos;
    pos += take;
    if (is_control(frame_opcode_)) {
      if (partial_empty() && take == payload_left_) {
        if (frame_masked_) mask_payload(chunk, take, mask_key_);
        payload_left_ = 0;
        have_header_ = false;
        if (!on_control_frame(std::string_view(chunk, take), sink)) return false;
      } else {
        std::string& partial = buffers().partial;
        partial.append(chunk, take);
        payload_left_ -= take;
        if (payload_left_ == 0) {
          if (frame_masked_) mask_payload(partial.data(), partial.size(), mask_key_);
          have_header_ = false;
          // Moved out first so that the partial buffer is free again whatever the sink does.
          const std::string payload = std::move(partial);
          partial.clear();
          if (!on_control_frame(payload, sink)) return false;
        }
      }
    } else if (!on_data_payload(chunk, take, sink)) {
      return false;
    }
  }
  release_idle_buffers();
  return !failed_;
}

std::size_t write_frame_header(std::uint8_t* out, Opcode opcode, std::size_t payload_size,
                               std::uint32_t mask_key) noexcept {
  return write_header(out, opcode, payload_size, mask_key != 0, mask_key);
}

void mask_payload(char* data, std::size_t size, std::uint32_t mask_key,
                  std::size_t offset) noexcept {
  if (size == 0) return;
  // The key bytes in wire order, rotated to the payload offset, repeated over 8 bytes so that whole
  // words can be XORed at once (8 is a multiple of the key's 4).
  unsigned char pattern[8];
  for (std::size_t i = 0; i < 8; ++i) {
    const std::size_t k = (offset + i) & 3U;
    pattern[i] = static_cast<unsigned char>(mask_key >> (24 - 8 * k));
  }
  std::uint64_t word_mask;
  std::memcpy(&word_mask, pattern, sizeof word_mask);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, data + i, sizeof word);
    word ^= word_mask;
    std::memcpy(data + i, &word, sizeof word);
  }
  for (std::size_t j = 0; i < size; ++i, ++j) {
    data[i] = static_cast<char>(static_cast<unsigned char>(data[i]) ^ pattern[j]);
  }
}

std::string encode_frame(Opcode opcode, std::string_view payload) {
  return encode(opcode, payload, false, 0);
}

std::string encode_close_frame(std::uint16_t code, std::string_view reason) {
  const std::string_view cut = utf8_prefix(reason, kMaxCloseReason);
  std::string payload;
  payload.reserve(2 + cut.size());
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(cut);
  return encode(Opcode::close, payload, false, 0);
}

std::string encode_client_frame(Opcode opcode, std::string_view payload, std::uint32_t mask_key) {
  // Always masked, even with a zero key: a server must refuse unmasked client frames.
  return encode(opcode, payload, true, mask_key);
}

bool is_valid_close_code(std::uint16_t code) noexcept {
  // 1004-1006 and 1015 are reserved and never sent; 1012-1014 are registered with IANA (restart,
  // try again later, bad gateway) and this server sends 1013 itself.
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}

}  // namespace realtime::protocol
