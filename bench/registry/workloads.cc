// register, hold and push (fanout and storm are in fanout_storm.cc).
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cairn_driver.h"
#include "workload_util.h"
#include "workloads.h"

namespace cairn::bench {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Services "<tag>.s<k>" of `per_service` instances "p<j>": instance i is
// instance i % per_service of service i / per_service.
std::vector<std::string> ServiceNames(const std::string& tag, int64_t instances, int per_service) {
  std::vector<std::string> names;
  int64_t count = (instances + per_service - 1) / per_service;
  names.reserve(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) names.push_back(absl::StrCat(tag, ".s", k));
  return names;
}

// Spreads `instances` over `connections` round robin, so that every connection
// holds instances of many services (as a host running many services does) and
// every service has instances on many connections. Pump i of connection c
// registers instance c + i * connections.
std::vector<std::unique_ptr<Pump>> MakePumps(std::vector<std::unique_ptr<Connection>>& connections,
                                             const std::string& tag, int64_t instances,
                                             int per_service, int window, int batch_max,
                                             Clock::time_point deadline, Tally& tally) {
  std::vector<std::unique_ptr<Pump>> pumps;
  const int64_t n = static_cast<int64_t>(connections.size());
  for (int64_t c = 0; c < n; ++c) {
    int64_t count = instances / n + (c < instances % n ? 1 : 0);
    auto name = [tag, c, n, per_service](int64_t i, std::string* service, std::string* instance) {
      int64_t k = c + i * n;
      *service = absl::StrCat(tag, ".s", k / per_service);
      *instance = absl::StrCat("p", k % per_service);
    };
    pumps.push_back(
        std::make_unique<Pump>(*connections[c], name, count, window, batch_max, deadline, tally));
  }
  return pumps;
}

// Starts every pump, waits for all; returns the seconds it took.
double RunPumps(std::vector<std::unique_ptr<Pump>>& pumps, Clock::time_point deadline) {
  auto begin = Clock::now();
  for (auto& p : pumps) p->Start();
  for (auto& p : pumps) p->Wait(deadline + seconds(30));  // answers to the last ones may trail
  return std::chrono::duration<double>(Clock::now() - begin).count();
}

}  // namespace

void RunRegister(System& system, const Sizes& sizes, Results& results) {
  const std::string workload = "register";
  const std::string sys = system.name();
  Tally tally;
  if (sys == "cairn" && sizes.with_floor) {
    // The gRPC floor next to it, on the same server and the same number of
    // connections (one unary call in flight each).
    UnaryFloor floor =
        MeasureUnaryFloor(system.address(), sizes.register_connections, sizes.floor_duration);
    results.Add(workload, "grpc-direct", "unary_calls_per_s", floor.calls_per_s, "1/s");
    results.Add(workload, "grpc-direct", "unary_latency_p50_ms", floor.p50_ms, "ms");
    results.Add(workload, "grpc-direct", "unary_latency_p99_ms", floor.p99_ms, "ms");
    results.Add(workload, "grpc-direct", "errors", static_cast<double>(floor.errors), "count");
  }
  const std::string tag = sizes.name_prefix + "reg";
  auto services = ServiceNames(tag, sizes.register_instances, sizes.hold_per_service);
  if (auto s = system.Prepare(services); !s.ok()) {
    tally.Fail(s);
    tally.Report(results, workload, sys);
    return;
  }
  auto connections = ConnectMany(system, sizes.register_connections);
  if (!connections.ok()) {
    tally.Fail(connections.status());
    tally.Report(results, workload, sys);
    return;
  }
  auto deadline = Clock::now() + sizes.phase_timeout;
  auto pumps = MakePumps(*connections, tag, sizes.register_instances, sizes.hold_per_service,
                         sizes.register_window, sizes.batch_max, deadline, tally);
  double elapsed_s = RunPumps(pumps, deadline);
  int64_t ok = 0;
  std::vector<double> latencies;
  for (auto& p : pumps) {
    ok += p->ok();
    auto l = p->TakeLatencies();
    latencies.insert(latencies.end(), l.begin(), l.end());
  }
  if (ok < sizes.register_instances) {
    tally.Fail(absl::StrCat("registered ", ok, " of ", sizes.register_instances));
  }
  results.Add(workload, sys, "registrations_per_s", static_cast<double>(ok) / elapsed_s, "1/s");
  std::sort(latencies.begin(), latencies.end());
  results.Add(workload, sys, "register_latency_p50_ms", Percentile(latencies, 0.50), "ms");
  results.Add(workload, sys, "register_latency_p99_ms", Percentile(latencies, 0.99), "ms");
  results.Add(workload, sys, "instances", static_cast<double>(ok), "count");
  // Closing the connections removes the instances before the next workload.
  connections->clear();
  tally.Report(results, workload, sys);
}

