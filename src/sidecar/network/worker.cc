#include "sidecar/network/worker.h"

#include "sidecar/network/connection.h"

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
  timeouts_.clear();
}

TimeoutList& Worker::Timeouts(std::chrono::milliseconds duration) {
  auto& list = timeouts_[duration];
  if (list == nullptr) list = std::make_unique<TimeoutList>(io_, duration);
  return *list;
}

void Worker::RemoveDirty(Connection* connection) {
  for (auto& c : dirty_) {
    if (c == connection) c = nullptr;
  }
}

void Worker::FlushDirty() {
  // Flushing can close connections (and so call handlers that write again):
  // loop until nothing new was registered.
  ++io_scope_depth_;
  while (!dirty_.empty()) {
    std::vector<Connection*> batch;
    batch.swap(dirty_);
    for (Connection* c : batch) {
      if (c != nullptr) c->FlushFromWorker();
    }
  }
  --io_scope_depth_;
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
