// One upgraded WebSocket connection: reads frames, applies the protocol, and writes what it owes.
//
// Owned by its Shard (sessions_) and by its pending I/O operation; lives on the shard's thread and
// is touched only there (Connection::send() from other threads is posted). Reading uses the shard's
// shared buffer, so an idle session owns no buffer. Writing is corked: enqueue() only queues a
// shared frame; flush() writes everything queued with one send() at the end of the loop turn.
// The queue is bounded by send_queue_bytes: a socket that cannot keep up is closed with 1013 and
// never slows the others.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "hub/out_frame.hpp"
#include "protocol/ws_frame.hpp"
#include "realtime/broadcaster.hpp"
#include "realtime/connection.hpp"
#include "session/tcp_socket.hpp"
#include "session/wait_memory.hpp"

namespace realtime::detail {

class HandlerCore;
class Shard;

struct SessionParams {
  std::string room;     // initial room; empty for /ws
  std::string user_id;  // JWT subject; empty: anonymous (the connection id is used)
  std::optional<Clock::time_point> token_expiry;
  std::optional<std::vector<std::string>> rooms_claim;  // the token's "rooms": nullopt, any room
  std::optional<std::string> last_id;                   // recovery asked for the initial room
  std::string leftover;            // bytes that followed the HTTP request (early frames)
  boost::asio::ip::address peer;   // the client's address
  bool ip_slot = false;            // holds a per-address slot of `peer`, to give back at the end
  std::string handshake_response;  // the HTTP 101, written first
};

class WsSession final : public Connection,
                        public protocol::FrameSink,
                        public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(std::shared_ptr<HandlerCore> handler, Shard& shard, TcpSocket socket,
            SessionParams params);
  ~WsSession() override;

  // Registers with the shard, sends the welcome, joins the initial room and starts reading.
  void start();

  // Connection
  const std::string& id() const noexcept override { return id_; }
  const std::string& user_id() const noexcept override { return user_id_; }
  std::vector<std::string> rooms() const override;
  bool send(Message msg) override;
  void close(std::uint16_t code, std::string_view reason) override;

  Shard& shard() noexcept { return shard_; }
  // The room whose position a message to this socket names: the one the message is about
  // (`about`, its envelope's room) or else the socket's first room; null when none can be named
  // (not in that room, closing, or the room's recovery under way: its replay is not queued yet).
  const std::string* position_room(std::string_view about = {}) const noexcept;
  // Queues a frame (on the shard's thread). Drops it when closing; closes with 1013 on overflow.
  void enqueue(const FramePtr& frame);
  // Queues a frame of a recovery's replay: its bytes are allowed on top of send_queue_bytes (a
  // client that reads may recover more history than the queue holds), an allowance that shrinks as
  // the socket takes data.
  void enqueue_replay(const FramePtr& frame);
  // Whether a replay of `bytes` may be queued: the replays not yet written may hold up to
  // kReplayQueueFactor × --send-queue-bytes. A join whose replay would not fit is answered
  // recovered: false instead (the client reloads what it missed), so a socket that never reads
  // holds a bounded queue whatever it joins.
  bool may_replay(std::size_t bytes) const noexcept;
  static constexpr std::size_t kReplayQueueFactor = 16;
  // Writes as much of the queue as the socket takes now (on the shard's thread).
  void flush();
  // A live frame of a room whose recovery from the shared history is under way: kept until the
  // history arrives, then sent after it without what the replay already covered.
  void buffer_live(const FramePtr& frame);
  // Keepalive, close deadlines and token expiry; called by the shard's sweep.
  void tick(std::chrono::steady_clock::time_point now);
  // Ends at once: detaches (on_disconnect runs), closes the TCP socket, unregisters from the
  // shard (errors, end of stream, deadlines; and Shard::finish_all once the loop has stopped).
  void finish();
  // The application's on_disconnect for this socket (detach() runs it, or defers it to the shard
  // when called inside a hook).
  void run_disconnect_hook();
  // The Handler that accepted this socket.
  const HandlerCore& handler() const noexcept { return *handler_; }

 private:
  enum class State : std::uint8_t {
    open,     // normal traffic
    closing,  // our close frame is queued or sent; waiting for the peer's (or the deadline)
    closed,   // socket closed
  };

  // protocol::FrameSink
  void on_text(std::string_view message) override;
  void on_binary(std::string_view message) override;
  void on_ping(std::string_view payload) override;
  void on_pong(std::string_view payload) override;
  void on_close(std::uint16_t code, std::string_view reason) override;
  void on_protocol_error(std::uint16_t close_code, std::string_view why) override;

