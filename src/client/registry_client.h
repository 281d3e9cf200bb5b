// RegistryClient: a client of the Registry `Session` stream
// (proto/cairn/registry/v1/registry.proto).
//
// Thread safety: every public method of RegistryClient, Publisher and
// Subscription may be called from any thread, concurrently. Operations on one
// Publisher or Subscription handle are serialized (a second call waits for the
// first to finish).
//
// Ownership and lifetime:
//   * Create() returns the sole owner of the client. Its destructor (or
//     Close()) ends the stream (WritesDone, then cancel), joins the internal
//     threads and returns only when no push callback is running or will run.
//     Do not destroy the client from inside a push callback.
//   * Publish()/Subscribe() return shared handles. A handle keeps the client's
//     internal state alive (not the RegistryClient object): after the client
//     is closed, handle methods return CANCELLED and destroying a handle is a
//     no-op.
//   * Destroying a handle that was not unregistered unregisters it
//     asynchronously (best effort, no waiting for the server's answer).
//     Destroying a Subscription (like Unsubscribe()) returns only when no
//     callback of it is running, and none starts afterwards, so a callback may
//     use objects that the handle outlives. Exception: from inside that
//     subscription's own callback it cannot wait for itself.
//
// Callbacks: every push callback runs on one dispatch thread owned by the
// client, never while an internal lock is held, so a callback may call into
// the client (even blocking calls such as Publish). Callbacks of all
// subscriptions are serialized. A subscription's first push may be delivered
// before Subscribe() returns.
//
// Connection: the client keeps one stream to one server, starting with the
// first of `servers`. When the stream ends it moves to the next server (round
// robin) after an exponential backoff, sends Hello and replays every live
// registration with its registration id (publishers with their current data
// and version), so the server takes them over without a gap.
//
// Batching: publishes and unregisters (from Publish, Republish, Unregister,
// destroyed handles and replays) that wait behind the write in flight are
// sent together as one `Batch` stream message, up to 500 per batch, and the
// server answers them with one `ResultBatch` (registry.proto, "Batch").
// Callers see no difference: every call still gets its own Result and
// waits only for it; only many calls from several threads at once (or a
// replay) find a queue to coalesce. Always on, because client and server
// ship together: a server older than the Batch message refuses a batch, so
// use this client only with a server at least as new.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cairn/registry/v1/registry.pb.h"
#include "common/grpc_tls.h"

namespace cairn {

namespace pb = ::cairn::registry::v1;

namespace client_internal {
class ClientCore;
struct Registration;
}  // namespace client_internal

struct RegistryClientOptions {
  // "host:port" targets; at least one. Reconnects rotate through them.
  std::vector<std::string> servers{};
  // Start at a random one of `servers` rather than the first, so that many
  // clients given the same list (a cluster's session servers) spread over
  // them. Off by default: a list in order of preference is kept.
  bool spread_over_servers = false;
  // Sent in Hello; also the prefix of generated registration ids.
  std::string client_id{};
  std::string app_name{};
  std::string zone{};
  // A ping is sent this often while connected. A stream from which nothing
  // arrived for max(3 * keepalive_interval, 3 s) is considered dead.
  std::chrono::milliseconds keepalive_interval{5000};
  // Asked of the server in Hello; 0 means the server's default.
  uint32_t keepalive_timeout_ms = 0;
  // Ask for delta pushes (Hello.accepts_delta_pushes): after the first push
  // of a subscriber, only what changed travels; the client rebuilds the
  // whole datum for the callback (PushAssembler). Off: every push is whole.
  bool delta_pushes = true;
  // Read server batches (Hello.accepts_server_batches): messages that queue
  // on the server while it writes to this client arrive as one gRPC message,
  // and the acks for their pushes go back as one. Off: one message each.
  bool server_batches = true;
  // Delay before reconnecting: starts at initial, doubles per failed attempt up
  // to max, and is reset once a stream reaches a server.
  std::chrono::milliseconds reconnect_backoff_initial{100};
  std::chrono::milliseconds reconnect_backoff_max{5000};
  // How long Publish/Republish/Subscribe/Unregister/Unsubscribe wait for the
  // server's answer (including waiting for a connection).
  std::chrono::milliseconds request_timeout{10000};
  // TLS to the servers: off unless a file is named. ca_file is then required
  // (the servers' certificates must chain to it and name the address
  // dialled); cert_file + key_file are this client's identity (mTLS).
  // require_client_cert is unused. The files are watched: a rotated client
  // certificate is used for the next connection.
  TlsFiles tls{};
};

// Every member has a default initializer so that brace initialization with
// trailing members left out, e.g. `{key}`, compiles under
// -Wmissing-field-initializers.
struct PublishSpec {
  pb::DataInfoKey key{};
  std::vector<std::string> data{};
  std::string app_name{};  // empty: the client's app_name
  std::string zone{};      // empty: the client's zone
  std::map<std::string, std::string> attributes{};
};

struct SubscribeSpec {
  pb::DataInfoKey key{};
  pb::Scope scope = pb::SCOPE_DATACENTER;
  std::string zone{};  // empty: the client's zone
};

using PushCallback = std::function<void(const pb::Push&)>;

// Application-level discovery (registry.proto, "application-level discovery").
struct InterfaceSpec {
  pb::DataInfoKey key{};                        // the interface's dataInfoId
  std::map<std::string, std::string> params{};  // version, protocol, weight...
};

struct RevisionSpec {
  std::string app_name{};  // empty: the client's app_name
  std::vector<InterfaceSpec> interfaces{};
  std::string revision{};  // empty: the content hash (app::ContentRevisionId)
};

struct AppInstanceSpec {
  std::string app_name{};                // empty: the client's app_name
  std::string revision{};                // from RegisterRevision
  std::vector<std::string> endpoints{};  // "bolt://10.0.0.1:12200", at least one
  std::string zone{};                    // empty: the client's zone
  std::map<std::string, std::string> attributes{};
};

// Counters since Create(); a snapshot.
struct RegistryClientStats {
  uint64_t connections = 0;       // streams that got an answer from a server
  uint64_t reconnects = 0;        // connections after the first one
  uint64_t connect_failures = 0;  // streams that ended before any answer
  uint64_t pushes_received = 0;
  uint64_t pushes_delivered = 0;  // callbacks run
  uint64_t pushes_dropped = 0;    // stale or duplicate versions (still acked)
  uint64_t replays_refused = 0;   // replayed registrations the server refused
};

// A registered publisher. See the header comment for lifetime rules.
class Publisher {
 public:
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Replaces the data: bumps the publisher version and waits for the Result.
  // On refusal the previous data stays registered (the version stays bumped;
  // versions only grow). FAILED_PRECONDITION after Unregister().
  absl::Status Republish(std::vector<std::string> data);

