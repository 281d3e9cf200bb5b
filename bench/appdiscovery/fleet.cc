#include "fleet.h"

#include <atomic>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/registry_client.h"
#include "registry/app/app_model.h"
#include "registry_process.h"

namespace cairn::bench {

const char* ModeName(Mode mode) { return mode == Mode::kInterface ? "interface" : "app"; }

std::string AppName(int app) { return absl::StrFormat("bench-app-%03d", app); }

static std::string InterfaceName(int app, int iface) {
  return absl::StrFormat("com.cairn.bench.app%03d.Service%02d", app, iface);
}

pb::DataInfoKey InterfaceKey(int app, int iface) {
  pb::DataInfoKey key;
  key.set_data_id(InterfaceName(app, iface) + ":1.0");
  return key;
}

std::string Endpoint(int app, int instance) {
  return absl::StrFormat("bolt://10.%d.%d.%d:12200", app / 250, app % 250, 10 + instance);
}

std::map<std::string, std::string> InterfaceParams(int app, int iface) {
  // What a SOFARPC provider URL carries for an interface.
  return {{"appName", AppName(app)}, {"interface", InterfaceName(app, iface)},
          {"protocol", "bolt"},      {"serialization", "hessian2"},
          {"timeout", "3000"},       {"version", "1.0"},
          {"weight", "100"}};
}

std::map<std::string, std::string> InstanceParams(int app, int instance) {
  return {{"pid", absl::StrCat(10000 + app * 37 + instance)},
          {"startTime", absl::StrCat(int64_t{1764115200000} + app * 1000 + instance)}};
}

std::string InterfaceUrl(int app, int instance, int iface) {
  std::map<std::string, std::string> params = InterfaceParams(app, iface);
  params.merge(InstanceParams(app, instance));
  std::string url = Endpoint(app, instance);
  char sep = '?';
  for (const auto& [k, v] : params) {
    absl::StrAppend(&url, std::string(1, sep), k, "=", v);
    sep = '&';
  }
  return url;
}

std::vector<int> ConsumedApps(int consumer, const FleetSizes& sizes) {
  std::vector<int> out;
  for (int d = 1; d <= sizes.consumed_apps && d < sizes.apps; ++d) {
    out.push_back((consumer + d) % sizes.apps);
  }
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kVictimApp = 0;
constexpr int kVictimInstance = 0;
const char* kPushesSent = "cairn_registry_pushes_total{result=\"sent\"}";

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Polls `done` every `poll`; false if it still does not hold after `timeout`.
bool WaitUntil(const std::function<bool()>& done, Clock::duration timeout,
               Clock::duration poll = milliseconds(20)) {
  auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

// What the subscribers received, summed over all of them. Updated from the
// clients' dispatch threads.
struct Counters {
  std::atomic<int64_t> pushes{0};  // delivered to a callback
  std::atomic<int64_t> push_bytes{0};
  std::atomic<int64_t> revision_fetches{0};
  std::atomic<int64_t> revision_bytes{0};
  std::atomic<int64_t> fetch_errors{0};
};

// One subscriber's last delivered view (written by its client's dispatch
// thread, read by the waiting thread).
struct SubState {
  int provider = 0;                 // the app whose interface or instances it watches
  std::atomic<int> entries{-1};     // publishers in the last push; -1 before the first
  std::atomic<bool> victim{false};  // the last push lists the restarted instance
};

// One client stream. `fetched` mirrors the client's revision cache, so that
// a GetRevision is counted when (and only when) it goes over the wire.
struct Conn {
  std::unique_ptr<RegistryClient> client;
  std::mutex mu;
  std::set<std::string> fetched;
};

class FleetRun {
 public:
  FleetRun(Mode mode, const FleetSizes& sizes, RegistryProcess& registry, std::vector<Record>& out)
      : mode_(mode), sizes_(sizes), registry_(registry), out_(out) {}
  ~FleetRun() { Teardown(); }

  absl::Status Run();

 private:
  using Handles = std::vector<std::shared_ptr<Publisher>>;

  void Add(const std::string& workload, const std::string& metric, double value,
           const std::string& unit) {
    out_.push_back({workload, ModeName(mode_), metric, value, unit});
  }
  absl::StatusOr<std::unique_ptr<Conn>> Connect(const std::string& id);
  // Runs fn(connection index) on one thread per connection; the first error.
  absl::Status OnEveryConnection(const std::function<absl::Status(int)>& fn);
  absl::Status PublishInstance(RegistryClient& client, int app, int instance, Handles& handles,
                               std::map<int, std::string>& revisions);
  absl::Status SubscribeApp(Conn& conn, int consumer);
  PushCallback Callback(std::shared_ptr<SubState> state, Conn* conn);
  // True once every subscriber of the restarted app shows it `up` or not.
  bool VictimSeen(bool up) const;
  int64_t ReceivedPushes() const;
  // Waits until no subscriber received a push for sizes_.quiet.
  bool WaitQuiet();
  absl::StatusOr<double> PushesSent();
  absl::Status Load();
  absl::Status Restart();
  void Teardown();

  const Mode mode_;
  const FleetSizes sizes_;
  RegistryProcess& registry_;
  std::vector<Record>& out_;
  const std::string victim_endpoint_ = Endpoint(kVictimApp, kVictimInstance);

  int64_t idle_rss_ = 0;
  Counters counters_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::unique_ptr<Conn> victim_;
  Handles victim_handles_;
  std::mutex mu_;  // guards handles_, subs_ and states_ while loading
  Handles handles_;
  std::vector<std::shared_ptr<Subscription>> subs_;
  std::vector<std::shared_ptr<SubState>> states_;
};

absl::StatusOr<std::unique_ptr<Conn>> FleetRun::Connect(const std::string& id) {
  RegistryClientOptions options;
  options.servers = {registry_.address()};
  options.client_id = absl::StrCat("appbench-", ModeName(mode_), "-", id);
  options.app_name = "appbench";
  // The interface-level fleet loads about 125,000 registrations on two cores.
  options.request_timeout = seconds(60);
  auto client = RegistryClient::Create(options);
  if (!client.ok()) return client.status();
  if (auto s = (*client)->WaitConnected(seconds(30)); !s.ok()) return s;
  auto conn = std::make_unique<Conn>();
  conn->client = std::move(*client);
  return conn;
}

absl::Status FleetRun::OnEveryConnection(const std::function<absl::Status(int)>& fn) {
  std::vector<absl::Status> status(conns_.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < conns_.size(); ++t) {
    threads.emplace_back([&, t] { status[t] = fn(static_cast<int>(t)); });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& s : status) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status FleetRun::PublishInstance(RegistryClient& client, int app, int instance,
                                       Handles& handles, std::map<int, std::string>& revisions) {
  if (mode_ == Mode::kInterface) {
    for (int k = 0; k < sizes_.interfaces; ++k) {
      auto publisher =
          client.Publish({InterfaceKey(app, k), {InterfaceUrl(app, instance, k)}, AppName(app)});
      if (!publisher.ok()) return publisher.status();
      handles.push_back(std::move(*publisher));
    }
    return absl::OkStatus();
  }
  // An instance registers its revision before publishing; one registration
  // per app and stream is enough (the client re-sends it on reconnects).
  auto rev = revisions.find(app);
  if (rev == revisions.end()) {
    RevisionSpec spec{AppName(app)};
    for (int k = 0; k < sizes_.interfaces; ++k) {
      spec.interfaces.push_back({InterfaceKey(app, k), InterfaceParams(app, k)});
    }
    auto id = client.RegisterRevision(spec);
    if (!id.ok()) return id.status();
    rev = revisions.emplace(app, *id).first;
  }
  auto publisher = client.PublishApp(
      {AppName(app), rev->second, {Endpoint(app, instance)}, "", InstanceParams(app, instance)});
  if (!publisher.ok()) return publisher.status();
  handles.push_back(std::move(*publisher));
  return absl::OkStatus();
}

PushCallback FleetRun::Callback(std::shared_ptr<SubState> state, Conn* conn) {
  return [this, state = std::move(state), conn](const pb::Push& push) {
    counters_.pushes.fetch_add(1, std::memory_order_relaxed);
    counters_.push_bytes.fetch_add(static_cast<int64_t>(push.ByteSizeLong()),
                                   std::memory_order_relaxed);
    int entries = 0;
    bool victim = false;
    for (const auto& zone : push.zones()) {
      for (const auto& publisher : zone.publishers()) {
        ++entries;
        for (const auto& data : publisher.data()) {
          if (app::EndpointKey(data) == victim_endpoint_) victim = true;
        }
        if (mode_ != Mode::kApp) continue;
        // An app-level consumer needs the revision's interfaces: fetched once
        // per stream (the client caches it), over the wire only then.
        auto rev = publisher.attributes().find(std::string(app::kRevisionAttribute));
        if (rev == publisher.attributes().end()) continue;
        {
          std::lock_guard lock(conn->mu);
          if (!conn->fetched.insert(rev->second).second) continue;
        }
        auto meta = conn->client->GetRevision(rev->second);
        if (!meta.ok()) {
          counters_.fetch_errors.fetch_add(1);
          continue;
        }
        counters_.revision_fetches.fetch_add(1);
        counters_.revision_bytes.fetch_add(static_cast<int64_t>(meta->ByteSizeLong()));
      }
    }
    state->victim.store(victim);
    state->entries.store(entries);
  };
}

absl::Status FleetRun::SubscribeApp(Conn& conn, int consumer) {
  for (int provider : ConsumedApps(consumer, sizes_)) {
    // Interface mode: one subscriber per consumed interface; app mode: one
    // per consumed app.
    int count = mode_ == Mode::kInterface ? sizes_.interfaces : 1;
    for (int k = 0; k < count; ++k) {
      auto state = std::make_shared<SubState>();
      state->provider = provider;
      auto callback = Callback(state, &conn);
      auto sub = mode_ == Mode::kInterface
                     ? conn.client->Subscribe({InterfaceKey(provider, k)}, std::move(callback))
                     : conn.client->SubscribeApp(AppName(provider), std::move(callback));
      if (!sub.ok()) return sub.status();
      std::lock_guard lock(mu_);
      subs_.push_back(std::move(*sub));
      states_.push_back(std::move(state));
    }
  }
  return absl::OkStatus();
}

bool FleetRun::VictimSeen(bool up) const {
  int want = up ? sizes_.instances : sizes_.instances - 1;
  for (const auto& state : states_) {
    if (state->provider != kVictimApp) continue;
    if (state->entries.load() != want || state->victim.load() != up) return false;
  }
  return true;
}

int64_t FleetRun::ReceivedPushes() const {
  int64_t n = 0;
  for (const auto& conn : conns_) n += static_cast<int64_t>(conn->client->stats().pushes_received);
  return n;
}

bool FleetRun::WaitQuiet() {
  auto deadline = Clock::now() + sizes_.phase_timeout;
  int64_t last = ReceivedPushes();
  auto since = Clock::now();
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
    int64_t now = ReceivedPushes();
    if (now != last) {
      last = now;
      since = Clock::now();
    } else if (Clock::now() - since >= sizes_.quiet) {
      return true;
    }
  }
  return false;
}

absl::StatusOr<double> FleetRun::PushesSent() {
  auto metrics = registry_.ScrapeMetrics();
  if (!metrics.ok()) return metrics.status();
  auto it = metrics->find(kPushesSent);
  if (it == metrics->end()) return absl::NotFoundError(absl::StrCat("no ", kPushesSent));
  return it->second;
}

absl::Status FleetRun::Load() {
  auto begin = Clock::now();
  for (int t = 0; t < sizes_.connections; ++t) {
    auto conn = Connect(absl::StrCat(t));
    if (!conn.ok()) return conn.status();
    conns_.push_back(std::move(*conn));
  }
  auto victim = Connect("restarted-0");
  if (!victim.ok()) return victim.status();
  victim_ = std::move(*victim);
  // The streams alone cost the registry memory (gRPC buffers, threads'
  // arenas): the same in both modes, shown apart.
  std::this_thread::sleep_for(sizes_.rss_settle);
  Add("fleet", "registry_rss_bytes_connected", static_cast<double>(registry_.RssBytes()), "bytes");

  // Publishers: instance n = app * instances + instance on stream n mod
  // connections; the restarted instance on its own stream.
  std::map<int, std::string> victim_revisions;
  if (auto s = PublishInstance(*victim_->client, kVictimApp, kVictimInstance, victim_handles_,
                               victim_revisions);
      !s.ok()) {
    return s;
  }
  int total = sizes_.apps * sizes_.instances;
  absl::Status status = OnEveryConnection([&](int t) {
    Handles handles;
    std::map<int, std::string> revisions;
    for (int n = t; n < total; n += sizes_.connections) {
      int app = n / sizes_.instances, instance = n % sizes_.instances;
      if (app == kVictimApp && instance == kVictimInstance) continue;
      if (auto s = PublishInstance(*conns_[t]->client, app, instance, handles, revisions);
          !s.ok()) {
        return s;
      }
    }
    std::lock_guard lock(mu_);
    for (auto& h : handles) handles_.push_back(std::move(h));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  auto published = Clock::now();
  std::this_thread::sleep_for(sizes_.rss_settle);
  Add("fleet", "registry_rss_bytes_published", static_cast<double>(registry_.RssBytes()), "bytes");

  // Subscribers: consuming app c on stream c mod connections.
  auto subscribing = Clock::now();
  status = OnEveryConnection([&](int t) {
    for (int c = t; c < sizes_.apps; c += sizes_.connections) {
      if (auto s = SubscribeApp(*conns_[t], c); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  bool converged = WaitUntil(
      [&] {
        for (const auto& state : states_) {
          if (state->entries.load() != sizes_.instances) return false;
        }
        return VictimSeen(true);
      },
      sizes_.phase_timeout);
  if (!converged) return absl::DeadlineExceededError("subscribers did not converge after loading");
  auto loaded = Clock::now();
  if (!WaitQuiet()) return absl::DeadlineExceededError("pushes did not stop after loading");
  std::this_thread::sleep_for(sizes_.rss_settle);
  Add("fleet", "publish_ms", Ms(published - begin), "ms");
  Add("fleet", "subscribe_ms", Ms(loaded - subscribing), "ms");
  int64_t rss = registry_.RssBytes();
  Add("fleet", "registry_rss_bytes", static_cast<double>(rss), "bytes");
  Add("fleet", "registry_rss_bytes_fleet", static_cast<double>(rss - idle_rss_), "bytes");
  Add("fleet", "load_pushes", static_cast<double>(ReceivedPushes()), "count");
  Add("fleet", "load_push_bytes", static_cast<double>(counters_.push_bytes.load()), "bytes");
  Add("fleet", "revision_fetches", static_cast<double>(counters_.revision_fetches.load()), "count");
  Add("fleet", "load_revision_fetch_bytes", static_cast<double>(counters_.revision_bytes.load()),
      "bytes");

  auto counts = registry_.Count();
  if (!counts.ok()) return counts.status();
  Add("fleet", "publisher_records", static_cast<double>(counts->publishers), "count");
  Add("fleet", "subscriber_records", static_cast<double>(counts->subscribers), "count");
  Add("fleet", "datum_records", static_cast<double>(counts->datums), "count");
  Add("fleet", "revision_records", static_cast<double>(counts->revisions), "count");
  return absl::OkStatus();
}

absl::Status FleetRun::Restart() {
  int64_t affected = 0;
  for (const auto& state : states_) affected += state->provider == kVictimApp ? 1 : 0;
  Add("restart", "affected_subscribers", static_cast<double>(affected), "count");

  auto sent_before = PushesSent();
  if (!sent_before.ok()) return sent_before.status();
  int64_t pushes0 = ReceivedPushes(), bytes0 = counters_.push_bytes.load(),
          fetch0 = counters_.revision_bytes.load();

  // Down: the instance's stream ends, so the registry withdraws every record
  // of it at once, as when the process dies. Close first: destroying the
  // handles of a live client would unregister them one by one instead.
  auto down_begin = Clock::now();
  victim_->client->Close();
  victim_handles_.clear();
  victim_.reset();
  // Polled every millisecond: the convergence times are reported.
  if (!WaitUntil([&] { return VictimSeen(false); }, sizes_.phase_timeout, milliseconds(1))) {
    return absl::DeadlineExceededError("subscribers did not see the instance go");
  }
  auto down_end = Clock::now();
  if (!WaitQuiet()) return absl::DeadlineExceededError("pushes did not stop after the down");
  int64_t bytes_down = counters_.push_bytes.load() - bytes0;

  // Up: a new stream, the same records again (app mode: the revision again,
  // which the registry already has, then the instance).
  auto victim = Connect("restarted-1");
  if (!victim.ok()) return victim.status();
  victim_ = std::move(*victim);
  auto up_begin = Clock::now();
  std::map<int, std::string> revisions;
  if (auto s = PublishInstance(*victim_->client, kVictimApp, kVictimInstance, victim_handles_,
                               revisions);
      !s.ok()) {
    return s;
  }
  if (!WaitUntil([&] { return VictimSeen(true); }, sizes_.phase_timeout, milliseconds(1))) {
    return absl::DeadlineExceededError("subscribers did not see the instance come back");
  }
  auto up_end = Clock::now();
  if (!WaitQuiet()) return absl::DeadlineExceededError("pushes did not stop after the up");
  auto sent_after = PushesSent();
  if (!sent_after.ok()) return sent_after.status();

  int64_t bytes = counters_.push_bytes.load() - bytes0;
  int64_t fetch_bytes = counters_.revision_bytes.load() - fetch0;
  Add("restart", "push_bytes_per_change", static_cast<double>(bytes + fetch_bytes), "bytes");
  Add("restart", "push_bytes_down", static_cast<double>(bytes_down), "bytes");
  Add("restart", "push_bytes_up", static_cast<double>(bytes - bytes_down), "bytes");
  Add("restart", "revision_fetch_bytes", static_cast<double>(fetch_bytes), "bytes");
  Add("restart", "pushes_per_change", static_cast<double>(ReceivedPushes() - pushes0), "count");
  Add("restart", "registry_pushes_per_change", *sent_after - *sent_before, "count");
  Add("restart", "down_converged_ms", Ms(down_end - down_begin), "ms");
  Add("restart", "up_converged_ms", Ms(up_end - up_begin), "ms");
  return absl::OkStatus();
}

void FleetRun::Teardown() {
  // Closing a client first makes its handles inert and guarantees that none
  // of its callbacks (which use this object) runs any more.
  if (victim_) victim_->client->Close();
  for (auto& conn : conns_) conn->client->Close();
  victim_handles_.clear();
  handles_.clear();
  subs_.clear();
  states_.clear();
  victim_.reset();
  conns_.clear();
}

absl::Status FleetRun::Run() {
  idle_rss_ = registry_.RssBytes();
  Add("fleet", "registry_rss_bytes_idle", static_cast<double>(idle_rss_), "bytes");
  if (auto s = Load(); !s.ok()) return s;
  if (auto s = Restart(); !s.ok()) return s;
  Add("fleet", "revision_fetch_errors", static_cast<double>(counters_.fetch_errors.load()),
      "count");
  if (!registry_.Running()) return absl::InternalError("the registry died");
  return absl::OkStatus();
}

}  // namespace

absl::Status RunMode(Mode mode, const FleetSizes& sizes, const std::string& bin_dir,
                     std::vector<Record>& out) {
  auto registry = RegistryProcess::Start(bin_dir, ModeName(mode));
  if (!registry.ok()) {
    out.push_back({"fleet", ModeName(mode), "errors", 1, "count"});
    return registry.status();
  }
  std::cerr << "[" << ModeName(mode) << "] registry at " << (*registry)->address() << " (pid "
            << (*registry)->pid() << ")\n";
  // Idle: started, nothing registered; the same moment for both modes.
  std::this_thread::sleep_for(milliseconds(500));
  absl::Status status;
  {
    FleetRun run(mode, sizes, **registry, out);
    status = run.Run();
  }
  if (!status.ok() && !(*registry)->Running()) {
    status = absl::InternalError(
        absl::StrCat(status.message(), "; the registry died; log:\n", (*registry)->LogTail()));
  }
  out.push_back({"fleet", ModeName(mode), "errors", status.ok() ? 0.0 : 1.0, "count"});
  registry->reset();  // SIGTERM, waits
  return status;
}

}  // namespace cairn::bench
