#include "protocol/envelope.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include <simdjson.h>

#include "protocol/request.hpp"

namespace realtime::protocol {
namespace {

static_assert(kJsonPadding >= simdjson::SIMDJSON_PADDING,
              "kJsonPadding must cover simdjson's padding");

namespace dom = simdjson::dom;

// Documents are small (a frame is at most max_message_bytes); the parser grows on demand.
constexpr std::size_t kInitialParserCapacity = 4096;

// One DOM parser per thread: it owns the padded copy of the input and the parsed tape, and reuses
// both from message to message. DOM (unlike On-Demand) is dispatched to the best kernel at run time
// and validates the whole document, so nothing unvalidated is ever re-serialised.
struct ThreadParser {
  dom::parser parser;
  simdjson::error_code init_error;
  ThreadParser() : init_error(parser.allocate(kInitialParserCapacity, kMaxJsonDepth)) {}
};

simdjson::simdjson_result<dom::element> parse_json(std::string_view json, std::size_t readable) {
  // simdjson would memcpy from a null pointer for an empty view.
  if (json.empty()) return simdjson::EMPTY;
  thread_local ThreadParser tp;
  if (tp.init_error != simdjson::SUCCESS) return tp.init_error;
  // realloc_if_needed=true copies into the parser's own padded buffer.
  const bool padded =
      readable >= json.size() && readable - json.size() >= simdjson::SIMDJSON_PADDING;
  return tp.parser.parse(json.data(), json.size(), !padded);
}

std::string json_error_detail(simdjson::error_code error) {
  if (error == simdjson::DEPTH_ERROR) return "JSON nested too deeply";
  if (error == simdjson::EMPTY) return "empty message";
  return std::string("invalid JSON: ") + simdjson::error_message(error);
}

enum class Field : std::uint8_t { absent, wrong_type, ok };

// A member that is absent or JSON null counts as absent, so clients may send "room": null.
Field find(dom::object obj, std::string_view key, dom::element& out) {
  if (obj.at_key(key).get(out) != simdjson::SUCCESS) return Field::absent;
  return out.is_null() ? Field::absent : Field::ok;
}

Field find_string(dom::object obj, std::string_view key, std::string_view& out) {
  dom::element e;
  if (find(obj, key, e) == Field::absent) return Field::absent;
  return e.get_string().get(out) == simdjson::SUCCESS ? Field::ok : Field::wrong_type;
}

std::string minified(dom::element e) { return simdjson::minify(e); }

// Returns the length of the valid UTF-8 sequence starting at p (a non-ASCII lead byte), 0 if none.
std::size_t utf8_sequence_length(const unsigned char* p, std::size_t n) noexcept {
  const unsigned c = p[0];
  auto cont = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return i < n && p[i] >= lo && p[i] <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// 0: copied as is; 1: escaped; 2: start of a multi-byte sequence, checked.
constexpr std::array<std::uint8_t, 256> make_escape_classes() {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    std::uint8_t k = 0;
    if (c < 0x20 || c == '"' || c == '\\') k = 1;
    if (c >= 0x80) k = 2;
    t[static_cast<std::size_t>(c)] = k;
  }
  return t;
}
constexpr auto kEscapeClasses = make_escape_classes();

constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighs = 0x8080808080808080ULL;

// True when none of the 8 bytes needs attention: no control, quote, backslash or non-ASCII byte.
inline bool plain_word(std::uint64_t w) noexcept {
  const std::uint64_t below_space = (w - kOnes * 0x20) & ~w;
  const std::uint64_t q = w ^ (kOnes * '"');
  const std::uint64_t b = w ^ (kOnes * '\\');
  const std::uint64_t quote = (q - kOnes) & ~q;
  const std::uint64_t backslash = (b - kOnes) & ~b;
  return ((below_space | quote | backslash | w) & kHighs) == 0;
}

void append_escape(std::string& out, unsigned char c) {
  switch (c) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\b':
      out += "\\b";
      return;
    case '\f':
      out += "\\f";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";
      const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out.append(esc, sizeof esc);
    }
  }
}

// Proleptic Gregorian calendar <-> days since 1970-01-01 (H. Hinnant's public-domain algorithms),
// so timestamps need neither iostreams nor the time zone machinery.
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

