// Micro-benchmarks of the WebSocket framing the server runs per message: header encoding (every
// frame it sends), masking and parsing client frames.
#include <cstdint>
#include <string>
#include <string_view>

#include <benchmark/benchmark.h>

#include "protocol/ws_frame.hpp"

namespace realtime::bench {
namespace {

class NullSink final : public protocol::FrameSink {
 public:
  void on_text(std::string_view m) override { bytes_ += m.size(); }
  void on_binary(std::string_view m) override { bytes_ += m.size(); }
  void on_ping(std::string_view) override {}
  void on_pong(std::string_view) override {}
  void on_close(std::uint16_t, std::string_view) override {}
  void on_protocol_error(std::uint16_t, std::string_view) override {}
  std::size_t bytes_ = 0;
};

void BM_FrameHeaderEncode(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::uint8_t out[protocol::kMaxFrameHeader];
  for (auto _ : state) {
    benchmark::DoNotOptimize(protocol::write_frame_header(out, protocol::Opcode::text, size));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_FrameHeaderEncode)->Arg(100)->Arg(1000)->Arg(70000);

void BM_MaskPayload(benchmark::State& state) {
  std::string payload(static_cast<std::size_t>(state.range(0)), 'a');
  for (auto _ : state) {
    protocol::mask_payload(payload.data(), payload.size(), 0x12345678U);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_MaskPayload)->Arg(100)->Arg(4096);

// A read of 32 masked client frames of ~100 bytes, as a busy socket delivers them.
void BM_ParseClientFrames(benchmark::State& state) {
  const std::string message(
      R"({"type":"chat","data":{"text":"hello there, this is a chat line of about 100 bytes"}})");
  std::string wire;
  for (int i = 0; i < 32; ++i) {
    wire += protocol::encode_client_frame(protocol::Opcode::text, message, 0xA1B2C3D4U);
  }
  std::string scratch = wire;
  protocol::FrameParser parser(65536, protocol::FrameParser::Role::server);
  NullSink sink;
  for (auto _ : state) {
    scratch.assign(wire);  // the parser unmasks in place
    parser.feed(scratch.data(), scratch.size(), sink);
  }
  benchmark::DoNotOptimize(sink.bytes_);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 32);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_ParseClientFrames);

}  // namespace
}  // namespace realtime::bench
