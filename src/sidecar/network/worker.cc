#include "sidecar/network/worker.h"

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <future>

namespace cairn::sidecar {

Worker::Worker(int index)
    : index_(index), read_buffer_(std::make_unique<char[]>(kReadBufferSize)) {}

Worker::~Worker() { Stop(); }

void Worker::Start() {
  running_ = true;
  thread_ = std::thread([this] {
    std::string name = "cairn-worker-" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
}

void Worker::Stop() {
  if (!running_) return;
  running_ = false;
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void Worker::Post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

void Worker::RunAndWait(std::function<void()> fn) {
  std::promise<void> done;
  Post([&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace cairn::sidecar
