#include "redis/cluster_state.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <random>

#include "protocol/envelope.hpp"
#include "protocol/request.hpp"
#include "redis/shared_history.hpp"

namespace realtime::detail {
namespace {

constexpr std::string_view kPods = "realtime:pods";
constexpr std::string_view kPresencePrefix = "realtime:presence:";
constexpr std::string_view kEpoch = "realtime:state-epoch";

// A user's status in a room for the whole cluster, derived from the pods' entries
// (`{pod}|{user}` -> that pod's status of the user, itself derived from the user's sockets there):
// online when any pod has it online, away when every pod that has it has it away, offline when none
// has it. Lua functions the scripts below start with: pods_with(pods_key, pod) lists the live pods
// and `pod` (whose lease may be gone), aggregate(key, pods, user) the user's status in a room,
// announce(room, user, status, tail, echo) publishes the presence message of a change, and
// drop_entries(room, pod, pods, changed, tail, echo) removes the pod's entries of a room, and for
// each user whose status that changes (when `changed` is given) announces it and appends room,
// user and new status to `changed`.
//
// A change is published from inside the script that made it, so every pod receives the changes of
// one user in the order Redis made them, whichever pods made them (a pod publishing after its
// script answered could be overtaken by another pod's later change, and members would be left
// with the earlier status). The message goes to the room's channel, ended by `tail`: its timestamp
// and the "pod" field by which the pod that ran the script skips it there. That pod gets its copy
// on `echo`, its own control channel, on the same subscription as every room's channel and so in
// the same order; `echo` is empty when that channel was not subscribed as the script was sent,
// and the pod then delivers the changes from the script's answer.
constexpr std::string_view kAggregateLua = R"lua(
local function pods_with(pods_key, pod)
  local pods = redis.call('SMEMBERS', pods_key)
  for _, p in ipairs(pods) do if p == pod then return pods end end
  table.insert(pods, pod)
  return pods
end
local function aggregate(key, pods, user)
  local status = 'offline'
  for _, p in ipairs(pods) do
    local s = redis.call('HGET', key, p .. '|' .. user)
    if s == 'online' then return 'online' end
    if s then status = 'away' end
  end
  return status
end
local function announce(room, user, status, tail, echo)
  local msg = '{"type":"presence","room":' .. cjson.encode(room) .. ',"data":{"status":"' ..
    status .. '","user_id":' .. cjson.encode(user) .. '}' .. tail
  redis.call('PUBLISH', 'realtime:room:' .. room, msg)
  if echo ~= '' then redis.call('PUBLISH', echo, msg) end
end
local function drop_entries(room, pod, pods, changed, tail, echo)
  local key = 'realtime:presence:' .. room
  local prefix = pod .. '|'
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, #prefix) == prefix then
      local user = string.sub(f, #prefix + 1)
      local before = aggregate(key, pods, user)
      redis.call('HDEL', key, f)
      local after = aggregate(key, pods, user)
      if changed and after ~= before then
        announce(room, user, after, tail, echo)
        table.insert(changed, room); table.insert(changed, user); table.insert(changed, after)
      end
    end
  end
end
)lua";

// KEYS[1] presence hash, KEYS[2] pods set, KEYS[3] this pod's prooms set; ARGV pod, user, room,
// status: this pod's status of the user in the room ('online' or 'away'; '' when the pod no longer
// has the user there), tail, echo. Returns {before, after}, the cluster's status of the user around
// the change, and announces it when they differ: atomic, so pods changing the same user at once
// each see the other's change, and each change of the cluster's status is announced once.
constexpr std::string_view kSetLua = R"lua(
local pods = pods_with(KEYS[2], ARGV[1])
local before = aggregate(KEYS[1], pods, ARGV[2])
local field = ARGV[1] .. '|' .. ARGV[2]
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[1], field)
else
  redis.call('HSET', KEYS[1], field, ARGV[4])
  redis.call('SADD', KEYS[3], ARGV[3])
end
local after = aggregate(KEYS[1], pods, ARGV[2])
if after ~= before then announce(ARGV[3], ARGV[2], after, ARGV[5], ARGV[6]) end
return {before, after}
)lua";

