// cairn_xds_bench: how fast an endpoint change reaches 1,000 ADS streams of
// the registry's xDS server (state of the world, EDS), and what a stream
// costs the registry in memory, with the same figures for 1,000 Session API
// subscribers of the same registry as the anchor (issue 18).
//
// One `cairn registry` (standalone, temporary data dir, free ports,
// 127.0.0.1) started by this program; S services `bench.xds.svc-<i>` with two
// publishers each (data grpc://127.0.0.1:PORT; nothing listens there) through
// the C++ RegistryClient. Systems, in one run:
//   cairn-xds      N ADS streams (ads_load.h) over C channels, each
//                  subscribed (EDS) to svc-0 and 9 other services, ACKing
//                  every response; the change is on svc-0.
//   cairn-session  N RegistryClient subscriptions (session_load.h) over K
//                  clients to a twin service `bench.xds.session-svc-0` (two
//                  publishers, the same change): each round's change then
//                  reaches only the system being measured, while both stay
//                  connected.
// Workloads:
//   memory   registry VmRSS after the N receivers hold their first data minus
//            before they connected, / N (session first, then xDS: the heap
//            only grows in between).
//   change   R rounds; per round and system (the order alternates) the first
//            publisher of the watched service is republished with a new port;
//            last_delivery = publish call -> the LAST receiver got the new
//            endpoint (response or callback time). p50/p99 over rounds
//            (nearest rank); delivery_p50/p99 = every receiver of every round.
// A round whose change did not reach every receiver within
// --round-timeout-ms counts its receivers as stale and makes the percentiles
// over rounds null (missing data), never a smaller figure.
//
// Every wait is bounded; a guard thread stops the registry and removes its
// scratch directory on SIGINT/SIGTERM/SIGHUP or at the time limit, and the
// registry dies with the bench in any case (PR_SET_PDEATHSIG).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ads_load.h"
#include "anchor_servers.h"
#include "client/registry_client.h"
#include "delivery.h"
#include "session_load.h"
#include "xds_report.h"

namespace cairn::bench::xds {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kXds[] = "cairn-xds";
constexpr char kSession[] = "cairn-session";
constexpr char kSessionService[] = "bench.xds.session-svc-0";

struct Settings {
  bool quick = false;
  int services = 100;
  int streams = 1000;
  int channels = 20;
  int names_per_stream = 10;
  int subscribers = 1000;
  int session_clients = 10;
  int rounds = 20;
  int round_timeout_ms = 10000;
  int gap_ms = 200;
  int settle_ms = 1000;
  int connect_timeout_s = 60;
  bool idle_probe = false;
  std::vector<std::string> systems = {kXds, kSession};
  std::vector<std::string> registry_flags;
};

std::string ServiceName(int i) { return absl::StrCat("bench.xds.svc-", i); }
std::string Url(uint32_t port) { return absl::StrCat("grpc://127.0.0.1:", port); }
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ---------------------------------------------------------------- registry

struct RegistryChild {
  std::unique_ptr<ScratchDir> dir;
  std::unique_ptr<ServerProcess> process;
  std::string address;
  uint16_t admin_port = 0;
  std::optional<int> exit_status;

