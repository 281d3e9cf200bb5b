// WatchStream: the server side of one session's DataNode.Watch stream (the
// change feed of the data role, data_role.h). Internal to the data role.
//
// Thread-safety: Send and Close may be called from any thread (the data
// role calls them on its loop); the reactor's reactions run on gRPC threads.
// The stream only calls Finish while no write is outstanding, and only once.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "cairn/cluster/v1/cluster.grpc.pb.h"

namespace cairn::cluster {

namespace cpb = ::cairn::cluster::v1;

// One session's Watch stream. The loop queues notices with Send(); gRPC
// threads write them one at a time. The state is shared by the reactor (until
// OnDone) and the loop's watcher list (until the loop drops it). Finish is
// only called while no write is outstanding.
class WatchStream {
 public:
  class Reactor;
  // From the loop: queues one notice. False once the stream is over.
  bool Send(const cpb::ChangeNotice& notice);
  // From any thread: ends the stream with `status` once the current write is done.
  void Close(grpc::Status status);

 private:
  friend class Reactor;
  // REQUIRES: mu_ held. Starts the next write, or the Finish once asked for.
  void PumpLocked();

  std::mutex mu_;
  Reactor* reactor_ = nullptr;  // null once the stream is over
  std::deque<cpb::ChangeNotice> queue_;
  bool writing_ = false;
  bool finish_requested_ = false;
  bool finished_ = false;
  grpc::Status finish_status_;
};

class WatchStream::Reactor final : public grpc::ServerWriteReactor<cpb::ChangeNotice> {
 public:
  Reactor(std::shared_ptr<WatchStream> state, std::function<void()> on_done)
      : state_(std::move(state)), on_done_(std::move(on_done)) {
    std::lock_guard lock(state_->mu_);
    state_->reactor_ = this;
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(state_->mu_);
    state_->queue_.pop_front();
    state_->writing_ = false;
    if (!ok) {  // the stream broke; no more writes, but it must still finish
      state_->queue_.clear();
      if (!state_->finish_requested_) {
        state_->finish_requested_ = true;
        state_->finish_status_ = grpc::Status::CANCELLED;
      }
    }
    state_->PumpLocked();
  }
  void OnCancel() override { state_->Close(grpc::Status::CANCELLED); }
  void OnDone() override {
    {
      std::lock_guard lock(state_->mu_);
      state_->reactor_ = nullptr;
    }
    on_done_();
    delete this;
  }

 private:
  friend class WatchStream;
  std::shared_ptr<WatchStream> state_;
  std::function<void()> on_done_;
};

}  // namespace cairn::cluster
