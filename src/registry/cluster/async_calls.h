// AsyncCalls: outgoing async gRPC calls of one role, each delivering its
// answer to the role's event loop, and all of them cancellable at stop.
//
// A role that is stopping must not be called back after it is gone; gRPC
// invokes a callback on one of its own threads at any time until the call
// ends. CancelAllAndWait() cancels every live call and returns once each
// callback has finished (its posted work is dropped if the role is stopping).
//
// Thread-safety: thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>

#include "common/event_loop.h"

namespace cairn::cluster {

class AsyncCalls {
 public:
  // REQUIRES: loop outlives this object, and CancelAllAndWait() runs before
  // the loop stops.
  explicit AsyncCalls(EventLoop& loop) : loop_(loop) {}
  ~AsyncCalls() { CancelAllAndWait(); }

  // Starts a unary call: `start(ctx, request, response, on_done)` must call
  // the stub's async method, e.g.
  //   [stub](auto* ctx, auto* req, auto* resp, auto cb) {
  //     stub->async()->Fetch(ctx, req, resp, std::move(cb)); }
  // `done` runs on the loop with the status and the response, unless the
  // object is closing (then it never runs).
  template <typename Request, typename Response, typename Start>
  void Unary(Start start, Request request, std::chrono::milliseconds timeout,
             std::function<void(const grpc::Status&, Response&)> done) {
    struct Call {
      grpc::ClientContext ctx;
      Request request;
      Response response;
    };
    auto call = std::make_shared<Call>();
    call->request = std::move(request);
    call->ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    if (!Begin(&call->ctx)) return;
    start(&call->ctx, &call->request, &call->response,
          [this, call, done = std::move(done)](grpc::Status status) mutable {
            {
              std::lock_guard lock(mu_);
              if (!closing_) {
                loop_.Post([call, status = std::move(status), done = std::move(done)]() mutable {
                  done(status, call->response);
                });
              }
            }
            End(&call->ctx);
          });
  }

  // Registers a call made some other way (a streaming reactor). Returns
  // false, registering nothing, once closing.
  bool Begin(grpc::ClientContext* ctx) {
    std::lock_guard lock(mu_);
    if (closing_) return false;
    live_.insert(ctx);
    return true;
  }
  void End(grpc::ClientContext* ctx) {
    std::lock_guard lock(mu_);
    live_.erase(ctx);
    if (live_.empty()) idle_.notify_all();
  }
  // Cancels a call registered with Begin if it has not ended yet: a reactor
  // that deletes itself after End() may be gone, so never touch its context
  // directly from another thread.
  void TryCancel(grpc::ClientContext* ctx) {
    std::lock_guard lock(mu_);
    if (live_.contains(ctx)) ctx->TryCancel();
  }
  // Posts `fn` to the loop unless closing (for streaming reactors).
  void PostUnlessClosing(std::function<void()> fn) {
    std::lock_guard lock(mu_);
    if (!closing_) loop_.Post(std::move(fn));
  }
  bool closing() const {
    std::lock_guard lock(mu_);
    return closing_;
  }

  void CancelAllAndWait() {
    std::unique_lock lock(mu_);
    closing_ = true;
    for (grpc::ClientContext* ctx : live_) ctx->TryCancel();
    idle_.wait(lock, [this] { return live_.empty(); });
  }

 private:
  EventLoop& loop_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  std::set<grpc::ClientContext*> live_;
  bool closing_ = false;
};

}  // namespace cairn::cluster