// KEYS[1] pods set; ARGV pod, force, tail, echo, budget. Removes a pod whose lease is gone (or any,
// when force is '1': its lease goes first), announcing and returning {more, room, user, status,
// ...} for each user whose status in the cluster this changes (to offline, or to what the other
// pods still have). A room at a time (SPOP), each atomic, so of several pods sweeping at once
// exactly one announces each change; a call stops after the room that brings the presence entries
// it read past `budget`, with more = 1 when rooms are left (the caller calls again), and removes
// the pod from the set once none is.
constexpr std::string_view kRemovePodLua = R"lua(
local pod = ARGV[1]
local base = 'realtime:pod:' .. pod
if ARGV[2] ~= '1' and redis.call('EXISTS', base) == 1 then return {0} end
if ARGV[2] == '1' then redis.call('DEL', base) end
local out = {0}
local pods = pods_with(KEYS[1], pod)
local budget, entries = tonumber(ARGV[5]), 0
while entries < budget do
  local room = redis.call('SPOP', base .. ':prooms')
  if not room then break end
  entries = entries + redis.call('HLEN', 'realtime:presence:' .. room)
  drop_entries(room, pod, pods, out, ARGV[3], ARGV[4])
end
if redis.call('SCARD', base .. ':prooms') > 0 then
  out[1] = 1
  return out
end
redis.call('DEL', base .. ':rooms', base .. ':prooms')
redis.call('SREM', KEYS[1], pod)
return out
)lua";

// KEYS[1] the pod's lease; ARGV lease ms, this process's token. 1: renewed; 0: gone (rewrite the
// part); -1: held by another process under this pod's id (left as it is).
constexpr std::string_view kRenewLeaseLua = R"lua(
local holder = redis.call('GET', KEYS[1])
if not holder then return 0 end
if holder ~= ARGV[2] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
)lua";

// The rewrite of a pod's whole part (after a reconnect, or when its lease is found gone) compares,
// per (room, user) it touches, the cluster's status before and after, as the live changes do, and
// reports each change: a pod that was swept while stopped (its users announced offline) announces
// them again when it resumes, and a reconnect that lost nothing announces nothing. That holds only
// while Redis still has what the members were told; when it lost the data (FLUSHALL, a restart
// empty) nothing was announced for the loss, so the rewrite compares nothing: it announces the
// pod's own users as they stand, which the pods whose members know it already drop (and the
// members' pods compare the rest once every pod has rewritten: resync_after_loss). The
// cluster-state epoch tells the two apart: a key without TTL, created by whichever pod first finds
// it missing, which the pod remembers from its last rewrite. state_epoch(key, known, candidate)
// returns the epoch (creating it as `candidate`) and whether Redis lost its data since the pod's
// last rewrite (a pod that never wrote, known = '', has nothing to have lost).
constexpr std::string_view kEpochLua = R"lua(
local function state_epoch(key, known, candidate)
  local epoch = redis.call('GET', key)
  if not epoch then
    redis.call('SET', key, candidate)
    epoch = candidate
  end
  return epoch, known ~= '' and epoch ~= known
end
)lua";

// KEYS[1] pods set, KEYS[2] epoch; ARGV pod, known epoch, candidate epoch, lease ms, tail, echo,
// this process's lease token, then the rooms where the pod has members now. Renews the lease, and
// removes the pod's entries and count from every other room of its part. Announces and returns
// {epoch, room, user, status, ...}: the changes this made to the cluster's status of a user (none
// when the data was lost).
constexpr std::string_view kRewriteBeginLua = R"lua(
local pod = ARGV[1]
local epoch, lost = state_epoch(KEYS[2], ARGV[2], ARGV[3])
local base = 'realtime:pod:' .. pod
redis.call('SET', base, ARGV[7], 'PX', ARGV[4])
redis.call('SADD', KEYS[1], pod)
local keep = {}
for i = 8, #ARGV do keep[ARGV[i]] = true end
local out = {epoch}
local pods = pods_with(KEYS[1], pod)
for _, room in ipairs(redis.call('SMEMBERS', base .. ':prooms')) do
  if not keep[room] then
    drop_entries(room, pod, pods, not lost and out or nil, ARGV[5], ARGV[6])
    redis.call('SREM', base .. ':prooms', room)
  end
