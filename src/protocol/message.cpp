#include "realtime/message.hpp"

#include <array>
#include <stdexcept>
#include <utility>

#include "protocol/envelope.hpp"
#include "protocol/outgoing.hpp"

namespace realtime {
namespace {

constexpr std::array<std::pair<MessageType, std::string_view>, 10> kTypeNames{{
    {MessageType::chat, "chat"},
    {MessageType::presence, "presence"},
    {MessageType::notification, "notification"},
    {MessageType::system, "system"},
    {MessageType::error, "error"},
    {MessageType::ping, "ping"},
    {MessageType::pong, "pong"},
    {MessageType::join, "join"},
    {MessageType::leave, "leave"},
    {MessageType::auth, "auth"},
}};

constexpr std::array<std::pair<PresenceStatus, std::string_view>, 3> kStatusNames{{
    {PresenceStatus::online, "online"},
    {PresenceStatus::offline, "offline"},
    {PresenceStatus::away, "away"},
}};

Message make(MessageType type, std::string_view room, std::string data) {
  Message msg;
  msg.type = type;
  msg.room.assign(room);
  msg.data = std::move(data);
  msg.timestamp = Clock::now();
  return msg;
}

}  // namespace

std::string_view to_string(MessageType type) noexcept {
  for (const auto& [value, name] : kTypeNames) {
    if (value == type) return name;
  }
  return "unknown";
}

std::optional<MessageType> parse_message_type(std::string_view text) noexcept {
  for (const auto& [value, name] : kTypeNames) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string_view to_string(PresenceStatus status) noexcept {
  for (const auto& [value, name] : kStatusNames) {
    if (value == status) return name;
  }
  return "unknown";
}

std::optional<PresenceStatus> parse_presence_status(std::string_view text) noexcept {
  for (const auto& [value, name] : kStatusNames) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string json_string(std::string_view text) {
  std::string out;
  protocol::append_json_string(out, text);
  return out;
}

Message system_message(std::string_view event, std::string_view fields_json) {
  std::string data = "{\"event\":";
  protocol::append_json_string(data, event);
  if (!fields_json.empty()) {
    data.push_back(',');
    data.append(fields_json);
    // The fields are the caller's text, pasted: checked, so that a value left unescaped cannot
    // reach clients as a broken envelope. (Whole, the object parses only when they are members.)
    data.push_back('}');
    if (!protocol::is_json_value(data)) {
      throw std::invalid_argument(
          "system_message: fields_json is not a list of JSON object members (build strings with "
          "realtime::json_string)");
    }
    return make(MessageType::system, {}, std::move(data));
  }
  data.push_back('}');
  return make(MessageType::system, {}, std::move(data));
}

Message error_message(std::string_view code, std::string_view text, std::string_view room) {
  std::string data = "{\"error\":";
  protocol::append_json_string(data, text);
  data += ",\"code\":";
  protocol::append_json_string(data, code);
  if (!room.empty()) {
    data += ",\"room\":";
    protocol::append_json_string(data, room);
  }
  data.push_back('}');
  // (Not the envelope's room: an error is no message of the room's stream.)
  return make(MessageType::error, {}, std::move(data));
}

Message presence_message(std::string_view room, const PresenceData& presence) {
  std::string data = "{\"status\":\"";
  data += to_string(presence.status);
  data += "\",\"user_id\":";
  protocol::append_json_string(data, presence.user_id);
  data.push_back('}');
  return make(MessageType::presence, room, std::move(data));
}

Message chat_message(std::string_view room, std::string_view text) {
  std::string data = "{\"text\":";
  protocol::append_json_string(data, text);
  data.push_back('}');
  return make(MessageType::chat, room, std::move(data));
}

std::string to_json(const Message& msg) {
  std::string out;
  protocol::append_envelope(out, msg);
  return out;
}

}  // namespace realtime