constexpr Civil civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);
static_assert(civil_from_days(19737).year == 2024 && civil_from_days(19737).day == 15);

constexpr std::int64_t kMsPerDay = 86'400'000;
// Four-digit years only, as RFC 3339 requires.
constexpr std::int64_t kMinMs = days_from_civil(0, 1, 1) * kMsPerDay;
constexpr std::int64_t kMaxMs = days_from_civil(9999, 12, 31) * kMsPerDay + kMsPerDay - 1;

constexpr unsigned days_in_month(std::int64_t y, unsigned m) noexcept {
  constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

inline void put_digits(char* out, unsigned value, int width) noexcept {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

// Parses exactly `width` digits at s[pos]; false if any is not a digit.
inline bool get_digits(std::string_view s, std::size_t pos, int width, unsigned& value) noexcept {
  if (pos + static_cast<std::size_t>(width) > s.size()) return false;
  value = 0;
  for (int i = 0; i < width; ++i) {
    const char c = s[pos + static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return true;
}

template <class Result>
Result json_failure(DecodeError error, std::string_view detail) {
  Result r;
  r.error = error;
  r.detail.assign(detail);
  return r;
}

}  // namespace

std::string_view to_code(DecodeError error) noexcept {
  switch (error) {
    case DecodeError::none:
      return "";
    case DecodeError::invalid_json:
      return "invalid_json";
    case DecodeError::unknown_type:
      return "unknown_type";
    // Valid JSON of the wrong shape is a malformed message rather than malformed JSON.
    case DecodeError::not_an_object:
    case DecodeError::invalid_message:
      return "invalid_message";
  }
  return "invalid_message";
}

ClientDecodeResult decode_client_message(std::string_view json) {
  return decode_client_message(json, 0);
}

ClientDecodeResult decode_client_message(std::string_view json, std::size_t readable_size) {
  using R = ClientDecodeResult;
  dom::element root;
  if (auto error = parse_json(json, readable_size).get(root)) {
    return json_failure<R>(DecodeError::invalid_json, json_error_detail(error));
  }
  dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) {
    return json_failure<R>(DecodeError::not_an_object, "message must be a JSON object");
  }
  R result;
  ClientMessage& msg = result.message;
  std::string_view type_text;
  switch (find_string(obj, "type", type_text)) {
    case Field::absent:
      return json_failure<R>(DecodeError::unknown_type, "missing \"type\"");
    case Field::wrong_type:
      return json_failure<R>(DecodeError::unknown_type, "\"type\" must be a string");
    case Field::ok:
      break;
  }
  const auto type = parse_message_type(type_text);
  if (!type) return json_failure<R>(DecodeError::unknown_type, "unknown message type");
  msg.type = *type;

  std::string_view room;
  switch (find_string(obj, "room", room)) {
    case Field::absent:
      break;
    case Field::wrong_type:
      return json_failure<R>(DecodeError::invalid_message, "\"room\" must be a string");
    case Field::ok:
      msg.room.assign(room);
      msg.has_room = true;
      break;
  }
  dom::element data;
  const bool has_data = find(obj, "data", data) == Field::ok;
  if (has_data) msg.data = minified(data);

  switch (msg.type) {
    case MessageType::presence: {
      dom::object data_obj;
      std::string_view status_text;
      if (!has_data || data.get_object().get(data_obj) != simdjson::SUCCESS ||
          find_string(data_obj, "status", status_text) != Field::ok) {
        return json_failure<R>(DecodeError::invalid_message, "presence needs data.status");
      }
      const auto status = parse_presence_status(status_text);
      // "offline" is the server's to say, when the last socket goes.
      if (!status || *status == PresenceStatus::offline) {
        return json_failure<R>(DecodeError::invalid_message,
                               "data.status must be \"online\" or \"away\"");
      }
      msg.status = *status;
      break;
    }
    case MessageType::join:
    case MessageType::leave: {
      if (!msg.has_room)
        return json_failure<R>(DecodeError::invalid_message, "\"room\" is required");
      // A join may ask for recovery. A null last_id counts as absent; a number or an object is a
      // mistake to tell (taken as absent, it would silently resume nothing).
      std::string_view last_id;
      if (msg.type == MessageType::join) {
        switch (find_string(obj, "last_id", last_id)) {
          case Field::absent:
            break;
          case Field::wrong_type:
            return json_failure<R>(DecodeError::invalid_message, "\"last_id\" must be a string");
          case Field::ok:
            msg.last_id.emplace(last_id);
            break;
        }
      }
      break;
    }
    case MessageType::auth: {
      std::string_view token;
      if (find_string(obj, "token", token) != Field::ok || token.empty()) {
        return json_failure<R>(DecodeError::invalid_message,
                               "\"token\" must be a non-empty string");
      }
      msg.token.assign(token);
      break;
    }
    case MessageType::chat:
      // Members get the envelope's every field: a chat without data carries an empty object.
      if (!has_data) msg.data = "{}";
      break;
    default:
      break;
  }
  return result;
}

PublishDecodeResult decode_publish_request(std::string_view json) {
  return decode_publish_request(json, 0);
}

PublishDecodeResult decode_publish_request(std::string_view json, std::size_t readable_size) {
  using R = PublishDecodeResult;
  dom::element root;
  if (auto error = parse_json(json, readable_size).get(root)) {
    return json_failure<R>(DecodeError::invalid_json, json_error_detail(error));
  }
  dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) {
    return json_failure<R>(DecodeError::not_an_object, "body must be a JSON object");
  }
  // A misspelt field would silently change where the message goes ("usr" for "user" makes a
  // private note a global broadcast): every field is one this body knows. An envelope's own
  // "id", "from" and "timestamp" are the server's to set, and ignored.
  for (const auto field : obj) {
    const std::string_view key = field.key;
    if (key != "room" && key != "user" && key != "type" && key != "data" && key != "text" &&
        key != "id" && key != "from" && key != "timestamp") {
      std::string detail = "unknown field ";
      append_json_string(detail, key);
      detail += " (a body has room, user, type, and text or data)";
      return json_failure<R>(DecodeError::invalid_message, std::move(detail));
    }
  }
  // Where it goes is never null: a backend's missing value (`"user": account?.id`) would make a
  // private note a global broadcast. A global broadcast leaves both out.
  for (const std::string_view target : {std::string_view("room"), std::string_view("user")}) {
    dom::element value;
    if (obj.at_key(target).get(value) == simdjson::SUCCESS && value.is_null()) {
      std::string detail = "\"";
      detail += target;
      detail += "\" may not be null (a global broadcast leaves out both room and user)";
      return json_failure<R>(DecodeError::invalid_message, std::move(detail));
    }
  }
  R result;
  PublishRequest& req = result.request;

  std::string_view room;
  switch (find_string(obj, "room", room)) {
    case Field::absent:
      break;
    case Field::wrong_type:
      return json_failure<R>(DecodeError::invalid_message, "\"room\" must be a string");
    case Field::ok:
      if (!is_valid_room(room)) {
        return json_failure<R>(DecodeError::invalid_message,
                               "\"room\" must be 1 to 128 of A-Z a-z 0-9 _ - . :");
      }
      req.room.assign(room);
      break;
  }
  std::string_view user;
  switch (find_string(obj, "user", user)) {
    case Field::absent:
      break;
    case Field::wrong_type:
      return json_failure<R>(DecodeError::invalid_message, "\"user\" must be a string");
    case Field::ok:
      if (!is_valid_user_id(user)) {
        return json_failure<R>(DecodeError::invalid_message, "\"user\" is not a valid user id");
      }
      req.user.assign(user);
      break;
  }

  std::string_view type_text;
  switch (find_string(obj, "type", type_text)) {
    case Field::absent:
      // To one user it is a notification, also when it names a room (a notification about it):
      // as chat it would look like a room message the room's other members never got.
      req.type = req.user.empty() ? MessageType::chat : MessageType::notification;
      break;
    case Field::wrong_type:
      return json_failure<R>(DecodeError::unknown_type, "\"type\" must be a string");
    case Field::ok: {
      const auto type = parse_message_type(type_text);
      // Only what a broadcast may carry; error/ping/join/... are per-socket or client commands.
      if (!type || (*type != MessageType::chat && *type != MessageType::notification &&
                    *type != MessageType::system && *type != MessageType::presence)) {
        return json_failure<R>(DecodeError::unknown_type,
                               "\"type\" must be chat, notification, system or presence");
      }
      req.type = *type;
      break;
    }
  }

  dom::element data;
  std::size_t data_fields = 0;
  std::string_view text;
  const Field text_field = find_string(obj, "text", text);
  if (text_field == Field::wrong_type) {
    return json_failure<R>(DecodeError::invalid_message, "\"text\" must be a string");
  }
  if (find(obj, "data", data) == Field::ok) {
    if (!data.is_object()) {
      return json_failure<R>(DecodeError::invalid_message, "\"data\" must be an object");
    }
    if (text_field != Field::absent) {
      return json_failure<R>(DecodeError::invalid_message, "give \"text\" or \"data\", not both");
    }
    req.data = minified(data);
    data_fields = dom::object(data).size();
  } else if (text_field == Field::ok) {
    req.data.reserve(text.size() + 12);
    req.data = "{\"text\":";
    append_json_string(req.data, text);
    req.data.push_back('}');
  } else {
    req.data = "{}";
  }
  if (req.type == MessageType::presence) {
    // What members and clients take a presence message for: one user's status in one room.
    if (req.room.empty()) {
      return json_failure<R>(DecodeError::invalid_message, "a presence message needs a \"room\"");
    }
    // Exactly what the server's own presence messages carry, nothing more.
    const auto presence = decode_presence_data(req.data);
    if (data_fields != 2 || !presence || !is_valid_user_id(presence->user_id)) {
      return json_failure<R>(DecodeError::invalid_message,
                             "presence \"data\" must be {\"status\": "
                             "\"online\"|\"away\"|\"offline\", \"user_id\": U}");
    }
  }
  return result;
}

EnvelopeDecodeResult decode_envelope(std::string_view json) { return decode_envelope(json, 0); }

std::optional<PresenceData> decode_presence_data(std::string_view json) {
  dom::object obj;
  if (parse_json(json, json.size()).get(obj) != simdjson::SUCCESS) return std::nullopt;
  std::string_view status;
  std::string_view user;
  if (find_string(obj, "status", status) != Field::ok ||
      find_string(obj, "user_id", user) != Field::ok) {
    return std::nullopt;
  }
  const auto parsed = parse_presence_status(status);
  if (!parsed) return std::nullopt;
  return PresenceData{*parsed, std::string(user)};
}

EnvelopeDecodeResult decode_envelope(std::string_view json, std::size_t readable_size) {
  using R = EnvelopeDecodeResult;
  dom::element root;
  if (auto error = parse_json(json, readable_size).get(root)) {
    return json_failure<R>(DecodeError::invalid_json, json_error_detail(error));
  }
  dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) {
    return json_failure<R>(DecodeError::not_an_object, "envelope must be a JSON object");
  }
  R result;
  Message& msg = result.message;
  std::string_view text;
  if (find_string(obj, "type", text) != Field::ok) {
    return json_failure<R>(DecodeError::unknown_type, "\"type\" must be a string");
  }
  const auto type = parse_message_type(text);
  if (!type) return json_failure<R>(DecodeError::unknown_type, "unknown message type");
  msg.type = *type;

  struct StringField {
    std::string_view key;
    std::string* target;
  };
  for (const StringField& f : {StringField{"id", &msg.id}, StringField{"room", &msg.room},
                               StringField{"from", &msg.from}}) {
    switch (find_string(obj, f.key, text)) {
      case Field::absent:
        break;
      case Field::wrong_type:
        return json_failure<R>(DecodeError::invalid_message, "envelope fields must be strings");
      case Field::ok:
        f.target->assign(text);
        break;
    }
  }
  dom::element data;
  if (find(obj, "data", data) == Field::ok) msg.data = minified(data);

  std::optional<Clock::time_point> timestamp;
  if (find_string(obj, "timestamp", text) == Field::ok) timestamp = parse_timestamp(text);
  msg.timestamp = timestamp ? *timestamp : Clock::now();
  return result;
}

