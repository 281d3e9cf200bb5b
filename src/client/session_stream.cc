#include "client/session_stream.h"

#include <utility>

namespace cairn::client_internal {
bool SessionStream::BatchableLocked(const pb::ClientMessage& message) const {
  return message.has_publish() || message.has_unregister() ||
         (server_batches_seen_ && message.has_push_ack());
}

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
  if (started_ && !writing_ && !corked_) StartNextLocked();
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
    CoalesceFrontLocked();
    StartWrite(&queue_.front());
  } else if (close_requested_) {
    writes_done_started_ = true;
    StartWritesDone();
  }
}

void SessionStream::CoalesceFrontLocked() {
  if (queue_.size() < 2 || !BatchableLocked(queue_[0]) || !BatchableLocked(queue_[1])) return;
  // Sizes are cached in the messages, so serializing the batch reuses them.
  size_t bytes = queue_[0].ByteSizeLong() + queue_[1].ByteSizeLong();
  if (bytes > kMaxBatchBytes) return;  // large messages go alone
  size_t taken = 2;
  while (taken < queue_.size() && taken < static_cast<size_t>(kMaxBatchMessages) &&
         BatchableLocked(queue_[taken])) {
    size_t size = queue_[taken].ByteSizeLong();
    if (bytes + size > kMaxBatchBytes) break;
    bytes += size;
    ++taken;
  }
  pb::ClientMessage batch;  // request id 0: the inner messages carry theirs
  auto* messages = batch.mutable_batch()->mutable_messages();
  messages->Reserve(static_cast<int>(taken));
  for (size_t i = 0; i < taken; ++i) *messages->Add() = std::move(queue_[i]);
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
  queue_.push_front(std::move(batch));
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    corked_ = true;
    // Only a server that sends batches takes push acks inside a Batch.
    if (message.has_batch()) server_batches_seen_ = true;
  }
  observer_->OnStreamMessage(this, std::move(message));
  {
    std::lock_guard<std::mutex> lock(mu_);
    corked_ = false;
    if (started_ && !writing_) StartNextLocked();
  }
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
