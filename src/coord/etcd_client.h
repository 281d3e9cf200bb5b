// EtcdClient: a small client of etcd's v3 gRPC API (etcd 3.4), for cluster
// mode's coordination: the meta leader lease, membership, the slot table,
// configuration and app revisions. Speaks real gRPC with our own subset of
// etcd's proto (proto/etcdv3/).
//
// What it offers: single-key and prefix reads, puts, deletes, transactions
// (compare-and-swap), leases (grant, revoke, a background keep-alive) and
// prefix watches delivered to a callback.
//
// Errors: every call returns absl::Status with the gRPC code etcd (or the
// channel) gave: UNAVAILABLE when etcd cannot be reached, DEADLINE_EXCEEDED
// when it did not answer within `request_timeout`, NOT_FOUND for an absent key
// (Get) or lease. The message names the etcd method. No call blocks longer
// than `request_timeout`.
//
// Reconnects: one gRPC channel per client; gRPC reconnects it by itself,
// with a backoff of 100 ms growing to `max_reconnect_backoff`. Calls made
// while etcd is unreachable fail fast with UNAVAILABLE (no queueing); retry
// policy belongs to the caller, who knows whether a write may be repeated.
// Leases and watches recover by themselves, see LeaseKeeper and Watch.
//
// Thread-safety: EtcdClient is thread-safe; every method may be called from
// any thread concurrently. LeaseKeeper and Watch run their own thread and
// invoke their callbacks on it; their methods are thread-safe too. An
// EtcdClient must outlive the LeaseKeepers and Watches it created.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpc {
class ChannelCredentials;
}  // namespace grpc

namespace cairn::coord {

struct EtcdOptions {
  // host:port of the etcd members. Several endpoints must be IPv4 literals
  // ("127.0.0.1:2379"); the channel then fails over between them in order.
  // An http:// or https:// prefix is accepted (as etcdctl takes them);
  // https:// needs `credentials`.
  std::vector<std::string> endpoints;
  // TLS to etcd (cairn::MakeChannelCredentials of the etcd CA and, when etcd
  // runs with --client-cert-auth, a client pair); null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Upper bound for every unary call.
  std::chrono::milliseconds request_timeout{3000};
  std::chrono::milliseconds max_reconnect_backoff{1000};
};

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;  // writes since creation
  int64_t lease = 0;    // 0: none
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // in key order
  int64_t revision = 0;       // store revision of this read: watch from revision + 1
};

// One condition of a transaction: `target(key) op operand`. A key that does
// not exist has version, create and mod revision 0.
struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue, kLease };
  enum class Op { kEqual, kGreater, kLess, kNotEqual };
  std::string key;
  Target target = Target::kVersion;
  Op op = Op::kEqual;
  int64_t number = 0;  // for every target but kValue
  std::string value;   // for kValue

  static Compare Absent(std::string key) {
    return {std::move(key), Target::kCreateRevision, Op::kEqual, 0, {}};
  }
  static Compare ModRevisionIs(std::string key, int64_t revision) {
    return {std::move(key), Target::kModRevision, Op::kEqual, revision, {}};
  }
  static Compare ValueIs(std::string key, std::string value) {
    return {std::move(key), Target::kValue, Op::kEqual, 0, std::move(value)};
  }
  static Compare LeaseIs(std::string key, int64_t lease) {
    return {std::move(key), Target::kLease, Op::kEqual, lease, {}};
  }
};

// One operation of a transaction branch.
struct TxnOp {
  enum class Kind { kGet, kPut, kDelete };
  Kind kind = Kind::kGet;
  std::string key;
  std::string value;    // kPut
  int64_t lease = 0;    // kPut
  bool prefix = false;  // kGet, kDelete: every key starting with `key`

  static TxnOp Get(std::string key, bool prefix = false) {
    return {Kind::kGet, std::move(key), {}, 0, prefix};
  }
  static TxnOp Put(std::string key, std::string value, int64_t lease = 0) {
    return {Kind::kPut, std::move(key), std::move(value), lease, false};
  }
  static TxnOp Delete(std::string key, bool prefix = false) {
    return {Kind::kDelete, std::move(key), {}, 0, prefix};
  }
};

struct TxnResult {
  bool succeeded = false;  // every compare held: the success branch ran
  int64_t revision = 0;    // store revision after the transaction
  // One entry per op of the branch that ran: the keys a kGet read; empty for
  // kPut and kDelete.
  std::vector<std::vector<KeyValue>> gets;
};

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  // kDelete: key and mod_revision only
};

class LeaseKeeper;
class Watch;

class EtcdClient {
 public:
  // Creates the channel; does not wait for a connection (the first call
  // does, up to request_timeout). InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(const EtcdOptions& options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  const EtcdOptions& options() const { return options_; }

