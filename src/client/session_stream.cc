#include "client/session_stream.h"

#include <utility>

namespace cairn::client_internal {

SessionStream::SessionStream(StreamObserver* observer, uint64_t generation, std::string server)
    : observer_(observer), generation_(generation), server_(std::move(server)) {
  // Our own backoff and server rotation handle an unreachable server; waiting
  // inside gRPC would hide the failure from them.
  context_.set_wait_for_ready(false);
}

void SessionStream::Start(pb::Registry::Stub* stub) {
  stub->async()->Session(&context_, this);
  {
    std::lock_guard<std::mutex> lock(mu_);
    started_ = true;
    // Writes started before StartCall are held by gRPC until the call starts.
    StartNextLocked();
  }
  StartRead(&read_buffer_);
  StartCall();
}

bool SessionStream::Send(pb::ClientMessage message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (broken_ || close_requested_) return false;
  queue_.push_back(std::move(message));
  if (started_ && !writing_) StartNextLocked();
  return true;
}

void SessionStream::CloseWrites() {
  std::lock_guard<std::mutex> lock(mu_);
  if (close_requested_) return;
  close_requested_ = true;
  if (started_ && !writing_) StartNextLocked();
}

bool SessionStream::writable() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !broken_ && !close_requested_;
}

void SessionStream::StartNextLocked() {
  if (broken_ || writing_ || writes_done_started_) return;
  if (!queue_.empty()) {
    writing_ = true;
    StartWrite(&queue_.front());
  } else if (close_requested_) {
    writes_done_started_ = true;
    StartWritesDone();
  }
}

void SessionStream::OnReadDone(bool ok) {
  if (!ok) {
    // The server ended the stream (or it broke); OnDone follows once the
    // writes in flight complete. No new reads or writes.
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = true;
    return;
  }
  pb::ServerMessage message = std::move(read_buffer_);
  read_buffer_.Clear();
  observer_->OnStreamMessage(this, std::move(message));
  StartRead(&read_buffer_);
}

void SessionStream::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = false;
  if (!queue_.empty()) queue_.pop_front();
  if (!ok) {
    broken_ = true;
    queue_.clear();
    return;
  }
  StartNextLocked();
}

void SessionStream::OnWritesDoneDone(bool ok) {
  if (ok) observer_->OnStreamDrained(this);
}

void SessionStream::OnDone(const grpc::Status& status) {
  // Must be the last statement: the owner may delete `this` once it sees it.
  observer_->OnStreamDone(this, status);
}

}  // namespace cairn::client_internal
