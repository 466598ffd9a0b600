// UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), whole or in
// pieces.
#pragma once

#include <cstdint>
#include <string_view>

namespace realtime::protocol {

bool is_valid_utf8(std::string_view text) noexcept;

// Incremental validator for a message that arrives in fragments: a code point may be split across
// feeds. feed() returns false as soon as the bytes so far cannot begin valid UTF-8 (fail fast).
class Utf8Validator {
 public:
  bool feed(std::string_view bytes) noexcept;
  // True when everything fed so far is complete, valid UTF-8 (no code point left half way).
  bool complete() const noexcept { return state_ == 0; }
  void reset() noexcept { state_ = 0; }

 private:
  std::uint32_t state_ = 0;  // a DFA state; 0 is "between code points"
};

}  // namespace realtime::protocol