  void Stop() {
    if (process && !exit_status) exit_status = process->Stop();
  }
  ~RegistryChild() {
    Stop();
    process.reset();  // before its data dir goes
    dir.reset();
  }
};

absl::StatusOr<std::unique_ptr<RegistryChild>> StartRegistry(const std::string& bin_dir,
                                                             const Settings& s) {
  auto r = std::make_unique<RegistryChild>();
  r->dir = std::make_unique<ScratchDir>("xds");
  if (r->dir->path().empty()) return absl::InternalError("cannot create a scratch dir");
  std::string ready = r->dir->File("ready");
  // Defaults otherwise: the figures are those of the registry as shipped.
  std::vector<std::string> argv = {
      bin_dir + "/cairn", "registry",    "--listen",    "127.0.0.1:0",
      "--admin",          "127.0.0.1:0", "--data-dir",  r->dir->File("data"),
      "--ready-file",     ready,         "--log-level", "warn"};
  argv.insert(argv.end(), s.registry_flags.begin(), s.registry_flags.end());
  auto process = ServerProcess::Start(argv, r->dir->File("log"));
  if (!process.ok()) return process.status();
  r->process = std::move(*process);
  // The server renames the ready file into place: once it exists it is whole.
  auto deadline = Clock::now() + seconds(30);
  while (!std::filesystem::exists(ready) && r->process->Running() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  std::ifstream in(ready);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("grpc=", 0) == 0) r->address = line.substr(5);
    if (line.rfind("admin=", 0) == 0) {
      uint32_t port = 0;
      auto colon = line.rfind(':');
      if (colon != std::string::npos && absl::SimpleAtoi(line.substr(colon + 1), &port)) {
        r->admin_port = static_cast<uint16_t>(port);
      }
    }
  }
  if (r->address.empty() || r->admin_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cairn registry did not start; log:\n", r->process->LogTail()));
  }
  return r;
}

// The value of one /metrics series (e.g. "cairn_xds_streams"), if exposed.
std::optional<double> ScrapeMetric(uint16_t admin_port, const std::string& series) {
  auto reply =
      TcpExchange(admin_port, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", seconds(10));
  if (!reply.ok()) return std::nullopt;
  std::istringstream body(*reply);
  for (std::string line; std::getline(body, line);) {
    if (line.rfind(series + " ", 0) != 0) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &value)) return value;
  }
  return std::nullopt;
}

// ------------------------------------------------------------------ systems

// One system's receivers and what was measured of them.
struct System {
  explicit System(std::string n) : name(std::move(n)) {}
  std::string name;
  int receivers = 0;
  std::unique_ptr<DeliveryTracker> tracker;
  std::shared_ptr<Publisher> changed;  // first publisher of the watched service
  bool ready = false;
  std::vector<double> last_ms;      // per round; +inf when incomplete
  std::vector<double> delivery_ms;  // every receiver of every complete arrival
  int stale = 0;
};

class Bench {
 public:
  Bench(const Settings& s, RegistryChild& registry, std::vector<Record>& out)
      : s_(s), registry_(registry), out_(out) {}
  ~Bench() { Teardown(); }

  absl::Status Publish();
  void Setup(System& system);
  void Rounds();
  void IdleProbe();
  void Teardown();
  std::vector<std::string> Problems() const { return problems_; }

  System xds{kXds};
  System session{kSession};

 private:
  void Add(const std::string& workload, const std::string& system, const std::string& metric,
           double value, const std::string& unit, int round = -1, int rounds = 0) {
    out_.push_back({workload, system, metric, value, unit, round, rounds, ""});
  }
  void Fail(System& system, const std::string& why) {
    std::cerr << "[" << system.name << "] FAILED: " << why << "\n";
    out_.push_back({"change", system.name, "failed", 1, "bool", -1, 0, why});
    problems_.push_back(absl::StrCat(system.name, ": ", why));
  }
  int64_t Rss() const { return ProcessRssBytes(registry_.process->pid()); }
  absl::Status StartReceivers(System& system);
  void MeasureRound(System& system, int round);

  const Settings& s_;
  RegistryChild& registry_;
  std::vector<Record>& out_;
  std::vector<std::string> problems_;
  std::unique_ptr<RegistryClient> publisher_client_;
  std::vector<std::shared_ptr<Publisher>> publishers_;
  std::unique_ptr<AdsLoad> ads_;
  std::unique_ptr<SessionLoad> session_load_;
};

