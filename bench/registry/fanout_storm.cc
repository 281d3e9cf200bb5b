// fanout and storm: many subscribers, measured from the write to the callback
// of each subscriber.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "workload_util.h"
#include "workloads.h"

namespace cairn::bench {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Raises `target` to `value` if it is lower (concurrent writers: the highest wins).
void StoreMax(std::atomic<int64_t>& target, int64_t value) {
  int64_t current = target.load();
  while (current < value && !target.compare_exchange_weak(current, value)) {
  }
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Subscribes subscriber i (of `count`) on connection i % connections.size(),
// each connection's subscribers from its own thread. `service(i)` names the
// service, `callback(i)` makes the view callback.
absl::Status SubscribeAll(std::vector<std::unique_ptr<Connection>>& connections, int count,
                          const std::function<std::string(int)>& service,
                          const std::function<ViewCallback(int)>& callback) {
  std::mutex mu;
  absl::Status first_error;
  const int n = static_cast<int>(connections.size());
  ParallelFor(n, [&](int c) {
    for (int i = c; i < count; i += n) {
      auto s = connections[c]->Subscribe(service(i), callback(i), seconds(30));
      if (!s.ok()) {
        std::lock_guard lock(mu);
        if (first_error.ok()) first_error = s;
        return;
      }
    }
  });
  return first_error;
}

// Registers instance "p<j>" of service(k) for k in [0, services) and j in
// [0, per_service), spread over `connections`; waits for every answer.
absl::Status RegisterAll(std::vector<std::unique_ptr<Connection>>& connections, int64_t services,
                         int per_service, const std::function<std::string(int64_t)>& service,
                         seconds timeout, Tally& tally) {
  const int64_t total = services * per_service;
  const int64_t n = static_cast<int64_t>(connections.size());
  auto deadline = Clock::now() + timeout;
  std::vector<std::unique_ptr<Pump>> pumps;
  for (int64_t c = 0; c < n; ++c) {
    int64_t count = total / n + (c < total % n ? 1 : 0);
    auto name = [&service, c, n, per_service](int64_t i, std::string* s, std::string* instance) {
      int64_t k = c + i * n;
      *s = service(k / per_service);
      *instance = absl::StrCat("p", k % per_service);
    };
    // Untimed setup: one registration per request, as before batching.
    pumps.push_back(std::make_unique<Pump>(*connections[c], name, count, 64, 1, deadline, tally));
  }
  for (auto& p : pumps) p->Start();
  int64_t ok = 0;
  for (auto& p : pumps) {
    p->Wait(deadline + seconds(30));
    ok += p->ok();
  }
  if (ok != total) return absl::UnavailableError(absl::StrCat("registered ", ok, " of ", total));
  return absl::OkStatus();
}

}  // namespace

void RunFanout(System& system, const Sizes& sizes, Results& results) {
  const std::string workload = "fanout";
  const std::string sys = system.name();
  const std::string service = "fan.s0";
  const std::string changed = "p0";  // the instance every repeat changes
  Tally tally;

  // Shared with the callbacks; declared before the connections so that it
  // outlives them.
  struct Subscriber {
    std::atomic<uint64_t> gen{0};
    std::atomic<int> view_size{0};
  };
  std::vector<Subscriber> subscribers(static_cast<size_t>(sizes.fanout_subscribers));
  std::atomic<uint64_t> target{0};
  std::atomic<int64_t> remaining{0};
  std::atomic<int64_t> last_at_ns{0};
  std::atomic<uint64_t> answered{0};  // highest generation whose Publish was answered
  std::mutex mu;
  std::condition_variable cv;

  auto fail = [&](const absl::Status& s) {
    tally.Fail(s);
    tally.Report(results, workload, sys);
  };
  if (auto s = system.Prepare({service}); !s.ok()) return fail(s);
  auto publisher = ConnectMany(system, 1);
  if (!publisher.ok()) return fail(publisher.status());
  if (auto s = RegisterAll(
          *publisher, 1, sizes.fanout_publishers, [&](int64_t) { return service; }, seconds(60),
          tally);
      !s.ok()) {
    return fail(s);
  }
  auto connections = ConnectMany(system, sizes.fanout_connections);
  if (!connections.ok()) return fail(connections.status());
  auto subscribed = SubscribeAll(
      *connections, sizes.fanout_subscribers, [&](int) { return service; },
      [&](int i) -> ViewCallback {
        Subscriber* sub = &subscribers[static_cast<size_t>(i)];
        return [&, sub, changed](const std::vector<InstanceView>& view) {
          sub->view_size.store(static_cast<int>(view.size()));
          for (const auto& v : view) {
            if (v.instance != changed) continue;
            uint64_t want = target.load();
            uint64_t before = sub->gen.load();  // one subscription's callbacks never overlap
            if (v.gen > before) sub->gen.store(v.gen);
            // The first view at or past the target: this subscriber is done.
            if (before < want && v.gen >= want) {
              StoreMax(last_at_ns, NowNs());
              if (remaining.fetch_sub(1) == 1) {
                std::lock_guard lock(mu);
                cv.notify_all();
              }
            }
          }
        };
      });
  if (!subscribed.ok()) return fail(subscribed);
  for (const auto& s : subscribers) {
    if (s.view_size.load() != sizes.fanout_publishers) {
      return fail(
          absl::InternalError(absl::StrCat("a subscriber's initial view has ", s.view_size.load(),
                                           " instances, not ", sizes.fanout_publishers)));
    }
  }

  std::vector<double> last_delivery;
  auto deadline = Clock::now() + sizes.phase_timeout;
  for (int r = 1; r <= sizes.fanout_repeats && Clock::now() < deadline; ++r) {
    const auto gen = static_cast<uint64_t>(r);
    remaining.store(sizes.fanout_subscribers);
    target.store(gen);
    last_at_ns.store(0);
    int64_t begin_ns = NowNs();
    (*publisher)[0]->Publish(service, changed, gen, InstanceData(service, changed, gen),
                             [&, gen](const absl::Status& s) {
                               if (!s.ok()) tally.Fail(s);
                               std::lock_guard lock(mu);
                               answered.store(gen);
                               cv.notify_all();
                             });
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, seconds(60),
                     [&] { return remaining.load() <= 0 && answered.load() >= gen; })) {
      tally.Fail(absl::StrCat("repeat ", r, ": ", remaining.load(),
                              " subscribers without the change after 60 s"));
      break;
    }
    last_delivery.push_back(static_cast<double>(last_at_ns.load() - begin_ns) / 1e6);
    lock.unlock();
    // A short idle gap, so that each repeat starts from a quiet system.
    std::this_thread::sleep_for(milliseconds(50));
  }
  if (std::ssize(last_delivery) < sizes.fanout_repeats) {
    tally.Fail(
        absl::StrCat("measured ", last_delivery.size(), " of ", sizes.fanout_repeats, " repeats"));
  }
  AddPercentiles(results, workload, sys, "fanout_last_delivery", last_delivery, true);
  results.Add(workload, sys, "subscribers", static_cast<double>(sizes.fanout_subscribers), "count");
  connections->clear();
  publisher->clear();
  tally.Report(results, workload, sys);
}

