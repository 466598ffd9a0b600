#include "protocol/utf8.hpp"

#include <array>
#include <cstring>

namespace realtime::protocol {
namespace {

// A table-driven DFA over byte classes. The classes split the lead and continuation ranges exactly
// where RFC 3629 puts its exceptions (overlongs after E0/F0, surrogates after ED, > U+10FFFF after
// F4), so every state knows which continuation bytes it accepts and no code point is ever decoded.
enum ByteClass : std::uint8_t {
  kAscii,    // 00..7F
  kCont1,    // 80..8F
  kCont2,    // 90..9F
  kCont3,    // A0..BF
  kInvalid,  // C0, C1, F5..FF: never valid anywhere
  kLead2,    // C2..DF
  kLeadE0,   // E0: second byte A0..BF (no overlongs)
  kLead3,    // E1..EC, EE..EF
  kLeadED,   // ED: second byte 80..9F (no surrogates)
  kLeadF0,   // F0: second byte 90..BF (no overlongs)
  kLead4,    // F1..F3
  kLeadF4,   // F4: second byte 80..8F (nothing above U+10FFFF)
  kClassCount,
};

enum State : std::uint8_t {
  kAccept,  // between code points
  kReject,  // sticky: invalid input seen
  kNeed1,   // one continuation byte left
  kNeed2,   // two continuation bytes left
  kAfterE0,
  kAfterED,
  kAfterF0,
  kNeed3,  // three continuation bytes left
  kAfterF4,
  kStateCount,
};

constexpr std::array<std::uint8_t, 256> make_classes() {
  std::array<std::uint8_t, 256> c{};
  for (int b = 0; b < 256; ++b) {
    std::uint8_t k = kInvalid;
    if (b < 0x80)
      k = kAscii;
    else if (b < 0x90)
      k = kCont1;
    else if (b < 0xA0)
      k = kCont2;
    else if (b < 0xC0)
      k = kCont3;
    else if (b < 0xC2)
      k = kInvalid;
    else if (b < 0xE0)
      k = kLead2;
    else if (b == 0xE0)
      k = kLeadE0;
    else if (b == 0xED)
      k = kLeadED;
    else if (b < 0xF0)
      k = kLead3;
    else if (b == 0xF0)
      k = kLeadF0;
    else if (b < 0xF4)
      k = kLead4;
    else if (b == 0xF4)
      k = kLeadF4;
    c[static_cast<std::size_t>(b)] = k;
  }
  return c;
}

using Transitions = std::array<std::array<std::uint8_t, kClassCount>, kStateCount>;

constexpr Transitions make_transitions() {
  Transitions t{};
  for (auto& row : t) row.fill(kReject);
  auto& a = t[kAccept];
  a[kAscii] = kAccept;
  a[kLead2] = kNeed1;
  a[kLeadE0] = kAfterE0;
  a[kLead3] = kNeed2;
  a[kLeadED] = kAfterED;
  a[kLeadF0] = kAfterF0;
  a[kLead4] = kNeed3;
  a[kLeadF4] = kAfterF4;
  for (auto cls : {kCont1, kCont2, kCont3}) {
    t[kNeed1][cls] = kAccept;
    t[kNeed2][cls] = kNeed1;
    t[kNeed3][cls] = kNeed2;
  }
  t[kAfterE0][kCont3] = kNeed1;
  t[kAfterED][kCont1] = kNeed1;
  t[kAfterED][kCont2] = kNeed1;
  t[kAfterF0][kCont2] = kNeed2;
  t[kAfterF0][kCont3] = kNeed2;
  t[kAfterF4][kCont1] = kNeed2;
  return t;
}

constexpr auto kClasses = make_classes();
constexpr auto kTransitions = make_transitions();

constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

// Skips whole 8-byte words of ASCII; returns the index of the first word holding a non-ASCII byte
// (or of the tail shorter than a word).
inline std::size_t skip_ascii(const unsigned char* p, std::size_t i, std::size_t n) noexcept {
  while (i + 8 <= n) {
    std::uint64_t word;
    std::memcpy(&word, p + i, sizeof word);
    if ((word & kHighBits) != 0) break;
    i += 8;
  }
  return i;
}

// Runs the DFA from `state` over p[i..n), skipping ASCII words whenever it is between code points.
// Stops early on rejection (fail fast).
inline std::uint32_t run(std::uint32_t state, const unsigned char* p, std::size_t n) noexcept {
  std::size_t i = 0;
  while (i < n) {
    if (state == kAccept) {
      i = skip_ascii(p, i, n);
      if (i == n) break;
    }
    state = kTransitions[state][kClasses[p[i]]];
    if (state == kReject) break;
    ++i;
  }
  return state;
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  return run(kAccept, p, text.size()) == kAccept;
}

bool Utf8Validator::feed(std::string_view bytes) noexcept {
  if (state_ == kReject) return false;
  state_ = run(state_, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return state_ != kReject;
}

}  // namespace realtime::protocol