  void do_read();
  void on_readable(const boost::system::error_code& ec);
  void wait_writable();
  // Holds output until what other pods publish to `room` (empty: none) and the socket's user
  // reaches this pod (Broadcaster::await_subscribed): the welcome, and whatever the socket is sent
  // after a join (a pong, say), promise it.
  // A welcome or `joined` message queued for a room the socket joined without last_id: the room's
  // position (the id after which every message of the room reaches the socket) is added to it once
  // known, while the output is still held (or at once when nothing is held).
  struct Announcement {
    std::string room;
    Message msg;
    FramePtr frame;
  };
  void hold_until_subscribed(const std::string& room,
                             std::unique_ptr<Announcement> announcement = nullptr);
  // Adds "last_id": position to an announcement still queued and unwritten (nothing when empty).
  void add_position(Announcement& announcement, const std::string& room_position);
  // Names a position in the room's presence frames queued from `from` that name none (see
  // with_position), counting from `position` ("<epoch>-<seq>").
  void name_presence_positions(std::vector<FramePtr>::iterator from, const std::string& room,
                               const std::string& position);
  // Connection::send() on the shard's thread: false when the socket is no longer open.
  bool send_now(Message msg);
  // Sends a message to this socket alone (welcome, errors, pong, ...); returns its frame. One
  // without an id gets one naming the position of the socket's first room (direct_position()).
  FramePtr send_direct(Message msg);
  // Where the socket's stream of its first room stands now ("<epoch>-<seq>": every message of the
  // room numbered up to it is queued or written), so that a client keeping the id of every message
  // (the seed's client) can resume from a pong or an error too. Empty when not known: no room, the
  // room still recovering, its position unknown on this pod, or a delivery running.
  std::string direct_position(std::string_view about);
  // Slow consumer: refuses further frames, counts what waits as dropped, closes with 1013.
  void overflow();
  // What the kernel holds of this socket's output, unsent or not acknowledged (0 if unknown).
  std::uint32_t kernel_send_queue() noexcept;
  void send_error(std::string_view code, std::string_view text, std::string_view room = {});
  bool take_token();
  // A client message within the rate limit: handled at once, or (no token left, or others
  // waiting) kept to be handled in order as tokens come (shape()); past what may wait, dropped and
  // counted, and the client told rate_limited (at most once per interval).
  void take_message(std::string_view text);
  // Keeps a message past the rate limit for when a token comes; false when no more may wait.
  bool shape(std::string_view text);
  // On the shaping timer: handles what waits as tokens allow, and waits again for the rest.
  void release_shaped();
  void arm_shaped();
  void dispatch(std::string_view text);  // a client message, its token taken
  // A token for a message that is refused anyway (a binary frame): without one, the refusal is
  // the rate limit's (refuse_rate()).
  bool within_rate();
  // The rate limit across a client's sockets (RateCarry): start() takes what the client's last
  // socket left (and tells the client in the welcome), detach() leaves this one's. The key: the
  // user of a token, or the address of an anonymous client when --max-connections-per-ip is set;
  // else none (nothing carried).
  std::optional<std::string> rate_key() const;
  void take_rate_limit(std::string& welcome_fields);
  void leave_rate_limit();
  void refuse_rate();  // counts the drop; a rate_limited error at most once per interval
  // A status change's room events (one per room of the socket) within the rate limit too.
  bool presence_within_rate();
  void handle_chat(std::string room, std::string data);
  // `welcome`: the socket's welcome, queued already (its initial room); otherwise a join without
  // last_id is announced with a `joined` message.
  void handle_join(const std::string& room, const std::optional<std::string>& last_id,
                   std::unique_ptr<Announcement> welcome = nullptr);
  // Whether the token's "rooms" claim and the may_join hook let the socket join `room` (a hook
  // that throws: no, and the socket closes with 1011).
  bool may_join(const std::string& room);
  void handle_leave(const std::string& room);
  void handle_presence(PresenceStatus status);
  // Tells the broadcaster what a join or leave of this socket did to its user's status in `room`
  // on this pod (derived from the user's sockets here): first socket (online), last (offline), or
  // `changed`, the new status. A socket that set "away" brings it to the rooms it joins later: a
  // first socket is announced online, then away.
  void announce_join(const std::string& room, bool user_first,
                     std::optional<PresenceStatus> changed);
  void announce_leave(const std::string& room, bool user_last,
                      std::optional<PresenceStatus> changed);
  void handle_auth(const std::string& token);
  bool in_room(const std::string& room) const;
  // The shared history answered for `room`: replay, `recovered`, then the live frames kept
  // meanwhile.
  void finish_recovery(const std::string& room, std::uint32_t serial, const std::string& last_id,
                       const HistoryResult& result);
  // On a leave: the room's frames not written yet go, and with them the allowance its replay had
  // (else a socket that never reads could grow its queue with a replay per join and leave).
  void drop_unsent(const std::string& room);
  // `position`: the id the client resumes the room from from now on (empty: not known).
  void send_recovered(const std::string& room, bool recovered, std::size_t replayed,
                      const std::string& position);
  // Queues a close frame after what is queued (a slow consumer's unsent frames are dropped first).
  // close_after: the socket is closed as soon as the close frame is written (no wait for the
  // peer's).
  void start_close(std::uint16_t code, std::string_view reason, bool close_after);
  // Leaves every room and user list, runs on_disconnect; once.
  void detach();
  // Ends gracefully once our close frame is written: half-close, drain the peer's input, close.
  void linger();
  void drain(const boost::system::error_code& ec);
  void drop_queue();
  // Closes the socket and unregisters from the shard; once.
  void release();

