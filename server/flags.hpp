// realtime-server's command line: every flag of the contract, each also read from REALTIME_<FLAG>.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace realtime::server {

struct Flags {
  std::string listen_host = "0.0.0.0";
  std::uint16_t listen_port = 8080;
  std::string redis;  // empty: single pod
  std::string pod_id;
  unsigned threads = 0;
  bool auth_required = false;
  std::string jwt_secret;
  std::string jwt_public_key_file;
  std::string jwt_issuer;
  std::string jwt_audience;
  std::string api_key;
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_ip = 0;
  unsigned handshake_timeout = 10;
  std::size_t max_message_bytes = 65536;
  double rate_limit = 20;
  double rate_burst = 40;
  double connect_rate = 20;  // sockets a client may open per second (0: no limit)
  double connect_burst = 40;
  std::size_t history_size = 100;
  std::size_t history_bytes = std::size_t{256} << 20;
  std::vector<std::string> allowed_origins;
  unsigned ping_interval = 25;
  unsigned pong_timeout = 60;
  std::size_t send_queue_bytes = 1048576;
  std::string log_format = "text";
  std::string log_level = "info";
};

// Parses argv (and the environment). On --help prints usage and exits 0; on a bad flag or value
// prints a message naming it and exits 2.
Flags parse_flags(int argc, char** argv);

}  // namespace realtime::server
