// ConnectionBalancer: decides which worker owns a newly accepted connection.
//
// Every worker accepts on its own SO_REUSEPORT socket, and the kernel picks
// the socket by a hash of the 4-tuple, not by load. With few long-lived
// connections that leaves workers unevenly loaded for the connections' whole
// life: measured here with wrk -c50 on 2 workers, per-worker CPU split 76/59
// and 41/70 in two runs. The busier worker then sets the tail latency. So a
// worker that accepts a connection while it serves more client connections
// than the least-loaded worker (beyond a slack, 0 by default) hands it over; the move
// happens once, before the first byte is read, so no request ever crosses
// threads.
//
// Thread-safety: Pick/Handoff/Arrived may be called from any worker thread.
// Loads are relaxed reads (a hint); the only read-modify-writes are per
// hand-off, never per request.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "sidecar/network/worker.h"

namespace cairn::sidecar {

class ConnectionBalancer {
 public:
  // `slack`: how many more client connections than the least-loaded worker
  // a worker may have and still keep what it accepts. 0 by default: a few
  // multiplexed HTTP/2 connections carry the whole load (h2load -c10), and
  // a slack of 2 allowed a 6/4 split; a hand-off costs one post.
  explicit ConnectionBalancer(std::vector<Worker*> workers, int slack = 0);

  // The worker that should own a connection `acceptor` just accepted: the
  // acceptor itself unless another worker is lighter by more than `slack`.
  // When it returns another worker, the caller must post the connection to it
  // and call Arrived() there once it is watched (or dropped).
  Worker& Pick(Worker& acceptor);
  void Arrived(Worker& target);

  uint64_t handoffs() const { return handoffs_.load(std::memory_order_relaxed); }

 private:
  int Load(size_t i) const;

  std::vector<Worker*> workers_;
  int slack_;
  // Connections posted to a worker but not yet watched by it, so that a burst
  // of accepts does not send every one of them to the same worker.
  std::unique_ptr<std::atomic<int>[]> incoming_;
  std::atomic<uint64_t> handoffs_{0};
};

}  // namespace cairn::sidecar
