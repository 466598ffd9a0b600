// Micro-benchmarks of the JSON codecs the server runs per message: envelope encoding (once per
// broadcast), client message decoding (once per received message) and UTF-8 validation (every text
// frame).
#include <chrono>
#include <string>

#include <benchmark/benchmark.h>

#include "protocol/envelope.hpp"
#include "protocol/utf8.hpp"
#include "realtime/message.hpp"

namespace realtime::bench {
namespace {

Message sample_message() {
  Message m;
  m.id = "1700000000000-000042";
  m.type = MessageType::chat;
  m.room = "general";
  m.from = "c-8f3a2b";
  m.data = R"({"text":"hello there, this is a chat line of about 100 bytes, quite ordinary"})";
  m.timestamp = Clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
  return m;
}

void BM_EnvelopeToJson(benchmark::State& state) {
  const Message m = sample_message();
  for (auto _ : state) benchmark::DoNotOptimize(to_json(m));
}
BENCHMARK(BM_EnvelopeToJson);

void BM_EnvelopeAppend(benchmark::State& state) {
  const Message m = sample_message();
  std::string out;
  out.reserve(512);
  for (auto _ : state) {
    out.clear();
    protocol::append_envelope(out, m);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_EnvelopeAppend);

void BM_ClientMessageDecode(benchmark::State& state) {
  const std::string json =
      R"({"type":"chat","data":{"text":"hello there, this is a chat line of about 100 bytes"}})";
  for (auto _ : state) benchmark::DoNotOptimize(protocol::decode_client_message(json));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * json.size()));
}
BENCHMARK(BM_ClientMessageDecode);

void BM_Utf8Ascii(benchmark::State& state) {
  const std::string text(static_cast<std::size_t>(state.range(0)), 'a');
  for (auto _ : state) benchmark::DoNotOptimize(protocol::is_valid_utf8(text));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Utf8Ascii)->Arg(100)->Arg(4096);

void BM_Utf8Mixed(benchmark::State& state) {
  std::string text;
  while (text.size() < static_cast<std::size_t>(state.range(0))) text += "héllo wörld — 日本語 ✓ ";
  for (auto _ : state) benchmark::DoNotOptimize(protocol::is_valid_utf8(text));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_Utf8Mixed)->Arg(100)->Arg(4096);

}  // namespace
}  // namespace realtime::bench

BENCHMARK_MAIN();