absl::Status Bench::Publish() {
  RegistryClientOptions o;
  o.servers = {registry_.address};
  o.client_id = "xds-bench-publishers";
  o.app_name = "xds-bench";
  o.request_timeout = seconds(s_.connect_timeout_s);
  auto client = RegistryClient::Create(o);
  if (!client.ok()) return client.status();
  publisher_client_ = std::move(*client);
  if (auto st = publisher_client_->WaitConnected(seconds(30)); !st.ok()) return st;
  // The watched services first: svc-0 (xDS) and its twin (session), whose
  // first publisher each round moves.
  auto publish = [&](const std::string& name, uint32_t port) -> absl::Status {
    pb::DataInfoKey key;
    key.set_data_id(name);
    auto p = publisher_client_->Publish({key, {Url(port)}});
    if (!p.ok()) return p.status();
    publishers_.push_back(*p);
    return absl::OkStatus();
  };
  auto begin = Clock::now();
  for (const std::string& name : {ServiceName(0), std::string(kSessionService)}) {
    if (auto st = publish(name, kInitialPort); !st.ok()) return st;
    (name == kSessionService ? session : xds).changed = publishers_.back();
    if (auto st = publish(name, kSecondPort); !st.ok()) return st;
  }
  for (int i = 1; i < s_.services; ++i) {
    for (uint32_t j = 0; j < 2; ++j) {
      if (auto st = publish(ServiceName(i), 40000 + 2 * static_cast<uint32_t>(i) + j); !st.ok()) {
        return st;
      }
    }
  }
  std::cerr << "published " << publishers_.size() << " publishers of " << s_.services + 1
            << " services in " << absl::StrFormat("%.0f", Ms(Clock::now() - begin)) << " ms\n";
  return absl::OkStatus();
}

absl::Status Bench::StartReceivers(System& system) {
  if (system.name == kXds) {
    AdsLoadOptions o;
    o.target = registry_.address;
    o.channels = s_.channels;
    o.watched = ServiceName(0);
    // svc-0 and names_per_stream - 1 others, a different window per stream.
    const int others = std::max(1, s_.services - 1);
    for (int i = 0; i < system.receivers; ++i) {
      std::vector<std::string> names = {ServiceName(0)};
      for (int k = 0; k < s_.names_per_stream - 1 && k < others; ++k) {
        names.push_back(ServiceName(1 + (i * (s_.names_per_stream - 1) + k) % others));
      }
      o.names.push_back(std::move(names));
    }
    ads_ = std::make_unique<AdsLoad>(std::move(o), system.tracker.get());
    ads_->Start();
    return absl::OkStatus();
  }
  SessionLoadOptions o;
  o.target = registry_.address;
  o.clients = s_.session_clients;
  o.subscribers = system.receivers;
  o.key.set_data_id(kSessionService);
  o.timeout = seconds(s_.connect_timeout_s);
  session_load_ = std::make_unique<SessionLoad>(std::move(o), system.tracker.get());
  return session_load_->Start();
}

