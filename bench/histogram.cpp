#include "histogram.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace realtime::bench {

void Histogram::merge(const Histogram& other) noexcept {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
  min_ = std::min(min_, other.min_);
}

void Histogram::reset() noexcept {
  counts_.fill(0);
  total_ = 0;
  max_ = 0;
  min_ = ~0ULL;
  sum_ = 0;
}

std::string Histogram::serialize() const {
  std::string out = std::to_string(total_) + ' ' + std::to_string(sum_) + ' ' +
                    std::to_string(min_) + ' ' + std::to_string(max_);
  for (std::size_t i = 0; i < kBuckets; ++i) {
    if (counts_[i] == 0) continue;
    out += ' ';
    out += std::to_string(i);
    out += ':';
    out += std::to_string(counts_[i]);
  }
  return out;
}

bool Histogram::parse(std::string_view line) {
  Histogram h;
  const char* p = line.data();
  const char* const end = line.data() + line.size();
  auto number = [&](std::uint64_t& v) {
    while (p < end && *p == ' ') ++p;
    const auto r = std::from_chars(p, end, v);
    if (r.ec != std::errc()) return false;
    p = r.ptr;
    return true;
  };
  if (!number(h.total_) || !number(h.sum_) || !number(h.min_) || !number(h.max_)) return false;
  std::uint64_t index = 0, count = 0;
  while (number(index)) {
    if (p >= end || *p != ':' || index >= kBuckets) return false;
    ++p;
    if (!number(count)) return false;
    h.counts_[index] += count;
  }
  merge(h);
  return true;
}

std::uint64_t Histogram::upper_of(std::size_t index) noexcept {
  if (index < kSubCount) return index;
  const std::size_t above = index - kSubCount;
  const std::uint64_t shift = above / kHalf + 1;
  const std::uint64_t sub = above % kHalf + kHalf;
  return ((sub + 1) << shift) - 1;
}

std::uint64_t Histogram::quantile(double q) const noexcept {
  if (total_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
  rank = std::clamp<std::uint64_t>(rank, 1, total_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(upper_of(i), max_);
  }
  return max_;
}

}  // namespace realtime::bench