void append_json_string(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t run = 0;  // start of the bytes not yet copied
  std::size_t i = 0;
  while (i < n) {
    // Most text needs no escaping: skip it a word at a time, then copy the run in one append.
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, p + i, sizeof word);
      if (plain_word(word)) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = p[i];
    const std::uint8_t kind = kEscapeClasses[c];
    if (kind == 0) {
      ++i;
      continue;
    }
    if (kind == 2) {
      const std::size_t len = utf8_sequence_length(p + i, n - i);
      if (len != 0) {
        i += len;
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    if (kind == 1) {
      append_escape(out, c);
    } else {
      // Invalid UTF-8 would make the whole document invalid JSON; substitute U+FFFD.
      out += "\\ufffd";
    }
    run = ++i;
  }
  out.append(s.data() + run, n - run);
  out.push_back('"');
}

void append_timestamp(std::string& out, Clock::time_point t) {
  std::int64_t ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
  ms = std::clamp(ms, kMinMs, kMaxMs);
  std::int64_t days = ms / kMsPerDay;
  std::int64_t rem = ms % kMsPerDay;
  if (rem < 0) {
    rem += kMsPerDay;
    --days;
  }
  const Civil date = civil_from_days(days);
  const auto r = static_cast<unsigned>(rem);
  char buf[24];  // YYYY-MM-DDTHH:MM:SS.mmmZ
  put_digits(buf, static_cast<unsigned>(date.year), 4);
  buf[4] = '-';
  put_digits(buf + 5, date.month, 2);
  buf[7] = '-';
  put_digits(buf + 8, date.day, 2);
  buf[10] = 'T';
  put_digits(buf + 11, r / 3'600'000, 2);
  buf[13] = ':';
  put_digits(buf + 14, r / 60'000 % 60, 2);
  buf[16] = ':';
  put_digits(buf + 17, r / 1000 % 60, 2);
  buf[19] = '.';
  put_digits(buf + 20, r % 1000, 3);
  buf[23] = 'Z';
  out.append(buf, sizeof buf);
}

std::string format_timestamp(Clock::time_point t) {
  std::string s;
  append_timestamp(s, t);
  return s;
}

std::optional<Clock::time_point> parse_timestamp(std::string_view s) noexcept {
  unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!get_digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !get_digits(s, 5, 2, month) ||
      s[7] != '-' || !get_digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
      !get_digits(s, 11, 2, hour) || s[13] != ':' || !get_digits(s, 14, 2, minute) ||
      s[16] != ':' || !get_digits(s, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  if (second == 60) second = 59;  // a leap second; Clock has none
  std::size_t pos = 19;
  unsigned millis = 0;
  if (s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    unsigned scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += static_cast<unsigned>(s[pos] - '0') * scale;  // digits past the third add 0
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;
  std::int64_t offset_minutes = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    unsigned oh = 0, om = 0;
    if (!get_digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !get_digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = static_cast<std::int64_t>(oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;

  const std::int64_t ms =
      days_from_civil(year, month, day) * kMsPerDay +
      static_cast<std::int64_t>(hour * 3'600'000 + minute * 60'000 + second * 1000 + millis) -
      offset_minutes * 60'000;
  using std::chrono::milliseconds;
  // Clock counts nanoseconds in 64 bits on most platforms (years 1677..2262): refuse what it cannot
  // hold rather than overflow.
  const auto lo = std::chrono::ceil<milliseconds>(Clock::time_point::min().time_since_epoch());
  const auto hi = std::chrono::floor<milliseconds>(Clock::time_point::max().time_since_epoch());
  if (ms < lo.count() || ms > hi.count()) return std::nullopt;
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(milliseconds(ms)));
}

void append_envelope(std::string& out, const Message& msg) {
  out.reserve(out.size() + 80 + msg.id.size() + msg.room.size() + msg.from.size() +
              msg.data.size());
  out += '{';
  if (!msg.id.empty()) {
    out += "\"id\":";
    append_json_string(out, msg.id);
    out += ',';
  }
  out += "\"type\":\"";
  out += to_string(msg.type);
  out += '"';
  if (!msg.room.empty()) {
    out += ",\"room\":";
    append_json_string(out, msg.room);
  }
  if (!msg.from.empty()) {
    out += ",\"from\":";
    append_json_string(out, msg.from);
  }
  if (!msg.data.empty()) {
    out += ",\"data\":";
    out += msg.data;
  }
  out += ",\"timestamp\":\"";
  append_timestamp(out, msg.timestamp);
  out += "\"}";
}

}  // namespace realtime::protocol
