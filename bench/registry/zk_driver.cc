// ZooKeeper behind the bench's System interface, through Debian's C client
// (libzookeeper_mt, asynchronous API: every call returns at once and its
// completion runs on the handle's completion thread).
//
// Model, as ZooKeeper-based registries (Dubbo, Curator service discovery) do
// it: a connection = one ZooKeeper session; service = persistent znode
// "/cb/<service>" (created beforehand, untimed); instance = ephemeral child
// "<instance>@<gen>" whose data is the instance data, gone when the session
// closes. A child watch fires only when the set of children changes, not
// when a child's data does, so a change of an instance is one atomic multi
// that deletes "<instance>@<gen-1>" and creates "<instance>@<gen>" (Dubbo
// likewise re-registers a provider whose URL changed). Subscriber = a child
// watch plus getChildren (zoo_awget_children), re-armed by reading the
// children again each time it fires; its view is the list of child names.
// Several subscribers on one session each hold their own watcher and re-read
// on their own, although the server notifies the session only once.
// Registrations in bulk (the register and hold workloads) go as one multi of
// creates per batch. The server refuses a request larger than jute.maxbuffer
// (default 0xfffff bytes, about 1 MiB): a batch of 128 creates with ~100
// bytes of data each is ~25 KB.
#include <zookeeper/zookeeper.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anchor_servers.h"
#include "driver.h"

namespace cairn::bench {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kSessionTimeoutMs = 30000;

std::string ServicePath(const std::string& service) { return absl::StrCat("/cb/", service); }
std::string InstancePath(const std::string& service, const std::string& instance, uint64_t gen) {
  return absl::StrCat("/cb/", service, "/", instance, "@", gen);
}

absl::Status FromZk(int rc, const char* what) {
  if (rc == ZOK) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(what, ": ", zerror(rc)));
}

// The C client's log, errors only, to stderr; silent while the server is
// deliberately stopped under open sessions (they would log every reconnect).
std::atomic<bool> g_quiet{false};

void ClientLog(const char* message) {
  if (!g_quiet.load()) std::fprintf(stderr, "%s\n", message);
}

class ZkConnection final : public Connection {
 public:
  ZkConnection() = default;
  ~ZkConnection() override;

  absl::Status Open(const std::string& address);
  void Publish(const std::string& service, const std::string& instance, uint64_t gen,
               const std::string& data, DoneCallback done) override;
  void PublishBatch(std::vector<PublishRequest> batch, BatchDoneCallback done) override;
  absl::Status Subscribe(const std::string& service, ViewCallback on_view,
                         milliseconds timeout) override;
  // Creates a persistent znode; ZNODEEXISTS counts as success.
  void CreatePersistent(const std::string& path, DoneCallback done);
  // Reads the number of children of `path` (no watch) into *count.
  void CountChildren(const std::string& path, int64_t* count, DoneCallback done);

 private:
  // State of one asynchronous call; owned by the call until its completion.
  struct Call {
    Call(ZkConnection* c, DoneCallback d) : connection(c), done(std::move(d)) {}
    ZkConnection* connection;
    DoneCallback done;
    std::string old_path, new_path, data;
    zoo_op_t ops[2] = {};
    zoo_op_result_t results[2] = {};
    bool exists_ok = false;
    int64_t* children = nullptr;  // CountChildren's output
  };
  // State of one multi of PublishBatch; owned by the call until completion.
  struct MultiCall {
    ZkConnection* connection;
    BatchDoneCallback done;
    int64_t registrations = 0;
    // Stable addresses: the ops point into these strings until completion.
    std::vector<std::string> old_paths, new_paths, data;
    std::vector<zoo_op_t> ops;
    std::vector<zoo_op_result_t> results;
  };
  struct Sub {
    ZkConnection* connection;
    std::string path;
    ViewCallback on_view;
    std::vector<InstanceView> view;  // completion thread only
    bool established = false;        // guarded by mu_
    std::string error;               // guarded by mu_
  };

  static void SessionWatcher(zhandle_t* zh, int type, int state, const char* path, void* ctx);
  static void StringDone(int rc, const char* value, const void* data);
  static void MultiDone(int rc, const void* data);
  static void BatchDone(int rc, const void* data);
  static void CountDone(int rc, const struct String_vector* strings, const void* data);
  static void ChildWatcher(zhandle_t* zh, int type, int state, const char* path, void* ctx);
  static void ChildrenDone(int rc, const struct String_vector* strings, const void* data);

