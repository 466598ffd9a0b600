#include "redis/shared_history.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <optional>

#include <openssl/sha.h>

#include "hub/hub_core.hpp"

namespace realtime::detail {
namespace {

// Numbers room messages and publishes them, atomically per message: so the id order is the order
// every pod sees. One call carries every message queued while the previous call was in flight.
// A room's numbering is one hash, realtime:ids:{room}, holding one field: the current epoch, whose
// value is the last sequence number issued. The pod sends the epoch it last saw for the room; one
// HINCRBY on it is the whole numbering unless that epoch is not the current one any more (the
// field was absent: the answer is 1), in which case the field is removed again and the current
// epoch is read, or, when the room has none (new, expired, or lost with a Redis restart), the
// call's fresh epoch starts with an empty history. So an id is never issued twice.
// ARGV: history size, TTL, a fresh epoch, one character per message ('1': refresh the room's TTL),
// then per message: room, item, the epoch the pod last saw for the room (or ''), and the sequence
// number the pod expects (or ''). The item is the envelope ending with the publishing pod's "pod"
// field; it starts with the id the pod expects ({"id":"<epoch>-<guess>",) when it sends a guess,
// else it is the envelope after its "{" without an id. A right guess is stored and published as it
// came (Lua interns every string it builds, hashing each byte: building the ~200-byte item was
// ~15 % of the script's cost); a wrong one is rebuilt with the real id. The pod learns a room's
// next number from each answer and from the other pods' messages it receives, so guesses miss only
// when pods publish to one room at the same moment. The stored item and the published copy are the
// same string; the "pod" field tells the publisher its echo, and readers of the history drop it.
// The answer has one element per message: its sequence number when it was numbered in the epoch the
// pod sent, else its whole id. The list is trimmed back to the history size once it is a quarter
// longer (one LTRIM per keep/4 messages, not one per message); readers take its last `keep` items.
// Numbers go to redis.call as strings, and into the id with %d: formatting a Lua number (a double)
// with %.14g or %.17g was ~4 % of Redis's CPU.
constexpr std::string_view kPublishScript = R"lua(
local call = redis.call
local keep, fresh, flags = tonumber(ARGV[1]), ARGV[3], ARGV[4]
local limit, drop = keep + math.floor(keep / 4), '-' .. ARGV[1]
local ttl, history_ttl = ARGV[2], tostring(tonumber(ARGV[2]) + 60)
local out, n = {}, 0
for i = 5, #ARGV, 4 do
  local room, item, known, guess = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local epoch = known
  local ik, hk = 'realtime:ids:' .. room, 'realtime:history:' .. room
  local refresh = string.byte(flags, n + 1) == 49
  local seq = 0
  if epoch ~= '' then
    seq = call('HINCRBY', ik, epoch, '1')
    if seq == 1 then
      call('HDEL', ik, epoch)
      seq = 0
    end
  end
  if seq == 0 then
    epoch = call('HKEYS', ik)[1]
    if not epoch then
      epoch = fresh
      call('DEL', hk)
      refresh = true
    end
    seq = call('HINCRBY', ik, epoch, '1')
  end
  if seq ~= tonumber(guess) or epoch ~= known then
    if guess ~= '' then item = string.sub(item, #known + #guess + 11) end
    item = '{"id":"' .. epoch .. '-' .. string.format('%d', seq) .. '",' .. item
  end
  if keep > 0 then
    local length = call('RPUSH', hk, item)
    if length > limit then
      call('LTRIM', hk, drop, '-1')
    elseif length == 1 then
      refresh = true  -- a new list (the history was lost, or started by a read) gets its TTL
    end
  end
  if refresh then
    call('EXPIRE', ik, ttl)
    if keep > 0 then call('EXPIRE', hk, history_ttl) end
  end
  call('PUBLISH', 'realtime:room:' .. room, item)
  n = n + 1
  if epoch == known then out[n] = seq else out[n] = epoch .. '-' .. string.format('%d', seq) end
end
return out
)lua";

// KEYS ids, history; ARGV history size (0: the position alone), a fresh epoch, TTL, and optionally
// the epoch and seq of the last id a client saw: {epoch, current seq, items...}. The items are the
// last ones the client needs: none without a last id, or when it is of another epoch or ahead of
// the room; else the last min(current - seq, history size) items. The list holds the epoch's items
// in seq order, each number once (the publish script numbers and appends in one step, a new epoch
// starts a new list, and trimming drops the oldest), so every item after the client's seq is among
// those, and the oldest of them is at most one past it when nothing it needs is gone: the same
// answer, for a recovery, as the whole history, without sending it (a join with the latest id, the
// common reconnect, reads none). Numbers that have no item (a publish whose RPUSH failed) only make
// more of the list come back, which the reader filters. The answer is also where a client that
// joins now starts (read after this pod's subscription to the room began, so whatever is numbered
// after it reaches the pod). A room without a history (new, expired, or lost with Redis's data)
// starts one here, with nothing numbered yet, so that position is one a later recovery can resume
// from; the publish script numbers on from it (no pod sends that epoch to it before a message of it
// was numbered, so its "HINCRBY answered 1" test still means "not the current epoch"). Each read
// keeps the room's numbering for another TTL: a quiet room in use keeps its position.
constexpr std::string_view kHistoryScript = R"lua(
local keep, fresh, ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local ids = redis.call('HGETALL', KEYS[1])
local epoch, current = ids[1], ids[2]
if not epoch then
  epoch, current = fresh, '0'
  redis.call('HSET', KEYS[1], epoch, current)
  redis.call('DEL', KEYS[2])
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], tostring(tonumber(ttl) + 60))
local n = 0
if keep > 0 and ARGV[4] == epoch then
  n = math.min(tonumber(current) - tonumber(ARGV[5]), keep)
