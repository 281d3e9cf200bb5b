// cairn_registry_bench: throughput, push latency and memory of a real
// `cairn registry` process, next to an anchor (the plain gRPC unary round trip
// against the same server) measured in the same run, so the figures can be
// read relative to what gRPC alone achieves on this machine.
//
// Every loop is bounded both in count and in time, and everything runs on
// 127.0.0.1. The server is started by the bench and stopped (SIGTERM, then
// SIGKILL) before it exits.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cairn/registry/v1/registry.grpc.pb.h"
#include "client/registry_client.h"
#include "process.h"

namespace cairn::bench {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Record {
  std::string workload;
  std::string system;
  std::string metric;
  double value;
  std::string unit;
};

struct Config {
  bool quick = false;
  std::string json_file;
  std::string bin_dir;
  int streams = 100;
  int publishers_per_stream = 200;
  int pipeline_window = 64;
  int push_rounds = 500;
  int rss_publishers = 100000;
  int rss_streams = 10;
  milliseconds anchor_duration{3000};
  // Upper bound on any one workload phase: a stuck server ends the phase with
  // errors instead of hanging the bench.
  seconds phase_timeout{180};
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Nearest-rank percentile; `sorted` must be sorted ascending.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return NAN;
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

// ~100 bytes of publisher data, distinct per publisher so that nothing on the
// path can share or deduplicate it.
std::string PublisherData(const std::string& tag) {
  std::string data = tag + "|";
  data.resize(100, 'x');
  return data;
}

// A `cairn registry` child process with a private data dir.
class Server {
 public:
  ~Server() { Stop(); }

  bool Start(const std::string& bin_dir, int64_t max_registrations) {
    std::string ready = dir_.File("ready");
    std::vector<std::string> argv = {bin_dir + "/cairn",
                                     "registry",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--admin",
                                     "127.0.0.1:0",
                                     "--data-dir",
                                     dir_.File("data"),
                                     "--ready-file",
                                     ready,
                                     "--max-registrations-per-client",
                                     std::to_string(max_registrations),
                                     "--log-level",
                                     "warn"};
    process_ = testing::ChildProcess::Start(argv, dir_.File("log"));
    if (!process_) return false;
    // The server renames the ready file into place, so once it exists it is
    // complete.
    testing::Eventually([&] { return std::filesystem::exists(ready) || !process_->Running(); },
                        seconds(30));
    std::ifstream in(ready);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("grpc=", 0) == 0) grpc_address_ = line.substr(5);
      if (line.rfind("admin=", 0) == 0) admin_address_ = line.substr(6);
    }
    return !grpc_address_.empty() && !admin_address_.empty();
  }

  // SIGTERM first so the server shuts down as in production; SIGKILL if it
  // does not within 10 s. Returns the exit code, if it exited.
  std::optional<int> Stop() {
    if (!process_) return std::nullopt;
    process_->Signal(SIGTERM);
    auto code = process_->Wait(seconds(10));
    if (!code) {
      std::cerr << "server ignored SIGTERM for 10 s; sending SIGKILL\n";
      process_->Signal(SIGKILL);
      code = process_->Wait(seconds(10));
    }
    process_.reset();
    return code;
  }

  bool Running() { return process_ && process_->Running(); }

  // VmRSS from /proc/<pid>/status, in bytes; 0 if unavailable.
  int64_t RssBytes() const {
    if (!process_) return 0;
    std::ifstream in(absl::StrCat("/proc/", process_->pid(), "/status"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) {
        std::istringstream fields(line.substr(6));
        int64_t kib = 0;
        fields >> kib;
        return kib * 1024;
      }
    }
    return 0;
  }

  std::string Log() const {
    std::ifstream in(dir_.File("log"));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  const std::string& grpc_address() const { return grpc_address_; }

 private:
  testing::TempDir dir_;
  std::unique_ptr<testing::ChildProcess> process_;
  std::string grpc_address_;
  std::string admin_address_;
};

// One TCP connection per channel: the default global subchannel pool would
// multiplex all "connections" to one target onto a single socket.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// Outcome of a batch of operations.
struct Tally {
  int64_t ok = 0;
  int64_t failed = 0;
  std::string first_error;

