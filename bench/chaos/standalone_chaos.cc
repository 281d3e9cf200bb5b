#include "standalone_chaos.h"

#include <csignal>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace cairn::chaos {

using std::chrono::seconds;

const std::vector<std::string>& StandaloneChaos::Names() {
  static const std::vector<std::string> names = {"standalone_kill9_restart"};
  return names;
}

StandaloneChaos::StandaloneChaos(ChaosSettings settings, Report& report)
    : settings_(settings), report_(report) {
  // The restart warm-up (restart_warmup_ms, 10 s by default) + 1 s.
  settings_.watch = std::chrono::milliseconds(11000);
}

StandaloneChaos::~StandaloneChaos() { canaries_.reset(); }

absl::Status StandaloneChaos::Setup() {
  if (!registry_.Start()) {
    return absl::UnavailableError("the standalone registry did not start: " + registry_.Log());
  }
  const std::string address = registry_.grpc_address();
  CanaryOptions options;
  for (int c = 0; c < settings_.publishing_clients; ++c) {
    options.publisher_servers.push_back({address});
  }
  options.pinned_subscribers = {{"a", address}, {"b", address}};
  options.data_ids = settings_.data_ids;
  options.publishers_per_data_id = settings_.publishers_per_data_id;
  options.data_id_prefix = "chaos-standalone";
  canaries_ = std::make_unique<Canaries>(options);
  if (auto started = canaries_->Start(seconds(30)); !started.ok()) return started;
  // Production's clients have been connected for long when a registry dies;
  // the registry records who is connected about once a second (its restart
  // warm-up waits for them), so the first fault waits a few seconds too.
  Hold(std::chrono::seconds(3));
  std::printf("standalone up on %s: %d publishers on %d dataIds over %d clients, %d subscribers\n",
              address.c_str(), canaries_->publisher_count(), settings_.data_ids,
              settings_.publishing_clients, canaries_->subscriber_count());
  std::fflush(stdout);
  return absl::OkStatus();
}

void StandaloneChaos::Run(const std::string& name, int round) {
  RunRound(
      *canaries_, report_, settings_, name, round,
      [&]() -> absl::StatusOr<Clock::time_point> {
        if (name != "standalone_kill9_restart") {
          return absl::InvalidArgumentError("unknown fault " + name);
        }
        const uint16_t port = registry_.grpc_port();
        registry_.Stop(SIGKILL);
        canaries_->StartChurn();
        if (!registry_.Start(port)) {
          return absl::UnavailableError(absl::StrCat("restart on port ", port, " failed"));
        }
        return Clock::now();
      },
      [&] { return registry_.process() != nullptr && registry_.process()->Running(); });
  if (!cairn::testing::Eventually([&] { return canaries_->AllViewsMatch(); }, seconds(30))) {
    std::printf("    after %s: views still wrong after 30 s more: %s\n", name.c_str(),
                canaries_->Mismatches().c_str());
  }
}

}  // namespace cairn::chaos
