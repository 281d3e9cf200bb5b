// Worker: one thread running one asio::io_context — the sidecar's unit of
// parallelism (Envoy's model). A downstream connection is accepted by one
// worker and lives on it for life, together with the upstream connections it
// uses, so the request path takes no locks.
//
// Thread-safety: Post() may be called from any thread. Everything else, and
// every object a worker owns, is used only on the worker's thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <asio/io_context.hpp>
#include <map>
#include <vector>

#include "sidecar/network/timeout_list.h"

namespace cairn::sidecar {

class Worker {
 public:
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

  asio::io_context& io() { return io_; }
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
  void AddDirty(class Connection* connection) { dirty_.push_back(connection); }
  void RemoveDirty(class Connection* connection);

  // The worker's list for timeouts of this duration (created on first use).
  // Worker thread only.
  TimeoutList& Timeouts(std::chrono::milliseconds duration);

 private:
  int index_;
  asio::io_context io_{1};  // concurrency hint 1: one thread, no internal locking
  std::unique_ptr<char[]> read_buffer_;
  std::thread thread_;
  bool running_ = false;
  std::map<std::chrono::milliseconds, std::unique_ptr<TimeoutList>> timeouts_;
  void FlushDirty();
  int io_scope_depth_ = 0;
  std::vector<class Connection*> dirty_;
};

}  // namespace cairn::sidecar
