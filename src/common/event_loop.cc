#include "common/event_loop.h"

#include <spdlog/spdlog.h>
#include <asio/post.hpp>

namespace cairn {

EventLoop::EventLoop(std::string name) : name_(std::move(name)) {}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Start() {
  work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      io_.get_executor());
  thread_ = std::thread([this] {
    thread_id_.store(std::this_thread::get_id());
    pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
    io_.run();
  });
}

void EventLoop::Stop() {
  if (!thread_.joinable()) return;
  work_.reset();
  io_.stop();
  thread_.join();
  thread_id_.store(std::thread::id{});
}

void EventLoop::Post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

std::unique_ptr<EventLoop::Timer> EventLoop::RunAfter(std::chrono::milliseconds delay,
                                                      std::function<void()> fn) {
  auto timer = std::make_unique<Timer>(io_);
  timer->timer_.expires_after(delay);
  timer->timer_.async_wait([fn = std::move(fn), live = timer->live_](const std::error_code& ec) {
    if (!ec && *live) fn();
  });
  return timer;
}

size_t EventLoop::PollForTest() {
  thread_id_.store(std::this_thread::get_id());
  io_.restart();
  return io_.poll();
}

}  // namespace cairn
