// ConnectedClientsRecorder: keeps, in the registry's durable store, which
// clients are connected (client id -> streams), so that after a restart the
// registry knows whom to wait for before it pushes (RestartWarmup,
// docs/ARCHITECTURE.md "Restart and reconnect").
//
// Writes are off the registry loop: Offer() only hands the newest set to a
// writer thread, which writes it (one SQLite commit) and then waits at least
// `min_period` before the next write; offers made meanwhile are coalesced into
// the newest. The caller offers at most about once a second, when the set
// changed. After a kill -9 the store holds the set as of about a second before.
//
// Thread-safety: Offer() and Stop() may be called from any thread. Load() is
// a plain read for start-up.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "registry/session/restart_warmup.h"
#include "store/kv_store.h"

namespace cairn {

class ConnectedClientsRecorder {
 public:
  // The store key; the value is one line per client id: "<count> <id>".
  static constexpr std::string_view kKey = "session/connected_clients";

  // The set the previous run recorded; empty if none (or unreadable, logged).
  static RestartWarmup::ClientCounts Load(KvStore& store);
  static std::string Encode(const RestartWarmup::ClientCounts& clients);
  static RestartWarmup::ClientCounts Decode(std::string_view value);

  // REQUIRES: store outlives the recorder.
  ConnectedClientsRecorder(KvStore& store, std::chrono::milliseconds min_period);
  ~ConnectedClientsRecorder();  // Stop(std::nullopt)

  // Queues `clients` to be written; replaces a queued set not written yet.
  void Offer(RestartWarmup::ClientCounts clients);
  // Writes `last` (if given) now, in the caller's thread, after any write in
  // progress, and stops the writer: later offers are ignored. The shutting
  // down registry keeps the set its clients had (they will reconnect).
  void Stop(std::optional<RestartWarmup::ClientCounts> last);

  uint64_t writes() const;

 private:
  void WriterLoop();
  void Write(const RestartWarmup::ClientCounts& clients);

  KvStore& store_;
  const std::chrono::milliseconds min_period_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<RestartWarmup::ClientCounts> pending_;  // guarded by mu_
  bool stopping_ = false;                               // guarded by mu_
  uint64_t writes_ = 0;                                 // guarded by mu_
  std::mutex write_mu_;  // one store write at a time (writer vs Stop)
  std::thread writer_;
};

}  // namespace cairn
