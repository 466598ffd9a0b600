// realtime-bench: a WebSocket load generator for the realtime server and the peers it is compared
// with. See bench/README.md.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "scenarios.hpp"
#include "server_metrics.hpp"

namespace realtime::bench {
namespace {

constexpr const char* kUsage = R"(usage: realtime-bench SCENARIO [options]

Scenarios (each stops by itself and prints one JSON object on a line):
  idle        open --connections sockets (in --steps), rooms of --members (10), hold them --hold
              seconds; server RSS and kernel memory per socket
  fanout      --rooms x --members, --publishers at --rate publishes/s (open loop); latency, loss
  saturation  fanout stepping the rate by --rate-factor until p99 > --p99-bound-ms; the knee
  hotroom     1 room x --members (1000), --publishers each keeping --window in flight; deliveries/s
  connect     open --connections with --concurrency in flight; upgrades/s
  crosspod    fanout with rooms spread over two or more --target pods (Redis between them)

Options:
  --target HOST:PORT[,HOST:PORT...]  server pod(s) (required)
  --protocol realtime|socketio       wire protocol (socketio: Engine.IO v4 / Socket.IO v5 framing)
  --label NAME                       name of the server under test in the output
  --server-pid PID[,PID...]          server processes, for CPU and memory figures
  --redis-pid PID                    Redis server process, for its CPU
  --redis-port PORT                  Redis on 127.0.0.1:PORT, for the PUBLISH commands it ran
                                     (INFO commandstats) over the measured window
  --threads N                        generator I/O threads (1)
  --sources N                        source addresses 127.0.0.1..N (4)
  --connections N  --rooms N  --members N  --publishers N
  --rate R  --duration S  --warmup S  --window N  --payload BYTES
  --p99-bound-ms MS  --rate-factor F  --max-steps N  --bisect-steps N (2: after the first rate
                                     past the bound, steps halving the gap to the last within it;
                                     when the first rate is past it, first up to N steps down)
  --hold S  --steps N,N,...  --procs N  --per-process N  --concurrency N  --connect-timeout S
  --room-prefix P                    rooms are named P-0, P-1, ... (bench)
  --pod-placement spread|room        several pods: a room's members spread over them (spread), or
                                     all on one pod, as a load balancer routing by room would (room)
  --json FILE                        also append the result line to FILE
)";

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto end = s.find(sep, start);
    const auto piece = s.substr(start, end == std::string_view::npos ? s.npos : end - start);
    if (!piece.empty()) out.emplace_back(piece);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

Endpoint parse_endpoint(const std::string& text) {
  std::string t = text;
  if (t.rfind("ws://", 0) == 0) t = t.substr(5);
  if (const auto slash = t.find('/'); slash != std::string::npos) t = t.substr(0, slash);
  const auto colon = t.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("--target needs HOST:PORT: " + text);
  Endpoint e;
  e.host = t.substr(0, colon);
  if (e.host == "localhost") e.host = "127.0.0.1";
  e.port = static_cast<std::uint16_t>(std::stoul(t.substr(colon + 1)));
  return e;
}

Options parse(int argc, char** argv) {
  if (argc < 2) throw std::invalid_argument("missing scenario");
  Options o;
  o.scenario = argv[1];
  std::map<std::string, std::string> kv;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument: " + a);
    a = a.substr(2);
    if (const auto eq = a.find('='); eq != std::string::npos) {
      kv[a.substr(0, eq)] = a.substr(eq + 1);
    } else {
      if (i + 1 >= argc) throw std::invalid_argument("--" + a + " needs a value");
      kv[a] = argv[++i];
    }
  }
  auto num = [&](const char* name, auto& field) {
    const auto it = kv.find(name);
    if (it == kv.end()) return;
    try {
      field = static_cast<std::remove_reference_t<decltype(field)>>(std::stod(it->second));
    } catch (const std::exception&) {
      throw std::invalid_argument(std::string("--") + name + ": not a number: " + it->second);
    }
    kv.erase(it);
  };
  auto str = [&](const char* name, std::string& field) {
    const auto it = kv.find(name);
    if (it == kv.end()) return;
    field = it->second;
    kv.erase(it);
  };
  std::string targets, protocol, pids, steps, placement = "spread";
  str("target", targets);
  str("protocol", protocol);
  str("server-pid", pids);
  str("steps", steps);
  str("label", o.label);
  str("room-prefix", o.room_prefix);
  str("pod-placement", placement);
  str("json", o.json_path);
  num("redis-pid", o.redis_pid);
  num("redis-port", o.redis_port);
  num("threads", o.threads);
  num("sources", o.sources);
  num("connections", o.connections);
  num("rooms", o.rooms);
  num("members", o.members);
  num("publishers", o.publishers);
  num("rate", o.rate);
  num("duration", o.duration);
  num("warmup", o.warmup);
  num("window", o.window);
  num("payload", o.payload_pad);
  num("p99-bound-ms", o.p99_bound_ms);
  num("rate-factor", o.rate_factor);
  num("max-steps", o.max_steps);
  num("bisect-steps", o.bisect_steps);
  num("hold", o.hold);
  num("procs", o.procs);
  num("per-process", o.per_process);
  num("concurrency", o.concurrency);
  num("connect-timeout", o.connect_timeout);
  if (!kv.empty()) throw std::invalid_argument("unknown option --" + kv.begin()->first);
  for (const auto& t : split(targets, ',')) o.targets.push_back(parse_endpoint(t));
  if (o.targets.empty()) throw std::invalid_argument("--target HOST:PORT is required");
  if (placement != "spread" && placement != "room") {
    throw std::invalid_argument("--pod-placement must be spread or room");
  }
  o.room_affinity = placement == "room";
  for (const auto& s : split(steps, ','))
    o.steps.push_back(static_cast<std::uint32_t>(std::stoul(s)));
  for (const auto& p : split(pids, ',')) o.server_pids.push_back(static_cast<pid_t>(std::stol(p)));
  if (protocol == "socketio" || protocol == "socket.io") {
    o.protocol = WireProtocol::socketio;
  } else if (!protocol.empty() && protocol != "realtime") {
    throw std::invalid_argument("--protocol must be realtime or socketio");
  }
  if (o.duration <= 0 || o.rate_factor <= 1.0 || o.threads == 0) {
    throw std::invalid_argument("--duration > 0, --rate-factor > 1 and --threads > 0 required");
  }
  return o;
}

}  // namespace
}  // namespace realtime::bench

int main(int argc, char** argv) {
  using namespace realtime::bench;
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "realtime-bench: " << e.what() << "\n\n" << kUsage;
    return 2;
  }
  try {
    // Asked once, before any load: a peer answers /metrics with a 404, and a saturated one late,
    // which in the measured window would stretch it.
    if (o.scenario != "idle" && o.scenario != "connect") {
      o.server_metrics = scrape_latency(o.targets).has_value();
    }
    std::string result;
    if (o.scenario == "idle") {
      result = run_idle(o);
    } else if (o.scenario == "fanout" || o.scenario == "crosspod") {
      result = run_fanout(o);
    } else if (o.scenario == "saturation") {
      result = run_saturation(o);
    } else if (o.scenario == "hotroom") {
      result = run_hotroom(o);
    } else if (o.scenario == "connect") {
      result = run_connect(o);
    } else {
      std::cerr << "realtime-bench: unknown scenario " << o.scenario << "\n\n" << kUsage;
      return 2;
    }
    std::cout << result << std::endl;
    if (!o.json_path.empty()) {
      std::ofstream out(o.json_path, std::ios::app);
      out << result << '\n';
    }
  } catch (const std::exception& e) {
    std::cerr << "realtime-bench: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
