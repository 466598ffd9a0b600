// Fuzzes the JSON decoders and encoders: decode_client_message, decode_envelope,
// decode_presence_data, append_json_string and the timestamp codec. Whatever they accept must
// re-encode to JSON that decodes to the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "protocol/envelope.hpp"
#include "protocol/utf8.hpp"

namespace {

using namespace realtime;
using namespace realtime::protocol;

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const auto client = decode_client_message(input);
  check((client.error == DecodeError::none) == client.detail.empty());
  if (client.error == DecodeError::none && !client.message.data.empty()) {
    // The re-serialised data is valid, minified JSON: decoding it again changes nothing.
    const auto again =
        decode_client_message(R"({"type":"chat","data":)" + client.message.data + "}");
    check(again.error == DecodeError::none && again.message.data == client.message.data);
  }
  if (client.error == DecodeError::none && client.message.type == MessageType::auth) {
    check(!client.message.token.empty());
  }

  const auto envelope = decode_envelope(input);
  if (envelope.error == DecodeError::none) {
    const std::string json = to_json(envelope.message);
    const auto again = decode_envelope(json);
    check(again.error == DecodeError::none);
    const Message& a = envelope.message;
    const Message& b = again.message;
    check(a.id == b.id && a.type == b.type && a.room == b.room && a.from == b.from &&
          a.data == b.data);
    check(std::chrono::floor<std::chrono::milliseconds>(a.timestamp) == b.timestamp);
    check(to_json(b) == json);
  }

  // Any bytes, escaped, make a JSON string; valid UTF-8 comes back unchanged.
  std::string doc = R"({"type":"system","from":)";
  append_json_string(doc, input);
  doc += "}";
  const auto escaped = decode_envelope(doc);
  check(escaped.error == DecodeError::none);
  if (is_valid_utf8(input)) check(escaped.message.from == input);

  // Presence data: whatever decodes encodes (presence_message) to data that decodes the same.
  if (const auto presence = decode_presence_data(input)) {
    const Message msg = presence_message("room", *presence);
    const auto again = decode_presence_data(msg.data);
    check(again && again->status == presence->status && again->user_id == presence->user_id);
  }

  // The timestamp codec: whatever parses, formats and parses back to the same instant.
  if (const auto t = parse_timestamp(input)) {
    const std::string formatted = format_timestamp(*t);
    check(parse_timestamp(formatted) == t);
  }
  return 0;
}
