#include "protocol/outgoing.hpp"

#include <algorithm>
#include <stdexcept>

#include <simdjson.h>

#include "protocol/envelope.hpp"
#include "protocol/request.hpp"

namespace realtime::protocol {
namespace {

// What the application sends is small as a rule; the parser grows on demand.
constexpr std::size_t kInitialCapacity = 4096;

// One validating DOM parser per thread that checks, reused from message to message (its padded
// copy of the input and its tape). A thread that never checks anything never makes one.
struct Checker {
  simdjson::dom::parser parser;
  simdjson::error_code init_error;
  Checker() : init_error(parser.allocate(kInitialCapacity, kMaxJsonDepth)) {}
};

}  // namespace

bool is_json_value(std::string_view text) {
  if (text.empty()) return false;  // (simdjson would read from a null pointer)
  thread_local Checker checker;
  if (checker.init_error != simdjson::SUCCESS) return false;
  simdjson::dom::element element;
  return checker.parser.parse(text.data(), text.size(), true).get(element) == simdjson::SUCCESS;
}

bool is_url_safe_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > kMaxMessageIdBytes) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

bool is_client_command(MessageType type) noexcept {
  return type == MessageType::join || type == MessageType::leave || type == MessageType::auth;
}

std::string outgoing_problem(const Message& msg) {
  if (is_client_command(msg.type)) {
    return "type " + std::string(to_string(msg.type)) +
           " is a client command, never sent by the server";
  }
  if (!msg.id.empty() && !is_url_safe_id(msg.id)) {
    return "id is not 1 to 128 characters of A-Z a-z 0-9 - _ . (clients put it into a URL)";
  }
  if (!msg.room.empty() && !is_valid_room(msg.room)) {
    return "room is not a valid room name (1 to 128 characters of A-Z a-z 0-9 _ - . :)";
  }
  if (!msg.data.empty() && !is_json_value(msg.data)) {
    return "data is not one valid JSON value (build strings with realtime::json_string)";
  }
  return {};
}

void check_outgoing(const Message& msg, std::string_view what) {
  std::string problem = outgoing_problem(msg);
  if (problem.empty()) return;
  throw std::invalid_argument(std::string(what) + ": " + problem);
}

}  // namespace realtime::protocol
