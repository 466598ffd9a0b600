// Runs that need more sockets than one process may hold (the fd limit): generator processes
// forked from realtime-bench, each with its share of the connections, coordinated through pipes.
#pragma once

#include <cstdint>
#include <string>

#include "fleet.hpp"
#include "scenarios.hpp"

namespace realtime::bench {

// The fan-out step over several generator processes (more sockets than one process may hold).
struct ProcsStep {
  Fleet::StepResult result;
  std::uint32_t connected = 0;
  std::uint32_t failed = 0;
  double connect_seconds = 0;
  std::string first_error;
};
ProcsStep fanout_step_procs(const Options& o, const Plan& plan, std::uint32_t procs);

}  // namespace realtime::bench
