// The two long-lived parts of EtcdClient: LeaseKeeper and Watch.
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "coord/etcd_client.h"
#include "coord/etcd_stubs.h"

namespace cairn::coord {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- LeaseKeeper

struct LeaseKeeper::State {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;  // guarded by mu
  bool lost = false;  // guarded by mu
  // guarded by mu: the send time of the last renewal etcd confirmed.
  Clock::time_point renewed_at = Clock::now();
  std::thread thread;
};

LeaseKeeper::LeaseKeeper(EtcdClient& client, int64_t lease, std::chrono::seconds ttl,
                         std::function<void()> on_lost)
    : client_(client),
      lease_(lease),
      ttl_(ttl),
      on_lost_(std::move(on_lost)),
      state_(std::make_unique<State>()) {
  state_->thread = std::thread([this] { Run(); });
}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  state_->thread.join();
}

bool LeaseKeeper::lost() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  // The clock, not only the keeper's thread, decides: a process frozen past
  // the TTL (SIGSTOP, a stalled VM) must not believe in its lease for the
  // moment it takes the thread to notice after waking up.
  return state_->lost || Clock::now() - state_->renewed_at >= ttl_;
}

void LeaseKeeper::Run() {
  const auto interval = std::max<Clock::duration>(std::chrono::milliseconds(300), ttl_ / 3);
  // The server renewed the lease at some moment between sending and the
  // answer, so it expires no earlier than send time + ttl: counting from the
  // send time makes us give the lease up no later than etcd does.
  Clock::time_point renewed_at = Clock::now();
  bool lost = false;
  for (;;) {
    const Clock::time_point sent_at = Clock::now();
    grpc::ClientContext context;
    SetDeadline(context, client_.options().request_timeout);
    auto stream = client_.stubs_->lease->LeaseKeepAlive(&context);
    etcdserverpb::LeaseKeepAliveRequest request;
    request.set_id(lease_);
    etcdserverpb::LeaseKeepAliveResponse response;
    bool answered = stream->Write(request) && stream->WritesDone() && stream->Read(&response);
    context.TryCancel();  // one exchange per stream; Finish must not wait
    stream->Finish().IgnoreError();
    Clock::time_point next;
    if (answered && response.ttl() > 0) {
      renewed_at = sent_at;
      next = sent_at + interval;
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->renewed_at = sent_at;
    } else if (answered || Clock::now() - renewed_at >= ttl_) {
      lost = true;  // etcd says the lease is gone, or it has expired by now
    } else {
      next = Clock::now() + std::chrono::milliseconds(250);
    }
    if (!lost && next > renewed_at + ttl_) next = renewed_at + ttl_;
    std::unique_lock<std::mutex> lock(state_->mu);
    if (state_->stop) return;
    if (lost) {
      state_->lost = true;
      break;
    }
    state_->cv.wait_until(lock, next, [this] { return state_->stop; });
    if (state_->stop) return;
  }
  if (on_lost_) on_lost_();
}

// ---------------------------------------------------------------- Watch

struct Watch::State {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;                       // guarded by mu
  bool created = false;                    // guarded by mu
  int reconnects = 0;                      // guarded by mu
  grpc::ClientContext* context = nullptr;  // guarded by mu; the open stream's
  int64_t next_revision = 0;               // watch thread only
  std::thread thread;
};

Watch::Watch(EtcdClient& client, std::string prefix, int64_t start_revision,
             EventsCallback on_events, ErrorCallback on_error)
    : client_(client),
      prefix_(std::move(prefix)),
      on_events_(std::move(on_events)),
      on_error_(std::move(on_error)),
      state_(std::make_unique<State>()) {
  state_->next_revision = start_revision;
  state_->thread = std::thread([this] { Run(); });
}

Watch::~Watch() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
    if (state_->context != nullptr) state_->context->TryCancel();
  }
  state_->cv.notify_all();
  state_->thread.join();
}

bool Watch::WaitUntilCreated(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(state_->mu);
  return state_->cv.wait_for(lock, timeout, [this] { return state_->created; });
}

int Watch::reconnects() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->reconnects;
}

void Watch::Run() {
  auto backoff = std::chrono::milliseconds(100);
  for (;;) {
    grpc::ClientContext context;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      if (state_->stop) return;
      state_->context = &context;
    }
    auto stream = client_.stubs_->watch->Watch(&context);
    etcdserverpb::WatchRequest request;
    auto* create = request.mutable_create_request();
    create->set_key(prefix_);
    create->set_range_end(PrefixRangeEnd(prefix_));
    create->set_start_revision(state_->next_revision);
    absl::Status fatal;
    if (stream->Write(request)) {
      etcdserverpb::WatchResponse response;
      while (stream->Read(&response)) {
        if (response.compact_revision() > 0) {
          fatal = absl::OutOfRangeError(
              absl::StrCat("etcd watch of ", prefix_, ": revision ", state_->next_revision,
                           " was compacted (oldest kept: ", response.compact_revision(), ")"));
          break;
        }
        if (response.canceled()) {
          fatal = absl::AbortedError(
              absl::StrCat("etcd watch of ", prefix_, " canceled: ", response.cancel_reason()));
          break;
        }
        if (response.created()) {
          // From now on a reconnect must resume after what this stream has
          // seen, even if no event came: "now" would skip changes made while
          // disconnected.
          if (state_->next_revision == 0) state_->next_revision = response.header().revision() + 1;
          backoff = std::chrono::milliseconds(100);
          {
            std::lock_guard<std::mutex> lock(state_->mu);
            state_->created = true;
          }
          state_->cv.notify_all();
        }
        if (response.events_size() == 0) continue;
        std::vector<WatchEvent> events;
        events.reserve(static_cast<size_t>(response.events_size()));
        for (const auto& event : response.events()) {
          events.push_back(WatchEvent{event.type() == mvccpb::Event::DELETE
                                          ? WatchEvent::Type::kDelete
                                          : WatchEvent::Type::kPut,
                                      FromProto(event.kv())});
        }
        int64_t revision = events.back().kv.mod_revision;
        state_->next_revision = revision + 1;
        on_events_(events, revision);
      }
    }
    context.TryCancel();
    stream->Finish().IgnoreError();
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->context = nullptr;
    if (state_->stop) return;
    if (!fatal.ok()) {
      lock.unlock();
      if (on_error_) on_error_(fatal);
      return;
    }
    ++state_->reconnects;
    state_->cv.wait_for(lock, backoff, [this] { return state_->stop; });
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

}  // namespace cairn::coord
