// WaitMemory: a session's wait for readability is built in the session's own storage (not in a
// block Asio recycled from a larger operation), one wait after another, and a wait that does not
// fit goes to the heap instead of failing.
#include <cstdint>
#include <memory>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "session/tcp_socket.hpp"
#include "session/wait_memory.hpp"

namespace realtime::detail {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct Pair {
  asio::io_context io;
  tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  TcpSocket client{io};  // the session's socket type
  TcpSocket server{io};
  Pair() {
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
};

// The handler shape of WsSession::do_read(): a lambda holding the session's shared_ptr.
struct Session {
  WaitMemory memory;
  int woken = 0;
};

void arm(TcpSocket& socket, const std::shared_ptr<Session>& session) {
  socket.async_wait(TcpSocket::wait_read,
                    asio::bind_allocator(WaitAllocator<int>(session->memory),
                                         [self = session](const boost::system::error_code& ec) {
                                           if (!ec) ++self->woken;
                                         }));
}

TEST(WaitMemory, TheSessionsReadWaitFitsAndIsReusedWaitAfterWait) {
  Pair pair;
  auto session = std::make_shared<Session>();
  for (int round = 1; round <= 3; ++round) {
    arm(pair.server, session);
    EXPECT_TRUE(session->memory.in_use()) << "the wait is built in the session's storage";
    asio::write(pair.client, asio::buffer("x", 1));
    pair.io.run_one();
    pair.io.restart();
    EXPECT_EQ(session->woken, round);
    EXPECT_FALSE(session->memory.in_use()) << "freed before the handler ran";
    char byte;
    pair.server.read_some(asio::buffer(&byte, 1));
  }
  EXPECT_EQ(session->memory.heap_fallbacks(), 0U)
      << "Asio's wait operation grew past WaitMemory::kSize: raise it";
}

TEST(WaitMemory, ASecondWaitAtOnceGoesToTheHeap) {
  Pair pair;
  auto session = std::make_shared<Session>();
  arm(pair.server, session);
  arm(pair.server, session);  // both pending: the second cannot share the storage
  EXPECT_EQ(session->memory.heap_fallbacks(), 1U);
  asio::write(pair.client, asio::buffer("x", 1));
  pair.io.run();
  EXPECT_EQ(session->woken, 2);
  EXPECT_FALSE(session->memory.in_use());
}

TEST(WaitMemory, PendingWaitIsReleasedWhenTheLoopIsDestroyed) {
  auto session = std::make_shared<Session>();
  {
    Pair pair;
    arm(pair.server, session);
    EXPECT_TRUE(session->memory.in_use());
  }  // the io_context destroys the pending operation through the allocator
  EXPECT_FALSE(session->memory.in_use());
  EXPECT_EQ(session.use_count(), 1) << "the operation's handler let go of the session";
}

}  // namespace
}  // namespace realtime::detail