  void Fail(const std::string& error) {
    if (failed++ == 0) first_error = error;
  }
  void Add(const Tally& other) {
    ok += other.ok;
    if (other.failed > 0 && failed == 0) first_error = other.first_error;
    failed += other.failed;
  }
};

// A Session stream driven directly with the generated stub, so that many
// publishes can be in flight at once (RegistryClient::Publish blocks per call).
class RawSession {
 public:
  RawSession(const std::string& target, Clock::time_point deadline)
      : channel_(NewChannel(target)), stub_(pb::Registry::NewStub(channel_)) {
    context_.set_deadline(std::chrono::system_clock::now() + (deadline - Clock::now()));
  }

  ~RawSession() { Close(); }

  absl::Status Open(const std::string& client_id) {
    stream_ = stub_->Session(&context_);
    pb::ClientMessage hello;
    hello.set_request_id(next_request_id_++);
    hello.mutable_hello()->set_client_id(client_id);
    if (!stream_->Write(hello)) return absl::UnavailableError("cannot write hello");
    pb::ServerMessage reply;
    while (stream_->Read(&reply)) {
      if (!reply.has_result()) continue;
      if (reply.result().code() != 0) {
        return absl::Status(static_cast<absl::StatusCode>(reply.result().code()),
                            reply.result().message());
      }
      return absl::OkStatus();
    }
    return absl::UnavailableError("stream ended before the hello result");
  }

  // Registers `count` publishers named `prefix`.<i>, each on its own
  // dataInfoId, keeping up to `window` publishes unanswered.
  Tally PublishPipelined(const std::string& prefix, int count, int window) {
    Tally tally;
    int sent = 0;
    int answered = 0;
    pb::ClientMessage message;
    pb::Publish* publish = message.mutable_publish();
    publish->set_version(1);
    while (answered < count) {
      while (sent < count && sent - answered < window) {
        std::string name = absl::StrCat(prefix, ".", sent);
        message.set_request_id(next_request_id_++);
        publish->set_registration_id(name);
        publish->mutable_key()->set_data_id(name);
        publish->clear_data();
        publish->add_data(PublisherData(name));
        if (!stream_->Write(message)) {
          tally.Fail("stream write failed");
          tally.failed += count - sent - 1;
          return tally;
        }
        ++sent;
      }
      pb::ServerMessage reply;
      if (!stream_->Read(&reply)) {
        tally.Fail("stream ended (deadline or server gone)");
        tally.failed += count - answered - 1;
        return tally;
      }
      if (!reply.has_result()) continue;  // pongs and pushes are not ours
      ++answered;
      if (reply.result().code() == 0) {
        ++tally.ok;
      } else {
        tally.Fail(absl::StrCat("code ", reply.result().code(), ": ", reply.result().message()));
      }
    }
    return tally;
  }

  // Half-closes and waits for the server to end the stream (bounded by the
  // context deadline); the server then drops this stream's registrations.
  void Close() {
    if (!stream_) return;
    stream_->WritesDone();
    pb::ServerMessage ignored;
    while (stream_->Read(&ignored)) {
    }
    stream_->Finish();
    stream_.reset();
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Registry::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::ClientMessage, pb::ServerMessage>> stream_;
  uint64_t next_request_id_ = 1;
};

class Bench {
 public:
  explicit Bench(Config config) : config_(std::move(config)) {}

  void Add(const std::string& workload, const std::string& system, const std::string& metric,
           double value, const std::string& unit) {
    records_.push_back({workload, system, metric, value, unit});
  }

  // Failures are recorded, not hidden: a throughput with errors next to it
  // is not comparable to one without.
  void AddErrors(const std::string& workload, const Tally& tally) {
    Add(workload, "cairn", "errors", static_cast<double>(tally.failed), "count");
    if (tally.failed > 0) {
      std::cerr << workload << ": " << tally.failed << " failed, first: " << tally.first_error
                << "\n";
    }
  }

