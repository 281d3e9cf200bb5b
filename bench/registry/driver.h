// The one interface every system under test is driven through, so that each
// workload (workloads.cc) is written once and times Cairn, etcd and ZooKeeper
// the same way: from the same process, with the same clock, around the same
// calls.
//
// The model shared by all three: a *service* (Cairn: a dataInfoId; etcd: a key
// prefix; ZooKeeper: a parent znode) has *instances* (Cairn: publishers; etcd:
// keys under a per-connection lease; ZooKeeper: ephemeral child znodes), each
// registered by one client *connection* and gone when that connection closes.
// An instance carries ~100 bytes of data and a *generation*: 0 when it is
// registered, +1 per change. Subscribers see the instances of one service with
// their generations; a workload compares generations to tell whether (and
// when) a subscriber has seen a change.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn::bench {

using Clock = std::chrono::steady_clock;

// One instance as a subscriber sees it. `instance` points into the driver's
// buffers and is valid only during the callback it is passed to.
struct InstanceView {
  std::string_view instance;
  uint64_t gen = 0;
};

// Called exactly once per operation with OK or the error: on a driver thread,
// or inside the call that started the operation when it fails at once (so a
// caller that issues the next operation from `done` must not recurse
// unboundedly; see the pump in workloads.cc).
using DoneCallback = std::function<void(const absl::Status&)>;

// Called with the subscriber's whole current view of the service every time
// it changes (and once with the initial view). Calls for one subscription
// never overlap; calls for different subscriptions may run concurrently on
// different threads.
using ViewCallback = std::function<void(const std::vector<InstanceView>& view)>;

// One registration of a PublishBatch.
struct PublishRequest {
  std::string service;
  std::string instance;
  uint64_t gen = 0;
  std::string data;
};

// Answers to a PublishBatch: called once per answer the system gives, with
// how many of the batch's registrations that answer covers (the counts of
// all calls add up to the batch's size) and their common outcome. Same
// threading rules as DoneCallback.
using BatchDoneCallback = std::function<void(int64_t answered, const absl::Status&)>;

// One client connection to the system (Cairn: a Session stream on its own
// TCP connection; etcd: a gRPC channel with one lease; ZooKeeper: a session).
//
// Thread-safety: Publish may be called from any thread, including from inside
// a DoneCallback or ViewCallback of the same connection; Subscribe from any
// thread except a callback. Ownership: destroying the connection closes it;
// its instances go away on the server and, once the destructor returns, no
// callback of it runs or will run. Callers keep the state their callbacks use
// alive until then.
class Connection {
 public:
  virtual ~Connection() = default;

  // Registers `instance` of `service` at generation `gen` with `data`
  // (gen == 0), or replaces generation gen - 1 of an instance this connection
  // registered (gen > 0). Precondition: no other Publish for the same
  // instance is in flight. Never blocks for the answer.
  virtual void Publish(const std::string& service, const std::string& instance, uint64_t gen,
                       const std::string& data, DoneCallback done) = 0;

  // Registers several instances as one request where the system has one
  // (etcd: a Txn of puts; ZooKeeper: a multi of creates), so that anchors
  // batch as Cairn's client does. The default (Cairn's) is one Publish each:
  // Cairn's client itself coalesces what queues behind its write in flight
  // into one Batch message (cairn_client's SessionStream), so the bench must
  // not batch for it. Same preconditions as Publish for each element.
  virtual void PublishBatch(std::vector<PublishRequest> batch, BatchDoneCallback done) {
    for (auto& r : batch) {
      Publish(r.service, r.instance, r.gen, r.data, [done](const absl::Status& s) { done(1, s); });
    }
  }

  // Subscribes to every instance of `service`. Returns once the subscription
  // is established and its initial view was delivered to `on_view`, or with an
  // error after `timeout`.
  virtual absl::Status Subscribe(const std::string& service, ViewCallback on_view,
                                 std::chrono::milliseconds timeout) = 0;
};

