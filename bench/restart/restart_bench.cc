// Standalone restart benchmark (bench/restart/run): what the restart warm-up
// (docs/ARCHITECTURE.md, "Restart and reconnect") prevents and what it costs.
//
// A `cairn registry` on 127.0.0.1 with a temporary data dir; one client per
// publisher (as `cairnctl publish` processes would be), `data_ids` dataIds
// with `publishers` publishers each, and `subscribers` subscriber clients
// spread over the dataIds; every client with the default options (reconnect
// backoff 100 ms doubling to 5 s). Then, `restarts` times: kill -9, restart
// on the same port and data dir, and measure
//   * complete_view_ms: from the restart until every subscriber holds the
//     complete view again;
//   * false_removals: pushes lacking a publisher the subscriber had already
//     been shown (every publisher's client is alive throughout);
//   * first_push_new_during_warmup_ms: a brand-new client that connects as
//     soon as the registry is up and subscribes: Subscribe to first push;
//     incomplete_first_push_new_during_warmup counts its first pushes that
//     lacked live publishers;
//   * first_push_new_after_warmup_ms: the same for a new client that
//     subscribes once the warm-up is over (the steady state);
//   * warmup_ms: how long pushes were withheld (/metrics).
// Then `gone_restarts` more restarts (workload ..._one_client_gone) in which
// one publisher's client is closed for good while the registry is down: the
// warm-up then waits for its timeout, the worst case for a new subscriber.
// Systems, same run and workload: `cairn` (default warm-up, 10 s at most)
// and `cairn-no-warmup` (--restart-warmup-ms 0: the anchor, the behaviour
// before the warm-up existed).
//
// --json writes records {workload, system, metric, value, unit}.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "client/registry_client.h"
#include "percentile.h"
#include "process.h"