  // The gRPC floor: a unary call the server answers without touching any
  // registration (a prefix nothing matches), from `streams` threads each on
  // its own connection, for a fixed time.
  void AnchorUnary(const std::string& target) {
    const std::string workload = "grpc_unary_100_streams";
    const int threads = config_.streams;
    std::vector<std::vector<double>> latencies(threads);
    std::vector<Tally> tallies(threads);
    std::barrier start(threads + 1);
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        auto channel = NewChannel(target);
        auto stub = pb::Registry::NewStub(channel);
        channel->WaitForConnected(std::chrono::system_clock::now() + seconds(10));
        pb::ListDataInfosRequest request;
        request.set_data_id_prefix("\x01none");
        start.arrive_and_wait();
        // Also bounded in count, should the clock misbehave.
        for (int i = 0; i < 10'000'000 && !stop.load(std::memory_order_relaxed); ++i) {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + seconds(5));
          pb::ListDataInfosResponse response;
          auto begin = Clock::now();
          grpc::Status s = stub->ListDataInfos(&context, request, &response);
          if (s.ok()) {
            latencies[t].push_back(Ms(Clock::now() - begin));
            ++tallies[t].ok;
          } else {
            tallies[t].Fail(s.error_message());
          }
        }
      });
    }
    start.arrive_and_wait();
    auto begin = Clock::now();
    std::this_thread::sleep_for(config_.anchor_duration);
    stop = true;
    for (auto& w : workers) w.join();
    double elapsed_s = std::chrono::duration<double>(Clock::now() - begin).count();
    Tally total;
    std::vector<double> all;
    for (int t = 0; t < threads; ++t) {
      total.Add(tallies[t]);
      all.insert(all.end(), latencies[t].begin(), latencies[t].end());
    }
    std::sort(all.begin(), all.end());
    Add(workload, "grpc-direct", "calls_per_s", static_cast<double>(total.ok) / elapsed_s, "1/s");
    Add(workload, "grpc-direct", "latency_p50_ms", Percentile(all, 0.50), "ms");
    Add(workload, "grpc-direct", "latency_p99_ms", Percentile(all, 0.99), "ms");
    Add(workload, "grpc-direct", "errors", static_cast<double>(total.failed), "count");
  }

  // `streams` RegistryClients, one thread each, registering publishers one
  // blocking Publish at a time.
  void RegisterClients(const std::string& target) {
    const std::string workload = "register_100_streams";
    const int threads = config_.streams;
    const int per_stream = config_.publishers_per_stream;
    std::vector<std::vector<double>> latencies(threads);
    std::vector<Tally> tallies(threads);
    std::vector<std::unique_ptr<RegistryClient>> clients(threads);
    // Handles must outlive the measurement: dropping one unregisters it.
    std::vector<std::vector<std::shared_ptr<Publisher>>> handles(threads);
    std::barrier start(threads + 1);
    Clock::time_point deadline;  // written before `start` releases the workers
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        RegistryClientOptions options;
        options.servers = {target};
        options.client_id = absl::StrCat("bench-client-", t);
        options.app_name = "bench";
        auto client = RegistryClient::Create(options);
        if (client.ok()) {
          clients[t] = std::move(*client);
          if (auto s = clients[t]->WaitConnected(seconds(20)); !s.ok()) {
            tallies[t].Fail(s.ToString());
          }
        } else {
          tallies[t].Fail(client.status().ToString());
        }
        start.arrive_and_wait();
        if (!clients[t] || tallies[t].failed > 0) {
          tallies[t].failed = per_stream;
          return;
        }
        handles[t].reserve(per_stream);
        for (int i = 0; i < per_stream; ++i) {
          if (Clock::now() > deadline) {
            tallies[t].Fail("phase timeout");
            tallies[t].failed += per_stream - i - 1;
            break;
          }
          PublishSpec spec;
          std::string name = absl::StrCat("bench.reg.c", t, ".", i);
          spec.key.set_data_id(name);
          spec.data = {PublisherData(name)};
          auto begin = Clock::now();
          auto publisher = clients[t]->Publish(spec);
          if (publisher.ok()) {
            latencies[t].push_back(Ms(Clock::now() - begin));
            handles[t].push_back(std::move(*publisher));
            ++tallies[t].ok;
          } else {
            tallies[t].Fail(publisher.status().ToString());
          }
        }
      });
    }
    deadline = Clock::now() + config_.phase_timeout;
    start.arrive_and_wait();
    auto begin = Clock::now();
    for (auto& w : workers) w.join();
    double elapsed_s = std::chrono::duration<double>(Clock::now() - begin).count();
    Tally total;
    std::vector<double> all;
    for (int t = 0; t < threads; ++t) {
      total.Add(tallies[t]);
      all.insert(all.end(), latencies[t].begin(), latencies[t].end());
    }
    std::sort(all.begin(), all.end());
    Add(workload, "cairn", "registrations_per_s", static_cast<double>(total.ok) / elapsed_s, "1/s");
    Add(workload, "cairn", "latency_p50_ms", Percentile(all, 0.50), "ms");
    Add(workload, "cairn", "latency_p99_ms", Percentile(all, 0.99), "ms");
    AddErrors(workload, total);
    // Closing the clients ends their streams, so the server drops these
    // registrations before the next workload.
    handles.clear();
    clients.clear();
  }

  // `streams` raw Session streams, one thread each, `pipeline_window`
  // publishes in flight per stream.
  void RegisterPipelined(const std::string& target) {
    const std::string workload = "register_100_streams_pipelined";
    auto result = PipelinedPhase(target, "bench.pipe", config_.streams,
                                 config_.publishers_per_stream, /*hold=*/nullptr);
    Add(workload, "cairn", "registrations_per_s",
        static_cast<double>(result.tally.ok) / result.elapsed_s, "1/s");
    AddErrors(workload, result.tally);
  }

  // Subscriber and publisher on separate clients; each round republishes new
  // data and waits until the subscriber's callback has seen it.
  void PushLatency(const std::string& target) {
    const std::string workload = "push_latency_idle";
    // Declared before the clients so that it outlives them: the clients'
    // destructors are what guarantee no callback still runs.
    std::mutex mu;
    std::condition_variable seen_cv;
    int64_t seen_round = -1;  // highest round the callback saw
    std::vector<Clock::time_point> seen_at(config_.push_rounds + 1);

    RegistryClientOptions options;
    options.servers = {target};
    options.app_name = "bench";
    options.client_id = "bench-subscriber";
    auto subscriber_client = RegistryClient::Create(options);
    options.client_id = "bench-publisher";
    auto publisher_client = RegistryClient::Create(options);
    Tally tally;
    if (!subscriber_client.ok() || !publisher_client.ok()) {
      tally.Fail("cannot create clients");
      AddErrors(workload, tally);
      return;
    }

    PublishSpec spec;
    spec.key.set_data_id("bench.push");
    spec.data = {PublisherData("round=0")};
    SubscribeSpec sub_spec;
    sub_spec.key.set_data_id("bench.push");
    auto subscription = (*subscriber_client)->Subscribe(sub_spec, [&](const pb::Push& push) {
      auto now = Clock::now();
      for (const auto& zone : push.zones()) {
        for (const auto& p : zone.publishers()) {
          if (p.data_size() == 0) continue;
          // Data is "round=<n>|xxx...".
          int64_t round = std::atoll(p.data(0).c_str() + 6);
          std::lock_guard lock(mu);
          if (round > seen_round && round < std::ssize(seen_at)) {
            seen_round = round;
            seen_at[round] = now;
            seen_cv.notify_all();
          }
        }
      }
    });
    auto publisher = (*publisher_client)->Publish(spec);
    auto wait_for = [&](int64_t round) {
      std::unique_lock lock(mu);
      return seen_cv.wait_for(lock, seconds(5), [&] { return seen_round >= round; });
    };
    if (!subscription.ok() || !publisher.ok() || !wait_for(0)) {
      tally.Fail(!subscription.ok() ? subscription.status().ToString()
                 : !publisher.ok()  ? publisher.status().ToString()
                                    : "initial push not seen in 5 s");
      AddErrors(workload, tally);
      return;
    }

    std::vector<double> latencies;
    auto deadline = Clock::now() + config_.phase_timeout;
    for (int round = 1; round <= config_.push_rounds && Clock::now() < deadline; ++round) {
      auto begin = Clock::now();
      absl::Status s = (*publisher)->Republish({PublisherData(absl::StrCat("round=", round))});
      if (!s.ok()) {
        tally.Fail(s.ToString());
        continue;
      }
      if (!wait_for(round)) {
        tally.Fail(absl::StrCat("round ", round, " not pushed within 5 s"));
        continue;
      }
      std::lock_guard lock(mu);
      latencies.push_back(Ms(seen_at[round] - begin));
      ++tally.ok;
    }
    std::sort(latencies.begin(), latencies.end());
    Add(workload, "cairn", "latency_p50_ms", Percentile(latencies, 0.50), "ms");
    Add(workload, "cairn", "latency_p99_ms", Percentile(latencies, 0.99), "ms");
    Add(workload, "cairn", "latency_p999_ms", Percentile(latencies, 0.999), "ms");
    AddErrors(workload, tally);
    // Stop pushes before the handles go (which would unregister one by one).
    (*subscriber_client)->Close();
    (*publisher_client)->Close();
  }

  // Server RSS idle and with `rss_publishers` registered over `rss_streams`
  // raw streams. Needs a fresh server: earlier workloads leave allocator
  // state behind that would blur the idle figure.
  void Rss(Server& server) {
    const std::string workload = "rss_100k_publishers";
    // Let start-up allocations settle.
    std::this_thread::sleep_for(milliseconds(500));
    int64_t idle = server.RssBytes();
    int64_t loaded = 0;
    int per_stream = config_.rss_publishers / config_.rss_streams;
    auto result =
        PipelinedPhase(server.grpc_address(), "bench.rss", config_.rss_streams, per_stream, [&] {
          std::this_thread::sleep_for(milliseconds(500));
          loaded = server.RssBytes();
        });
    int64_t registered = result.tally.ok;
    Add(workload, "cairn", "rss_bytes_idle", static_cast<double>(idle), "bytes");
    Add(workload, "cairn", "rss_bytes", static_cast<double>(loaded), "bytes");
    Add(workload, "cairn", "rss_bytes_per_publisher",
        registered > 0 ? static_cast<double>(loaded - idle) / static_cast<double>(registered) : NAN,
        "bytes");
    Add(workload, "cairn", "publishers", static_cast<double>(registered), "count");
    AddErrors(workload, result.tally);
  }

  void Print() const {
    std::printf("%-32s %-12s %-24s %16s  %s\n", "workload", "system", "metric", "value", "unit");
    for (const auto& r : records_) {
      // Sub-millisecond latencies need decimals; rates, bytes and counts do not.
      std::printf(
          r.unit == "ms" ? "%-32s %-12s %-24s %16.3f  %s\n" : "%-32s %-12s %-24s %16.0f  %s\n",
          r.workload.c_str(), r.system.c_str(), r.metric.c_str(), r.value, r.unit.c_str());
    }
    std::fflush(stdout);
  }

  bool WriteJson(const std::string& path) const {
    std::ofstream out(path, std::ios::trunc);
    out << "[\n";
    for (size_t i = 0; i < records_.size(); ++i) {
      const auto& r = records_[i];
      // NaN is not JSON; a missing measurement becomes null.
      char value[32] = "null";
      if (std::isfinite(r.value)) std::snprintf(value, sizeof(value), "%.10g", r.value);
      out << "  {\"workload\": \"" << r.workload << "\", \"system\": \"" << r.system
          << "\", \"metric\": \"" << r.metric << "\", \"value\": " << value << ", \"unit\": \""
          << r.unit << "\"}" << (i + 1 < records_.size() ? "," : "") << "\n";
    }
    out << "]\n";
    return static_cast<bool>(out);
  }

  const Config& config() const { return config_; }

 private:
  struct PhaseResult {
    Tally tally;
    double elapsed_s = 0;
  };

  // Opens `streams` raw sessions, then (timed) registers `per_stream`
  // publishers on each, pipelined. `hold`, if set, runs once every stream is
  // done but before any is closed, i.e. while all registrations are live.
  PhaseResult PipelinedPhase(const std::string& target, const std::string& prefix, int streams,
                             int per_stream, const std::function<void()>& hold) {
    auto deadline = Clock::now() + config_.phase_timeout;
    std::vector<std::unique_ptr<RawSession>> sessions(streams);
    std::vector<Tally> tallies(streams);
    std::barrier start(streams + 1);
    std::barrier finished(streams + 1);
    std::barrier release(streams + 1);
    std::vector<std::thread> workers;
    for (int t = 0; t < streams; ++t) {
      workers.emplace_back([&, t] {
        sessions[t] = std::make_unique<RawSession>(target, deadline);
        absl::Status opened = sessions[t]->Open(absl::StrCat(prefix, "-client-", t));
        start.arrive_and_wait();
        if (opened.ok()) {
          tallies[t] = sessions[t]->PublishPipelined(absl::StrCat(prefix, ".s", t), per_stream,
                                                     config_.pipeline_window);
        } else {
          tallies[t].Fail(opened.ToString());
          tallies[t].failed = per_stream;
        }
        finished.arrive_and_wait();
        release.arrive_and_wait();
        sessions[t]->Close();
      });
    }
    start.arrive_and_wait();
    auto begin = Clock::now();
    finished.arrive_and_wait();
    PhaseResult result;
    result.elapsed_s = std::chrono::duration<double>(Clock::now() - begin).count();
    if (hold) hold();
    release.arrive_and_wait();
    for (auto& w : workers) w.join();
    for (const auto& t : tallies) result.tally.Add(t);
    return result;
  }

  Config config_;
  std::vector<Record> records_;
};

