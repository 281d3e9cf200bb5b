// ClientCore: the state and threads behind RegistryClient and its handles.
// Internal to cairn_client.
//
// Thread safety: all public methods may be called from any thread. One mutex
// (mu_) guards the whole state; it is never held while a user callback runs
// or while user-provided objects (callbacks) are destroyed. Lock order:
// mu_, then the SessionStream's internal lock.
//
// Ownership: shared by RegistryClient and every handle, so a handle outliving
// the client stays valid (its methods then return CANCELLED). Owns the
// control thread (connect, backoff, keepalive), the dispatch thread (push
// callbacks) and the current SessionStream. Close() stops everything; it must
// run before the last reference goes away (the RegistryClient destructor
// does it).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/push_assembler.h"
#include "client/registry_client.h"
#include "client/session_stream.h"
#include "common/clock.h"

namespace cairn::client_internal {

// The outcome of one user operation, filled in by the Result that answers it.
struct Waiter {
  bool done = false;
  bool sent = false;  // went out on some stream
  absl::Status status;
  uint64_t datum_version = 0;
};

// One publisher or subscriber of this client. Fields without a comment are
// guarded by ClientCore::mu_.
struct Registration {
  // kRevision: an app revision this client registered; never unregistered,
  // replayed before every other registration on a new stream.
  enum class Kind { kPublisher, kSubscriber, kRevision };
  Registration(Kind k, std::string registration_id) : kind(k), id(std::move(registration_id)) {}

  const Kind kind;
  const std::string id;
  pb::Publish publish;             // publisher: what a (re)send carries
  pb::Subscribe subscribe;         // subscriber: what a (re)send carries
  pb::RevisionMeta revision;       // revision: what a (re)send carries
  bool live = true;                // false once unregistered: no replay, no delivery
  std::shared_ptr<Waiter> waiter;  // the user operation in progress, if any
  std::shared_ptr<const PushCallback> callback;
  // Subscriber: its data, to rebuild whole pushes from deltas (only with
  // RegistryClientOptions::delta_pushes; used by the dispatch thread, under
  // mu_ like the fields around it).
  PushAssembler assembler;
  bool delivered_any = false;
  // Read without the lock by the handle accessors.
  std::atomic<uint64_t> datum_version{0};
  std::atomic<uint64_t> version{0};
  std::atomic<uint64_t> delivered_version{0};
};

class ClientCore final : public StreamObserver, public std::enable_shared_from_this<ClientCore> {
 public:
  static absl::StatusOr<std::shared_ptr<ClientCore>> Create(RegistryClientOptions options);
  ~ClientCore() override;

  absl::Status WaitConnected(std::chrono::milliseconds timeout);
  // Adds `reg` (fully filled in) and waits for its first Result. On failure
  // the registration is dropped.
  absl::Status Register(const std::shared_ptr<Registration>& reg);
  absl::Status Republish(const std::shared_ptr<Registration>& reg, std::vector<std::string> data);
  // wait=false: do not wait for the server's answer (handle destruction).
  // Either way, returns only when no callback of `reg` is running.
  absl::Status Unregister(const std::shared_ptr<Registration>& reg, bool wait);
  void Close();

  // Registers (or re-sends, if `resend`) an app revision and keeps it for
  // replay. ALREADY_EXISTS locally if this client holds the id with other
  // content.
  absl::Status RegisterRevision(const pb::RevisionMeta& meta, bool resend);
  // GetRevision RPC on the connected (else next) server; answers cached.
  absl::StatusOr<pb::RevisionMeta> GetRevision(const std::string& revision);
  // A revision this client registered, if any.
  std::optional<pb::RevisionMeta> LocalRevision(const std::string& revision) const;

  std::string NewRegistrationId();
  std::string ConnectedServer() const;
  bool IsConnected() const;
  RegistryClientStats stats() const;
  const RegistryClientOptions& options() const { return options_; }

  // StreamObserver.
  void OnStreamMessage(SessionStream* stream, pb::ServerMessage message) override;
  void OnStreamDrained(SessionStream* stream) override;
  void OnStreamDone(SessionStream* stream, const grpc::Status& status) override;

