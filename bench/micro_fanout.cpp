// The threading-model choice, measured: delivering one shared frame to the M members of a room on
// two I/O threads, (a) the Beast chat-multi way (one io_context run by 2 threads, a strand per
// connection, one post per member), against (b) realtime's way (one event loop per thread, the
// members sliced per thread, one inbox push and one drain per thread per broadcast). The socket
// write is left out: both end with the frame appended to the member's queue, which is where they
// differ.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

namespace {

namespace asio = boost::asio;
using Frame = std::shared_ptr<const std::string>;
constexpr int kThreads = 2;

struct Member {
  std::vector<Frame> queue;  // what the connection owes; drained after each round
};

void wait_for(const std::atomic<long>& done, long target) {
  while (done.load(std::memory_order_acquire) < target) {
  }
}

// (a) A strand per member on one shared io_context: one post per member per broadcast.
void BM_FanoutStrandPerMember(benchmark::State& state) {
  const auto members = static_cast<int>(state.range(0));
  asio::io_context context(kThreads);
  auto guard = asio::make_work_guard(context);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back([&] { context.run(); });
  std::vector<asio::strand<asio::io_context::executor_type>> strands;
  std::vector<Member> room(static_cast<std::size_t>(members));
  for (int i = 0; i < members; ++i) strands.push_back(asio::make_strand(context));
  const Frame frame = std::make_shared<const std::string>(120, 'x');
  std::atomic<long> done{0};
  long target = 0;
  for (auto _ : state) {
    target += members;
    for (int i = 0; i < members; ++i) {
      asio::post(strands[static_cast<std::size_t>(i)], [&, i] {
        auto& member = room[static_cast<std::size_t>(i)];
        member.queue.push_back(frame);
        member.queue.clear();
        done.fetch_add(1, std::memory_order_release);
      });
    }
    wait_for(done, target);
  }
  guard.reset();
  context.stop();
  for (auto& thread : threads) thread.join();
  state.SetItemsProcessed(state.iterations() * members);
}

// (b) One event loop per thread with its slice of the room: one inbox push (mutex) and one drain
// per thread per broadcast, then a plain loop over the local members.
struct Shard {
  asio::io_context context{1};
  std::mutex mutex;
  std::vector<Frame> inbox;
  bool posted = false;
  std::vector<Member> members;
  std::vector<Frame> draining;
};

void BM_FanoutInboxPerShard(benchmark::State& state) {
  const auto members = static_cast<int>(state.range(0));
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<std::thread> threads;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (int i = 0; i < kThreads; ++i) {
    shards.push_back(std::make_unique<Shard>());
    shards.back()->members.resize(static_cast<std::size_t>(members / kThreads));
  }
  for (auto& shard : shards) {
    guards.emplace_back(shard->context.get_executor());
    threads.emplace_back([&context = shard->context] { context.run(); });
  }
  const Frame frame = std::make_shared<const std::string>(120, 'x');
  std::atomic<long> done{0};
  long target = 0;
  for (auto _ : state) {
    target += kThreads;
    for (auto& shard_ptr : shards) {
      Shard* shard = shard_ptr.get();
      bool post = false;
      {
        std::lock_guard lock(shard->mutex);
        shard->inbox.push_back(frame);
        post = !shard->posted;
        shard->posted = true;
      }
      if (!post) continue;
      asio::post(shard->context, [shard, &done] {
        {
          std::lock_guard lock(shard->mutex);
          shard->draining.swap(shard->inbox);
          shard->posted = false;
        }
        for (const Frame& f : shard->draining) {
          for (Member& member : shard->members) member.queue.push_back(f);
          done.fetch_add(1, std::memory_order_release);
        }
        for (Member& member : shard->members) member.queue.clear();
        shard->draining.clear();
      });
    }
    wait_for(done, target);
  }
  guards.clear();
  for (auto& thread : threads) thread.join();
  state.SetItemsProcessed(state.iterations() * members);
}

BENCHMARK(BM_FanoutStrandPerMember)->Arg(10)->Arg(1000)->UseRealTime();
BENCHMARK(BM_FanoutInboxPerShard)->Arg(10)->Arg(1000)->UseRealTime();

}  // namespace
