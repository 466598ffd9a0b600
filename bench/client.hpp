// The load generator's engine: Workers (one io_context and one thread each) that own many client
// WebSocket connections, do the HTTP upgrade by hand on raw TCP sockets, parse server frames with
// realtime_protocol's FrameParser, publish chat messages on a schedule, and account for every
// delivery (latency from the scheduled send time, loss, reordering) without allocating per message.
//
// Connection c of a run (0 <= c < connections) is member c / rooms of room c % rooms; connections
// 0 .. publishers-1 are the publishers, so publisher p sits in room p % rooms.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <netinet/in.h>

#include "histogram.hpp"
#include "protocol/ws_frame.hpp"

namespace realtime::bench {

enum class WireProtocol : std::uint8_t { realtime, socketio };

struct Endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
};

// What every worker needs to know about the run; read-only once workers start.
struct Plan {
  WireProtocol protocol = WireProtocol::realtime;
  std::vector<Endpoint> targets;      // server pods
  std::vector<in_addr> sources;       // local addresses to bind (127.0.0.x)
  std::string room_prefix = "bench";  // room r is "<prefix>-<r>"
  std::uint32_t connections = 0;
  std::uint32_t rooms = 1;
  std::uint32_t publishers = 0;
  std::uint32_t payload_pad = 40;  // filler bytes in each chat message's data
  // 0: room r holds connections r, r + rooms, r + 2 rooms, ... (rooms fill evenly, for fan-out).
  // B > 0: room r holds connections r B .. r B + B - 1 (rooms full as connections are added, for
  // idle memory measured in steps).
  std::uint32_t room_block = 0;

  std::uint32_t room_of(std::uint32_t c) const noexcept {
    return room_block ? c / room_block : c % rooms;
  }
  std::uint32_t member_of(std::uint32_t c) const noexcept {
    return room_block ? c % room_block : c / rooms;
  }
  // Members of room r among the connections.
  std::uint32_t room_size(std::uint32_t r) const noexcept {
    if (room_block) {
      const std::uint64_t first = static_cast<std::uint64_t>(r) * room_block;
      return first >= connections ? 0
                                  : static_cast<std::uint32_t>(
                                        std::min<std::uint64_t>(room_block, connections - first));
    }
    return connections / rooms + (r < connections % rooms ? 1 : 0);
  }
  // Publishers in room r (at most this many; the slot of publisher p in its room is p / rooms).
  std::uint32_t publishers_per_room() const noexcept { return (publishers + rooms - 1) / rooms; }
  // Pods: member m of room r connects to target (r + m) % targets, so a room spreads over the pods;
  // with room_affinity, to target r % targets (a load balancer routing by the /ws/{room} path).
  bool room_affinity = false;
  std::uint32_t target_of(std::uint32_t c) const noexcept {
    const std::uint32_t slot = room_affinity ? room_of(c) : room_of(c) + member_of(c);
    return static_cast<std::uint32_t>(slot % targets.size());
  }
};

// Counters of one measurement step, summed over workers by the caller.
struct StepStats {
  std::uint64_t sent = 0;              // chat messages published
  std::uint64_t expected = 0;          // sum over sent messages of their room's size
  std::uint64_t delivered = 0;         // chat deliveries received (carrying our sequence number)
  std::uint64_t delivered_window = 0;  // ... of messages scheduled inside the measured window
  std::uint64_t received_window = 0;   // deliveries received inside the measured window
  std::uint64_t sent_window = 0;       // messages scheduled inside the measured window
  std::uint64_t reordered = 0;         // a sequence number lower than one already seen
  std::uint64_t duplicates = 0;        // a sequence number seen before (not a delivery)
  std::uint64_t misrouted = 0;         // from a publisher of another room (not a delivery)
  std::uint64_t other_messages = 0;    // presence, system, ... (not ours)
  std::uint64_t send_errors = 0;       // publishes that could not be written
  Histogram same_pod;                  // latency in ns, receiver on the publisher's pod
  Histogram cross_pod;                 // receiver on another pod
  // Open loop: ns from a publish's scheduled time to the generator writing it (the generator's own
  // delay, part of every latency above; it says how much of a tail is the generator's).
  Histogram send_lag;
  void merge(const StepStats& other);
};

class Worker;

class Connection final : public protocol::FrameSink {
 public:
  enum class State : std::uint8_t { idle, connecting, upgrading, open, closed };

  Connection(Worker& worker, std::uint32_t index);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start_connect();
  // Writes a masked text frame with this payload (buffers what the socket does not take at once).
  void send_text(std::string_view payload);
  // Closes with a TCP reset (no TIME_WAIT), quietly.
  void abort();

  State state() const noexcept { return state_; }
  std::uint32_t index() const noexcept { return index_; }
  bool is_publisher() const noexcept { return publisher_; }
  std::uint64_t next_seq() noexcept { return ++seq_; }

  // FrameSink
  void on_text(std::string_view message) override;
  void on_binary(std::string_view) override {}
  void on_ping(std::string_view payload) override;
  void on_pong(std::string_view) override {}
  void on_close(std::uint16_t code, std::string_view reason) override;
  void on_protocol_error(std::uint16_t code, std::string_view why) override;

 private:
  friend class Worker;
  void on_connected(const boost::system::error_code& ec);
  void arm_read();
  void on_readable();
  bool handle_bytes(char* data, std::size_t size);
  bool handle_upgrade_response(char* data, std::size_t size);
  void on_message(std::string_view message);
  void on_chat(std::string_view message);
  void write_raw(const char* data, std::size_t size);
  void flush_pending();
  void fail(bool unexpected);

