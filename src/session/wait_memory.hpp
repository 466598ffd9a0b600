// WaitMemory: room inside a session for its one outstanding wait for readability.
//
// Why: Asio allocates each operation from blocks it recycles per thread, sized for the largest
// operation the thread has run. On an I/O thread that is the HTTP request read (~400 bytes), so an
// idle WebSocket, whose only pending operation is a wait for readability (104 bytes on a
// TcpSocket), held a ~400-byte block. With WaitAllocator bound to the wait's handler
// (boost::asio::bind_allocator), Asio builds the operation here instead.
//
// One operation at a time: Asio frees an operation's memory before it calls the handler, so the
// handler may start the next wait. A request that does not fit (another Asio version, another
// handler) or that comes while the room is taken falls back to the heap, counted in
// heap_fallbacks().
//
// Thread safety: none; the session's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace realtime::detail {

class WaitMemory {
 public:
  // Fits Asio 1.81's reactive wait operation for a handler holding a shared_ptr and this
  // allocator, on a TcpSocket (104 bytes; 208 with the polymorphic executor).
  static constexpr std::size_t kSize = 104;

  WaitMemory() = default;
  WaitMemory(const WaitMemory&) = delete;
  WaitMemory& operator=(const WaitMemory&) = delete;

  void* allocate(std::size_t size) {
    if (!in_use_ && size <= kSize) {
      in_use_ = true;
      return storage_;
    }
    ++heap_fallbacks_;
    return ::operator new(size);
  }
  void deallocate(void* pointer) noexcept {
    if (pointer == static_cast<void*>(storage_)) {
      in_use_ = false;
    } else {
      ::operator delete(pointer);
    }
  }
  bool in_use() const noexcept { return in_use_; }
  std::uint32_t heap_fallbacks() const noexcept { return heap_fallbacks_; }

 private:
  alignas(std::max_align_t) unsigned char storage_[kSize];
  bool in_use_ = false;
  std::uint32_t heap_fallbacks_ = 0;
};

// The allocator Asio sees (rebound to its operation type).
template <class T>
class WaitAllocator {
 public:
  using value_type = T;
  explicit WaitAllocator(WaitMemory& memory) noexcept : memory_(&memory) {}
  template <class U>
  WaitAllocator(const WaitAllocator<U>& other) noexcept  // NOLINT(google-explicit-constructor)
      : memory_(other.memory()) {}

  T* allocate(std::size_t n) { return static_cast<T*>(memory_->allocate(n * sizeof(T))); }
  void deallocate(T* pointer, std::size_t) noexcept { memory_->deallocate(pointer); }
  WaitMemory* memory() const noexcept { return memory_; }

  template <class U>
  bool operator==(const WaitAllocator<U>& other) const noexcept {
    return memory_ == other.memory();
  }

 private:
  WaitMemory* memory_;
};

}  // namespace realtime::detail
