#include "sidecar/network/worker.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <future>

#include "absl/strings/str_cat.h"
#include "sidecar/network/connection.h"

namespace cairn::sidecar {
namespace {

// Slot index in the high half of epoll_event.data, generation in the low
// half: a stale event (descriptor unwatched earlier in the batch) carries an
// old generation and is dropped.
constexpr uint64_t kWakeToken = ~uint64_t{0};
uint64_t MakeToken(uint32_t slot, uint32_t generation) {
  return (uint64_t{slot} << 32) | generation;
}

}  // namespace

Worker::Worker(int index) : index_(index), read_buffer_(std::make_unique<char[]>(kReadBufferSize)) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeToken;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

Worker::~Worker() {
  Stop();
  timeouts_.clear();
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

void Worker::Start() {
  running_ = true;
  thread_ = std::thread([this] {
    std::string name = "cairn-worker-" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    Run();
  });
}

void Worker::Stop() {
  if (!running_.exchange(false)) return;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

void Worker::Post(std::function<void()> fn) {
  bool wake = false;
  {
    std::lock_guard lock(posted_mu_);
    posted_.push_back(std::move(fn));
    if (!wake_pending_ && !InThread()) {
      wake_pending_ = true;
      wake = true;
    }
  }
  if (wake) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
}

void Worker::RunAndWait(std::function<void()> fn) {
  std::promise<void> done;
  Post([&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

absl::Status Worker::Watch(int fd, FdHandler* handler, uint64_t* token) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back({});
  }
  slots_[slot].handler = handler;
  *token = MakeToken(slot, slots_[slot].generation);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = *token;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int err = errno;
    slots_[slot].handler = nullptr;
    ++slots_[slot].generation;
    free_slots_.push_back(slot);
    return absl::InternalError(absl::StrCat("epoll_ctl: ", std::strerror(err)));
  }
  watched_fds_.store(watched_fds_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void Worker::Unwatch(int fd, uint64_t token) {
  uint32_t slot = static_cast<uint32_t>(token >> 32);
  if (slot >= slots_.size() || slots_[slot].generation != static_cast<uint32_t>(token)) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  watched_fds_.store(watched_fds_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  slots_[slot].handler = nullptr;
  ++slots_[slot].generation;
  free_slots_.push_back(slot);
}

Worker::TimerId Worker::RunAt(Clock::time_point when, std::function<void()> fn) {
  TimerId id = next_timer_id_++;
  auto it = timer_order_.emplace(when, id);
  timers_.emplace(id, std::make_pair(it, std::move(fn)));
  return id;
}

void Worker::CancelTimer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  timer_order_.erase(it->second.first);
  timers_.erase(it);
}

bool Worker::NextTimeout(timespec* timeout) {
  {
    std::lock_guard lock(posted_mu_);
    if (!posted_.empty()) {
      *timeout = {};
      return true;
    }
  }
  if (timer_order_.empty()) return false;
  auto wait = timer_order_.begin()->first - Clock::now();
  if (wait <= Clock::duration::zero()) {
    *timeout = {};
    return true;
  }
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
  timeout->tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  timeout->tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return true;
}

int Worker::WaitForEvents(epoll_event* events, int max_events) {
  timespec timeout{};
  bool bounded = NextTimeout(&timeout);
  if (have_epoll_pwait2_) {
    // Nanosecond timeout: sub-millisecond timers (a held HTTP/2 flush)
    // fire on time instead of a millisecond late.
    int n = epoll_pwait2(epoll_fd_, events, max_events, bounded ? &timeout : nullptr, nullptr);
    if (n >= 0 || errno != ENOSYS) return n;
    have_epoll_pwait2_ = false;  // kernel < 5.11
  }
  int ms = -1;
  if (bounded) {
    // Round up: waking early would spin until the deadline.
    auto ns = std::chrono::seconds(timeout.tv_sec) + std::chrono::nanoseconds(timeout.tv_nsec);
    ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(ns).count());
  }
  return epoll_wait(epoll_fd_, events, max_events, ms);
}

void Worker::RunTimers() {
  auto now = Clock::now();
  while (!timer_order_.empty() && timer_order_.begin()->first <= now) {
    TimerId id = timer_order_.begin()->second;
    timer_order_.erase(timer_order_.begin());
    auto it = timers_.find(id);
    std::function<void()> fn = std::move(it->second.second);
    timers_.erase(it);
    IoScope scope(*this);
    fn();
  }
}

void Worker::RunPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(posted_mu_);
    batch.swap(posted_);
    wake_pending_ = false;
  }
  IoScope scope(*this);
  for (auto& fn : batch) fn();
}

void Worker::Run() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  while (running_.load(std::memory_order_relaxed)) {
    int n = WaitForEvents(events, kMaxEvents);
    if (n < 0 && errno != EINTR) break;
    {
      IoScope scope(*this);
      for (int i = 0; i < n; ++i) {
        uint64_t token = events[i].data.u64;
        if (token == kWakeToken) {
          uint64_t value;
          (void)!read(wake_fd_, &value, sizeof(value));
          continue;
        }
        uint32_t slot = static_cast<uint32_t>(token >> 32);
        if (slot >= slots_.size()) continue;
        Slot& s = slots_[slot];
        if (s.handler == nullptr || s.generation != static_cast<uint32_t>(token)) continue;
        s.handler->OnFdEvents(events[i].events);
      }
    }
    RunTimers();
    RunPosted();
  }
}

TimeoutList& Worker::Timeouts(std::chrono::milliseconds duration) {
  auto& list = timeouts_[duration];
  if (list == nullptr) list = std::make_unique<TimeoutList>(*this, duration);
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

}  // namespace cairn::sidecar