end
for _, room in ipairs(redis.call('HKEYS', base .. ':rooms')) do
  if not keep[room] then redis.call('HDEL', base .. ':rooms', room) end
end
return out
)lua";

// KEYS[1] pods set, KEYS[2] epoch; ARGV pod, known epoch, candidate epoch, tail, echo, then per
// room: room, members, n, and n pairs user, status (the pod's status of the user there now). Makes
// the pod's entries in each room exactly these (removing the others) and writes its member count.
// Announces and returns {epoch, room, user, status, ...} as kRewriteBeginLua.
constexpr std::string_view kRewriteRoomsLua = R"lua(
local pod = ARGV[1]
local epoch, lost = state_epoch(KEYS[2], ARGV[2], ARGV[3])
local base = 'realtime:pod:' .. pod
local prefix = pod .. '|'
local pods = pods_with(KEYS[1], pod)
local out = {epoch}
local i = 6
while i <= #ARGV do
  local room, members, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local key = 'realtime:presence:' .. room
  local want, users = {}, {}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, #prefix) == prefix then
      local user = string.sub(f, #prefix + 1)
      want[user] = false
      table.insert(users, user)
    end
  end
  for k = i + 3, i + 2 + 2 * n, 2 do
    if want[ARGV[k]] == nil then table.insert(users, ARGV[k]) end
    want[ARGV[k]] = ARGV[k + 1]
  end
  local before = {}
  if not lost then
    for _, user in ipairs(users) do before[user] = aggregate(key, pods, user) end
  end
  for _, user in ipairs(users) do
    if want[user] then
      redis.call('HSET', key, prefix .. user, want[user])
    else
      redis.call('HDEL', key, prefix .. user)
    end
  end
  redis.call('HSET', base .. ':rooms', room, members)
  redis.call('SADD', base .. ':prooms', room)
  for _, user in ipairs(users) do
    local after = aggregate(key, pods, user)
    -- After a loss, what members were told is unknown here: this pod's users are announced as
    -- they stand (a pod whose members know it already drops the repeat), so that a pod that
    -- came back late is not left announced offline by the others' resync after the loss.
    if (not lost and after ~= before[user]) or (lost and want[user]) then
      announce(room, user, after, ARGV[4], ARGV[5])
      table.insert(out, room); table.insert(out, user); table.insert(out, after)
    end
  end
  i = i + 3 + 2 * n
end
return out
)lua";

const std::string& rewrite_begin_script() {
  static const std::string script =
      std::string(kAggregateLua) + std::string(kEpochLua) + std::string(kRewriteBeginLua);
  return script;
}

const std::string& rewrite_rooms_script() {
  static const std::string script =
      std::string(kAggregateLua) + std::string(kEpochLua) + std::string(kRewriteRoomsLua);
  return script;
}

const std::string& set_script() {
  static const std::string script = std::string(kAggregateLua) + std::string(kSetLua);
  return script;
}

// KEYS[1] pods set, KEYS[2] epoch; ARGV pod, kind, channel, budget, then rooms. Publishes on
// `channel` (the
// pod's control channel), for each room, its presence in the cluster: kPresenceSyncHead, kind, the
// room and the cluster-state epoch ('-' when there is none: Redis lost its data and no pod has
// rewritten its part yet), then one line per user who is not offline, "<user>\t<status>" (user ids
// hold no control characters), lines joined by "\n". Published from the script, so it reaches the
// pod after every presence message published before it and before every later one, on the same
// subscription. Returns the number of rooms done: it stops after the room that brings the entries
// read past `budget` (a room is always read whole), so that one call does not hold Redis for long;
// the caller sends the rest again. With an empty channel, publishes nothing and returns the
// messages instead.
constexpr std::string_view kPresenceSyncLua = R"lua(
local epoch = redis.call('GET', KEYS[2]) or '-'
local pods = pods_with(KEYS[1], ARGV[1])
local budget, entries = tonumber(ARGV[4]), 0
local read = {}
for i = 5, #ARGV do
  local room = ARGV[i]
  local key = 'realtime:presence:' .. room
  local lines, seen = {'presence-sync', ARGV[2], room, epoch}, {}
  local fields = redis.call('HKEYS', key)
  entries = entries + #fields
  for _, f in ipairs(fields) do
    local bar = string.find(f, '|', 1, true)
    local user = bar and string.sub(f, bar + 1)
    if user and not seen[user] then
      seen[user] = true
      local status = aggregate(key, pods, user)
      if status ~= 'offline' then table.insert(lines, user .. '\t' .. status) end
    end
  end
  local payload = table.concat(lines, '\n')
  if ARGV[3] == '' then
    table.insert(read, payload)
  else
    redis.call('PUBLISH', ARGV[3], payload)
  end
  if entries >= budget and i < #ARGV then return i - 4 end