  // Removes the publisher and waits for the server's answer. Idempotent: OK if
  // already unregistered, if the server no longer knows it (NOT_FOUND), or if
  // there is no stream (the server drops registrations with their stream).
  absl::Status Unregister();

  const std::string& registration_id() const;
  // The datum version from the last OK Result for this publisher.
  uint64_t datum_version() const;
  // The publisher's own version (1 for the first publish, +1 per Republish).
  uint64_t version() const;

 private:
  friend class RegistryClient;
  Publisher(std::shared_ptr<client_internal::ClientCore> core,
            std::shared_ptr<client_internal::Registration> reg);

  std::shared_ptr<client_internal::ClientCore> core_;
  std::shared_ptr<client_internal::Registration> reg_;
  std::mutex op_mu_;  // serializes Republish/Unregister on this handle
};

// A registered subscriber. See the header comment for lifetime rules.
class Subscription {
 public:
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Removes the subscriber and waits for the server's answer; when it returns
  // no callback of this subscription runs or will run (unless called from that
  // callback itself). Idempotent like Publisher::Unregister.
  absl::Status Unsubscribe();

  const std::string& registration_id() const;
  // Highest push version delivered to the callback (0 before the first).
  uint64_t delivered_version() const;

 private:
  friend class RegistryClient;
  Subscription(std::shared_ptr<client_internal::ClientCore> core,
               std::shared_ptr<client_internal::Registration> reg);

  std::shared_ptr<client_internal::ClientCore> core_;
  std::shared_ptr<client_internal::Registration> reg_;
  std::mutex op_mu_;
};

class RegistryClient {
 public:
  // Validates the options and starts connecting in the background. Does not
  // fail when no server is reachable: the client keeps retrying.
  static absl::StatusOr<std::unique_ptr<RegistryClient>> Create(RegistryClientOptions options);

  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // OK once a stream has an answer from a server; UNAVAILABLE on timeout;
  // CANCELLED after Close().
  absl::Status WaitConnected(std::chrono::milliseconds timeout);

  // Registers a publisher and waits for the server's Result. Errors: the
  // Result's status (code and server message; no registration is kept),
  // INVALID_ARGUMENT for input over the limits (checked locally),
  // UNAVAILABLE when no server answered within request_timeout,
  // DEADLINE_EXCEEDED when connected but the Result did not come in time.
  absl::StatusOr<std::shared_ptr<Publisher>> Publish(const PublishSpec& spec);

  // Registers a subscriber and waits for the Result. `callback` gets every
  // push whose version is higher than the highest already delivered to this
  // subscription; the first push is always delivered (it may be version 0 and
  // `empty`). Every push is acked after the callback returns, delivered or
  // not. Errors as for Publish.
  absl::StatusOr<std::shared_ptr<Subscription>> Subscribe(const SubscribeSpec& spec,
                                                          PushCallback callback);

  // Registers an app revision and returns its id. The client keeps it and
  // re-sends it on every new stream before replaying its instances, so a
  // server that lost it (restart, GC) gets it back. Idempotent.
  absl::StatusOr<std::string> RegisterRevision(const RevisionSpec& spec);

  // Publishes one app instance: an ordinary publisher of `app:<APP>` whose
  // data are the endpoints and whose attribute cairn.revision names the
  // revision. If the server does not know the revision (FAILED_PRECONDITION)
  // and this client registered it, it is re-sent and the publish retried once.
  absl::StatusOr<std::shared_ptr<Publisher>> PublishApp(const AppInstanceSpec& spec);

  // Subscribes to an app's instances (pushes of `app:<APP>`; during a
  // migration also its interface-level publishers, marked with attribute
  // cairn.interface).
  absl::StatusOr<std::shared_ptr<Subscription>> SubscribeApp(
      const std::string& app_name, PushCallback callback, pb::Scope scope = pb::SCOPE_DATACENTER);

  // A revision's metadata (GetRevision RPC), cached: revisions are immutable.
  absl::StatusOr<pb::RevisionMeta> GetRevision(const std::string& revision);

  // Ends the stream, fails waiting calls with CANCELLED and joins the threads.
  // Idempotent. If called from a push callback it does not wait for that
  // callback; the destructor still must not run there.
  void Close();

  // "host:port" of the server the stream is connected to; empty if none.
  std::string ConnectedServer() const;
  bool IsConnected() const;
  RegistryClientStats stats() const;

 private:
  explicit RegistryClient(std::shared_ptr<client_internal::ClientCore> core);
  std::optional<pb::RevisionMeta> GetLocalRevision(const std::string& revision);

  std::shared_ptr<client_internal::ClientCore> core_;
};

}  // namespace cairn