end
local items = n > 0 and redis.call('LRANGE', KEYS[2], -n, -1) or {}
table.insert(items, 1, current)
table.insert(items, 1, epoch)
return items
)lua";

// ARGV TTL, then room names: each room's numbering lives another TTL, its history a minute more
// (as the publish script sets them). A key that does not exist stays absent.
constexpr std::string_view kKeepRoomsScript = R"lua(
local ttl = ARGV[1]
local history_ttl = tostring(tonumber(ttl) + 60)
for i = 2, #ARGV do
  redis.call('EXPIRE', 'realtime:ids:' .. ARGV[i], ttl)
  redis.call('EXPIRE', 'realtime:history:' .. ARGV[i], history_ttl)
end
return #ARGV - 1
)lua";

// KEYS ids, history; ARGV epoch, first seq: {current seq, the items from the first seq on} while
// the epoch is the room's current one, else {}. The list holds items in seq order (the publish
// script numbers and appends in one step), so the last current - first + 1 items are the ones
// asked for, or what is left of them; none when nothing is missing.
constexpr std::string_view kGapScript = R"lua(
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return {} end
local n = tonumber(current) - tonumber(ARGV[2]) + 1
local items = n > 0 and redis.call('LRANGE', KEYS[2], -n, -1) or {}
table.insert(items, 1, current)
return items
)lua";

// ARGV run_id. A Redis that restarted (or a replica that took over) may hold older data than the
// pods saw: a snapshot taken before the last messages, an append-only file that lost its last
// second, a replica behind. Its numbers would then go back: messages would get ids the pods have
// delivered already (and drop as duplicates), and a resume would be answered from a history that
// lacks what came after the snapshot. No pod can tell an older copy from a current one, so any run
// other than the one the rooms were numbered on starts every room again: the numbering and the
// histories go (a room's next message or read starts a new epoch, a resume from the old one is
// answered recovered: false), and the run is recorded. The first connection of any pod to the new
// run does it, in one script, before that connection's first command; every other connection that
// numbers runs the check before its own first command, so no message is numbered on older data.
// SCAN (not KEYS) walks the keys: allowed to a user without @dangerous.
constexpr std::string_view kRestartCheckScript = R"lua(
local run = ARGV[1]
if redis.call('GET', 'realtime:run') == run then return 0 end
local cursor, n = '0', 0
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', 'realtime:ids:*', 'COUNT', '1000')
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    redis.call('UNLINK', key, 'realtime:history:' .. string.sub(key, 14))
    n = n + 1
  end