end
if ARGV[3] == '' then return read end
return #ARGV - 4
)lua";

// KEYS[1] pods set; ARGV this pod. {room, members, ...} summed over the other pods.
constexpr std::string_view kRoomsScript = R"lua(
local totals, order = {}, {}
for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if p ~= ARGV[1] then
    local kv = redis.call('HGETALL', 'realtime:pod:' .. p .. ':rooms')
    for i = 1, #kv, 2 do
      local n = tonumber(kv[i + 1])  -- (a count another program wrote that is not one is skipped)
      if n then
        if not totals[kv[i]] then totals[kv[i]] = 0; table.insert(order, kv[i]) end
        totals[kv[i]] = totals[kv[i]] + n
      end
    end
  end
end
local out = {}
for _, r in ipairs(order) do table.insert(out, r); table.insert(out, tostring(totals[r])) end
return out
)lua";

std::string status_text(PresenceStatus status) { return std::string(to_string(status)); }

using Reach = ClusterState::Reach;

}  // namespace

const std::string& remove_pod_script() {
  static const std::string script = std::string(kAggregateLua) + std::string(kRemovePodLua);
  return script;
}

const std::string& presence_sync_script() {
  static const std::string script = std::string(kAggregateLua) + std::string(kPresenceSyncLua);
  return script;
}

ClusterState::ClusterState(boost::asio::io_context& context, HubCore& hub, RedisPublisher& redis,
                           PresenceAnnouncer announce, std::string control_channel,
                           std::function<bool()> echo_ready)
    : hub_(hub),
      redis_(redis),
      announce_(std::move(announce)),
      control_channel_(std::move(control_channel)),
      echo_ready_(std::move(echo_ready)),
      pod_(hub.pod_id()),
      lease_token_(std::to_string(std::random_device{}()) + "." +
                   std::to_string(std::random_device{}())),
      lease_timer_(context),
      count_timer_(context) {}

std::string ClusterState::pod_key(std::string_view suffix) const {
  std::string key = "realtime:pod:" + pod_;
  key += suffix;
  return key;
}

void ClusterState::on_connected() {
  if (stopped_) return;
  rewrite_part();
  if (!lease_running_) {
    lease_running_ = true;
    schedule_lease();
  }
}