  void Finish(Call* call, int rc);
  void ReadChildren(Sub* sub);
  void Begin();
  void End();

  zhandle_t* zh_ = nullptr;
  std::atomic<bool> closing_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  int session_state_ = 0;                   // guarded by mu_
  int64_t calls_in_flight_ = 0;             // guarded by mu_
  std::vector<std::unique_ptr<Sub>> subs_;  // guarded by mu_; never shrinks until destruction
};

class ZkSystem final : public System {
 public:
  explicit ZkSystem(const SystemOptions& options)
      : in_memory_(options.in_memory), server_(options.zk_heap, options.in_memory) {
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    static std::once_flag once;
    std::call_once(once, [] { AddGuardExitHook([] { g_quiet = true; }); });
  }
  ~ZkSystem() override { Stop(); }

  std::string name() const override { return in_memory_ ? "zookeeper-nosync" : "zookeeper"; }
  absl::Status Start() override {
    Stop();
    g_quiet = false;
    return server_.Start();
  }
  absl::StatusOr<std::unique_ptr<Connection>> Connect() override {
    auto c = std::make_unique<ZkConnection>();
    if (auto s = c->Open(server_.address()); !s.ok()) return s;
    return std::unique_ptr<Connection>(std::move(c));
  }
  absl::Status Prepare(const std::vector<std::string>& services) override;
  absl::StatusOr<int64_t> CountInstances(const std::vector<std::string>& services) override;
  int64_t ServerRssBytes() const override { return server_.RssBytes(); }
  bool Running() const override { return server_.Running(); }
  void Stop() override {
    g_quiet = true;
    server_.Stop();
  }
  std::string LogTail() const override { return server_.LogTail(); }
  std::string address() const override { return server_.address(); }

 private:
  bool in_memory_;
  ZooKeeperServer server_;
};

namespace {

// Runs op(i, done) for i in [0, count) with at most 1000 in flight (the C
// client would otherwise queue everything at once) and waits for all.
absl::Status RunWindowed(int64_t count, const std::function<void(int64_t, DoneCallback)>& op) {
  // Shared with the callbacks: after a timeout they may still come.
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int64_t pending = 0;
    absl::Status first_error;
  };
  auto state = std::make_shared<State>();
  auto done = [state](const absl::Status& s) {
    std::lock_guard lock(state->mu);
    if (!s.ok() && state->first_error.ok()) state->first_error = s;
    --state->pending;
    state->cv.notify_all();
  };
  for (int64_t i = 0; i < count; ++i) {
    {
      std::unique_lock lock(state->mu);
      if (!state->cv.wait_for(lock, seconds(60), [&] { return state->pending < 1000; })) {
        return absl::DeadlineExceededError("ZooKeeper stopped answering");
      }
      ++state->pending;
    }
    op(i, done);
  }
  std::unique_lock lock(state->mu);
  if (!state->cv.wait_for(lock, seconds(120), [&] { return state->pending == 0; })) {
    return absl::DeadlineExceededError("ZooKeeper stopped answering");
  }
  return state->first_error;
}

}  // namespace

absl::Status ZkSystem::Prepare(const std::vector<std::string>& services) {
  auto connection = Connect();
  if (!connection.ok()) return connection.status();
  auto* zk = static_cast<ZkConnection*>(connection->get());
  std::vector<std::string> paths = {"/cb"};
  for (const auto& service : services) paths.push_back(ServicePath(service));
  // In order: "/cb" is created (or found) before its children are asked for,
  // and one session's requests are answered in order.
  return RunWindowed(static_cast<int64_t>(paths.size()), [&](int64_t i, DoneCallback done) {
    zk->CreatePersistent(paths[static_cast<size_t>(i)], std::move(done));
  });
}

absl::StatusOr<int64_t> ZkSystem::CountInstances(const std::vector<std::string>& services) {
  // Before the connection, which (closing) waits for the calls that fill it.
  std::vector<int64_t> counts(services.size(), 0);
  auto connection = Connect();
  if (!connection.ok()) return connection.status();
  auto* zk = static_cast<ZkConnection*>(connection->get());
  auto s = RunWindowed(static_cast<int64_t>(services.size()), [&](int64_t i, DoneCallback done) {
    zk->CountChildren(ServicePath(services[static_cast<size_t>(i)]),
                      &counts[static_cast<size_t>(i)], std::move(done));
  });
  if (!s.ok()) return s;
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  return total;
}

