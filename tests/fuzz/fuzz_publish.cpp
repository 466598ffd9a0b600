// Fuzzes decode_publish_request: no crash, and what it accepts follows the publish rules.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "protocol/envelope.hpp"
#include "protocol/request.hpp"

namespace {

using namespace realtime;
using namespace realtime::protocol;

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto result = decode_publish_request(input);
  check((result.error == DecodeError::none) == result.detail.empty());
  if (result.error != DecodeError::none) return 0;
  const PublishRequest& req = result.request;
  check(req.room.empty() || is_valid_room(req.room));
  check(req.user.empty() || is_valid_user_id(req.user));
  check(req.type == MessageType::chat || req.type == MessageType::notification ||
        req.type == MessageType::system || req.type == MessageType::presence);
  // data is always a minified JSON object that survives another decode unchanged.
  check(req.data.size() >= 2 && req.data.front() == '{' && req.data.back() == '}');
  const auto again = decode_publish_request(R"({"data":)" + req.data + "}");
  check(again.error == DecodeError::none && again.request.data == req.data);

  // The envelope built from it decodes back.
  Message msg;
  msg.type = req.type;
  msg.room = req.room;
  msg.data = req.data;
  const auto envelope = decode_envelope(to_json(msg));
  check(envelope.error == DecodeError::none && envelope.message.data == req.data);
  return 0;
}