void ClusterState::rewrite_part() {
  // Our previous part may be stale (Redis kept it through a network cut), swept (the pod was
  // stopped past its lease) or gone (FLUSHALL, Redis restarted empty): write it again from the
  // hub. The scripts announce what this changes for the cluster, unless Redis lost its data.
  // Changes the hub made since the snapshot reach this connection after these commands, so they
  // are compared with the rewritten part and each is announced once.
  const auto rooms = hub_.snapshot();
  const std::string known = epoch_;
  const std::string candidate =
      pod_ + "@" +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count());
  const std::string tail = presence_tail();
  const Echo echo = echo_for_script();
  const auto on_reply = [this, echo](std::error_code ec, const RedisReply& reply) {
    if (ec || stopped_ || reply.elements.empty()) return;
    epoch_ = reply.elements[0].str;
    own_changes(reply, 1, echo);
  };
  // Both scripts: KEYS pods set and epoch; ARGV pod, known epoch, candidate epoch, then theirs.
  const auto call = [&](const std::string& script, std::initializer_list<std::string> args) {
    std::vector<std::string> command{
        "EVAL", script, "2", std::string(kPods), std::string(kEpoch), pod_, known, candidate};
    command.insert(command.end(), args);
    return command;
  };
  std::vector<std::string> begin = call(rewrite_begin_script(), {std::to_string(kLeaseTtl.count()),
                                                                 tail, echo.channel, lease_token_});
  for (const auto& room : rooms) begin.push_back(room.room);
  redis_.command(begin, on_reply);

  const std::vector<std::string> head = call(rewrite_rooms_script(), {tail, echo.channel});
  std::vector<std::string> batch = head;
  std::size_t batch_rooms = 0;
  std::size_t batch_users = 0;
  for (const auto& room : rooms) {
    if (batch_rooms > 0 && (batch_rooms == kRewriteBatchRooms ||
                            batch_users + room.users.size() > kRewriteBatchUsers)) {
      redis_.command(batch, on_reply);
      batch = head;
      batch_rooms = 0;
      batch_users = 0;
    }
    batch.push_back(room.room);
    batch.push_back(std::to_string(room.members));
    batch.push_back(std::to_string(room.users.size()));
    for (const auto& user : room.users) {
      batch.push_back(user.user_id);
      batch.push_back(status_text(user.status));
    }
    ++batch_rooms;
    batch_users += room.users.size();
  }
  if (batch_rooms > 0) redis_.command(batch, on_reply);
}

void ClusterState::schedule_lease() {
  lease_timer_.expires_after(kLeaseRenew);
  lease_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    renew_lease();
    schedule_lease();
  });
}

void ClusterState::renew_lease() {
  if (!redis_.connected()) return;
  // A lease that is gone means Redis lost our part without our connection noticing (FLUSHALL, a
  // failover to an empty replica, or the pod was stopped past kLeaseTtl and swept): rewrite all of
  // it, as after a reconnect.
  // The lease holds this process's token: another process renewing it with its own is another
  // live pod with this pod's id (they would take each other's messages for their own echoes).
  redis_.command({"EVAL", std::string(kRenewLeaseLua), "1", pod_key(""),
                  std::to_string(kLeaseTtl.count()), lease_token_},
                 [this](std::error_code ec, const RedisReply& reply) {
                   if (ec || stopped_) return;
                   if (reply.integer == 0) {
                     rewrite_part();
                     if (on_part_lost_) on_part_lost_();
                   }
                   const bool shared = reply.integer < 0;
                   if (shared != id_shared_) {
                     id_shared_ = shared;
                     if (on_id_shared_) on_id_shared_(shared);
                   }
                 });
  redis_.command({"SADD", std::string(kPods), pod_}, [](std::error_code, const RedisReply&) {});
  // The run the rooms are numbered on, recorded again when it is gone without a restart (FLUSHALL,
  // a key deleted): else the next connection's restart check would take the Redis for another run
  // and drop the rooms' numbering a second time. This connection checked this run at its handshake.
  if (const std::string& run = redis_.connection().server_run(); !run.empty()) {
    redis_.command({"SET", std::string(kRunKey), run, "NX"},
                   [](std::error_code, const RedisReply&) {});
  }
  redis_.command({"SMEMBERS", std::string(kPods)},
                 [this](std::error_code ec, const RedisReply& reply) {
                   if (ec || stopped_) return;
                   std::vector<std::string> pods;
                   for (const auto& element : reply.elements) {
                     if (element.str != pod_) pods.push_back(element.str);
                   }
                   sweep(pods);
                 });
}

void ClusterState::sweep(const std::vector<std::string>& pods) {
  for (const std::string& pod : pods) remove_pod(pod, false, [] {});
}

void ClusterState::leave_cluster(const std::function<void()>& done) {
  if (!redis_.connected()) {
    done();
    return;
  }
  remove_pod(pod_, true, done);
}

