#include "redis/cluster_state.hpp"

#include <algorithm>
#include <map>

namespace realtime::detail {
namespace {

constexpr std::string_view kPods = "realtime:pods";
constexpr std::string_view kPresencePrefix = "realtime:presence:";

// KEYS[1] presence hash, KEYS[2] pods set, KEYS[3] this pod's prooms set; ARGV pod, user, room.
// Returns {first (1/0), status}: first when no other pod has the user in the room; a user who is
// already there keeps the status the other pods hold.
constexpr std::string_view kJoinScript = R"lua(
local status, first = 'online', 1
for _, p in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if p ~= ARGV[1] then
    local s = redis.call('HGET', KEYS[1], p .. '|' .. ARGV[2])
    if s then first = 0; status = s; break end
  end
end
redis.call('HSET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], status)
redis.call('SADD', KEYS[3], ARGV[3])
return {first, status}
)lua";

// KEYS[1] presence hash, KEYS[2] pods set; ARGV pod, user. Returns 1 when no other pod has the
// user.
constexpr std::string_view kLeaveScript = R"lua(
redis.call('HDEL', KEYS[1], ARGV[1] .. '|' .. ARGV[2])
for _, p in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if p ~= ARGV[1] and redis.call('HEXISTS', KEYS[1], p .. '|' .. ARGV[2]) == 1 then return 0 end
end
return 1
)lua";

// KEYS[1] presence hash, KEYS[2] pods set; ARGV pod, user, status: the status of the user on every
// pod.
constexpr std::string_view kStatusScript = R"lua(
local pods = redis.call('SMEMBERS', KEYS[2])
table.insert(pods, ARGV[1])
for _, p in ipairs(pods) do
  local field = p .. '|' .. ARGV[2]
  if redis.call('HEXISTS', KEYS[1], field) == 1 then redis.call('HSET', KEYS[1], field, ARGV[3]) end
end
return 1
)lua";

// KEYS[1] pods set; ARGV pod, force. Removes a pod whose lease is gone (or any, when force is '1'),
// returning {room, user, ...} of the users nobody else has in those rooms any more. Atomic, so of
// several pods sweeping at once exactly one gets the list.
constexpr std::string_view kRemovePodScript = R"lua(
local pod = ARGV[1]
local base = 'realtime:pod:' .. pod
if ARGV[2] ~= '1' and redis.call('EXISTS', base) == 1 then return {} end
local gone = {}
local prefix = pod .. '|'
local others = redis.call('SMEMBERS', KEYS[1])
for _, room in ipairs(redis.call('SMEMBERS', base .. ':prooms')) do
  local key = 'realtime:presence:' .. room
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, #prefix) == prefix then
      redis.call('HDEL', key, f)
      local user = string.sub(f, #prefix + 1)
      local still = false
      for _, p in ipairs(others) do
        if p ~= pod and redis.call('HEXISTS', key, p .. '|' .. user) == 1 then still = true; break end
      end
      if not still then table.insert(gone, room); table.insert(gone, user) end
    end
  end
end
redis.call('DEL', base .. ':rooms', base .. ':prooms')
if ARGV[2] == '1' then redis.call('DEL', base) end
redis.call('SREM', KEYS[1], pod)
return gone
)lua";

// KEYS[1] pods set; ARGV this pod. {room, members, ...} summed over the other pods.
constexpr std::string_view kRoomsScript = R"lua(
local totals, order = {}, {}
for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if p ~= ARGV[1] then
    local kv = redis.call('HGETALL', 'realtime:pod:' .. p .. ':rooms')
    for i = 1, #kv, 2 do
      if not totals[kv[i]] then totals[kv[i]] = 0; table.insert(order, kv[i]) end
      totals[kv[i]] = totals[kv[i]] + tonumber(kv[i + 1])
    end
  end
end
local out = {}
for _, r in ipairs(order) do table.insert(out, r); table.insert(out, tostring(totals[r])) end
return out
)lua";

std::string status_text(PresenceStatus status) { return std::string(to_string(status)); }

}  // namespace

ClusterState::ClusterState(boost::asio::io_context& context, HubCore& hub, RedisPublisher& redis,
                           PresencePublisher publish_presence)
    : hub_(hub),
      redis_(redis),
      publish_presence_(std::move(publish_presence)),
      pod_(hub.pod_id()),
      lease_timer_(context),
      count_timer_(context) {}

std::string ClusterState::pod_key(std::string_view suffix) const {
  std::string key = "realtime:pod:" + pod_;
  key += suffix;
  return key;
}

