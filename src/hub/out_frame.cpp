// OutFrame: encoding a message once, and the copies of a frame that name a room position.
#include "hub/out_frame.hpp"

#include <algorithm>
#include <optional>

#include "hub/hub_core.hpp"
#include "protocol/envelope.hpp"
#include "protocol/ws_frame.hpp"

namespace realtime::detail {

std::shared_ptr<OutFrame> make_frame(const Message& msg, std::uint64_t seq) {
  std::string payload;
  payload.reserve(96 + msg.data.size() + msg.room.size() + msg.from.size());
  protocol::append_envelope(payload, msg);
  auto frame = make_frame_from_json(payload, msg.room, seq);
  frame->created = std::chrono::steady_clock::now();
  return frame;
}

std::uint32_t shared_epoch_tag(std::string_view epoch) noexcept {
  std::uint32_t hash = 2166136261U;  // FNV-1a
  for (const char c : epoch) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 16777619U;
  }
  return hash == 0 ? 1 : hash;
}

std::shared_ptr<OutFrame> make_direct_frame(const Message& msg) {
  auto frame = make_frame(msg);
  frame->created = {};  // no broadcast latency sample
  frame->own = true;
  return frame;
}

namespace {

// The id of the envelope in a frame (append_envelope writes it first) and the payload from the
// quote that ends it; nullopt when the frame holds no such envelope.
struct EnvelopeId {
  std::string_view id;
  std::string_view rest;
};

std::optional<EnvelopeId> envelope_id(const OutFrame& frame) {
  const std::string& bytes = frame.bytes;
  if (bytes.size() < 2) return std::nullopt;
  const auto length = static_cast<std::uint8_t>(bytes[1]) & 0x7f;
  const std::size_t header = 2 + (length == 126 ? 2 : length == 127 ? 8 : 0);
  constexpr std::string_view kStart = R"({"id":")";
  const std::string_view payload = std::string_view(bytes).substr(std::min(header, bytes.size()));
  if (!payload.starts_with(kStart)) return std::nullopt;
  const auto end = payload.find('"', kStart.size());
  if (end == std::string_view::npos) return std::nullopt;
  return EnvelopeId{payload.substr(kStart.size(), end - kStart.size()), payload.substr(end)};
}

// A copy of the frame with the envelope's id `id` (the rest of the envelope as it was).
FramePtr with_id(const OutFrame& frame, const EnvelopeId& old, std::string_view id) {
  std::string json = R"({"id":")";
  json += id;
  json += old.rest;
  auto copy = make_frame_from_json(json, frame.room, frame.seq);
  copy->created = frame.created;
  copy->is_message = frame.is_message;
  copy->local_seq = frame.local_seq;
  copy->epoch_tag = frame.epoch_tag;
  copy->own = frame.own;
  return copy;
}

// A pod process's tag (HubCore::id_prefix_, a new_epoch()): 8 characters.
constexpr std::size_t kTagSize = 8;

bool is_id_char(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); }

// "<tag>-<kind><n>" (a pod's own id of a message without a position) -> ".<kind><tag><n>", the
// suffix of one that names a position; empty when `id` is not of that form or `kind` differs.
std::string positioned_suffix(std::string_view id, std::string_view kinds) {
  const auto dash = id.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || id.size() < dash + 3 ||
      kinds.find(id[dash + 1]) == std::string_view::npos) {
    return {};
  }
  const std::string_view tag = id.substr(0, dash);
  const std::string_view number = id.substr(dash + 2);
  if (tag.size() != kTagSize || !std::all_of(tag.begin(), tag.end(), is_id_char) ||
      !std::all_of(number.begin(), number.end(), is_id_char)) {
    return {};
  }
  std::string suffix = ".";
  suffix += id[dash + 1];
  suffix += tag;
  suffix += number;
  return suffix;
}

// An id that names a position of `epoch` behind a dot ("<epoch>-<s>.<kind><tag><n>"): s, and the
// suffix from the dot on; nullopt for any other id.
struct NamedPosition {
  std::uint64_t seq;
  std::string_view suffix;
};

std::optional<NamedPosition> named_position(std::string_view id, std::string_view epoch) {
  const auto dot = id.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const auto named = parse_message_id(id.substr(0, dot));
  if (!named || named->epoch != epoch) return std::nullopt;
  return NamedPosition{named->seq, id.substr(dot)};
}

}  // namespace

FramePtr with_position(const OutFrame& frame, std::string_view epoch, std::uint64_t seq) {
  const auto found = envelope_id(frame);
  // (append_envelope's order: the id, then the type.)
  if (!found || !found->rest.starts_with(R"(","type":"presence")")) return nullptr;
  const std::string_view id = found->id;
  std::string named = position_id(epoch, seq);
  if (id.find('.') != std::string_view::npos) {
    const auto position = named_position(id, epoch);
    if (!position || position->seq >= seq) return nullptr;
    named += position->suffix;  // ".p<tag><n>"
  } else {
    // "<tag>-p<n>": named by a pod that did not know the room's position yet; the same tag and
    // number keep it unique.
    const std::string suffix = positioned_suffix(id, "p");
    if (suffix.empty()) return nullptr;
    named += suffix;
  }
  return with_id(frame, *found, named);
}

std::string_view frame_id(const OutFrame& frame) {
  const auto found = envelope_id(frame);
  return found ? found->id : std::string_view();
}

FramePtr with_position_before(const OutFrame& frame, std::string_view epoch, std::uint64_t seq) {
  const auto found = envelope_id(frame);
  if (!found || seq == 0) return nullptr;
  const auto named = named_position(found->id, epoch);
  if (!named || named->seq < seq) return nullptr;
  return with_id(frame, *found, position_id(epoch, seq - 1) + std::string(named->suffix));
}

std::string position_suffix(const OutFrame& frame) {
  const auto found = envelope_id(frame);
  return found ? positioned_suffix(found->id, "ugd") : std::string();
}

FramePtr with_socket_position(const OutFrame& frame, std::string_view position,
                              std::string_view suffix) {
  const auto found = envelope_id(frame);
  if (!found) return nullptr;
  std::string id(position);
  id += suffix;
  return with_id(frame, *found, id);
}

std::shared_ptr<OutFrame> make_frame_from_json(std::string_view json, std::string room,
                                               std::uint64_t seq) {
  auto frame = std::make_shared<OutFrame>();
  std::uint8_t header[protocol::kMaxFrameHeader];
  const std::size_t header_size =
      protocol::write_frame_header(header, protocol::Opcode::text, json.size());
  frame->bytes.reserve(header_size + json.size());
  frame->bytes.append(reinterpret_cast<const char*>(header), header_size);
  frame->bytes.append(json);
  frame->room = std::move(room);
  frame->seq = seq;
  return frame;  // (no `created`: a replay is no latency sample)
}

FramePtr make_control_frame(std::string bytes) {
  auto frame = std::make_shared<OutFrame>();
  frame->bytes = std::move(bytes);
  frame->is_message = false;
  frame->created = std::chrono::steady_clock::now();
  return frame;
}

}  // namespace realtime::detail