void ClusterState::remove_pod(const std::string& pod, bool own, const std::function<void()>& done) {
  const Echo echo = echo_for_script();
  auto ec =
      redis_.command({"EVAL", remove_pod_script(), "1", std::string(kPods), pod, own ? "1" : "0",
                      presence_tail(), echo.channel, std::to_string(kRemovePodBudget)},
                     [this, pod, own, done, echo](std::error_code error, const RedisReply& reply) {
                       if (error || (stopped_ && !own)) return done();
                       own_changes(reply, 1, echo);
                       // More of its rooms are left for another call (one call holds Redis for so
                       // long only).
                       if (!reply.elements.empty() && reply.elements[0].integer == 1) {
                         remove_pod(pod, own, done);
                       } else {
                         done();
                       }
                     });
  if (ec) done();
}

void ClusterState::stop() {
  stopped_ = true;
  lease_timer_.cancel();
  count_timer_.cancel();
}

void ClusterState::own_changes(const RedisReply& reply, std::size_t first, const Echo& echo) {
  for (std::size_t i = first; i + 2 < reply.elements.size(); i += 3) {
    own_change(reply.elements[i].str, reply.elements[i + 1].str,
               parse_presence_status(reply.elements[i + 2].str).value_or(PresenceStatus::offline),
               echo);
  }
}

void ClusterState::own_change(const std::string& room, const std::string& user,
                              PresenceStatus status, const Echo& echo) {
  if (echo.channel.empty() || echo.subscription != subscription_) {
    // No echo asked for, or asked of a subscriber connection that is gone since: from the answer.
    announce_(room, user, status, Reach::this_pod);
  } else if (early_echoes_ > 0) {
    --early_echoes_;  // its echo came first (the answer travels on another connection)
  } else {
    unechoed_.push_back({room, user, status});
    if (unechoed_.size() > kMaxUnechoed) subscriber_reconnected();
  }
}

void ClusterState::echo_received() {
  if (unechoed_.empty()) {
    ++early_echoes_;
  } else {
    unechoed_.pop_front();
  }
}

void ClusterState::subscriber_reconnected() {
  ++subscription_;
  early_echoes_ = 0;
  std::deque<Change> lost;
  lost.swap(unechoed_);
  for (const Change& change : lost) {
    announce_(change.room, change.user, change.status, Reach::this_pod);
  }
}

ClusterState::Echo ClusterState::echo_for_script() const {
  return {echo_ready_() ? control_channel_ : std::string(), subscription_};
}

std::string ClusterState::presence_tail() const {
  // The same ending as the broadcaster's own messages (RedisBroadcasterCore::encode), so this
  // pod skips the echo of what its scripts publish.
  std::string tail = ",\"timestamp\":\"";
  protocol::append_timestamp(tail, Clock::now());
  tail += "\",\"pod\":";
  protocol::append_json_string(tail, pod_);
  tail += '}';
  return tail;
}

void ClusterState::user_joined(const std::string& room, const std::string& user) {
  set_pod_status(room, user, PresenceStatus::online);
}

void ClusterState::user_left(const std::string& room, const std::string& user) {
  set_pod_status(room, user, PresenceStatus::offline);
}

void ClusterState::status_changed(const std::string& room, const std::string& user,
                                  PresenceStatus status) {
  set_pod_status(room, user, status);
}

void ClusterState::set_pod_status(const std::string& room, const std::string& user,
                                  PresenceStatus status) {
  std::string key(kPresencePrefix);
  key += room;
  // The script announces a change (this pod's members get it on the echo, or from the answer),
  // so a status set right after a join (a socket that was away before joining) follows the
  // join's "online" rather than overtaking it. Without Redis, or when the script failed, the pod
  // cannot know about the others: it announces what it knows, everywhere.
  const Echo echo = echo_for_script();
  auto ec = redis_.command(
      {"EVAL", set_script(), "3", key, std::string(kPods), pod_key(":prooms"), pod_, user, room,
       status == PresenceStatus::offline ? std::string() : status_text(status), presence_tail(),
       echo.channel},
      [this, room, user, status, echo](std::error_code error, const RedisReply& reply) {
        if (error || reply.elements.size() < 2) {
          announce_(room, user, status, Reach::every_pod);
          return;
        }
        const auto before = parse_presence_status(reply.elements[0].str);
        const auto after = parse_presence_status(reply.elements[1].str);
        if (after && before != after) own_change(room, user, *after, echo);
      });
  if (ec) announce_(room, user, status, Reach::every_pod);
}