  Worker& worker_;
  boost::asio::ip::tcp::socket socket_;
  protocol::FrameParser parser_;
  std::string http_;     // upgrade response bytes so far (released once upgraded)
  std::string pending_;  // bytes the socket did not take yet
  // What this socket received of one publisher: the highest sequence number, and which of the 64
  // numbers below it came (bit i: highest - 1 - i), so a repeat is told from a late first copy.
  struct SeqWindow {
    std::uint64_t highest = 0;  // 0: nothing yet (sequence numbers start at 1)
    std::uint64_t below = 0;
  };
  std::unique_ptr<SeqWindow[]> seq_windows_;  // per publisher slot in this room
  std::uint64_t started_ns_ = 0;
  std::uint64_t seq_ = 0;
  std::uint32_t index_;
  std::uint32_t target_;
  State state_ = State::idle;
  bool publisher_ = false;
  bool welcomed_ = false;
  bool write_armed_ = false;
};

// Publishing modes of a step.
struct Schedule {
  enum class Mode : std::uint8_t { open_loop, window } mode = Mode::open_loop;
  double rate = 0;           // open loop: publishes per second for this worker
  std::uint32_t window = 1;  // window: messages in flight per publisher
  // window: a publisher whose message came back waits while more deliveries than this are
  // outstanding (sent to a member, not received yet) over all workers, so the slowest member bounds
  // the rate and no queue grows without end.
  std::uint64_t max_outstanding = ~0ULL;
  std::uint64_t start_ns = 0;        // first scheduled send
  std::uint64_t end_ns = 0;          // no send scheduled at or after this
  std::uint64_t record_from_ns = 0;  // latencies recorded for messages scheduled in [from, to)
  std::uint64_t record_to_ns = 0;
};

class Worker {
 public:
  Worker(const Plan& plan, unsigned id);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start_thread();
  void stop_thread();

  // Runs f on the worker's thread and waits for its result.
  template <class F>
  auto call(F&& f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::forward<F>(f));
    auto result = task.get_future();
    post(std::function<void()>([&task] { task(); }));
    return result.get();
  }

  // On the worker's thread:
  void add_connection(std::uint32_t index);
  // Connects, at most max_in_flight at once (0: no limit), the connections whose index is below
  // index_limit and that are not connected yet.
  void connect_until(std::uint32_t index_limit, std::uint32_t max_in_flight);
  void begin_step(const Schedule& schedule);
  // The workers of the same run, whose counters bound the deliveries outstanding in window mode.
  void set_siblings(const std::vector<std::unique_ptr<Worker>>* siblings) { siblings_ = siblings; }
  void stop_publishing();
  StepStats take_stats();  // returns and resets the step counters
  void abort_all();
  std::vector<std::uint64_t> take_connect_latencies();
  // The first thing that went wrong while connecting, for the report; empty if nothing did.
  const std::string& first_error() const noexcept { return first_error_; }
  void note_error(std::string what);

  // Readable from any thread.
  std::atomic<std::uint32_t> open{0};
  std::atomic<std::uint32_t> failed{0};
  std::atomic<std::uint32_t> unexpected_closes{0};
  std::atomic<std::uint64_t> last_rx_ns{0};
  std::atomic<std::uint64_t> first_connect_ns{0};
  std::atomic<std::uint64_t> last_welcome_ns{0};
  std::atomic<std::uint64_t> delivered_total{0};
  std::atomic<std::uint64_t> expected_total{0};
  std::atomic<std::uint64_t> http_refusals{0};

  const Plan& plan() const noexcept { return plan_; }
  unsigned id() const noexcept { return id_; }

 private:
  friend class Connection;
  void post(std::function<void()> f);
  void connection_done(Connection& c, bool ok);
  void on_delivery(Connection& receiver, std::uint64_t seq, std::uint64_t t_ns,
                   std::uint32_t publisher, std::uint64_t now);
  void on_other_message() noexcept { ++stats_.other_messages; }
  void publish(Connection& publisher, std::uint64_t t_ns);
  void on_timer();
  bool send_due(std::uint64_t until);
  void arm_timer();
  void arm_rx();
  void on_rx_ready();
  std::uint64_t outstanding() const noexcept;
  void release_deferred();
  std::uint32_t next_mask() noexcept;

  const Plan& plan_;
  unsigned id_;
  boost::asio::io_context io_;
  // Every open connection's socket, level-triggered; Asio waits on this set as a whole.
  int rx_epoll_;
  boost::asio::posix::stream_descriptor rx_wait_;
  std::thread thread_;
  std::vector<std::unique_ptr<Connection>> conns_;
  std::vector<Connection*> publishers_;
  std::size_t next_to_connect_ = 0;
  std::uint32_t in_flight_ = 0;
  std::uint32_t max_in_flight_ = 0;
  std::uint32_t index_limit_ = 0;
  std::vector<std::uint64_t> connect_latencies_;
  std::string first_error_;

  Schedule schedule_;
  bool publishing_ = false;
  std::uint64_t next_k_ = 0;  // open loop: index of the next scheduled publish
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer gate_timer_;
  std::vector<Connection*> deferred_;  // window mode: publishers waiting for the gate
  bool gate_armed_ = false;
  const std::vector<std::unique_ptr<Worker>>* siblings_ = nullptr;
  StepStats stats_;
  std::uint64_t delivered_ = 0;  // mirrors of the atomics, written by this thread only
  std::uint64_t expected_ = 0;
  std::uint32_t mask_state_;

  std::unique_ptr<char[]> rx_buf_;
  std::string tx_buf_;
};

}  // namespace realtime::bench
