#include "session/rate_carry.hpp"

#include <algorithm>
#include <utility>

namespace realtime::detail {

std::string client_address_key(const boost::asio::ip::address& address) {
  std::string key;
  if (address.is_v6() && !address.to_v6().is_v4_mapped()) {
    const auto bytes = address.to_v6().to_bytes();
    key.append(bytes.begin(), bytes.begin() + 8);  // the /64
    return key;
  }
  // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d: the same client.
  const auto v4 = address.is_v4() ? address.to_v4()
                                  : boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped,
                                                                     address.to_v6());
  const auto bytes = v4.to_bytes();
  key.append(bytes.begin(), bytes.end());
  return key;
}

std::string RateCarry::key(std::string_view user_id, const boost::asio::ip::address& peer) {
  std::string key;
  if (!user_id.empty()) {
    key.reserve(user_id.size() + 1);
    key += 'u';
    key += user_id;
    return key;
  }
  key += 'a';
  key += client_address_key(peer);
  return key;
}

std::optional<std::string> RateCarry::client_key(std::string_view token_user,
                                                 const boost::asio::ip::address& peer,
                                                 bool by_address) {
  if (!token_user.empty()) return key(token_user, peer);
  if (by_address) return key({}, peer);
  return std::nullopt;
}

double RateCarry::refilled(const Bucket& bucket, TimePoint now, const Limit& limit) noexcept {
  const double elapsed = std::chrono::duration<double>(now - bucket.at).count();
  return std::min(limit.burst, bucket.tokens + std::max(0.0, elapsed) * limit.rate);
}

const RateCarry::Limit& RateCarry::limit_of(const std::string& key) const noexcept {
  return !key.empty() && key.front() == kOpening ? openings_ : messages_;
}

bool RateCarry::full(const Bucket& bucket, TimePoint now, const Limit& limit) noexcept {
  return refilled(bucket, now, limit) >= limit.burst;
}

bool RateCarry::full(const Bucket& bucket, TimePoint now) const noexcept {
  return full(bucket, now, messages_);
}

std::optional<RateCarry::Bucket> RateCarry::find(const std::string& key, TimePoint now) {
  const std::lock_guard lock(mutex_);
  maybe_prune(now);
  std::optional<Bucket> found;
  if (const auto it = left_.find(key); it != left_.end()) {
    // Kept when not full: another socket of the key opening meanwhile starts from it too (each
    // then spends on its own, as sockets held at once do).
    if (full(it->second, now)) {
      left_.erase(it);
    } else {
      found = Bucket{refilled(it->second, now, messages_), now};
    }
  }
  size_.store(left_.size(), std::memory_order_relaxed);
  return found;
}

double RateCarry::take_connect(const std::string& key, TimePoint now) {
  if (openings_.rate <= 0) return 0;
  std::string opening;  // the key's bucket of openings (keys start 'u' or 'a')
  opening.reserve(key.size() + 1);
  opening += kOpening;
  opening += key;
  const std::lock_guard lock(mutex_);
  maybe_prune(now);
  auto it = left_.find(opening);
  if (it == left_.end()) {
    if (left_.size() >= kMaxEntries) return 0;
    it = left_.emplace(std::move(opening), Bucket{openings_.burst, now}).first;
  }
  const double tokens = refilled(it->second, now, openings_);
  if (tokens < 1.0) return (1.0 - tokens) / openings_.rate;
  it->second = Bucket{tokens - 1.0, now};
  size_.store(left_.size(), std::memory_order_relaxed);
  return 0;
}

void RateCarry::leave(std::string key, const Bucket& bucket, TimePoint now) {
  if (full(bucket, now)) return;
  const std::lock_guard lock(mutex_);
  maybe_prune(now);
  if (left_.size() < kMaxEntries || left_.contains(key))
    left_.insert_or_assign(std::move(key), bucket);
  size_.store(left_.size(), std::memory_order_relaxed);
}

void RateCarry::maybe_prune(TimePoint now) {
  if (left_.size() < prune_at_ && now < prune_after_) return;
  prune_after_ = now + kPruneInterval;
  std::erase_if(left_,
                [&](const auto& entry) { return full(entry.second, now, limit_of(entry.first)); });
  prune_at_ = std::max(kPruneMin, 2 * left_.size());
}

}  // namespace realtime::detail