void ClusterState::room_changed(const std::string& room) {
  dirty_rooms_.insert(room);
  if (count_flush_pending_) return;
  count_flush_pending_ = true;
  count_timer_.expires_after(kCountFlush);
  count_timer_.async_wait([this](const boost::system::error_code& ec) {
    count_flush_pending_ = false;
    if (!ec && !stopped_) flush_counts();
  });
}

void ClusterState::flush_counts() {
  std::set<std::string> rooms;
  rooms.swap(dirty_rooms_);
  for (const std::string& room : rooms) {
    const std::size_t members = hub_.room_members(room);
    if (members == 0) {
      redis_.command({"HDEL", pod_key(":rooms"), room}, [](std::error_code, const RedisReply&) {});
      redis_.command({"SREM", pod_key(":prooms"), room}, [](std::error_code, const RedisReply&) {});
    } else {
      redis_.command({"HSET", pod_key(":rooms"), room, std::to_string(members)},
                     [](std::error_code, const RedisReply&) {});
    }
  }
}

std::vector<std::string> ClusterState::presence_sync_call(std::string_view kind,
                                                          std::string channel) const {
  return {"EVAL",
          presence_sync_script(),
          "2",
          std::string(kPods),
          std::string(kEpoch),
          pod_,
          std::string(kind),
          std::move(channel),
          std::to_string(kPresenceSyncBudget)};
}

void ClusterState::sync_presence(const std::vector<std::string>& rooms, bool snapshot) {
  if (stopped_ || !echo_ready_()) return;  // the answer could not come: nothing changes
  send_presence_sync(std::make_shared<const std::vector<std::string>>(rooms), 0, snapshot);
}

void ClusterState::send_presence_sync(std::shared_ptr<const std::vector<std::string>> rooms,
                                      std::size_t first, bool snapshot) {
  if (stopped_ || first >= rooms->size()) return;
  std::vector<std::string> args =
      presence_sync_call(snapshot ? kPresenceSnapshot : kPresenceResync, control_channel_);
  const std::size_t last = std::min(rooms->size(), first + kRewriteBatchRooms);
  args.insert(args.end(), rooms->begin() + static_cast<std::ptrdiff_t>(first),
              rooms->begin() + static_cast<std::ptrdiff_t>(last));
  // One call at a time, each as far as its budget goes. A failure leaves what members were told
  // as it is for its rooms (a resync is tried at the next recovery); the others still go.
  redis_.command(args, [this, rooms = std::move(rooms), first, last, snapshot](
                           std::error_code error, const RedisReply& reply) mutable {
    std::size_t next = last;
    if (!error && reply.type == RedisReply::Type::integer && reply.integer > 0)
      next = std::min(last, first + static_cast<std::size_t>(reply.integer));
    send_presence_sync(std::move(rooms), next, snapshot);
  });
}

void ClusterState::read_presence(const std::string& room,
                                 std::function<void(std::string_view)> done) {
  if (stopped_) return;
  std::vector<std::string> args = presence_sync_call(kPresenceRead, std::string());
  args.push_back(room);
  // A failure leaves the room's members with nothing known (the next resync is taken as such).
  redis_.command(args, [done = std::move(done)](std::error_code error, const RedisReply& reply) {
    if (error) return;
    for (const RedisReply& payload : reply.elements) done(payload.str);
  });
}

