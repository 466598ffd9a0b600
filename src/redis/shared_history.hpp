// The shared history in Redis: the Lua scripts that number, store and publish room messages and
// read a room's history back, and what a history read means for a recovery.
//
// The scripts' contracts (ARGV, answers, keys) are described in shared_history.cpp next to their
// text; RedisBroadcasterCore sends them (EVALSHA, then EVAL once when Redis does not have one).
// Pure functions, no I/O; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "realtime/broadcaster.hpp"
#include "redis/redis_connection.hpp"

namespace realtime::detail {

// Numbers room messages, appends them to the room's history and PUBLISHes them, one call for many.
std::string_view publish_script() noexcept;
// A room's epoch, current sequence number and the last items a client needs after the id it saw
// (KEYS ids, history; ARGV history size, a fresh epoch, TTL[, the id's epoch and seq]); starts a
// history for a room without one.
std::string_view history_script() noexcept;
// Renews the TTL of rooms' numbering and history (ARGV TTL, then room names).
std::string_view keep_rooms_script() noexcept;
// A room's items from a sequence number on, in its current epoch (KEYS ids, history; ARGV epoch,
// first seq): what a pod whose subscription lost messages reads back.
std::string_view gap_script() noexcept;
// Run by every connection that numbers messages or reads histories before its first command, with
// Redis's run_id (ARGV[1]): when it is not the run recorded in realtime:run (Redis restarted or
// failed over since, or this is the first pod), every room's numbering and history is dropped and
// the run recorded, atomically. Answers how many rooms were dropped.
std::string_view restart_check_script() noexcept;
// Where the run the rooms are numbered on is recorded (the restart check's key).
inline constexpr std::string_view kRunKey = "realtime:run";
// The gap script's answer: the stored items (each still ending with its publisher's "pod" field)
// with their sequence numbers, oldest first; empty when the epoch is no longer the room's.
std::vector<std::pair<std::uint64_t, std::string_view>> gap_items(const RedisReply& reply);
// Where the "pod" field a pod puts last in every room message it publishes begins in `payload`, or
// npos: a message on a room channel without it was published by another program.
std::size_t pod_field_at(std::string_view payload) noexcept;
// The SHA-1 of a script in hex, for EVALSHA.
std::string script_sha1(std::string_view script);
// realtime:<kind>:<room>, e.g. room_key("history", "lobby").
std::string room_key(std::string_view kind, std::string_view room);
// A place in a shared history: the epoch and the last sequence number issued in it.
struct SharedCursor {
  std::string epoch;
  std::uint64_t seq = 0;
};
// The epoch and current sequence number in the history script's answer.
std::optional<SharedCursor> history_position(const RedisReply& reply);
// What a client that last saw `last_id` gets from the history script's answer: the messages after
// it (without the publisher's "pod" field), and recovered = false when some of them are gone (or
// the id is of another epoch, or ahead of the history).
HistoryResult history_after(const RedisReply& reply, const std::string& last_id);

}  // namespace realtime::detail