absl::Status ZkConnection::Open(const std::string& address) {
  zh_ = zookeeper_init2(address.c_str(), &ZkConnection::SessionWatcher, kSessionTimeoutMs, nullptr,
                        this, 0, &ClientLog);
  if (zh_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("zookeeper_init: ", strerror(errno)));
  }
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, seconds(20), [&] { return session_state_ == ZOO_CONNECTED_STATE; })) {
    return absl::UnavailableError("no ZooKeeper session in 20 s");
  }
  return absl::OkStatus();
}

ZkConnection::~ZkConnection() {
  if (zh_ == nullptr) return;
  closing_ = true;  // watchers stop re-arming
  {
    // Outstanding calls complete (or fail with a connection loss) within the
    // session timeout; their state must not outlive the handle.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, milliseconds(kSessionTimeoutMs + 5000),
                 [&] { return calls_in_flight_ == 0; });
  }
  // Closes the session: the server deletes its ephemeral znodes.
  zookeeper_close(zh_);
}

void ZkConnection::SessionWatcher(zhandle_t*, int type, int state, const char*, void* ctx) {
  if (type != ZOO_SESSION_EVENT) return;
  auto* self = static_cast<ZkConnection*>(ctx);
  std::lock_guard lock(self->mu_);
  self->session_state_ = state;
  self->cv_.notify_all();
}

void ZkConnection::Begin() {
  std::lock_guard lock(mu_);
  ++calls_in_flight_;
}

void ZkConnection::End() {
  std::lock_guard lock(mu_);
  if (--calls_in_flight_ == 0) cv_.notify_all();
}

void ZkConnection::Finish(Call* call, int rc) {
  if (call->exists_ok && rc == ZNODEEXISTS) rc = ZOK;
  DoneCallback done = std::move(call->done);
  delete call;
  done(FromZk(rc, "ZooKeeper request"));
  End();
}

void ZkConnection::StringDone(int rc, const char*, const void* data) {
  auto* call = static_cast<Call*>(const_cast<void*>(data));
  call->connection->Finish(call, rc);
}

void ZkConnection::MultiDone(int rc, const void* data) {
  auto* call = static_cast<Call*>(const_cast<void*>(data));
  call->connection->Finish(call, rc);
}

void ZkConnection::CreatePersistent(const std::string& path, DoneCallback done) {
  auto* call = new Call(this, std::move(done));
  call->new_path = path;
  call->exists_ok = true;
  Begin();
  int rc = zoo_acreate(zh_, call->new_path.c_str(), nullptr, -1, &ZOO_OPEN_ACL_UNSAFE,
                       ZOO_PERSISTENT, &ZkConnection::StringDone, call);
  if (rc != ZOK) Finish(call, rc);
}

void ZkConnection::CountChildren(const std::string& path, int64_t* count, DoneCallback done) {
  auto* call = new Call(this, std::move(done));
  call->new_path = path;
  call->children = count;
  Begin();
  int rc = zoo_aget_children(zh_, call->new_path.c_str(), 0, &ZkConnection::CountDone, call);
  if (rc != ZOK) Finish(call, rc);
}

void ZkConnection::CountDone(int rc, const struct String_vector* strings, const void* data) {
  auto* call = static_cast<Call*>(const_cast<void*>(data));
  if (rc == ZOK) *call->children = strings->count;
  call->connection->Finish(call, rc);
}

void ZkConnection::Publish(const std::string& service, const std::string& instance, uint64_t gen,
                           const std::string& data, DoneCallback done) {
  auto* call = new Call(this, std::move(done));
  call->new_path = InstancePath(service, instance, gen);
  call->data = data;
  Begin();
  int rc;
  if (gen == 0) {
    rc = zoo_acreate(zh_, call->new_path.c_str(), call->data.data(),
                     static_cast<int>(call->data.size()), &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
                     &ZkConnection::StringDone, call);
  } else {
    call->old_path = InstancePath(service, instance, gen - 1);
    zoo_delete_op_init(&call->ops[0], call->old_path.c_str(), -1);
    zoo_create_op_init(&call->ops[1], call->new_path.c_str(), call->data.data(),
                       static_cast<int>(call->data.size()), &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
                       nullptr, 0);
    rc = zoo_amulti(zh_, 2, call->ops, call->results, &ZkConnection::MultiDone, call);
  }
  if (rc != ZOK) Finish(call, rc);
}

