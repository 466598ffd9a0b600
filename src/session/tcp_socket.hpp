// The type of every accepted connection's socket, from the accept to the WebSocket session.
//
// Bound to its shard's io_context executor rather than the polymorphic any_io_executor of
// boost::asio::ip::tcp::socket: the socket object is smaller, and so is each operation pending on
// it (a wait for readability takes 104 bytes instead of 208), which is most of an idle socket's
// memory after the session itself.
#pragma once

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace realtime::detail {

using TcpSocket =
    boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

}  // namespace realtime::detail