namespace cairn {
namespace {

using cairn::testing::Eventually;
using cairn::testing::RegistryProcess;
using cairn::testing::RunCommand;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Record {
  std::string workload, system, metric;
  double value;
  std::string unit;
};

struct Sizes {
  int data_ids = 4;
  int publishers = 6;  // per dataId
  int subscribers = 8;
  int restarts = 3;
};

pb::DataInfoKey Key(int d) {
  pb::DataInfoKey key;
  key.set_data_id("svc.restart." + std::to_string(d));
  return key;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::unique_ptr<RegistryClient> NewClient(const std::string& server, const std::string& id) {
  RegistryClientOptions options;
  options.servers = {server};
  options.client_id = id;
  options.request_timeout = milliseconds(20000);
  auto client = RegistryClient::Create(options);
  return client.ok() ? std::move(*client) : nullptr;
}

// One subscription's pushes, keyed by publisher registration id. Thread-safe.
class View {
 public:
  explicit View(std::set<std::string> full) : full_(std::move(full)) {}
  PushCallback Callback() {
    return [this](const pb::Push& push) {
      std::set<std::string> ids;
      for (const auto& zone : push.zones()) {
        for (const auto& pub : zone.publishers()) ids.insert(pub.registration_id());
      }
      std::lock_guard lock(mu_);
      bool lacks_shown = std::any_of(shown_.begin(), shown_.end(),
                                     [&](const std::string& id) { return ids.count(id) == 0; });
      false_removals_ += lacks_shown ? 1 : 0;
      if (pushes_ == 0) {
        first_push_at_ = Clock::now();
        first_complete_ = ids == full_;
      }
      ++pushes_;
      shown_.insert(ids.begin(), ids.end());
      complete_ = ids == full_;
    };
  }
  bool complete() {
    std::lock_guard lock(mu_);
    return complete_;
  }
  int false_removals() {
    std::lock_guard lock(mu_);
    return false_removals_;
  }
  // When the first push arrived, and whether it held every publisher.
  std::optional<std::pair<Clock::time_point, bool>> first_push() {
    std::lock_guard lock(mu_);
    if (pushes_ == 0) return std::nullopt;
    return std::make_pair(first_push_at_, first_complete_);
  }
  // Before a restart: the next complete push counts. A publisher whose
  // client is closed for good (`gone`) is no longer expected, and a view
  // without it is no false removal.
  void Restarting(const std::string& gone = "") {
    std::lock_guard lock(mu_);
    complete_ = false;
    if (!gone.empty() && full_.erase(gone) > 0) shown_.erase(gone);
  }

 private:
  std::mutex mu_;
  std::set<std::string> full_;
  std::set<std::string> shown_;
  bool complete_ = false;
  int false_removals_ = 0;
  int pushes_ = 0;
  Clock::time_point first_push_at_{};
  bool first_complete_ = false;
};

// A value of the registry's /metrics (first sample of `name`), or -1.
double Metric(const std::string& admin, const std::string& name) {
  auto [code, out] = RunCommand(
      {"/usr/bin/curl", "-s", "--max-time", "5", "http://" + admin + "/metrics"}, seconds(10));
  if (code != 0) return -1;
  size_t pos = 0;
  while ((pos = out.find(name, pos)) != std::string::npos) {
    bool line_start = pos == 0 || out[pos - 1] == '\n';
    size_t after = pos + name.size();
    if (line_start && after < out.size() && (out[after] == ' ' || out[after] == '{')) {
      size_t space = out.find(' ', after);
      return std::atof(out.c_str() + space + 1);
    }
    pos = after;
  }
  return -1;
}

// A brand-new subscriber client: connects, subscribes to dataId 0, and
// gives the time from Subscribe to its first push and whether that push
// held every publisher of `full`; ms -1 if no push within 30 s.
struct FirstPush {
  double ms = -1;
  bool complete = false;
};
FirstPush MeasureNewSubscriber(const std::string& server, const std::string& id,
                               const std::set<std::string>& full) {
  FirstPush result;
  auto client = NewClient(server, id);
  if (client == nullptr || !client->WaitConnected(seconds(20)).ok()) return result;
  View view(full);
  auto start = Clock::now();
  auto sub = client->Subscribe({Key(0)}, view.Callback());
  if (!sub.ok()) return result;
  if (!Eventually([&] { return view.first_push().has_value(); }, seconds(30))) return result;
  auto first = *view.first_push();
  result.ms = Ms(first.first - start);
  result.complete = first.second;
  return result;
}

// What one restart showed.
struct RestartSample {
  bool converged = false;
  double complete_ms = 0;
  int false_removals = 0;
  double warmup_ms = 0;
  FirstPush during, after;
};

// The figures of a series of restarts, as records of `workload`.
void AddRecords(const std::string& workload, const std::string& system,
                const std::vector<RestartSample>& samples, std::vector<Record>& records) {
  auto add = [&](const std::string& metric, double value, const std::string& unit) {
    records.push_back({workload, system, metric, value, unit});
  };
  auto stats = [&](const std::string& metric, std::vector<double> v) {
    std::sort(v.begin(), v.end());
    add(metric + "_p50", bench::NearestRank(v, 0.5), "ms");
    add(metric + "_max", v.empty() ? -1 : v.back(), "ms");
  };
  std::vector<double> complete, warmup, during, after;
  int false_removals = 0, with_false = 0, incomplete = 0;
  for (const RestartSample& s : samples) {
    complete.push_back(s.complete_ms);
    warmup.push_back(s.warmup_ms);
    if (s.during.ms >= 0) during.push_back(s.during.ms);
    if (s.after.ms >= 0) after.push_back(s.after.ms);
    false_removals += s.false_removals;
    with_false += s.false_removals > 0 ? 1 : 0;
    incomplete += s.during.ms >= 0 && !s.during.complete ? 1 : 0;
  }
  add("restarts", static_cast<double>(samples.size()), "count");
  stats("complete_view_ms", complete);
  add("false_removals", false_removals, "pushes");
  add("restarts_with_false_removals", with_false, "count");
  stats("warmup_ms", warmup);
  stats("first_push_new_during_warmup_ms", during);
  add("incomplete_first_push_new_during_warmup", incomplete, "count");
  stats("first_push_new_after_warmup_ms", after);
}

// One system: start, register, kill -9 restarts (the last `gone_restarts`
// of them with one publisher's client closed for good while the registry is
// down). Appends records.
bool RunSystem(const std::string& system, const std::vector<std::string>& flags, const Sizes& sizes,
               int gone_restarts, std::vector<Record>& records) {
  RegistryProcess server(flags);
  if (!server.Start()) {
    std::fprintf(stderr, "%s: registry did not start\n%s\n", system.c_str(), server.Log().c_str());
    return false;
  }
  const std::string address = server.grpc_address();
  std::vector<std::unique_ptr<RegistryClient>> publisher_clients, subscriber_clients;
  std::vector<std::shared_ptr<Publisher>> publishers;
  std::vector<std::set<std::string>> full(sizes.data_ids);
  for (int d = 0; d < sizes.data_ids; ++d) {
    for (int p = 0; p < sizes.publishers; ++p) {
      publisher_clients.push_back(
          NewClient(address, "pub-" + std::to_string(d) + "-" + std::to_string(p)));
      if (publisher_clients.back() == nullptr) return false;
      auto handle = publisher_clients.back()->Publish(
          {Key(d), {"10.1." + std::to_string(d) + "." + std::to_string(p) + ":12200"}, "", "", {}});
      if (!handle.ok()) {
        std::fprintf(stderr, "%s: publish: %s\n", system.c_str(),
                     handle.status().ToString().c_str());
        return false;
      }
      full[d].insert((*handle)->registration_id());
      publishers.push_back(std::move(*handle));
    }
  }
  std::vector<std::unique_ptr<View>> views;
  std::vector<int> view_data_id;
  std::vector<std::shared_ptr<Subscription>> subscriptions;
  for (int s = 0; s < sizes.subscribers; ++s) {
    int d = s % sizes.data_ids;
    subscriber_clients.push_back(NewClient(address, "sub-" + std::to_string(s)));
    views.push_back(std::make_unique<View>(full[d]));
    view_data_id.push_back(d);
    auto sub = subscriber_clients.back()->Subscribe({Key(d)}, views.back()->Callback());
    if (!sub.ok()) return false;
    subscriptions.push_back(std::move(*sub));
  }
  auto all_complete = [&] {
    return std::all_of(views.begin(), views.end(), [](auto& v) { return v->complete(); });
  };
  if (!Eventually(all_complete, seconds(30))) {
    std::fprintf(stderr, "%s: subscribers did not see every publisher\n", system.c_str());
    return false;
  }
  // The registry records its connected clients about once a second.
  std::this_thread::sleep_for(milliseconds(2500));

  std::vector<RestartSample> plain, gone;
  bool ok = true;
  int total = sizes.restarts + gone_restarts;
  for (int r = 0; r < total && ok; ++r) {
    bool client_gone = r >= sizes.restarts;
    uint16_t port = server.grpc_port();
    server.Stop(SIGKILL);
    std::string gone_id;
    if (client_gone) {
      // dataId 0's publisher r: its client ends while the registry is down
      // and never comes back (a stopped instance).
      size_t index = static_cast<size_t>((r - sizes.restarts) % sizes.publishers);
      gone_id = publishers[index]->registration_id();
      publishers[index].reset();
      publisher_clients[index]->Close();
      full[0].erase(gone_id);
    }
    for (size_t v = 0; v < views.size(); ++v) {
      views[v]->Restarting(view_data_id[v] == 0 ? gone_id : "");
    }
    int false_before = 0;
    for (auto& v : views) false_before += v->false_removals();
    auto restarted_at = Clock::now();
    if (!server.Start(port)) {
      std::fprintf(stderr, "%s: restart failed\n%s\n", system.c_str(), server.Log().c_str());
      return false;
    }
    RestartSample sample;
    // A brand-new subscriber as soon as the registry listens: during the
    // warm-up if there is one. Measured on its own thread while the
    // others converge.
    std::thread newcomer([&] {
      sample.during = MeasureNewSubscriber(address, "new-during-" + std::to_string(r), full[0]);
    });
    sample.converged = Eventually(all_complete, seconds(60));
    sample.complete_ms = Ms(Clock::now() - restarted_at);
    newcomer.join();
    if (!sample.converged) {
      std::fprintf(stderr, "%s restart %d: subscribers did not converge within 60 s\n",
                   system.c_str(), r + 1);
      ok = false;
    }
    // The warm-up ends at most 10 s (its default) after the start.
    Eventually(
        [&] { return Metric(server.admin_address(), "cairn_registry_restart_warmup_active") == 0; },
        seconds(20));
    sample.warmup_ms =
        1000 * Metric(server.admin_address(), "cairn_registry_restart_warmup_duration_seconds");
    sample.after = MeasureNewSubscriber(address, "new-after-" + std::to_string(r), full[0]);
    for (auto& v : views) sample.false_removals += v->false_removals();
    sample.false_removals -= false_before;
    std::printf(
        "  %-16s restart %d%s: complete view after %6.0f ms, false removals %3d, warm-up %6.0f "
        "ms, new subscriber's first push: during %6.0f ms (%s), after %4.0f ms\n",
        system.c_str(), r + 1, client_gone ? " (a client gone)" : "", sample.complete_ms,
        sample.false_removals, sample.warmup_ms, sample.during.ms,
        sample.during.ms < 0     ? "none"
        : sample.during.complete ? "complete"
                                 : "INCOMPLETE",
        sample.after.ms);
    std::fflush(stdout);
    (client_gone ? gone : plain).push_back(sample);
    // Let the newcomers' disconnects be recorded before the next restart.
    std::this_thread::sleep_for(milliseconds(2500));
  }
  std::string workload = "restart_" + std::to_string(sizes.data_ids * sizes.publishers) + "pub_" +
                         std::to_string(sizes.subscribers) + "sub";
  AddRecords(workload, system, plain, records);
  if (!gone.empty()) AddRecords(workload + "_one_client_gone", system, gone, records);

  subscriptions.clear();
  publishers.clear();
  for (auto& c : subscriber_clients) c->Close();
  for (auto& c : publisher_clients) c->Close();
  server.Stop(SIGTERM);
  return ok;
}

std::string ToJson(const std::vector<Record>& records) {
  std::string out = "[\n";
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    char value[64];
    std::snprintf(value, sizeof(value), "%.3f", r.value);
    out += "  {\"workload\": \"" + r.workload + "\", \"system\": \"" + r.system +
           "\", \"metric\": \"" + r.metric + "\", \"value\": " + value + ", \"unit\": \"" + r.unit +
           "\"}";
    out += i + 1 < records.size() ? ",\n" : "\n";
  }
  return out + "]\n";
}

int Main(int argc, char** argv) {
  CLI::App cli{
      "Cairn standalone restart: false removals and time to first push, "
      "with and without the restart warm-up"};
  bool quick = false;
  std::string json;
  Sizes sizes;
  int data_ids = 0, publishers = 0, subscribers = 0, restarts = 0, gone_restarts = -1;
  cli.add_flag("--quick", quick,
               "24 publishers, 8 subscribers, 3 restarts (+1 with a client gone) per system");
  cli.add_option("--data-ids", data_ids, "dataIds (default 8, quick 4)");
  cli.add_option("--publishers", publishers, "publisher clients per dataId (default 16, quick 6)");
  cli.add_option("--subscribers", subscribers, "subscriber clients (default 32, quick 8)");
  cli.add_option("--restarts", restarts, "kill -9 restarts per system (default 5, quick 3)");
  cli.add_option("--gone-restarts", gone_restarts,
                 "further restarts with one publisher's client gone for good (default 2, quick 1)");
  cli.add_option("--json", json, "also write every figure as a JSON array of records");
  CLI11_PARSE(cli, argc, argv);
  sizes.data_ids = data_ids > 0 ? data_ids : quick ? 4 : 8;
  sizes.publishers = publishers > 0 ? publishers : quick ? 6 : 16;
  sizes.subscribers = subscribers > 0 ? subscribers : quick ? 8 : 32;
  sizes.restarts = restarts > 0 ? restarts : quick ? 3 : 5;
  if (gone_restarts < 0) gone_restarts = quick ? 1 : 2;
  gone_restarts = std::min(gone_restarts, sizes.publishers - 1);  // one client of dataId 0 each
  std::printf("%d dataIds x %d publisher clients, %d subscriber clients, %d restarts (kill -9)\n",
              sizes.data_ids, sizes.publishers, sizes.subscribers, sizes.restarts);
  std::vector<Record> records;
  bool ok = RunSystem("cairn", {}, sizes, gone_restarts, records);
  ok &= RunSystem("cairn-no-warmup", {"--restart-warmup-ms", "0"}, sizes, gone_restarts, records);
  std::printf("\n%-38s %-16s %-42s %10s\n", "workload", "system", "metric", "value");
  for (const Record& r : records) {
    std::printf("%-38s %-16s %-42s %10.0f %s\n", r.workload.c_str(), r.system.c_str(),
                r.metric.c_str(), r.value, r.unit.c_str());
  }
  if (!json.empty()) std::ofstream(json, std::ios::trunc) << ToJson(records);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace cairn

int main(int argc, char** argv) { return cairn::Main(argc, argv); }
