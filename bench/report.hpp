// The JSON and the one-line summaries the scenarios report (fields shared by every scenario, a
// fan-out step's figures).
#pragma once

#include <string>
#include <string_view>

#include "fleet.hpp"
#include "histogram.hpp"
#include "json_writer.hpp"
#include "scenarios.hpp"

namespace realtime::bench {

void write_latency(JsonWriter& j, std::string_view name, const Histogram& h);
void write_common(JsonWriter& j, const Options& o, std::string_view scenario);
// How busy the whole machine was, and how much of that was neither the server nor the generator
// (other programs running at the same time make every figure worse).
void write_machine(JsonWriter& j, double machine_cores, double ours);
// Fields of one fan-out step: throughput, loss, order and latency.
void write_step(JsonWriter& j, const Fleet::StepResult& r, double rate, double duration);
// "p50 … us, p99 … us, p99.9 … us, max … us" for the log line.
std::string summary_latency(const Histogram& h);

}  // namespace realtime::bench