  // NotFound when the key is absent.
  absl::StatusOr<KeyValue> Get(const std::string& key);
  absl::StatusOr<RangeResult> GetPrefix(const std::string& prefix);
  // Returns the store revision of the write. lease 0: the key lives until
  // deleted.
  absl::StatusOr<int64_t> Put(const std::string& key, const std::string& value, int64_t lease = 0);
  // Returns how many keys were deleted (0 for an absent key: not an error).
  absl::StatusOr<int64_t> Delete(const std::string& key);
  absl::StatusOr<int64_t> DeletePrefix(const std::string& prefix);
  absl::StatusOr<TxnResult> Txn(const std::vector<Compare>& compares,
                                const std::vector<TxnOp>& success,
                                const std::vector<TxnOp>& failure = {});
  // Creates key only if it does not exist; false if it existed.
  absl::StatusOr<bool> PutIfAbsent(const std::string& key, const std::string& value,
                                   int64_t lease = 0);
  // Writes key only if its mod revision is still `expected_mod_revision`
  // (0: only if absent); false if someone wrote it in between.
  absl::StatusOr<bool> CompareAndSwap(const std::string& key, int64_t expected_mod_revision,
                                      const std::string& value, int64_t lease = 0);

  // A lease of `ttl` (etcd rounds it up to at least its minimum, 2 s in
  // practice). Keys put with it are deleted when it expires or is revoked.
  absl::StatusOr<int64_t> GrantLease(std::chrono::seconds ttl);
  // Revoking a lease that no longer exists returns NotFound.
  absl::Status RevokeLease(int64_t lease);
  // Seconds left; NotFound when the lease has expired or was revoked.
  absl::StatusOr<int64_t> LeaseTimeToLive(int64_t lease);

  // Keeps `lease` (granted with `ttl`) alive until the returned object is
  // destroyed; see LeaseKeeper.
  std::unique_ptr<LeaseKeeper> KeepAlive(int64_t lease, std::chrono::seconds ttl,
                                         std::function<void()> on_lost);
  // Watches every key starting with `prefix` from `start_revision`
  // (inclusive; 0: from now); see Watch.
  std::unique_ptr<Watch> WatchPrefix(
      const std::string& prefix, int64_t start_revision,
      std::function<void(const std::vector<WatchEvent>&, int64_t revision)> on_events,
      std::function<void(const absl::Status&)> on_error = nullptr);

  struct Stubs;  // gRPC stubs; defined in etcd_client.cc

 private:
  friend class LeaseKeeper;
  friend class Watch;
  EtcdClient(EtcdOptions options, std::unique_ptr<Stubs> stubs);
  absl::StatusOr<RangeResult> Range(const std::string& key, const std::string& range_end);
  absl::StatusOr<int64_t> DeleteRange(const std::string& key, const std::string& range_end);

  EtcdOptions options_;
  std::unique_ptr<Stubs> stubs_;
};

// Renews a lease in the background: one LeaseKeepAlive exchange every ttl/3,
// each bounded by the client's request_timeout (a fresh short stream each
// time, so a hung etcd cannot block the keeper). A failed renewal is retried
// every 250 ms. The lease is declared lost, once, when etcd says it is gone
// (TTL <= 0 in the answer) or when no renewal succeeded for `ttl` since the
// last one that did (it has then expired on the server, or will before we
// can reach it). `on_lost` runs on the keeper's thread; after it the keeper
// stops. The destructor stops renewing (it does not revoke) and joins.
class LeaseKeeper {
 public:
  LeaseKeeper(EtcdClient& client, int64_t lease, std::chrono::seconds ttl,
              std::function<void()> on_lost);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  int64_t lease() const { return lease_; }
  // Lost, or not renewed for a TTL by now (judged by the clock at the call,
  // so it is right even before the keeper's thread has run again).
  bool lost() const;

 private:
  struct State;
  void Run();

  EtcdClient& client_;
  const int64_t lease_;
  const std::chrono::seconds ttl_;
  std::function<void()> on_lost_;
  std::unique_ptr<State> state_;
};

// A prefix watch on its own Watch stream and thread. Events are delivered in
// revision order, each batch (one etcd revision or more) with the revision of
// its last event, on the watch's thread; the callback must not destroy the
// Watch. When the stream breaks (etcd restarted, network), the watch reopens
// it with a backoff (100 ms up to 1 s) from the revision after the last one
// delivered, so no event is lost or repeated. If etcd has compacted that
// revision away, `on_error` gets OutOfRange and the watch stops: the caller
// must read the prefix again and start a new watch. The destructor cancels
// the stream and joins the thread.
class Watch {
 public:
  using EventsCallback = std::function<void(const std::vector<WatchEvent>&, int64_t revision)>;
  using ErrorCallback = std::function<void(const absl::Status&)>;

  Watch(EtcdClient& client, std::string prefix, int64_t start_revision, EventsCallback on_events,
        ErrorCallback on_error);
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  // Waits until etcd has confirmed the watch (the first time); false on
  // timeout. Events after a successful return are certain to be seen.
  bool WaitUntilCreated(std::chrono::milliseconds timeout);
  // How many times the stream was reopened after a break (for tests).
  int reconnects() const;

 private:
  struct State;
  void Run();

  EtcdClient& client_;
  const std::string prefix_;
  EventsCallback on_events_;
  ErrorCallback on_error_;
  std::unique_ptr<State> state_;
};

// The end of the range of keys that start with `prefix` (etcd's range_end).
std::string PrefixRangeEnd(const std::string& prefix);

}  // namespace cairn::coord