std::optional<ClusterState::PresenceSync> ClusterState::parse_presence_sync(
    std::string_view payload) {
  auto next_line = [&payload]() -> std::optional<std::string_view> {
    if (payload.empty()) return std::nullopt;
    const auto end = payload.find('\n');
    std::string_view line = payload.substr(0, end);
    payload = end == std::string_view::npos ? std::string_view() : payload.substr(end + 1);
    return line;
  };
  if (next_line() != kPresenceSyncHead) return std::nullopt;
  const auto kind = next_line();
  const auto room = next_line();
  const auto epoch = next_line();
  if (!kind || (*kind != kPresenceSnapshot && *kind != kPresenceResync && *kind != kPresenceRead) ||
      !room || !protocol::is_valid_room(*room) || !epoch || epoch->empty()) {
    return std::nullopt;
  }
  PresenceSync sync;
  sync.snapshot = *kind == kPresenceSnapshot;
  sync.read = *kind == kPresenceRead;
  sync.room = std::string(*room);
  sync.epoch = std::string(*epoch);
  while (const auto line = next_line()) {
    const auto tab = line->rfind('\t');
    if (tab == std::string_view::npos) return std::nullopt;
    const auto status = parse_presence_status(line->substr(tab + 1));
    if (!status) return std::nullopt;
    sync.users.push_back({std::string(line->substr(0, tab)), *status});
  }
  return sync;
}

void ClusterState::query_rooms(const std::function<void(std::vector<RoomCount>)>& done) {
  const auto now = std::chrono::steady_clock::now();
  if (others_known_ && now - others_read_at_ < kRoomsReadInterval) {
    done(with_ours(others_));
    return;
  }
  rooms_waiting_.push_back(done);
  if (rooms_waiting_.size() > 1) return;  // the read in flight answers it too
  auto answer = [this](std::error_code error, const RedisReply& reply) {
    std::map<std::string, std::size_t> others;
    if (!error) {
      for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
        const std::string& text = reply.elements[i + 1].str;
        std::size_t members = 0;
        const auto [end, parse_error] =
            std::from_chars(text.data(), text.data() + text.size(), members);
        if (parse_error != std::errc{} || end != text.data() + text.size()) continue;
        others[reply.elements[i].str] += members;
      }
      others_ = std::move(others);
      others_known_ = true;
      others_read_at_ = std::chrono::steady_clock::now();
    }
    std::vector<std::function<void(std::vector<RoomCount>)>> waiting;
    waiting.swap(rooms_waiting_);
    // (A failed read answers with this pod's counts alone.)
    for (const auto& waiter : waiting) waiter(error ? with_ours({}) : with_ours(others_));
  };
  if (const auto ec = redis_.command(
          {"EVAL", std::string(kRoomsScript), "1", std::string(kPods), pod_}, answer)) {
    answer(ec, RedisReply{});
  }
}

std::vector<RoomCount> ClusterState::with_ours(const std::map<std::string, std::size_t>& others) {
  std::map<std::string, std::size_t> totals = others;
  for (const RoomCount& room : hub_.rooms()) totals[room.room] += room.members;
  std::vector<RoomCount> out;
  out.reserve(totals.size());
  for (auto& [room, members] : totals) out.push_back({room, members});
  return out;
}

void ClusterState::query_presence(const std::string& room,
                                  const std::function<void(std::vector<PresenceEntry>)>& done) {
  auto local = hub_.presence(room);
  std::string key(kPresencePrefix);
  key += room;
  const std::string own_prefix = pod_ + "|";
  auto ec = redis_.command(
      {"HGETALL", key},
      [done, local, own_prefix](std::error_code error, const RedisReply& reply) mutable {
        std::map<std::string, PresenceStatus> users;
        for (const auto& entry : local) users[entry.user_id] = entry.status;
        if (!error) {
          for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
            const std::string& field = reply.elements[i].str;
            if (field.starts_with(own_prefix)) continue;  // ours come from the hub, exactly
            const auto bar = field.find('|');
            if (bar == std::string::npos) continue;
            const std::string user = field.substr(bar + 1);
            // Online on any pod is online; away on all of them is away (as in kAggregateLua).
            const auto status =
                parse_presence_status(reply.elements[i + 1].str).value_or(PresenceStatus::online);
            auto [it, added] = users.emplace(user, status);
            if (!added && status == PresenceStatus::online) it->second = status;
          }
        }
        std::vector<PresenceEntry> out;
        out.reserve(users.size());
        for (auto& [user, status] : users) out.push_back({user, status});
        done(std::move(out));
      });
  if (ec) done(std::move(local));
}

}  // namespace realtime::detail
