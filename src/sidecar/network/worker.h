// Worker: one thread running one event loop on edge-triggered epoll — the
// sidecar's unit of parallelism (Envoy's model). A downstream connection is
// accepted by one worker and lives on it for life, together with the upstream
// connections it uses, so the request path takes no locks.
//
// Descriptors are registered once (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)
// and never modified: a proxied request costs its reads and writes and no
// epoll_ctl (asio's async_wait re-registered on every wait: one extra
// syscall per read; docs/decisions.md).
//
// Thread-safety: Post() and RunAndWait() may be called from any thread.
// Everything else, and every object a worker owns, is used only on the
// worker's thread (or before Start()).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "sidecar/network/timeout_list.h"

struct epoll_event;
struct timespec;

namespace cairn::sidecar {

class Connection;

class Worker {
 public:
  using Clock = std::chrono::steady_clock;

  // Receives readiness for one descriptor (epoll event bits).
  class FdHandler {
   public:
    virtual ~FdHandler() = default;
    virtual void OnFdEvents(uint32_t events) = 0;
  };

  explicit Worker(int index);
  ~Worker();  // Stop()
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Start();
  // Stops the loop and joins. Work still queued is dropped.
  void Stop();
  void Post(std::function<void()> fn);
  // Runs fn on the worker and waits for it. REQUIRES: not on this worker.
  void RunAndWait(std::function<void()> fn);

  // Registers fd (edge-triggered, read and write). Returns a token for
  // Unwatch. Events for a descriptor unwatched earlier in the same batch are
  // never delivered.
  absl::Status Watch(int fd, FdHandler* handler, uint64_t* token);
  void Unwatch(int fd, uint64_t token);
  // Descriptors watched now (connections both ways, listeners). Written by
  // this worker only; any thread may read it (relaxed: a hint, not a count
  // to act on exactly).
  int watched_fds() const { return watched_fds_.load(std::memory_order_relaxed); }
  // Client connections this worker serves now (Connection::CountAsDownstream):
  // the load measure that spreads new connections over workers. Not the
  // watched descriptors: idle pooled upstream connections stay behind after a
  // load ends, and counting them sent every connection of the next load to
  // the other worker (h2load -c10: one worker 1.55 s of CPU, the other 0.30 s).
  // Same threading as watched_fds().
  int downstream_connections() const {
    return downstream_connections_.load(std::memory_order_relaxed);
  }
  void AddDownstream(int delta) {
    downstream_connections_.store(downstream_connections_.load(std::memory_order_relaxed) + delta,
                                  std::memory_order_relaxed);
  }

  // One-shot timers. Cancelling an unknown or fired id does nothing.
  using TimerId = uint64_t;
  TimerId RunAt(Clock::time_point when, std::function<void()> fn);
  TimerId RunAfter(std::chrono::milliseconds delay, std::function<void()> fn) {
    return RunAt(Clock::now() + delay, std::move(fn));
  }
  void CancelTimer(TimerId id);

  int index() const { return index_; }
  bool InThread() const { return std::this_thread::get_id() == thread_.get_id(); }

  // Scratch space for socket reads, shared by every connection of this
  // worker: a connection reads only when the socket is readable, into this
  // buffer, and keeps only what its codec must keep. Idle connections thus
  // hold no read buffer (the 4 KB-per-idle-connection goal).
  char* read_buffer() { return read_buffer_.get(); }
  static constexpr size_t kReadBufferSize = 64 * 1024;

  // Write coalescing. While an I/O handler runs (an IoScope is open), a
  // connection that gets bytes to send registers here instead of sending;
  // when the outermost scope closes, every registered connection sends once.
  // A request that turns one downstream read into an upstream write (and a
  // response read into a downstream write) thus costs one send() per side.
  class IoScope {
   public:
    explicit IoScope(Worker& worker) : worker_(worker) { ++worker_.io_scope_depth_; }
    ~IoScope() {
      if (--worker_.io_scope_depth_ == 0) worker_.FlushDirty();
    }

   private:
    Worker& worker_;
  };
  bool in_io_scope() const { return io_scope_depth_ > 0; }
  void AddDirty(Connection* connection) { dirty_.push_back(connection); }
  void RemoveDirty(Connection* connection);

  // The worker's list for timeouts of this duration (created on first use).
  // Worker thread only.
  TimeoutList& Timeouts(std::chrono::milliseconds duration);

 private:
  struct Slot {
    FdHandler* handler = nullptr;
    uint32_t generation = 0;
  };
  void Run();
  void RunTimers();
  void RunPosted();
  void FlushDirty();
  // The wait until the next timer (zero if work is posted); false: none.
  bool NextTimeout(timespec* timeout);
  int WaitForEvents(epoll_event* events, int max_events);

  int index_;
  int epoll_fd_ = -1;
  bool have_epoll_pwait2_ = true;
  int wake_fd_ = -1;  // eventfd: another thread posted work
  std::unique_ptr<char[]> read_buffer_;
  std::thread thread_;
  std::atomic<bool> running_{false};

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::atomic<int> watched_fds_{0};
  std::atomic<int> downstream_connections_{0};

  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;  // guarded by posted_mu_
  bool wake_pending_ = false;                  // guarded by posted_mu_

  TimerId next_timer_id_ = 1;
  std::multimap<Clock::time_point, TimerId> timer_order_;
  std::map<TimerId,
           std::pair<std::multimap<Clock::time_point, TimerId>::iterator, std::function<void()>>>
      timers_;

  int io_scope_depth_ = 0;
  std::vector<Connection*> dirty_;
  std::map<std::chrono::milliseconds, std::unique_ptr<TimeoutList>> timeouts_;
};

}  // namespace cairn::sidecar