// Connects the system's receivers, waits until every one holds the first
// data, and measures the memory they added.
void Bench::Setup(System& system) {
  const bool is_xds = system.name == kXds;
  system.receivers = is_xds ? s_.streams : s_.subscribers;
  system.tracker = std::make_unique<DeliveryTracker>(system.receivers, s_.rounds);
  const int64_t before = Rss();
  const auto begin = Clock::now();
  if (auto st = StartReceivers(system); !st.ok()) return Fail(system, st.ToString());
  const auto deadline = begin + seconds(s_.connect_timeout_s);
  while (system.tracker->Done(0) < system.receivers && Clock::now() < deadline) {
    if (is_xds && ads_->Failed() > 0) break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  if (is_xds && ads_->Failed() > 0) {
    return Fail(system, absl::StrCat(ads_->Failed(), " of ", system.receivers,
                                     " ADS streams ended; first: ", ads_->FirstError()));
  }
  if (system.tracker->Done(0) < system.receivers) {
    return Fail(system,
                absl::StrCat(system.tracker->Done(0), " of ", system.receivers,
                             " receivers got the first data within ", s_.connect_timeout_s, " s"));
  }
  Clock::time_point last{};
  for (int r = 0; r < system.receivers; ++r) last = std::max(last, system.tracker->Arrival(0, r));
  const double all_initial_ms = Ms(last - begin);
  std::this_thread::sleep_for(milliseconds(s_.settle_ms));
  const int64_t after = Rss();
  const double n = system.receivers;
  Add("connect", system.name, "all_initial_ms", all_initial_ms, "ms");
  if (is_xds) {
    Add("connect", system.name, "first_response_resources_min", ads_->MinFirstResources(), "count");
  }
  Add("memory", system.name, "bytes_per_stream", static_cast<double>(after - before) / n, "bytes");
  Add("memory", system.name, "rss_before_bytes", static_cast<double>(before), "bytes");
  Add("memory", system.name, "rss_after_bytes", static_cast<double>(after), "bytes");
  Add("memory", system.name, "streams", n, "count");
  std::string extra;
  if (is_xds) {
    auto server_streams = ScrapeMetric(registry_.admin_port, "cairn_xds_streams");
    Add("memory", system.name, "server_streams", server_streams ? *server_streams : NAN, "count");
    extra = absl::StrCat("; cairn_xds_streams ",
                         server_streams ? absl::StrCat(*server_streams) : "absent",
                         "; resources in a first response: ", ads_->MinFirstResources(), "..",
                         ads_->MaxFirstResources());
    if (server_streams && *server_streams != n) {
      problems_.push_back(absl::StrCat("cairn_xds_streams = ", *server_streams, ", expected ", n));
    }
  }
  std::cerr << "[" << system.name << "] " << system.receivers << " receivers hold the first data "
            << absl::StrFormat("%.0f", all_initial_ms) << " ms after connecting; registry RSS "
            << before / 1024 << " -> " << after / 1024 << " KiB ("
            << absl::StrFormat("%.0f", static_cast<double>(after - before) / n)
            << " B per receiver)" << extra << "\n";
  system.ready = true;
}

void Bench::MeasureRound(System& system, int round) {
  std::this_thread::sleep_for(milliseconds(s_.gap_ms));  // start from a quiet registry
  const auto begin = Clock::now();
  absl::Status st = system.changed->Republish({Url(DeliveryTracker::PortOf(round))});
  const auto deadline = begin + milliseconds(s_.round_timeout_ms);
  while (system.tracker->Done(round) < system.receivers && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  if (!st.ok())
    problems_.push_back(absl::StrCat(system.name, " round ", round, ": ", st.ToString()));
  const int done = system.tracker->Done(round);
  Clock::time_point last{};
  for (int r = 0; r < system.receivers; ++r) {
    auto at = system.tracker->Arrival(round, r);
    if (at == Clock::time_point{}) continue;
    last = std::max(last, at);
    system.delivery_ms.push_back(Ms(at - begin));
  }
  double last_ms = done == system.receivers ? Ms(last - begin) : INFINITY;
  if (done < system.receivers) {
    system.stale += system.receivers - done;
    problems_.push_back(absl::StrCat(system.name, " round ", round, ": ", system.receivers - done,
                                     " receivers without the change after ", s_.round_timeout_ms,
                                     " ms"));
  }
  system.last_ms.push_back(last_ms);
  Add("change", system.name, "last_delivery_ms", last_ms, "ms", round);
}

void Bench::Rounds() {
  std::vector<System*> ready;
  for (System* s : {&xds, &session}) {
    if (s->ready) ready.push_back(s);
  }
  if (ready.empty()) return;
  for (int round = 1; round <= s_.rounds; ++round) {
    // Alternate the order: each system runs first in half of the rounds.
    std::vector<System*> order = ready;
    if (round % 2 == 0) std::reverse(order.begin(), order.end());
    for (System* s : order) MeasureRound(*s, round);
    std::cerr << "round " << round;
    for (System* s : ready) {
      std::cerr << absl::StrFormat("  %s %.1f ms", s->name, s->last_ms.back());
    }
    std::cerr << "\n";
  }
  for (System* s : ready) {
    std::vector<double> last = s->last_ms;
    std::sort(last.begin(), last.end());
    std::sort(s->delivery_ms.begin(), s->delivery_ms.end());
    auto finite = [](double v) { return std::isfinite(v) ? v : NAN; };
    Add("change", s->name, "last_delivery_p50_ms", finite(Percentile(last, 0.50)), "ms", -1,
        s_.rounds);
    Add("change", s->name, "last_delivery_p99_ms", finite(Percentile(last, 0.99)), "ms", -1,
        s_.rounds);
    Add("change", s->name, "last_delivery_max_ms", finite(last.empty() ? NAN : last.back()), "ms",
        -1, s_.rounds);
    Add("change", s->name, "delivery_p50_ms", Percentile(s->delivery_ms, 0.50), "ms", -1,
        s_.rounds);
    Add("change", s->name, "delivery_p99_ms", Percentile(s->delivery_ms, 0.99), "ms", -1,
        s_.rounds);
    Add("change", s->name, "stale_receivers", s->stale, "count", -1, s_.rounds);
  }
  if (xds.ready && ads_) {
    Add("change", kXds, "responses", static_cast<double>(ads_->Responses()), "count");
    Add("change", kXds, "acks", static_cast<double>(ads_->Acks()), "count");
    if (ads_->Failed() > 0) {
      problems_.push_back(absl::StrCat(ads_->Failed(),
                                       " ADS streams ended during the rounds; "
                                       "first: ",
                                       ads_->FirstError()));
    }
    if (ads_->DecodeErrors() > 0) {
      problems_.push_back(absl::StrCat(ads_->DecodeErrors(), " resources did not decode"));
    }
  }
}

// Diagnostic: N ADS streams that open and send nothing. The registry holds
// each as a gRPC call and an xDS stream without subscriptions; their RSS per
// stream, against bytes_per_stream, splits what a stream costs into the
// call and what its subscriptions add.
void Bench::IdleProbe() {
  AdsLoadOptions o;
  o.target = registry_.address;
  o.channels = s_.channels;
  o.send_requests = false;
  o.names.assign(static_cast<size_t>(s_.streams), {});
  DeliveryTracker unused(s_.streams, 0);
  const int64_t before = Rss();
  auto load = std::make_unique<AdsLoad>(std::move(o), &unused);
  load->Start();
  std::optional<double> open;
  const auto deadline = Clock::now() + seconds(s_.connect_timeout_s);
  while (Clock::now() < deadline && load->Failed() == 0) {
    open = ScrapeMetric(registry_.admin_port, "cairn_xds_streams");
    if (open && *open >= s_.streams) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  if (!open || *open < s_.streams) {
    problems_.push_back(absl::StrCat("idle probe: cairn_xds_streams ",
                                     open ? absl::StrCat(*open) : "absent", " of ", s_.streams,
                                     "; first stream error: ", load->FirstError()));
  } else {
    std::this_thread::sleep_for(milliseconds(s_.settle_ms));
    const int64_t after = Rss();
    const double per = static_cast<double>(after - before) / s_.streams;
    Add("memory", kXds, "bytes_per_idle_stream", per, "bytes");
    std::cerr << "[idle probe] " << s_.streams << " ADS streams without a request: registry RSS "
              << before / 1024 << " -> " << after / 1024 << " KiB (" << absl::StrFormat("%.0f", per)
              << " B per stream)\n";
  }
  if (int left = load->Stop(seconds(10)); left > 0) {
    problems_.push_back(absl::StrCat(left, " idle ADS streams did not end in 10 s"));
  }
}

void Bench::Teardown() {
  if (ads_) {
    int left = ads_->Stop(seconds(10));
    if (left > 0) problems_.push_back(absl::StrCat(left, " ADS streams did not end in 10 s"));
    ads_.reset();
  }
  session_load_.reset();
  publishers_.clear();
  if (publisher_client_) publisher_client_->Close();
  publisher_client_.reset();
}

}  // namespace
}  // namespace cairn::bench::xds

int main(int argc, char** argv) {
  using namespace cairn::bench;
  using namespace cairn::bench::xds;
  Settings s;
  std::string json_file;
  std::string bin_dir;
  std::string systems = "cairn-xds,cairn-session";
  bool check = false;
  int64_t time_limit_s = 0;
  std::optional<int> rounds, settle_ms;
  CLI::App cli{
      "xDS bench: an endpoint change pushed to N ADS streams of one cairn registry, against N "
      "Session API subscribers of the same registry (127.0.0.1)"};
  cli.add_flag("--quick", s.quick, "5 rounds, shorter settles: under a minute");
  cli.add_flag("--check", check, "exit non-zero unless every system ran every round completely");
  cli.add_option("--json", json_file, "also write every figure as a JSON array of records");
  cli.add_option("--bin-dir", bin_dir, "directory of the cairn binary (default: this binary's)");
  cli.add_option("--systems", systems, "cairn-xds,cairn-session (default both)");
  cli.add_option("--services", s.services, "services registered, 2 publishers each (100)");
  cli.add_option("--streams", s.streams, "concurrent ADS streams (1000)");
  cli.add_option("--channels", s.channels, "gRPC channels (connections) for the streams (20)");
  cli.add_option("--names-per-stream", s.names_per_stream, "EDS names per stream (10)");
  cli.add_option("--subscribers", s.subscribers, "Session API subscribers (1000)");
  cli.add_option("--session-clients", s.session_clients, "RegistryClients for them (10)");
  cli.add_option("--rounds", rounds, "changes measured per system (20; quick 5)");
  cli.add_option("--round-timeout-ms", s.round_timeout_ms, "wait per change (10000)");
  cli.add_option("--gap-ms", s.gap_ms, "idle time before each change (200)");
  cli.add_option("--settle-ms", settle_ms, "wait before a memory sample (1000; quick 500)");
  cli.add_flag("--idle-probe", s.idle_probe,
               "diagnostic instead of the bench: the registry RSS per ADS stream that opens "
               "and sends nothing (--streams of them)");
  cli.add_option("--registry-flag", s.registry_flags,
                 "extra flag for `cairn registry` (repeatable; e.g. --registry-flag=--log-level "
                 "--registry-flag=info)");
  cli.add_option("--time-limit-s", time_limit_s,
                 "stop everything and fail after this long (default 900, quick 120)");
  CLI11_PARSE(cli, argc, argv);

  // Before any other thread exists: the guard's signal mask must be inherited.
  StartGuard(seconds(time_limit_s > 0 ? time_limit_s : s.quick ? 120 : 900));
  signal(SIGPIPE, SIG_IGN);

  s.rounds = rounds ? *rounds : s.quick ? 5 : 20;
  s.settle_ms = settle_ms ? *settle_ms : s.quick ? 500 : 1000;
  s.systems.clear();
  for (const char* name : {kXds, kSession}) {
    if (systems.find(name) != std::string::npos) s.systems.push_back(name);
  }
  if (s.services < 1 || s.streams < 1 || s.channels < 1 || s.names_per_stream < 1 ||
      s.subscribers < 1 || s.session_clients < 1 || s.rounds < 1 || s.systems.empty()) {
    std::cerr << "need at least 1 of each (services, streams, channels, names, subscribers, "
                 "clients, rounds, systems)\n";
    return 2;
  }
  if (s.services > 12000) {
    std::cerr << "at most 12,000 services (their publishers' ports are 40000 + 2 i + j)\n";
    return 2;
  }
  if ((s.streams + s.channels - 1) / s.channels > 100) {
    std::cerr << "over 100 streams per channel: the registry's default "
                 "max_streams_per_connection would queue them; use more --channels\n";
    return 2;
  }
  if (bin_dir.empty()) {
    bin_dir = std::filesystem::canonical("/proc/self/exe").parent_path().string();
  }
  const std::string started_at = UtcNow();
  const std::string loadavg_start = LoadAverage();
  std::printf(
      "%d services x 2 publishers; %s: %d ADS streams over %d channels, %d EDS names each; %s: "
      "%d subscribers over %d clients; %d rounds\n",
      s.services, kXds, s.streams, s.channels, s.names_per_stream, kSession, s.subscribers,
      s.session_clients, s.rounds);
  std::fflush(stdout);

  std::vector<Record> records;
  std::vector<std::string> problems;
  std::optional<int> registry_exit;
  {
    auto registry = StartRegistry(bin_dir, s);
    if (!registry.ok()) {
      std::cerr << registry.status() << "\n";
      return 1;
    }
    {
      Bench bench(s, **registry, records);
      if (auto st = bench.Publish(); !st.ok()) {
        std::cerr << "publishing failed: " << st << "\n" << (*registry)->process->LogTail() << "\n";
        return 1;
      }
      std::this_thread::sleep_for(milliseconds(s.settle_ms));
      if (s.idle_probe) {
        bench.IdleProbe();
      } else {
        // Session first, then xDS (the memory figures; see the header).
        for (const char* name : {kSession, kXds}) {
          if (std::find(s.systems.begin(), s.systems.end(), name) == s.systems.end()) continue;
          bench.Setup(name == std::string(kXds) ? bench.xds : bench.session);
        }
        bench.Rounds();
      }
      bench.Teardown();
      problems = bench.Problems();
    }
    if (!(*registry)->process->Running()) {
      problems.push_back("the registry exited during the run; log:\n" +
                         (*registry)->process->LogTail());
    }
    (*registry)->Stop();
    registry_exit = (*registry)->exit_status;
    if (registry_exit && *registry_exit != 0) {
      problems.push_back(absl::StrCat("the registry exited with status ", *registry_exit,
                                      "; log:\n", (*registry)->process->LogTail()));
    }
  }

  std::printf("\n");
  PrintTable(records, s.systems);
  for (const auto& p : problems) std::cerr << "problem: " << p << "\n";
  if (!json_file.empty()) {
    std::vector<std::pair<std::string, std::string>> settings = {
        {"quick", s.quick ? "true" : "false"},
        {"idle_probe", s.idle_probe ? "true" : "false"},
        {"services", absl::StrCat(s.services)},
        {"streams", absl::StrCat(s.streams)},
        {"channels", absl::StrCat(s.channels)},
        {"names_per_stream", absl::StrCat(s.names_per_stream)},
        {"subscribers", absl::StrCat(s.subscribers)},
        {"session_clients", absl::StrCat(s.session_clients)},
        {"rounds", absl::StrCat(s.rounds)},
        {"round_timeout_ms", absl::StrCat(s.round_timeout_ms)},
        {"gap_ms", absl::StrCat(s.gap_ms)},
        {"settle_ms", absl::StrCat(s.settle_ms)},
        {"systems", JsonString(absl::StrJoin(s.systems, ","))},
        {"registry_flags", JsonString(absl::StrJoin(s.registry_flags, " "))},
        {"rss", JsonString("VmRSS of the registry process (/proc/PID/status)")},
    };
    std::vector<std::string> fields;
    for (const auto& [k, v] : settings) fields.push_back(absl::StrCat(JsonString(k), ": ", v));
    std::string commit = CommandOutput("git rev-parse --short HEAD 2>/dev/null");
    std::string dirty = CommandOutput("git status --porcelain --untracked-files=no 2>/dev/null");
    std::string meta = absl::StrCat(
        "{\"machine\": ", JsonString(MachineLine()),
        ", \"commit\": ", JsonString(commit.empty() ? "unknown" : commit),
        ", \"tree_dirty\": ", dirty.empty() ? "false" : "true",
        ", \"date\": ", JsonString(started_at), ", \"loadavg_start\": ", JsonString(loadavg_start),
        ", \"loadavg_end\": ", JsonString(LoadAverage()), ", \"settings\": {",
        absl::StrJoin(fields, ", "), "}}");
    if (!WriteJson(records, meta, json_file)) {
      std::cerr << "cannot write " << json_file << "\n";
      return 1;
    }
  }
  bool failed = std::any_of(records.begin(), records.end(),
                            [](const Record& r) { return r.metric == "failed"; });
  if (check) {
    std::cerr << "check: " << (problems.empty() && !failed ? "passed" : "FAILED") << "\n";
    if (!problems.empty() || failed) return 1;
  }
  return failed || !problems.empty() ? 1 : 0;
}
