// The scenarios of realtime-bench: idle, fanout, saturation, hotroom, connect, crosspod. Each one
// stops by itself and returns one JSON object (a line) describing what it measured.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

#include "client.hpp"

namespace realtime::bench {

struct Options {
  std::string scenario;
  std::string label = "realtime";  // which server this is (realtime, bun, node-ws, ...)
  WireProtocol protocol = WireProtocol::realtime;
  std::vector<Endpoint> targets;
  std::vector<pid_t> server_pids;  // for CPU and RSS figures
  pid_t redis_pid = 0;
  std::uint16_t redis_port = 0;  // Redis on 127.0.0.1, for the PUBLISH commands it ran
  // The targets serve realtime-server's /metrics (probed once, before any load): only then is it
  // read in a measured window.
  bool server_metrics = false;
  unsigned threads = 1;           // generator I/O threads
  unsigned sources = 4;           // source addresses 127.0.0.1 .. 127.0.0.N
  std::uint32_t connections = 0;  // idle, connect
  std::uint32_t rooms = 0;
  std::uint32_t members = 0;
  std::uint32_t publishers = 0;
  double rate = 1000;  // publishes per second, all publishers together
  double duration = 5;
  double warmup = 1;
  std::uint32_t window = 8;  // hotroom: messages in flight per publisher
  double p99_bound_ms = 5;
  double rate_factor = 1.5;
  std::uint32_t max_steps = 8;
  std::uint32_t bisect_steps = 2;  // saturation: steps between the last rate within the bound and
                                   // the first past it
  double hold = 5;
  std::vector<std::uint32_t> steps;  // idle: socket counts at which memory is also measured
  std::uint32_t procs = 0;           // idle: generator processes (0: as many as the fd limit needs)
  std::uint32_t per_process = 18000;
  std::uint32_t concurrency = 256;  // connections being set up at once
  std::uint32_t payload_pad = 40;
  double connect_timeout = 60;
  std::string room_prefix = "bench";
  bool room_affinity = false;  // several pods: a room's members all on one pod (else spread)
  std::string json_path;       // append the result line here too
};

std::string run_idle(const Options& o);
std::string run_fanout(const Options& o);  // also crosspod (two or more targets)
std::string run_saturation(const Options& o);
std::string run_hotroom(const Options& o);
std::string run_connect(const Options& o);

}  // namespace realtime::bench