void RunStorm(System& system, const Sizes& sizes, Results& results) {
  const std::string workload = "storm";
  const std::string sys = system.name();
  const int services = sizes.storm_services;
  const std::string instance = "p0";
  auto service_name = [](int64_t k) { return absl::StrCat("storm.s", k); };
  Tally tally;

  const double rate_per_s = static_cast<double>(sizes.storm_changes_per_min) / 60.0;
  const auto total_changes =
      static_cast<int64_t>(rate_per_s * static_cast<double>(sizes.storm_duration.count()));
  // Write times by (service, generation), preallocated so that the writer and
  // the subscriber callbacks share them without locks. Generations per
  // service are capped at `max_gen`; the writer skips a service at the cap.
  const int64_t max_gen = 8 + 3 * (total_changes / std::max(services, 1) + 1);
  std::vector<std::atomic<int64_t>> written_ns(static_cast<size_t>(services * max_gen));
  struct Subscriber {
    std::atomic<uint64_t> max_gen{0};   // highest generation seen
    std::atomic<uint64_t> view_gen{0};  // generation in the current view
    std::atomic<int> view_size{0};
    std::vector<double> latencies;  // its callbacks only; read after they stopped
  };
  std::vector<Subscriber> subscribers(static_cast<size_t>(services));

  auto fail = [&](const absl::Status& s) {
    tally.Fail(s);
    tally.Report(results, workload, sys);
  };
  std::vector<std::string> names;
  for (int k = 0; k < services; ++k) names.push_back(service_name(k));
  if (auto s = system.Prepare(names); !s.ok()) return fail(s);
  auto publishers = ConnectMany(system, sizes.storm_publisher_connections);
  if (!publishers.ok()) return fail(publishers.status());
  if (auto s = RegisterAll(*publishers, services, 1, service_name, seconds(120), tally); !s.ok()) {
    return fail(s);
  }
  auto connections = ConnectMany(system, sizes.storm_connections);
  if (!connections.ok()) return fail(connections.status());
  auto subscribed = SubscribeAll(
      *connections, services, [&](int i) { return service_name(i); },
      [&](int i) -> ViewCallback {
        Subscriber* sub = &subscribers[static_cast<size_t>(i)];
        std::atomic<int64_t>* written = &written_ns[static_cast<size_t>(i * max_gen)];
        return [sub, written, instance, max_gen](const std::vector<InstanceView>& view) {
          int64_t now = NowNs();
          uint64_t gen = 0;
          for (const auto& v : view) {
            if (v.instance == instance) gen = v.gen;
          }
          sub->view_size.store(static_cast<int>(view.size()));
          sub->view_gen.store(gen);
          uint64_t seen = sub->max_gen.load();
          // Changes coalesced into this view are delivered now too.
          for (uint64_t g = seen + 1; g <= gen && static_cast<int64_t>(g) < max_gen; ++g) {
            int64_t at = written[g].load(std::memory_order_acquire);
            if (at > 0) sub->latencies.push_back(static_cast<double>(now - at) / 1e6);
          }
          if (gen > seen) sub->max_gen.store(gen);
        };
      });
  if (!subscribed.ok()) return fail(subscribed);

  // The writer: changes at a fixed rate (open loop), on random services that
  // have no change in flight, so that each instance's generations stay in
  // order on every system.
  std::vector<uint64_t> gen(static_cast<size_t>(services), 0);
  std::vector<std::atomic<bool>> busy(static_cast<size_t>(services));
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> confirmed{0};
  std::mt19937_64 random(42);
  std::uniform_int_distribution<int> pick(0, services - 1);
  int64_t issued = 0, skipped = 0, stalled = 0;
  constexpr int64_t kMaxInFlight = 2000;
  auto begin = Clock::now();
  auto stop_at = begin + sizes.storm_duration + seconds(30);  // bound when the system lags
  for (int64_t n = 0; n < total_changes && Clock::now() < stop_at; ++n) {
    std::this_thread::sleep_until(begin + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(n / rate_per_s)));
    if (in_flight.load() >= kMaxInFlight) {  // the system is behind: wait, and say so
      ++stalled;
      while (in_flight.load() >= kMaxInFlight && Clock::now() < stop_at) {
        std::this_thread::sleep_for(milliseconds(1));
      }
    }
    int s = -1;
    for (int attempt = 0; attempt < 16 && s < 0; ++attempt) {
      int candidate = pick(random);
      if (!busy[static_cast<size_t>(candidate)].load() &&
          static_cast<int64_t>(gen[static_cast<size_t>(candidate)]) + 1 < max_gen) {
        s = candidate;
      }
    }
    if (s < 0) {
      ++skipped;
      continue;
    }
    uint64_t g = ++gen[static_cast<size_t>(s)];
    busy[static_cast<size_t>(s)] = true;
    written_ns[static_cast<size_t>(s * max_gen + static_cast<int64_t>(g))].store(
        NowNs(), std::memory_order_release);
    ++in_flight;
    ++issued;
    std::string service = service_name(s);
    (*publishers)[static_cast<size_t>(s) % publishers->size()]->Publish(
        service, instance, g, InstanceData(service, instance, g),
        [&, s](const absl::Status& status) {
          if (status.ok()) {
            ++confirmed;
          } else {
            tally.Fail(status);
          }
          busy[static_cast<size_t>(s)] = false;
          --in_flight;
        });
  }
  double write_s = std::chrono::duration<double>(Clock::now() - begin).count();
  auto drain_deadline = Clock::now() + seconds(60);
  while (in_flight.load() > 0 && Clock::now() < drain_deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }

  // Settle: wait until every subscriber's view is the final state, at most
  // storm_settle; whoever is still behind then is stale.
  auto fresh = [&](int k) {
    const auto& sub = subscribers[static_cast<size_t>(k)];
    return sub.view_size.load() == 1 && sub.view_gen.load() == gen[static_cast<size_t>(k)];
  };
  auto settle_begin = Clock::now();
  int64_t stale = services;
  while (true) {
    stale = 0;
    for (int k = 0; k < services; ++k) stale += fresh(k) ? 0 : 1;
    if (stale == 0 || Clock::now() - settle_begin >= sizes.storm_settle) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  double settle_ms = Ms(Clock::now() - settle_begin);
  if (stale > 0) {
    std::cerr << "storm/" << sys << ": " << stale << " stale subscriber(s) after "
              << sizes.storm_settle.count() << " s\n";
  }
  // No callback runs once the connections are closed: the latencies can be read.
  connections->clear();
  publishers->clear();
  std::vector<double> latencies;
  for (auto& sub : subscribers) {
    latencies.insert(latencies.end(), sub.latencies.begin(), sub.latencies.end());
  }
  if (issued < total_changes) {
    tally.Fail(absl::StrCat("issued ", issued, " of ", total_changes, " changes (", skipped,
                            " skipped: every picked service busy)"));
  }
  AddPercentiles(results, workload, sys, "storm_push", latencies);
  results.Add(workload, sys, "stale_subscribers", static_cast<double>(stale), "count");
  results.Add(workload, sys, "changes", static_cast<double>(confirmed.load()), "count");
  results.Add(workload, sys, "changes_per_s", static_cast<double>(confirmed.load()) / write_s,
              "1/s");
  results.Add(workload, sys, "deliveries", static_cast<double>(latencies.size()), "count");
  results.Add(workload, sys, "writer_stalls", static_cast<double>(stalled), "count");
  results.Add(workload, sys, "settle_ms", settle_ms, "ms");
  tally.Report(results, workload, sys);
}

}  // namespace cairn::bench