until cursor == '0'
redis.call('SET', 'realtime:run', run)
return n
)lua";

// The seq of a history item, which starts {"id":"<epoch>-<seq>",
std::optional<std::uint64_t> item_seq(std::string_view item) {
  constexpr std::string_view kStart = "{\"id\":\"";
  if (!item.starts_with(kStart)) return std::nullopt;
  const auto end = item.find('"', kStart.size());
  if (end == std::string_view::npos) return std::nullopt;
  const auto id = parse_message_id(item.substr(kStart.size(), end - kStart.size()));
  if (!id) return std::nullopt;
  return id->seq;
}

// A history item without the "pod" field its publisher put last (clients never see it).
std::string without_pod_field(std::string_view item) {
  const std::size_t at = pod_field_at(item);
  if (at == std::string_view::npos) return std::string(item);
  std::string out(item.substr(0, at));
  out += '}';
  return out;
}

}  // namespace

std::size_t pod_field_at(std::string_view payload) noexcept {
  constexpr std::string_view kField = ",\"pod\":\"";
  const auto at = payload.rfind(kField);
  if (at == std::string_view::npos || !payload.ends_with("\"}")) return std::string_view::npos;
  // Ours only if what follows is one JSON string up to the closing `"}` (a "pod" key of the data,
  // in a message without our field, is followed by more fields).
  const std::string_view value =
      payload.substr(at + kField.size(), payload.size() - at - kField.size() - 2);
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\') {
      ++i;  // an escaped character
    } else if (value[i] == '"') {
      return std::string_view::npos;
    }
  }
  return at;
}

std::string_view publish_script() noexcept { return kPublishScript; }
std::string_view history_script() noexcept { return kHistoryScript; }
std::string_view gap_script() noexcept { return kGapScript; }
std::string_view keep_rooms_script() noexcept { return kKeepRoomsScript; }
std::string_view restart_check_script() noexcept { return kRestartCheckScript; }

std::vector<std::pair<std::uint64_t, std::string_view>> gap_items(const RedisReply& reply) {
  std::vector<std::pair<std::uint64_t, std::string_view>> out;
  for (std::size_t i = 1; i < reply.elements.size(); ++i) {
    const std::string& item = reply.elements[i].str;
    if (const auto seq = item_seq(item)) out.emplace_back(*seq, item);
  }
  return out;
}

std::string script_sha1(std::string_view script) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(script.data()), script.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : digest) {
    hex += kHex[byte >> 4U];
    hex += kHex[byte & 0x0FU];
  }
  return hex;
}

std::string room_key(std::string_view kind, std::string_view room) {
  std::string key = "realtime:";
  key += kind;
  key += ':';
  key += room;
  return key;
}

std::optional<SharedCursor> history_position(const RedisReply& reply) {
  if (reply.elements.size() < 2 || reply.elements[0].str.empty()) return std::nullopt;
  const std::string& digits = reply.elements[1].str;
  SharedCursor cursor{reply.elements[0].str, 0};
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cursor.seq);
  if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return cursor;
}

HistoryResult history_after(const RedisReply& reply, const std::string& last_id) {
  HistoryResult result;
  const auto position = history_position(reply);
  if (!position) return result;
  const std::string& epoch = position->epoch;
  const std::uint64_t current = position->seq;
  result.position = epoch + '-' + std::to_string(current);
  const auto asked = parse_message_id(last_id);
  if (!asked || asked->epoch != epoch || asked->seq > current) return result;
  std::uint64_t oldest = current + 1;
  for (std::size_t i = 2; i < reply.elements.size(); ++i) {
    const auto seq = item_seq(reply.elements[i].str);
    if (!seq) continue;
    oldest = std::min(oldest, *seq);
    if (*seq > asked->seq) {
      result.messages.emplace_back(*seq, without_pod_field(reply.elements[i].str));
    }
  }
  // Everything after the id must still be there: the oldest kept is at most one past it.
  result.recovered = asked->seq + 1 >= oldest;
  if (!result.recovered) result.messages.clear();
  return result;
}

}  // namespace realtime::detail
