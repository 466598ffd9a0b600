// A log-linear latency histogram in the style of HdrHistogram: values (nanoseconds) are kept with a
// relative error below 1/256, from 0 to 2^44 ns (about 4.9 hours), in a fixed array. Recording is
// a few instructions and never allocates. Not thread-safe: one per thread, merged at the end.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace realtime::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 9;                            // 512 linear sub-buckets
  static constexpr std::uint64_t kSubCount = 1ULL << kSubBits;  // exact below this
  static constexpr std::uint64_t kHalf = kSubCount / 2;         // sub-buckets per octave above
  static constexpr int kMaxBits = 44;                           // values clamp at 2^44 - 1
  static constexpr std::size_t kBuckets = kSubCount + (kMaxBits - kSubBits) * kHalf;

  void record(std::uint64_t value) noexcept {
    ++counts_[index_of(value)];
    ++total_;
    if (value > max_) max_ = value;
    if (value < min_) min_ = value;
    sum_ += value;
  }
  void merge(const Histogram& other) noexcept;
  void reset() noexcept;
  // One line of text ("total sum min max index:count ..." for the non-empty buckets), to pass a
  // histogram between generator processes; parse() adds such a line to this histogram.
  std::string serialize() const;
  bool parse(std::string_view line);

  std::uint64_t count() const noexcept { return total_; }
  std::uint64_t max() const noexcept { return total_ ? max_ : 0; }
  std::uint64_t min() const noexcept { return total_ ? min_ : 0; }
  double mean() const noexcept { return total_ ? static_cast<double>(sum_) / total_ : 0.0; }
  // The value at quantile q in [0, 1] (the upper edge of its bucket, clamped to max); 0 when empty.
  std::uint64_t quantile(double q) const noexcept;

  static std::size_t index_of(std::uint64_t value) noexcept {
    if (value >= (1ULL << kMaxBits)) value = (1ULL << kMaxBits) - 1;
    if (value < kSubCount) return static_cast<std::size_t>(value);
    const int msb = 63 - std::countl_zero(value);  // >= kSubBits
    const int shift = msb - (kSubBits - 1);        // value >> shift is in [kHalf, kSubCount)
    return static_cast<std::size_t>(kSubCount + (shift - 1) * kHalf + ((value >> shift) - kHalf));
  }
  // Highest value that maps to `index`.
  static std::uint64_t upper_of(std::size_t index) noexcept;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = ~0ULL;
  std::uint64_t sum_ = 0;
};

}  // namespace realtime::bench
