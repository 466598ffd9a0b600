// The JSON reading of JwtVerifier (src/auth/jwt_verifier.cpp), private to realtime_auth.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>

namespace realtime::detail::jwt_json {

// Strict RFC 8259 JSON reading, only what the header and claim checks need. It refuses what
// jansson (libjwt's parser) refuses as well: invalid UTF-8, lone surrogates, \u0000.

inline constexpr int kMaxJsonDepth = 32;

// Length of the valid UTF-8 sequence starting at text[i], 0 when it is not one.
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3;
    low = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    length = 3;
  } else if (lead == 0xED) {
    length = 3;
    high = 0x9F;
  } else if (lead == 0xF0) {
    length = 4;
    low = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4;
    high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() - i < length) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return length;
}

inline void append_utf8(std::string& out, std::uint32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : text_(text) {}

  void skip_whitespace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  // Skips whitespace, then consumes `c` if it is next.
  bool consume(char c) {
    skip_whitespace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  // Skips whitespace, then returns the next byte, or '\0' at the end.
  char peek() {
    skip_whitespace();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }

  bool at_end() {
    skip_whitespace();
    return pos_ == text_.size();
  }

  // Reads a string (after optional whitespace) into `out` (decoded) or just validates it.
  bool read_string(std::string* out) {
    if (peek() != '"') return false;
    ++pos_;
    while (pos_ < text_.size()) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (!read_escape(out)) return false;
        continue;
      }
      const std::size_t length = utf8_sequence_length(text_, pos_);
      if (length == 0) return false;
      if (out != nullptr) out->append(text_.substr(pos_, length));
      pos_ += length;
    }
    return false;
  }

  // Reads a number (after optional whitespace); `out` receives its text. An integer (no fraction,
  // no exponent) must fit 64 bits: libjwt's JSON parser refuses a larger one, and its refusal
  // would be reported as a bad signature.
  bool read_number(std::string_view* out) {
    skip_whitespace();
    const std::size_t start = pos_;
    if (next_is('-')) ++pos_;
    if (next_is('0')) {
      ++pos_;
    } else if (next_is_digit()) {
      skip_digits();
    } else {
      return false;
    }
    if (!next_is('.') && !next_is('e') && !next_is('E')) {
      std::int64_t value = 0;
      const char* first = text_.data() + start;
      const char* last = text_.data() + pos_;
      const auto [end, error] = std::from_chars(first, last, value);
      if (error != std::errc{} || end != last) return false;
    }
    if (next_is('.')) {
      ++pos_;
      if (!next_is_digit()) return false;
      skip_digits();
    }
    if (next_is('e') || next_is('E')) {
      ++pos_;
      if (next_is('+') || next_is('-')) ++pos_;
      if (!next_is_digit()) return false;
      skip_digits();
    }
    if (out != nullptr) *out = text_.substr(start, pos_ - start);
    return true;
  }

  // Validates one value of any type, nested at most kMaxJsonDepth deep.
  bool skip_value(int depth = 0) {
    if (depth > kMaxJsonDepth) return false;
    switch (peek()) {
      case '{':
        ++pos_;
        if (consume('}')) return true;
        do {
          if (!read_string(nullptr) || !consume(':') || !skip_value(depth + 1)) return false;
        } while (consume(','));
        return consume('}');
      case '[':
        ++pos_;
        if (consume(']')) return true;
        do {
          if (!skip_value(depth + 1)) return false;
        } while (consume(','));
        return consume(']');
      case '"':
        return read_string(nullptr);
      case 't':
        return read_literal("true");
      case 'f':
        return read_literal("false");
      case 'n':
        return read_literal("null");
      default:
        return read_number(nullptr);
    }
  }

 private:
  bool next_is(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  bool next_is_digit() const {
    return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9';
  }
  void skip_digits() {
    while (next_is_digit()) ++pos_;
  }

  bool read_literal(std::string_view literal) {
    if (text_.substr(pos_, literal.size()) != literal) return false;
    pos_ += literal.size();
    return true;
  }

  bool read_hex4(std::uint32_t& value) {
    if (text_.size() - pos_ < 4) return false;
    value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      std::uint32_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
      value = value * 16 + digit;
    }
    return true;
  }

  // At a backslash inside a string.
  bool read_escape(std::string* out) {
    ++pos_;
    if (pos_ >= text_.size()) return false;
    const char escape = text_[pos_++];
    char plain = 0;
    switch (escape) {
      case '"':
      case '\\':
      case '/':
        plain = escape;
        break;
      case 'b':
        plain = '\b';
        break;
      case 'f':
        plain = '\f';
        break;
      case 'n':
        plain = '\n';
        break;
      case 'r':
        plain = '\r';
        break;
      case 't':
        plain = '\t';
        break;
      case 'u': {
        std::uint32_t code_point = 0;
        if (!read_hex4(code_point)) return false;
        if (code_point >= 0xD800 && code_point <= 0xDBFF) {
          std::uint32_t low = 0;
          if (text_.substr(pos_, 2) != "\\u") return false;
          pos_ += 2;
          if (!read_hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
          code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
        } else if (code_point >= 0xDC00 && code_point <= 0xDFFF) {
          return false;
        }
        if (code_point == 0) return false;
        if (out != nullptr) append_utf8(*out, code_point);
        return true;
      }
      default:
        return false;
    }
    if (out != nullptr) out->push_back(plain);
    return true;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// Walks the members of a JSON object document; `on_member(key, reader)` must consume the value.
// Duplicate member names are refused: parsers disagree on which one wins.
template <class OnMember>
bool read_object(std::string_view json, OnMember&& on_member) {
  JsonReader reader(json);
  if (!reader.consume('{')) return false;
  if (!reader.consume('}')) {
    std::set<std::string, std::less<>> seen;
    do {
      std::string key;
      if (!reader.read_string(&key) || !reader.consume(':')) return false;
      if (!seen.insert(key).second) return false;
      if (!on_member(key, reader)) return false;
    } while (reader.consume(','));
    if (!reader.consume('}')) return false;
  }
  return reader.at_end();
}

}  // namespace realtime::detail::jwt_json