void RunHold(System& system, const Sizes& sizes, Results& results, const std::string& workload) {
  const std::string sys = system.name();
  Tally tally;
  auto connections = ConnectMany(system, sizes.hold_connections);
  if (!connections.ok()) {
    tally.Fail(connections.status());
    tally.Report(results, workload, sys);
    return;
  }
  // Idle RSS with the connections open: the figure is the cost of the
  // instances, not of the connections.
  std::this_thread::sleep_for(sizes.rss_settle);
  const int64_t rss_before = system.ServerRssBytes();
  auto services = ServiceNames("hold", sizes.hold_instances, sizes.hold_per_service);
  if (auto s = system.Prepare(services); !s.ok()) {
    tally.Fail(s);
    tally.Report(results, workload, sys);
    return;
  }
  auto deadline = Clock::now() + sizes.hold_timeout;
  auto pumps = MakePumps(*connections, "hold", sizes.hold_instances, sizes.hold_per_service,
                         sizes.register_window, sizes.batch_max, deadline, tally);
  double elapsed_s = RunPumps(pumps, deadline);
  int64_t acked = 0;
  for (auto& p : pumps) acked += p->ok();
  std::this_thread::sleep_for(sizes.rss_settle);
  const int64_t rss_after = system.ServerRssBytes();
  // What the server holds, read back: an acknowledged registration may have
  // been lost since (etcd drops every key of a lease it failed to renew).
  auto counted = system.CountInstances(services);
  if (!counted.ok()) tally.Fail(counted.status());
  const int64_t held = counted.ok() ? *counted : 0;
  if (held != acked) {
    tally.Fail(absl::StrCat("the server acknowledged ", acked, " registrations but holds ", held));
  }
  const bool died = rss_after == 0;
  if (died) {
    tally.Fail(
        absl::StrCat("the server died after ", acked, " registrations; log:\n", system.LogTail()));
  }
  if (acked < sizes.hold_instances) {
    std::cerr << "hold/" << sys << ": " << acked << " of " << sizes.hold_instances
              << " registrations acknowledged (time allowed: " << sizes.hold_timeout.count()
              << " s, " << tally.failed() << " errors)\n";
  }
  results.Add(workload, sys, "rss_bytes_idle", static_cast<double>(rss_before), "bytes");
  results.Add(workload, sys, "rss_bytes", static_cast<double>(rss_after), "bytes");
  // Per instance the server holds at the end (read back above), so that a
  // system that dropped registrations is not credited with their memory.
  results.Add(workload, sys, "rss_bytes_per_publisher",
              held > 0 && !died
                  ? static_cast<double>(rss_after - rss_before) / static_cast<double>(held)
                  : NAN,
              "bytes");
  results.Add(workload, sys, "registrations_acked", static_cast<double>(acked), "count");
  results.Add(workload, sys, "instances_held", static_cast<double>(held), "count");
  results.Add(workload, sys, "hold_registrations_per_s", static_cast<double>(acked) / elapsed_s,
              "1/s");
  system.Stop();
  connections->clear();
  tally.Report(results, workload, sys);
}