struct SystemOptions {
  std::string bin_dir;  // holds the `cairn` binary
  // Largest number of registrations one connection makes (Cairn refuses more
  // than --max-registrations-per-client per stream).
  int64_t max_registrations_per_connection = 100000;
  std::string zk_heap = "2g";  // ZooKeeper's -Xmx
  // Deadline of any one request (a Publish that has no answer by then fails).
  std::chrono::seconds request_timeout{60};
  // Cairn only: a directory made by scripts/dev-certs (ca.crt, registry.*,
  // cairnctl.*, bench.*). Set: the registry serves mTLS (client certs
  // required, the built-in default policy), the workloads' sessions present
  // bench.crt (app "bench", the app their Hello names) and the admin-only
  // queries (instance counts, the gRPC floor) present cairnctl.crt. Empty:
  // plaintext.
  std::string tls_dir;
  // etcd and ZooKeeper only: data and log under /dev/shm (tmpfs) and, for
  // ZooKeeper, forceSync=no, so that neither waits for a disk, as Cairn
  // (which keeps registrations in memory) does not. Systems "etcd-tmpfs"
  // and "zookeeper-nosync".
  bool in_memory = false;
  // Cairn only: the sessions accept delta pushes (Hello.accepts_delta_pushes,
  // as the C++ client does by default): after a subscriber's first push only
  // what changed travels, as an etcd watcher gets only the changed key.
  // --cairn-whole-pushes turns it off (every push carries every instance).
  bool cairn_delta_pushes = true;
  // Cairn only: the sessions read server batches (Hello.accepts_server_batches,
  // as RegistryClient does by default) and ack a batch with one Batch;
  // --cairn-no-server-batches turns it off (one gRPC message per push).
  bool cairn_server_batches = true;
};

// One system: its server process and a way to connect to it.
//
// Thread-safety: Connect and ServerRssBytes may be called from any thread;
// Start, Prepare and Stop only from the main thread (servers are started
// with PR_SET_PDEATHSIG, which is bound to the thread that started them).
class System {
 public:
  virtual ~System() = default;
  virtual std::string name() const = 0;
  // Starts a fresh server (new data dir, free ports) and waits until it
  // serves.
  virtual absl::Status Start() = 0;
  // Connects a new client; blocks until the connection is usable.
  virtual absl::StatusOr<std::unique_ptr<Connection>> Connect() = 0;
  // Creates what instances of these services need beforehand (ZooKeeper: the
  // persistent parent znodes). Not timed.
  virtual absl::Status Prepare(const std::vector<std::string>& services) {
    (void)services;
    return absl::OkStatus();
  }
  // How many instances of these services the server holds now, read back
  // from the server (not what the clients were told): a system that loses
  // registrations shows it here.
  virtual absl::StatusOr<int64_t> CountInstances(const std::vector<std::string>& services) = 0;
  // VmRSS of the server process in bytes; 0 if not running.
  virtual int64_t ServerRssBytes() const = 0;
  virtual bool Running() const = 0;
  // Stops the server (SIGTERM, SIGKILL after a grace period). Idempotent.
  // Connections still open afterwards close without waiting for it.
  virtual void Stop() = 0;
  // The tail of the server's log, for error reports.
  virtual std::string LogTail() const = 0;
  // "host:port" clients connect to.
  virtual std::string address() const = 0;
};

std::unique_ptr<System> NewCairnSystem(const SystemOptions& options);
std::unique_ptr<System> NewEtcdSystem(const SystemOptions& options);
std::unique_ptr<System> NewZooKeeperSystem(const SystemOptions& options);

// The 100-byte payload of an instance: "g=<gen>|<service>/<instance>|xxx...".
// Distinct per instance so that nothing on the path can deduplicate it, and
// carrying the generation so that Cairn and etcd subscribers can read it.
std::string InstanceData(const std::string& service, const std::string& instance, uint64_t gen);

// The generation in InstanceData's format; 0 if it has none.
uint64_t ParseGen(std::string_view data);

// The longest prefix all `names` share ("" if there are none).
std::string CommonPrefix(const std::vector<std::string>& names);

inline double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Nearest-rank percentile (p in [0, 1]) of an ascending `sorted`; NaN if empty.
double Percentile(const std::vector<double>& sorted, double p);

}  // namespace cairn::bench
