// EventLoop: one thread running one asio::io_context.
//
// Everything a loop owns is touched only on that loop's thread; other threads
// hand it work with Post(). This is the only cross-thread entry point, so
// objects owned by a loop need no locks.
//
// Thread-safety: Post(), RunAfter() and IsInLoopThread() may be called from
// any thread. Start()/Stop() from the owning (creating) thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

namespace cairn {

class EventLoop {
 public:
  explicit EventLoop(std::string name);
  ~EventLoop();  // Stops and joins if still running.
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Starts the loop thread. REQUIRES: not running.
  void Start();
  // Runs queued work that is already due, then stops and joins the thread.
  // Safe to call twice.
  void Stop();

  // Queues fn to run on the loop thread, in posting order.
  void Post(std::function<void()> fn);

  // Runs fn on the loop thread after delay. The returned handle cancels the
  // timer when Cancel() is called or when the handle is destroyed first.
  class Timer {
   public:
    explicit Timer(asio::io_context& io) : timer_(io), live_(std::make_shared<bool>(true)) {}
    ~Timer() { *live_ = false; }
    void Cancel() {
      *live_ = false;
      timer_.cancel();
    }

   private:
    friend class EventLoop;
    asio::steady_timer timer_;
    // Cleared by Cancel and the destructor. Cancelling an asio timer does not
    // stop a completion that is already queued (the timer expired, its
    // handler has not run yet); the handler checks this flag, so fn never
    // runs once its handle is gone (it may capture objects already freed).
    std::shared_ptr<bool> live_;
  };
  // REQUIRES: called on the loop thread (the handle is owned by loop state).
  std::unique_ptr<Timer> RunAfter(std::chrono::milliseconds delay, std::function<void()> fn);

  bool IsInLoopThread() const { return std::this_thread::get_id() == thread_id_.load(); }

  // Runs ready handlers on the calling thread without a loop thread: for
  // unit tests that drive a loop by hand. Returns the number of handlers run.
  size_t PollForTest();
  asio::io_context& io() { return io_; }

 private:
  std::string name_;
  asio::io_context io_;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
};

}  // namespace cairn