void RunPush(System& system, const Sizes& sizes, Results& results) {
  const std::string workload = "push";
  const std::string sys = system.name();
  const std::string service = sizes.name_prefix + "push.s0";
  const std::string instance = "probe";
  Tally tally;
  if (auto s = system.Prepare({service}); !s.ok()) {
    tally.Fail(s);
    tally.Report(results, workload, sys);
    return;
  }
  // Declared before the connections, so that it outlives their callbacks.
  struct Seen {
    std::mutex mu;
    std::condition_variable cv;
    int64_t gen = -1;        // highest generation the subscriber saw
    int64_t published = -1;  // highest generation whose Publish was answered
    std::vector<Clock::time_point> at;
  } seen;
  seen.at.resize(static_cast<size_t>(sizes.push_repeats) + 1);
  auto publisher = system.Connect();
  auto subscriber = system.Connect();
  if (!publisher.ok() || !subscriber.ok()) {
    tally.Fail(!publisher.ok() ? publisher.status() : subscriber.status());
    tally.Report(results, workload, sys);
    return;
  }
  auto wait_for = [&](int64_t gen) {
    std::unique_lock lock(seen.mu);
    return seen.cv.wait_for(lock, seconds(10),
                            [&] { return seen.gen >= gen && seen.published >= gen; });
  };
  auto publish = [&](int64_t gen) {
    (*publisher)
        ->Publish(service, instance, static_cast<uint64_t>(gen),
                  InstanceData(service, instance, static_cast<uint64_t>(gen)),
                  [&seen, &tally, gen](const absl::Status& s) {
                    if (!s.ok()) tally.Fail(s);
                    std::lock_guard lock(seen.mu);
                    seen.published = std::max(seen.published, gen);
                    seen.cv.notify_all();
                  });
  };
  publish(0);
  {
    std::unique_lock lock(seen.mu);
    seen.cv.wait_for(lock, seconds(10), [&] { return seen.published >= 0; });
  }
  auto subscribed = (*subscriber)
                        ->Subscribe(
                            service,
                            [&](const std::vector<InstanceView>& view) {
                              auto now = Clock::now();
                              for (const auto& v : view) {
                                if (v.instance != instance) continue;
                                std::lock_guard lock(seen.mu);
                                auto gen = static_cast<int64_t>(v.gen);
                                if (gen > seen.gen && gen < std::ssize(seen.at)) {
                                  seen.gen = gen;
                                  seen.at[static_cast<size_t>(gen)] = now;
                                  seen.cv.notify_all();
                                }
                              }
                            },
                            seconds(10));
  if (!subscribed.ok() || !wait_for(0)) {
    tally.Fail(subscribed.ok() ? absl::UnavailableError("initial view lacks the instance")
                               : subscribed);
    tally.Report(results, workload, sys);
    return;
  }
  std::vector<double> latencies;
  auto deadline = Clock::now() + sizes.phase_timeout;
  for (int64_t gen = 1; gen <= sizes.push_repeats && Clock::now() < deadline; ++gen) {
    auto begin = Clock::now();
    publish(gen);
    if (!wait_for(gen)) {
      tally.Fail(absl::StrCat("change ", gen, " not seen within 10 s"));
      break;  // later generations would all be measured against a backlog
    }
    std::lock_guard lock(seen.mu);
    latencies.push_back(Ms(seen.at[static_cast<size_t>(gen)] - begin));
  }
  if (std::ssize(latencies) < sizes.push_repeats) {
    tally.Fail(absl::StrCat("measured ", latencies.size(), " of ", sizes.push_repeats, " changes"));
  }
  AddPercentiles(results, workload, sys, "push_latency", latencies);
  results.Add(workload, sys, "changes", static_cast<double>(latencies.size()), "count");
  subscriber->reset();
  publisher->reset();
  tally.Report(results, workload, sys);
}

}  // namespace cairn::bench
