// Micro-benchmark of LoadBalancer::ChooseHost per policy and host count.
// Single-threaded on purpose: balancers are per-worker objects, so this is
// the cost one worker pays per request.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "sidecar/upstream/load_balancer.h"

namespace cairn::sidecar::upstream {
namespace {

const char* const kPolicies[] = {"round_robin", "weighted_round_robin", "random", "least_request",
                                 "ring_hash"};

std::shared_ptr<const HostSet> MakeSet(int n) {
  std::vector<HostPtr> hosts;
  for (int i = 0; i < n; ++i) {
    // Mixed weights and some load so every policy takes its general path.
    auto host = std::make_shared<Host>(
        HostAddress{"10." + std::to_string(i / 256) + ".0." + std::to_string(i % 256), 8080},
        1 + i % 4);
    for (int r = 0; r < i % 7; ++r) host->IncActiveRequests();
    hosts.push_back(std::move(host));
  }
  return HostSet::Create(std::move(hosts));
}

// range(0): policy index, range(1): hosts, range(2): 1 = 10% of hosts ejected.
void BM_ChooseHost(benchmark::State& state) {
  const char* policy = kPolicies[state.range(0)];
  auto set = MakeSet(static_cast<int>(state.range(1)));
  if (state.range(2) != 0) {
    for (size_t i = 0; i < set->size(); i += 10) {
      set->hosts()[i]->SetHealthFlag(HealthFlag::kEjectedByOutlierDetection);
    }
  }
  auto lb = std::move(*CreateLoadBalancer(policy, 1));
  lb->UpdateHosts(set);
  uint64_t key = 0;
  for (auto _ : state) {
    LbContext ctx;
    ctx.hash_key = key++;
    benchmark::DoNotOptimize(lb->ChooseHost(ctx));
  }
  state.SetLabel(std::string(policy) + (state.range(2) != 0 ? " 10%-ejected" : ""));
}
BENCHMARK(BM_ChooseHost)->ArgsProduct({{0, 1, 2, 3, 4}, {10, 100, 1000}, {0, 1}});

// Main-thread/worker cost of a membership change (ring hash dominates).
void BM_UpdateHosts(benchmark::State& state) {
  const char* policy = kPolicies[state.range(0)];
  auto set = MakeSet(static_cast<int>(state.range(1)));
  auto lb = std::move(*CreateLoadBalancer(policy, 1));
  for (auto _ : state) lb->UpdateHosts(set);
  state.SetLabel(policy);
}
BENCHMARK(BM_UpdateHosts)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {100, 1000}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cairn::sidecar::upstream

BENCHMARK_MAIN();
