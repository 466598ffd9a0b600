#include "server_metrics.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace realtime::bench {
namespace {

namespace asio = boost::asio;

// How long one exchange with a server or Redis may take: a stuck or saturated peer must not hold
// the run (the caller reads a missing answer as "not known").
constexpr std::chrono::seconds kExchangeLimit{1};

// Sends `request` to host:port and reads the reply until `complete(reply)` says it is whole or the
// peer closes; nullopt on an error or past kExchangeLimit.
std::optional<std::string> exchange(const std::string& host, std::uint16_t port,
                                    std::string_view request,
                                    const std::function<bool(const std::string&)>& complete) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  std::string reply;
  std::array<char, 4096> chunk{};
  bool whole = false;
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  std::function<void()> read_more = [&] {
    socket.async_read_some(asio::buffer(chunk),
                           [&](boost::system::error_code error, std::size_t n) {
                             reply.append(chunk.data(), n);
                             if (error) {
                               whole = error == asio::error::eof;
                             } else if (complete(reply)) {
                               whole = true;
                             } else {
                               read_more();
                             }
                           });
  };
  socket.async_connect({address, port}, [&](boost::system::error_code error) {
    if (error) return;
    asio::async_write(socket, asio::buffer(request),
                      [&](boost::system::error_code written, std::size_t) {
                        if (!written) read_more();
                      });
  });
  io.run_for(kExchangeLimit);  // what is still pending then is dropped with the io_context
  if (!whole) return std::nullopt;
  return reply;
}

std::optional<std::string> http_get(const Endpoint& pod, std::string_view path) {
  std::string request = "GET ";
  request += path;
  request += " HTTP/1.0\r\nHost: bench\r\n\r\n";
  // HTTP/1.0: the reply ends when the server closes.
  auto response = exchange(pod.host, pod.port, request, [](const std::string&) { return false; });
  if (!response ||
      (!response->starts_with("HTTP/1.1 200") && !response->starts_with("HTTP/1.0 200"))) {
    return std::nullopt;
  }
  return response;
}

// Lines `realtime_broadcast_latency_seconds_bucket{le="X"} N`.
std::optional<LatencyBuckets> parse(std::string_view text) {
  constexpr std::string_view kPrefix = "realtime_broadcast_latency_seconds_bucket{le=\"";
  LatencyBuckets out;
  std::size_t at = 0;
  while ((at = text.find(kPrefix, at)) != std::string_view::npos) {
    at += kPrefix.size();
    const auto quote = text.find('"', at);
    const auto space = text.find(' ', quote);
    const auto end = text.find('\n', space);
    if (quote == std::string_view::npos || space == std::string_view::npos) return std::nullopt;
    const std::string bound(text.substr(at, quote - at));
    const double le = bound == "+Inf" ? std::numeric_limits<double>::infinity()
                                      : std::strtod(bound.c_str(), nullptr);
    const std::string_view value = text.substr(
        space + 1, end == std::string_view::npos ? std::string_view::npos : end - space - 1);
    const double count = std::strtod(std::string(value).c_str(), nullptr);
    out.le.push_back(le);
    out.counts.push_back(static_cast<std::uint64_t>(std::llround(count)));
    at = space;
  }
  if (out.le.empty()) return std::nullopt;
  return out;
}

}  // namespace

std::optional<std::uint64_t> redis_command_calls(std::uint16_t port, std::string_view command) {
  // The reply is one RESP bulk string: "$LENGTH\r\n", LENGTH bytes, "\r\n".
  bool malformed = false;
  const auto reply =
      exchange("127.0.0.1", port, "INFO commandstats\r\n", [&](const std::string& in) {
        const auto eol = in.find("\r\n");
        if (eol == std::string::npos) return false;
        std::size_t length = 0;
        const auto [ptr, err] = std::from_chars(in.data() + 1, in.data() + eol, length);
        if (in[0] != '$' || err != std::errc() || ptr != in.data() + eol) {
          malformed = true;
          return true;
        }
        return in.size() >= eol + 2 + length + 2;
      });
  if (!reply || malformed) return std::nullopt;
  std::string key = "\r\ncmdstat_";
  key += command;
  key += ":calls=";
  const auto at = reply->find(key);
  if (at == std::string::npos) return 0;  // listed only once it has run
  std::uint64_t calls = 0;
  const char* first = reply->data() + at + key.size();
  if (std::from_chars(first, reply->data() + reply->size(), calls).ec != std::errc()) {
    return std::nullopt;
  }
  return calls;
}

std::optional<LatencyBuckets> scrape_latency(const std::vector<Endpoint>& pods) {
  std::optional<LatencyBuckets> total;
  for (const Endpoint& pod : pods) {
    const auto response = http_get(pod, "/metrics");
    if (!response) return std::nullopt;
    auto buckets = parse(*response);
    if (!buckets) return std::nullopt;
    if (!total) {
      total = std::move(buckets);
    } else if (total->le == buckets->le) {
      for (std::size_t i = 0; i < total->counts.size(); ++i) total->counts[i] += buckets->counts[i];
    } else {
      return std::nullopt;
    }
  }
  return total;
}

std::optional<double> bucket_quantile_ms(const LatencyBuckets& before, const LatencyBuckets& after,
                                         double q) {
  if (before.le != after.le || after.counts.empty()) return std::nullopt;
  const std::uint64_t total = after.counts.back() - before.counts.back();
  if (total == 0) return std::nullopt;
  for (std::size_t i = 0; i < after.le.size(); ++i) {
    const std::uint64_t below = after.counts[i] - before.counts[i];
    if (static_cast<double>(below) >= q * static_cast<double>(total)) return after.le[i] * 1e3;
  }
  return std::nullopt;
}

}  // namespace realtime::bench
