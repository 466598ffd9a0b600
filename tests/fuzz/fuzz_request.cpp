// Fuzzes request-target handling: parse_ws_target, query_param, percent_decode, redact_target.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "protocol/request.hpp"

namespace {

using namespace realtime::protocol;

void check(bool ok) {
  if (!ok) std::abort();
}

bool hidden(const std::optional<std::string>& value) {
  return !value || value->empty() || *value == "REDACTED";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view target(reinterpret_cast<const char*>(data), size);

  const WsTarget ws = parse_ws_target(target);
  if (ws.kind == WsTarget::Kind::room) check(is_valid_room(ws.room));
  if (ws.kind != WsTarget::Kind::room) check(ws.room.empty());

  const Target parts = split_target(target);
  check(parts.path.size() + (parts.query.size() + (parts.path.size() < target.size() ? 1 : 0)) ==
        target.size());
  if (ws.token) check(query_param(parts.query, "token") == ws.token);

  // No secret survives redaction, and nothing else changes length-wise beyond the replacements.
  const std::string redacted = redact_target(target);
  const Target rparts = split_target(redacted);
  check(rparts.path == parts.path);
  for (const char* secret : {"token", "access_token", "api_key"}) {
    check(hidden(query_param(rparts.query, secret)));
  }
  check(redact_target(redacted) == redacted);

  if (const auto decoded = percent_decode(target)) check(decoded->size() <= target.size());
  return 0;
}