void ZkConnection::PublishBatch(std::vector<PublishRequest> batch, BatchDoneCallback done) {
  auto* call = new MultiCall;
  call->connection = this;
  call->done = std::move(done);
  call->registrations = static_cast<int64_t>(batch.size());
  const size_t n = batch.size();
  call->old_paths.resize(n);
  call->new_paths.resize(n);
  call->data.resize(n);
  call->ops.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    const auto& r = batch[i];
    call->new_paths[i] = InstancePath(r.service, r.instance, r.gen);
    call->data[i] = r.data;
    if (r.gen > 0) {
      call->old_paths[i] = InstancePath(r.service, r.instance, r.gen - 1);
      call->ops.emplace_back();
      zoo_delete_op_init(&call->ops.back(), call->old_paths[i].c_str(), -1);
    }
    call->ops.emplace_back();
    zoo_create_op_init(&call->ops.back(), call->new_paths[i].c_str(), call->data[i].data(),
                       static_cast<int>(call->data[i].size()), &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
                       nullptr, 0);
  }
  call->results.resize(call->ops.size());
  Begin();
  int rc = zoo_amulti(zh_, static_cast<int>(call->ops.size()), call->ops.data(),
                      call->results.data(), &ZkConnection::BatchDone, call);
  if (rc != ZOK) BatchDone(rc, call);
}

void ZkConnection::BatchDone(int rc, const void* data) {
  auto* call = static_cast<MultiCall*>(const_cast<void*>(data));
  ZkConnection* self = call->connection;
  BatchDoneCallback done = std::move(call->done);
  const int64_t registrations = call->registrations;
  delete call;
  done(registrations, FromZk(rc, "ZooKeeper multi"));
  self->End();
}

absl::Status ZkConnection::Subscribe(const std::string& service, ViewCallback on_view,
                                     milliseconds timeout) {
  Sub* sub;
  {
    std::lock_guard lock(mu_);
    subs_.push_back(std::make_unique<Sub>());
    sub = subs_.back().get();
  }
  sub->connection = this;
  sub->path = ServicePath(service);
  sub->on_view = std::move(on_view);
  ReadChildren(sub);
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return sub->established || !sub->error.empty(); })) {
    return absl::DeadlineExceededError("no children of " + sub->path + " in time");
  }
  if (!sub->error.empty()) return absl::UnavailableError(sub->error);
  return absl::OkStatus();
}

void ZkConnection::ReadChildren(Sub* sub) {
  Begin();
  int rc = zoo_awget_children(zh_, sub->path.c_str(), &ZkConnection::ChildWatcher, sub,
                              &ZkConnection::ChildrenDone, sub);
  if (rc != ZOK) {
    {
      std::lock_guard lock(mu_);
      sub->error = absl::StrCat("getChildren ", sub->path, ": ", zerror(rc));
      cv_.notify_all();
    }
    End();
  }
}

void ZkConnection::ChildWatcher(zhandle_t*, int type, int, const char*, void* ctx) {
  auto* sub = static_cast<Sub*>(ctx);
  // Session events reach every watcher too; only a child change means news.
  if (type != ZOO_CHILD_EVENT || sub->connection->closing_) return;
  sub->connection->ReadChildren(sub);
}

void ZkConnection::ChildrenDone(int rc, const struct String_vector* strings, const void* data) {
  auto* sub = static_cast<Sub*>(const_cast<void*>(data));
  ZkConnection* self = sub->connection;
  if (rc == ZOK) {
    sub->view.clear();
    for (int i = 0; i < strings->count; ++i) {
      std::string_view name(strings->data[i]);
      size_t at = name.rfind('@');
      if (at == std::string_view::npos) continue;
      uint64_t gen = 0;
      for (char c : name.substr(at + 1)) gen = gen * 10 + static_cast<uint64_t>(c - '0');
      sub->view.push_back({name.substr(0, at), gen});
    }
    sub->on_view(sub->view);
  }
  {
    std::lock_guard lock(self->mu_);
    if (rc == ZOK) {
      sub->established = true;
    } else if (sub->error.empty()) {
      sub->error = absl::StrCat("getChildren ", sub->path, ": ", zerror(rc));
    }
    self->cv_.notify_all();
  }
  self->End();
}

}  // namespace

std::unique_ptr<System> NewZooKeeperSystem(const SystemOptions& options) {
  return std::make_unique<ZkSystem>(options);
}

}  // namespace cairn::bench
