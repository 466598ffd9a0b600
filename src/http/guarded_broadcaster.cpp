#include "http/guarded_broadcaster.hpp"

#include <atomic>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "realtime/redis_broadcaster.hpp"

namespace realtime::detail {
namespace {

// A callback that runs at most once (an inner call that called it and then threw must not have it
// called again for its refusal).
template <typename... Args>
class Once {
 public:
  explicit Once(std::function<void(Args...)> done)
      : state_(std::make_shared<State>(std::move(done))) {}
  std::function<void(Args...)> callback() const {
    return [state = state_](Args... args) {
      if (!state->called.exchange(true)) state->done(std::forward<Args>(args)...);
    };
  }
  bool called() const noexcept { return state_->called.load(); }

 private:
  struct State {
    explicit State(std::function<void(Args...)> d) : done(std::move(d)) {}
    std::function<void(Args...)> done;
    std::atomic<bool> called{false};
  };
  std::shared_ptr<State> state_;
};

class GuardedBroadcaster final : public Broadcaster {
 public:
  GuardedBroadcaster(std::shared_ptr<Broadcaster> inner, std::shared_ptr<spdlog::logger> log)
      : inner_(std::move(inner)), log_(std::move(log)) {}

  std::string publish(Message msg) override {
    return run("publish", std::string(kNotPublished),
               [&] { return inner_->publish(std::move(msg)); });
  }
  std::string publish_to_user(const std::string& user_id, Message msg) override {
    return run("publish_to_user", std::string(kNotPublished),
               [&] { return inner_->publish_to_user(user_id, std::move(msg)); });
  }
  bool ready(std::string* reason) const override {
    const bool ok = run("ready", false, [&] { return inner_->ready(reason); });
    if (!ok && reason != nullptr && reason->empty()) *reason = "broadcaster failed";
    return ok;
  }
  void publish_then(Message msg, std::function<void(const std::string& id)> done) override {
    const Once<const std::string&> once(std::move(done));
    if (!run("publish_then", false, [&] {
          inner_->publish_then(std::move(msg), once.callback());
          return true;
        })) {
      once.callback()(std::string(kNotPublished));
    }
  }
  bool shared_history() const override {
    return run("shared_history", false, [&] { return inner_->shared_history(); });
  }
  void fetch_history(const std::string& room, const std::string& last_id,
                     std::function<void(HistoryResult)> done) override {
    const Once<HistoryResult> once(std::move(done));
    if (!run("fetch_history", false, [&] {
          inner_->fetch_history(room, last_id, once.callback());
          return true;
        })) {
      once.callback()(HistoryResult{});
    }
  }
  bool await_subscribed(const std::string& room, const std::string& user_id,
                        std::function<void()> done) override {
    // (Its `done` runs only when it returned true: a throw means it will not run.)
    return run("await_subscribed", false,
               [&] { return inner_->await_subscribed(room, user_id, std::move(done)); });
  }
  void user_joined(const std::string& room, const std::string& user_id) override {
    run("user_joined", false, [&] {
      inner_->user_joined(room, user_id);
      return true;
    });
  }
  void user_left(const std::string& room, const std::string& user_id) override {
    run("user_left", false, [&] {
      inner_->user_left(room, user_id);
      return true;
    });
  }
  void status_changed(const std::string& room, const std::string& user_id,
                      PresenceStatus status) override {
    run("status_changed", false, [&] {
      inner_->status_changed(room, user_id, status);
      return true;
    });
  }
  void query_rooms(std::function<void(std::vector<RoomCount>)> done) override {
    const Once<std::vector<RoomCount>> once(std::move(done));
    if (!run("query_rooms", false, [&] {
          inner_->query_rooms(once.callback());
          return true;
        })) {
      once.callback()({});
    }
  }
  void query_presence(const std::string& room,
                      std::function<void(std::vector<PresenceEntry>)> done) override {
    const Once<std::vector<PresenceEntry>> once(std::move(done));
    if (!run("query_presence", false, [&] {
          inner_->query_presence(room, once.callback());
          return true;
        })) {
      once.callback()({});
    }
  }

 private:
  template <typename Result, typename Call>
  Result run(std::string_view what, Result failed, Call&& call) const {
    try {
      return std::forward<Call>(call)();
    } catch (const std::exception& error) {
      log_->error("broadcaster {} threw: {}", what, error.what());
    } catch (...) {
      log_->error("broadcaster {} threw (not a std::exception)", what);
    }
    return failed;
  }

  std::shared_ptr<Broadcaster> inner_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace

std::shared_ptr<Broadcaster> guarded(std::shared_ptr<Broadcaster> inner,
                                     std::shared_ptr<spdlog::logger> log) {
  if (dynamic_cast<LocalBroadcaster*>(inner.get()) != nullptr ||
      dynamic_cast<RedisBroadcaster*>(inner.get()) != nullptr) {
    return inner;
  }
  return std::make_shared<GuardedBroadcaster>(std::move(inner), std::move(log));
}

}  // namespace realtime::detail