void ClusterState::on_connected() {
  if (stopped_) return;
  // Our previous part may be stale (Redis kept it through a network cut) or gone (Redis restarted
  // empty): drop it without events and write it again from the hub.
  redis_.command({"EVAL", std::string(kRemovePodScript), "1", std::string(kPods), pod_, "1"},
                 [](std::error_code, const RedisReply&) {});
  redis_.command({"SET", pod_key(""), "1", "PX", std::to_string(kLeaseTtl.count())},
                 [](std::error_code, const RedisReply&) {});
  redis_.command({"SADD", std::string(kPods), pod_}, [](std::error_code, const RedisReply&) {});
  for (const auto& room : hub_.snapshot()) {
    redis_.command({"HSET", pod_key(":rooms"), room.room, std::to_string(room.members)},
                   [](std::error_code, const RedisReply&) {});
    redis_.command({"SADD", pod_key(":prooms"), room.room},
                   [](std::error_code, const RedisReply&) {});
    std::string key(kPresencePrefix);
    key += room.room;
    for (const auto& user : room.users) {
      redis_.command({"HSET", key, pod_ + "|" + user.user_id, status_text(user.status)},
                     [](std::error_code, const RedisReply&) {});
    }
  }
  if (!lease_running_) {
    lease_running_ = true;
    schedule_lease();
  }
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
  redis_.command({"SET", pod_key(""), "1", "PX", std::to_string(kLeaseTtl.count())},
                 [](std::error_code, const RedisReply&) {});
  redis_.command({"SADD", std::string(kPods), pod_}, [](std::error_code, const RedisReply&) {});
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
  for (const std::string& pod : pods) {
    redis_.command({"EVAL", std::string(kRemovePodScript), "1", std::string(kPods), pod, "0"},
                   [this, pod](std::error_code ec, const RedisReply& reply) {
                     if (ec || stopped_ || reply.elements.empty()) return;
                     for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
                       publish_presence_(reply.elements[i].str, reply.elements[i + 1].str,
                                         PresenceStatus::offline);
                     }
                   });
  }
}

void ClusterState::leave_cluster(const std::function<void()>& done) {
  if (!redis_.connected()) {
    done();
    return;
  }
  auto ec =
      redis_.command({"EVAL", std::string(kRemovePodScript), "1", std::string(kPods), pod_, "1"},
                     [this, done](std::error_code error, const RedisReply& reply) {
                       if (!error) {
                         for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
                           publish_presence_(reply.elements[i].str, reply.elements[i + 1].str,
                                             PresenceStatus::offline);
                         }
                       }
                       done();
                     });
  if (ec) done();
}

void ClusterState::stop() {
  stopped_ = true;
  lease_timer_.cancel();
  count_timer_.cancel();
}

void ClusterState::user_joined(const std::string& room, const std::string& user) {
  std::string key(kPresencePrefix);
  key += room;
  auto ec = redis_.command({"EVAL", std::string(kJoinScript), "3", key, std::string(kPods),
                            pod_key(":prooms"), pod_, user, room},
                           [this, room, user](std::error_code error, const RedisReply& reply) {
                             // Without Redis the pod cannot know about the others: it announces
                             // what it knows.
                             const bool first =
                                 error || reply.elements.empty() || reply.elements[0].integer == 1;
                             if (first) publish_presence_(room, user, PresenceStatus::online);
                           });
  if (ec) publish_presence_(room, user, PresenceStatus::online);
}

void ClusterState::user_left(const std::string& room, const std::string& user) {
  std::string key(kPresencePrefix);
  key += room;
  auto ec =
      redis_.command({"EVAL", std::string(kLeaveScript), "2", key, std::string(kPods), pod_, user},
                     [this, room, user](std::error_code error, const RedisReply& reply) {
                       if (error || reply.integer == 1) {
                         publish_presence_(room, user, PresenceStatus::offline);
                       }
                     });
  if (ec) publish_presence_(room, user, PresenceStatus::offline);
}

void ClusterState::status_changed(const std::string& room, const std::string& user,
                                  PresenceStatus status) {
  std::string key(kPresencePrefix);
  key += room;
  // Announced once the script has run, like a join: a status set right after a join (a socket that
  // was away before joining) then follows the join's "online" rather than overtaking it.
  auto ec = redis_.command({"EVAL", std::string(kStatusScript), "2", key, std::string(kPods), pod_,
                            user, status_text(status)},
                           [this, room, user, status](std::error_code, const RedisReply&) {
                             publish_presence_(room, user, status);
                           });
  if (ec) publish_presence_(room, user, status);
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

void ClusterState::query_rooms(const std::function<void(std::vector<RoomCount>)>& done) {
  auto local = hub_.rooms();
  auto ec = redis_.command({"EVAL", std::string(kRoomsScript), "1", std::string(kPods), pod_},
                           [done, local](std::error_code error, const RedisReply& reply) mutable {
                             std::map<std::string, std::size_t> totals;
                             for (const auto& room : local) totals[room.room] += room.members;
                             if (!error) {
                               for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
                                 totals[reply.elements[i].str] +=
                                     std::stoull(reply.elements[i + 1].str);
                               }
                             }
                             std::vector<RoomCount> out;
                             out.reserve(totals.size());
                             for (auto& [room, members] : totals) out.push_back({room, members});
                             done(std::move(out));
                           });
  if (ec) done(std::move(local));
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
            if (users.contains(user)) continue;
            users[user] =
                parse_presence_status(reply.elements[i + 1].str).value_or(PresenceStatus::online);
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