 private:
  // A request on the current stream that expects a Result.
  struct Inflight {
    enum class Op { kHello, kRegister, kUnregister };
    Op op;
    std::shared_ptr<Registration> reg;  // null for kHello
    std::shared_ptr<Waiter> waiter;     // null: nobody waits
  };
  struct PushItem {
    uint64_t stream_generation;
    pb::Push push;
  };

  explicit ClientCore(RegistryClientOptions options);
  void Start();

  void ControlLoop();
  void DispatchLoop();
  void StartStreamLocked(SteadyTime now);
  void RetireStreamLocked(SteadyTime now);
  bool StreamWritableLocked() const;
  // Sends `reg`'s publish/subscribe with a fresh request id if there is a
  // stream; the Result completes reg->waiter if set.
  void SendRegistrationLocked(const std::shared_ptr<Registration>& reg);
  bool SendUnregisterLocked(const std::shared_ptr<Registration>& reg,
                            std::shared_ptr<Waiter> waiter);
  void HandleResultLocked(const pb::Result& result);
  // One message from the stream; a ServerBatch is unpacked into its inner
  // messages (one level only). REQUIRES: mu_ held.
  void HandleServerMessageLocked(SessionStream* stream, pb::ServerMessage& message,
                                 bool inside_batch);
  // The waits release `lock` (holding mu_) while blocked.
  absl::Status AwaitLocked(std::unique_lock<std::mutex>& lock, const Waiter& waiter,
                           SteadyTime deadline);
  void WaitUntilLocked(std::unique_lock<std::mutex>& lock, SteadyTime deadline);
  // Waits until no callback of `reg` is running (unless on the dispatch thread).
  void WaitCallbackIdleLocked(std::unique_lock<std::mutex>& lock, const Registration* reg);

  const RegistryClientOptions options_;
  const std::chrono::milliseconds liveness_timeout_;
  std::string id_prefix_;
  std::atomic<uint64_t> next_registration_{1};
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<pb::Registry::Stub>> stubs_;

  // std::mutex rather than absl::Mutex so ThreadSanitizer sees the locking
  // (the system abseil is not instrumented). Everything below up to
  // close_mu_ is guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;  // notified on every state change; waiters re-check
  bool closing_ = false;
  std::unique_ptr<SessionStream> stream_;
  bool stream_done_ = false;
  bool stream_cancelled_ = false;
  bool connected_ = false;
  std::string last_error_;
  uint64_t stream_generation_ = 0;
  uint64_t stream_epoch_ = 0;  // Hello.stream_epoch of the newest stream
  size_t next_server_ = 0;
  std::chrono::milliseconds backoff_;
  SteadyTime next_connect_;
  SteadyTime next_ping_;
  SteadyTime last_receive_;
  SteadyTime close_deadline_;
  uint64_t next_request_id_ = 1;
  uint64_t next_ping_nonce_ = 1;
  std::unordered_map<uint64_t, Inflight> inflight_;
  std::unordered_map<std::string, std::shared_ptr<Registration>> registrations_;
  // Publishers unregistered while no stream could carry it (or whose
  // unregister was lost with its stream). If the session died rather than
  // closed the stream, the cluster's data servers keep its copy for the
  // session lease so the client can take it back: the next stream takes it
  // over (replays it) and unregisters it at once, so it is not shown as
  // alive for the whole lease.
  std::unordered_map<std::string, std::shared_ptr<Registration>> orphans_;
  std::deque<PushItem> pushes_;
  bool dispatch_stop_ = false;
  const Registration* in_callback_ = nullptr;
  RegistryClientStats stats_;
  // Revisions are immutable: a GetRevision answer is good forever.
  std::unordered_map<std::string, pb::RevisionMeta> revision_cache_;

  std::mutex close_mu_;  // serializes Close() callers around the joins
  std::thread control_thread_;
  std::thread dispatch_thread_;
  std::atomic<std::thread::id> dispatch_thread_id_{};
};

}  // namespace cairn::client_internal
