// Raw WebSocket bytes fed to a live session. An in-process Hub and Handler listen on a loopback
// port; each input opens a fresh connection, completes a valid upgrade, sends the bytes,
// half-closes and drains. The session code (framing, JSON, rooms, presence, errors, closes) runs
// under the sanitizers; a crash, a sanitizer report or a server that stops answering is a finding.
//
// Input: first byte even: the rest is sent as it is (mostly framing errors). Odd: the rest is a
// sequence of frames [flags][length][payload...] that this target masks properly (flags: bit 7 FIN,
// bits 4-6 RSV, low nibble opcode), so inputs reach the message handling behind the framing.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "protocol/ws_frame.hpp"
#include "realtime/handler.hpp"
#include "realtime/hub.hpp"

namespace {

class FuzzServer {
 public:
  FuzzServer() : hub_(realtime::HubOptions{1, 16, "fuzz"}) {
    realtime::HandlerConfig config;
    config.max_message_bytes = 4096;
    config.rate_limit = 1e9;  // let every message through to the handling under test
    config.rate_burst = 1e9;
    config.send_queue_bytes = 1 << 20;
    handler_ = std::make_unique<realtime::Handler>(hub_, config);
    hub_.start();
    if (handler_->listen("127.0.0.1", 0)) std::abort();
    port_ = handler_->port();
  }
  std::uint16_t port() const { return port_; }

 private:
  realtime::Hub hub_;
  std::unique_ptr<realtime::Handler> handler_;
  std::uint16_t port_ = 0;
};

// Lives as long as the process and is never destroyed: its I/O threads keep running until exit,
// which also keeps static-destruction order (OpenSSL's own atexit cleanup among it) out of the
// findings.
FuzzServer& server() {
  static auto* instance = new FuzzServer;
  return *instance;
}

int connect_upgraded(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  // 5 s for the upgrade (a busy machine is no finding), 1 s for what follows it.
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  static constexpr char kRequest[] =
      "GET /ws/fuzz HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (::send(fd, kRequest, sizeof kRequest - 1, MSG_NOSIGNAL) < 0) {
    ::close(fd);
    return -1;
  }
  std::string response;
  char buffer[512];
  while (response.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) {
      ::close(fd);
      return -1;
    }
    response.append(buffer, static_cast<std::size_t>(n));
  }
  if (response.rfind("HTTP/1.1 101", 0) != 0) std::abort();  // the server stopped upgrading
  timeout = timeval{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return fd;
}

// Builds masked frames from [flags][length][payload...] records.
std::string structured_frames(const std::uint8_t* data, std::size_t size) {
  std::string out;
  std::size_t i = 0;
  std::uint32_t mask = 0x9e3779b9;
  while (i + 2 <= size) {
    const std::uint8_t flags = data[i];
    std::size_t length = data[i + 1];
    i += 2;
    length = std::min(length, size - i);
    std::uint8_t header[realtime::protocol::kMaxFrameHeader];
    const std::size_t header_size = realtime::protocol::write_frame_header(
        header, static_cast<realtime::protocol::Opcode>(flags & 0x0F), length, mask);
    header[0] = static_cast<std::uint8_t>((flags & 0xF0) | (flags & 0x0F));  // FIN and RSV as given
    std::string payload(reinterpret_cast<const char*>(data + i), length);
    realtime::protocol::mask_payload(payload.data(), payload.size(), mask);
    out.append(reinterpret_cast<const char*>(header), header_size);
    out += payload;
    i += length;
    mask = mask * 2654435761U + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int fd = connect_upgraded(server().port());
  if (fd < 0) std::abort();  // the server stopped accepting
  const std::string bytes = (data[0] & 1) != 0
                                ? structured_frames(data + 1, size - 1)
                                : std::string(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!bytes.empty()) ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  char buffer[4096];
  while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
  }
  ::close(fd);
  return 0;
}