int Run(Config config) {
  if (config.quick) {
    config.publishers_per_stream = 20;
    config.push_rounds = 50;
    config.rss_publishers = 10000;
    config.anchor_duration = milliseconds(1000);
  }
  Bench bench(config);
  const int64_t max_registrations = 200000;
  bool server_ok = true;

  {
    Server server;
    if (!server.Start(config.bin_dir, max_registrations)) {
      std::cerr << "cannot start " << config.bin_dir << "/cairn registry; log:\n"
                << server.Log() << "\n";
      return 1;
    }
    std::cerr << "server at " << server.grpc_address() << "\n";
    std::cerr << "[1/5] grpc_unary_100_streams\n";
    bench.AnchorUnary(server.grpc_address());
    std::cerr << "[2/5] register_100_streams\n";
    bench.RegisterClients(server.grpc_address());
    std::cerr << "[3/5] register_100_streams_pipelined\n";
    bench.RegisterPipelined(server.grpc_address());
    std::cerr << "[4/5] push_latency_idle\n";
    bench.PushLatency(server.grpc_address());
    if (!server.Running()) {
      std::cerr << "server died during the run; log:\n" << server.Log() << "\n";
      server_ok = false;
    }
    auto code = server.Stop();
    if (server_ok && code != 0) {
      std::cerr << "server exit code " << (code ? std::to_string(*code) : "none") << "\n";
    }
  }
  {
    Server server;
    if (!server.Start(config.bin_dir, max_registrations)) {
      std::cerr << "cannot start a second server; log:\n" << server.Log() << "\n";
      return 1;
    }
    std::cerr << "[5/5] rss_100k_publishers\n";
    bench.Rss(server);
    if (!server.Running()) {
      std::cerr << "server died during the run; log:\n" << server.Log() << "\n";
      server_ok = false;
    }
    server.Stop();
  }

  bench.Print();
  if (!config.json_file.empty() && !bench.WriteJson(config.json_file)) {
    std::cerr << "cannot write " << config.json_file << "\n";
    return 1;
  }
  return server_ok ? 0 : 1;
}

}  // namespace
}  // namespace cairn::bench

int main(int argc, char** argv) {
  cairn::bench::Config config;
  CLI::App app{"Cairn registry benchmark: starts `cairn registry` and measures it"};
  app.add_flag("--quick", config.quick, "small counts, for a smoke run");
  app.add_option("--json", config.json_file, "also write the records as a JSON array here");
  app.add_option("--bin-dir", config.bin_dir,
                 "directory holding the cairn binary (default: this binary's directory)");
  CLI11_PARSE(app, argc, argv);
  if (config.bin_dir.empty()) {
    config.bin_dir = std::filesystem::canonical("/proc/self/exe").parent_path().string();
  }
  // A client that outlives a server must not be killed by a write to a
  // closed socket.
  signal(SIGPIPE, SIG_IGN);
  return cairn::bench::Run(config);
}
