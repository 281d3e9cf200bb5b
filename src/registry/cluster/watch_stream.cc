#include "registry/cluster/watch_stream.h"

namespace cairn::cluster {

void WatchStream::PumpLocked() {
  if (reactor_ == nullptr || writing_ || finished_) return;
  if (finish_requested_) {
    finished_ = true;
    reactor_->Finish(finish_status_);
    return;
  }
  if (queue_.empty()) return;
  writing_ = true;
  reactor_->StartWrite(&queue_.front());
}

bool WatchStream::Send(const cpb::ChangeNotice& notice) {
  std::lock_guard lock(mu_);
  if (reactor_ == nullptr || finish_requested_) return false;
  if (queue_.size() >= 10000) {
    // A session this far behind is better off starting over: it reconnects
    // and re-fetches what its subscribers need.
    queue_.erase(queue_.begin() + (writing_ ? 1 : 0), queue_.end());
    finish_requested_ = true;
    finish_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  "change notices queued beyond 10000; reconnect");
    PumpLocked();
    return false;
  }
  queue_.push_back(notice);
  PumpLocked();
  return true;
}

void WatchStream::Close(grpc::Status status) {
  std::lock_guard lock(mu_);
  if (finish_requested_) return;
  queue_.erase(queue_.begin() + (writing_ ? 1 : 0), queue_.end());
  finish_requested_ = true;
  finish_status_ = std::move(status);
  PumpLocked();
}

}  // namespace cairn::cluster