  std::shared_ptr<HandlerCore> handler_;
  Shard& shard_;
  TcpSocket socket_;
  WaitMemory read_wait_memory_;  // the pending wait for readability lives here
  protocol::FrameParser parser_;
  std::string id_;
  std::string user_id_;
  std::vector<std::string> rooms_;
  // What start() needs once (the join's last id, early bytes, the 101), dropped after it: an open
  // session does not carry it.
  struct Startup {
    std::optional<std::string> last_id;
    std::string leftover;
    std::string handshake_response;
  };
  std::unique_ptr<Startup> startup_;
  std::optional<Clock::time_point> token_expiry_;
  // The rooms its token lets the socket join (TokenClaims::rooms); null: any.
  std::unique_ptr<const std::vector<std::string>> rooms_claim_;
  boost::asio::ip::address peer_;  // the client's address: a per-address slot (holds_ip_slot_)

  // Write queue: frames [head_, end) are owed; head_offset_ bytes of queue_[head_] are written.
  std::vector<FramePtr> queue_;
  std::size_t head_ = 0;
  std::size_t head_offset_ = 0;
  std::size_t queued_bytes_ = 0;
  bool flush_pending_ = false;
  bool write_waiting_ = false;
  // Waits for the broadcaster to receive this socket's rooms (and user): nothing is written
  // while one is pending (start(), handle_join()).
  std::uint8_t holds_ = 0;
  bool close_after_flush_ = false;
  // The status this socket last set: it also holds in the rooms the socket joins afterwards. The
  // hub counts it in each room of the socket (HubCore::join, leave, set_status).
  PresenceStatus status_ = PresenceStatus::online;
  std::uint32_t replay_allowance_ = 0;  // see enqueue_replay()
  // While the stall deadline runs (deadline_ while open): the bytes the kernel still held to send
  // when the client last took some (SIOCOUTQ), so that its reading counts as progress though no
  // write of ours could follow it yet.
  std::uint32_t kernel_queued_ = 0;
  // The last replay queued: frames created before it are not sampled for the broadcast latency.
  std::chrono::steady_clock::time_point replay_at_{};

  struct Recovery {
    std::string room;
    std::uint32_t serial = 0;  // which join of the room (a leave and a rejoin start another)
    std::vector<FramePtr> live;
    std::size_t bytes = 0;
  };
  std::vector<Recovery> recovering_;  // empty unless a recovery is under way
  std::uint32_t recovery_serial_ = 0;

  State state_ = State::open;
  // Open and not detached: what Connection::send() reads from any thread (state_ is the shard's).
  std::atomic<bool> sendable_{true};
  bool detached_ = false;
  bool overflowed_ = false;  // send queue overflowed: closing with 1013
  bool read_armed_ = false;  // a wait for readability is pending
  bool lingering_ = false;   // closed; draining the peer's input before closing the socket
  bool released_ = false;    // the descriptor closed and the slot given back (release())
  bool expiry_warned_ = false;
  bool holds_ip_slot_ = false;     // a --max-connections-per-ip slot of peer_, given back at detach
  bool handshake_unsent_ = false;  // the HTTP 101 is queued and not wholly written yet
  std::chrono::steady_clock::time_point last_seen_;
  std::chrono::steady_clock::time_point last_ping_;
  // Closing or lingering: when to give up. Open: when the client of a socket whose queue is past
  // --send-queue-bytes (a replay's allowance) must have taken something (zero: not waiting).
  std::chrono::steady_clock::time_point deadline_{};
  std::chrono::steady_clock::time_point last_rate_error_;
  double tokens_;
  std::chrono::steady_clock::time_point tokens_at_;
  std::chrono::steady_clock::time_point presence_tat_{};  // see presence_within_rate()
  // Messages that came past the rate limit and wait for tokens (a burst after a stall of the
  // client's link: what it paced arrives at once); null when none wait. See take_message().
  struct ShapedInput;
  struct ShapedInputDeleter {
    void operator()(ShapedInput* input) const noexcept;
  };
  std::unique_ptr<ShapedInput, ShapedInputDeleter> shaped_;
};

}  // namespace realtime::detail
