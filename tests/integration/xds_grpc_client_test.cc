// A real proxyless gRPC client (grpc++ with its xds resolver, channel target
// xds:///NAME) against the registry's xDS server (issue 18): gRPC Echo
// backends (cairn_test_grpc_echo_backend) register themselves through the
// C++ RegistryClient publishing grpc://127.0.0.1:PORT, and the client's calls
// follow what the registry holds.
//
// gRPC's xDS client is process-global (one per bootstrap, read from
// GRPC_XDS_BOOTSTRAP when it is first created), so one registry serves every
// test of this binary: the suite starts it and writes the bootstrap before
// any channel exists. Each test uses its own dataId (xDS name) and channel.
// CTest runs each test in a process of its own anyway.
//
// "The push is seen" = the registry counted an ACK (cairn_xds_acks_total on
// its /metrics) after the change, plus a short settle for the client's load
// balancer to take the new endpoints.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "cairn/test/v1/echo.grpc.pb.h"
#include "process.h"

namespace cairn::testing {
namespace {

namespace echo = ::cairn::test::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// After the ACK of a change, how long the client's LB policy gets to install
// the new endpoints before calls are held to them.
constexpr milliseconds kSettle(300);
// A killed backend: a call the client picks for the backend's connection
// after the SIGKILL but before the client has read the connection's close
// fails like a call in flight (seen under load: calls started 1 ms after the
// process was reaped failed with UNAVAILABLE "Socket closed" / "Broken
// pipe"). That is the client's transport, before any xDS push could help;
// such calls count as in flight at the kill.
constexpr milliseconds kConnectionLossGrace(250);

// One cairn_test_grpc_echo_backend process.
class EchoBackend {
 public:
  EchoBackend(std::string name, std::string registry, std::string data_id)
      : name_(std::move(name)), registry_(std::move(registry)), data_id_(std::move(data_id)) {}
  ~EchoBackend() { Stop(SIGKILL); }

  bool Start() {
    std::string ready = dir_.File("ready");
    process_ =
        ChildProcess::Start({BinDir() + "/cairn_test_grpc_echo_backend", "--name", name_,
                             "--registry", registry_, "--data-id", data_id_, "--ready-file", ready},
                            dir_.File("log"));
    if (!process_) return false;
    bool ok = Eventually([&] { return std::filesystem::exists(ready) || !process_->Running(); },
                         seconds(20));
    if (!ok || !std::filesystem::exists(ready)) return false;
    std::ifstream in(ready);
    std::string line;
    std::getline(in, line);
    port_ = line.rfind("port=", 0) == 0 ? std::atoi(line.c_str() + 5) : 0;
    return port_ != 0;
  }
  // Unregisters (the server keeps answering) and waits for the answer.
  bool Unregister() {
    process_->Signal(SIGUSR1);
    return process_->WaitForOutput("unregistered", seconds(10));
  }
  // SIGKILL: no goodbye to the registry or the clients. Returns once reaped.
  bool Kill() {
    process_->Signal(SIGKILL);
    return process_->Wait(seconds(10)).has_value();
  }
  std::optional<int> Stop(int signal = SIGTERM) {
    if (!process_) return std::nullopt;
    process_->Signal(signal);
    auto code = process_->Wait(seconds(10));
    if (!code) {
      process_->Signal(SIGKILL);
      process_->Wait(seconds(10));
    }
    return code;
  }
  const std::string& name() const { return name_; }
  std::string Log() const { return process_ ? process_->Output() : ""; }

 private:
  std::string name_;
  std::string registry_;
  std::string data_id_;
  TempDir dir_;
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
};

struct CallRecord {
  Clock::time_point start;
  Clock::time_point end;
  bool ok = false;
  std::string backend;  // who answered
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string error;  // code and message of a failed call
};

CallRecord CallEcho(echo::EchoService::Stub& stub, uint32_t delay_ms, bool wait_for_ready) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(5));
  context.set_wait_for_ready(wait_for_ready);
  echo::EchoRequest request;
  request.set_message("hello");
  request.set_delay_ms(delay_ms);
  echo::EchoReply reply;
  CallRecord record;
  record.start = Clock::now();
  grpc::Status status = stub.Echo(&context, request, &reply);
  record.end = Clock::now();
  record.ok = status.ok();
  record.code = status.error_code();
  if (status.ok()) {
    record.backend = reply.backend();
  } else {
    record.error = std::to_string(status.error_code()) + " " + status.error_message();
  }
  return record;
}

// Calls from several threads, each one after the other (fail-fast, as a
// client does by default), until Stop() or a bound of calls or time.
class Load {
 public:
  static constexpr size_t kMaxCalls = 30000;
  static constexpr seconds kMaxTime{90};

  Load(echo::EchoService::Stub& stub, int threads, uint32_t delay_ms) {
    auto until = Clock::now() + kMaxTime;
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, &stub, delay_ms, until] {
        while (!stop_ && Clock::now() < until) {
          CallRecord record = CallEcho(stub, delay_ms, /*wait_for_ready=*/false);
          std::lock_guard lock(mu_);
          if (calls_.size() >= kMaxCalls) break;
          calls_.push_back(std::move(record));
        }
      });
    }
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::vector<CallRecord> Calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  // Calls started at or after `from` that `pred` holds for.
  template <typename Pred>
  size_t CountSince(Clock::time_point from, Pred pred) {
    std::lock_guard lock(mu_);
    return std::count_if(calls_.begin(), calls_.end(),
                         [&](const CallRecord& c) { return c.start >= from && pred(c); });
  }
  size_t AnsweredBySince(const std::string& backend, Clock::time_point from) {
    return CountSince(from, [&](const CallRecord& c) { return c.ok && c.backend == backend; });
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<CallRecord> calls_;
  std::vector<std::thread> threads_;
};

std::string Describe(const std::vector<CallRecord>& calls, Clock::time_point origin) {
  std::map<std::string, int> by;
  std::ostringstream failures;
  int shown = 0;
  for (const auto& c : calls) {
    ++by[c.ok ? c.backend : "FAILED"];
    if (!c.ok && shown++ < 10) {
      failures << "  failed call started at "
               << std::chrono::duration_cast<milliseconds>(c.start - origin).count()
               << " ms, ended at "
               << std::chrono::duration_cast<milliseconds>(c.end - origin).count()
               << " ms: " << c.error << "\n";
    }
  }
  std::ostringstream out;
  out << calls.size() << " calls:";
  for (const auto& [k, v] : by) out << " " << k << "=" << v;
  out << "\n" << failures.str();
  return out.str();
}

class XdsGrpcClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new RegistryProcess();
    ASSERT_TRUE(registry_->Start()) << registry_->Log();
    bootstrap_dir_ = new TempDir();
    std::string path = bootstrap_dir_->File("bootstrap.json");
    // The bootstrap the docs give (examples/xds/grpc-bootstrap.json), with
    // this registry's address: the example is what the test runs.
    std::ifstream example(CAIRN_SOURCE_DIR "/examples/xds/grpc-bootstrap.json");
    std::string text((std::istreambuf_iterator<char>(example)), std::istreambuf_iterator<char>());
    const std::string placeholder = "127.0.0.1:9600";
    size_t at = text.find(placeholder);
    ASSERT_NE(at, std::string::npos) << "examples/xds/grpc-bootstrap.json names no 127.0.0.1:9600";
    text.replace(at, placeholder.size(), registry_->grpc_address());
    std::ofstream(path) << text;
    // Read by gRPC when its xDS client is first created (the first
    // xds:/// channel), never before: no channel exists yet.
    setenv("GRPC_XDS_BOOTSTRAP", path.c_str(), 1);
  }
  static void TearDownTestSuite() {
    if (registry_ != nullptr && registry_->process() && registry_->process()->Running()) {
      EXPECT_EQ(registry_->Stop(SIGTERM), 0) << registry_->Log();
    }
    delete registry_;
    registry_ = nullptr;
    delete bootstrap_dir_;
    bootstrap_dir_ = nullptr;
  }

  void SetUp() override { ASSERT_NE(registry_, nullptr); }
  void TearDown() override {
    // Every response was taken: gRPC NACKs a resource it cannot use.
    EXPECT_EQ(RegistryCounter("cairn_xds_nacks_total"), 0) << "the gRPC client NACKed";
    channel_.reset();  // else each backend's shutdown waits for its connection
    for (auto& b : backends_) {
      if (b) b->Stop(SIGTERM);
    }
    if (HasFailure()) {
      for (auto& b : backends_) {
        if (b) std::cerr << "---- backend " << b->name() << " log:\n" << b->Log();
      }
      std::cerr << "---- registry log (tail):\n" << Tail(registry_->Log(), 6000);
    }
  }

  static std::string Tail(const std::string& s, size_t n) {
    return s.size() <= n ? s : s.substr(s.size() - n);
  }

  EchoBackend* StartBackend(const std::string& name, const std::string& data_id) {
    backends_.push_back(std::make_unique<EchoBackend>(name, registry_->grpc_address(), data_id));
    EchoBackend* b = backends_.back().get();
    EXPECT_TRUE(b->Start()) << b->Log();
    return b;
  }

  std::unique_ptr<echo::EchoService::Stub> Stub(const std::string& xds_name) {
    channel_ = grpc::CreateChannel("xds:///" + xds_name, grpc::InsecureChannelCredentials());
    return echo::EchoService::NewStub(channel_);
  }

  // Calls one after the other (waiting for the channel to be ready) until
  // every backend in `names` answered one; bounded to 400 calls and 20 s.
  static bool WaitUntilAllAnswer(echo::EchoService::Stub& stub,
                                 const std::vector<std::string>& names, std::string* log) {
    std::map<std::string, int> seen;
    auto until = Clock::now() + seconds(20);
    for (int i = 0; i < 400 && Clock::now() < until; ++i) {
      CallRecord c = CallEcho(stub, 0, /*wait_for_ready=*/true);
      ++seen[c.ok ? c.backend : "FAILED " + c.error];
      bool all = std::all_of(names.begin(), names.end(),
                             [&](const std::string& n) { return seen.count(n) > 0; });
      if (all) return true;
      if (!c.ok) std::this_thread::sleep_for(milliseconds(50));
    }
    for (const auto& [k, v] : seen) *log += k + "=" + std::to_string(v) + " ";
    return false;
  }

  // The sum of a registry counter over its labels (cairn_xds_acks_total,
  // cairn_xds_nacks_total); -1 if the registry does not export it.
  static double RegistryCounter(const std::string& metric) {
    auto [code, metrics] = RunCommand(
        {"/usr/bin/curl", "-sS", "http://" + registry_->admin_address() + "/metrics"}, seconds(10));
    if (code != 0) return -1;
    std::istringstream in(metrics);
    std::string line;
    double sum = -1;
    while (std::getline(in, line)) {
      if (line.rfind(metric, 0) != 0 || line.size() <= metric.size() ||
          (line[metric.size()] != '{' && line[metric.size()] != ' ')) {
        continue;
      }
      auto space = line.rfind(' ');
      if (space == std::string::npos) continue;
      sum = std::max(sum, 0.0) + std::atof(line.c_str() + space + 1);
    }
    return sum;
  }
  static double XdsAcks() { return RegistryCounter("cairn_xds_acks_total"); }

  // Waits for an ACK counted after `baseline` (the client took a response
  // with the change), then kSettle; returns when calls are held to the
  // change. Without the metric it waits 3 s (and says so).
  static Clock::time_point WaitForPushSeen(double baseline) {
    if (baseline < 0) {
      ADD_FAILURE() << "the registry exports no cairn_xds_acks_total";
      std::this_thread::sleep_for(seconds(3));
      return Clock::now();
    }
    const auto start = Clock::now();
    bool acked = Eventually([&] { return XdsAcks() > baseline; }, seconds(15));
    std::cout << "xDS ACK of the change seen after "
              << std::chrono::duration_cast<milliseconds>(Clock::now() - start).count() << " ms\n";
    EXPECT_TRUE(acked) << "no xDS ACK after the change within 15 s (acks stay at " << baseline
                       << ")";
    std::this_thread::sleep_for(kSettle);
    return Clock::now();
  }

  // Lets the xDS stream go quiet (every response of the start ACKed) and
  // returns the ACK count then.
  static double QuietAcks() {
    double last = XdsAcks();
    for (int i = 0; i < 20; ++i) {
      std::this_thread::sleep_for(milliseconds(200));
      double now = XdsAcks();
      if (now == last) return now;
      last = now;
    }
    return last;
  }

  static RegistryProcess* registry_;
  static TempDir* bootstrap_dir_;
  std::vector<std::unique_ptr<EchoBackend>> backends_;
  std::shared_ptr<grpc::Channel> channel_;
};

RegistryProcess* XdsGrpcClientTest::registry_ = nullptr;
TempDir* XdsGrpcClientTest::bootstrap_dir_ = nullptr;

TEST_F(XdsGrpcClientTest, CallsSpreadOverTwoRegisteredBackends) {
  const std::string name = "cairn.test.Echo";
  StartBackend("alpha", name);
  StartBackend("beta", name);
  ASSERT_FALSE(HasFailure());
  auto stub = Stub(name);
  std::string seen;
  const auto start = Clock::now();
  ASSERT_TRUE(WaitUntilAllAnswer(*stub, {"alpha", "beta"}, &seen)) << seen;
  std::cout << "both backends answered after "
            << std::chrono::duration_cast<milliseconds>(Clock::now() - start).count() << " ms\n";

  std::map<std::string, int> by;
  for (int i = 0; i < 100; ++i) {
    CallRecord c = CallEcho(*stub, 0, false);
    ASSERT_TRUE(c.ok) << "call " << i << ": " << c.error;
    ++by[c.backend];
  }
  // Round robin: 50 each; anything near even passes.
  EXPECT_GE(by["alpha"], 30) << by["alpha"] << " / " << by["beta"];
  EXPECT_GE(by["beta"], 30) << by["alpha"] << " / " << by["beta"];
  EXPECT_EQ(by["alpha"] + by["beta"], 100);
}

TEST_F(XdsGrpcClientTest, UnregisteredBackendGetsNoMoreCallsAndNoCallFails) {
  const std::string name = "cairn.test.EchoUnregister";
  EchoBackend* alpha = StartBackend("alpha", name);
  StartBackend("beta", name);
  ASSERT_FALSE(HasFailure());
  auto stub = Stub(name);
  std::string seen;
  ASSERT_TRUE(WaitUntilAllAnswer(*stub, {"alpha", "beta"}, &seen)) << seen;
  double baseline = QuietAcks();

  const auto origin = Clock::now();
  Load load(*stub, 4, 10);
  ASSERT_TRUE(Eventually([&] { return load.AnsweredBySince("alpha", origin) >= 20; }, seconds(10)));
  ASSERT_TRUE(alpha->Unregister()) << alpha->Log();
  const auto pushed = WaitForPushSeen(baseline);
  // Calls after the push, for a while.
  ASSERT_TRUE(Eventually([&] { return load.CountSince(pushed, [](auto&) { return true; }) >= 300; },
                         seconds(20)));
  load.Stop();

  auto calls = load.Calls();
  std::cout << Describe(calls, origin);
  SCOPED_TRACE(Describe(calls, origin));
  // Alpha kept answering: no call may fail, before or after the push.
  EXPECT_EQ(load.CountSince(origin, [](const CallRecord& c) { return !c.ok; }), 0u);
  EXPECT_EQ(load.AnsweredBySince("alpha", pushed), 0u);
  EXPECT_GE(load.AnsweredBySince("beta", pushed), 300u);
}

TEST_F(XdsGrpcClientTest, KilledBackendsCallsMoveToTheOther) {
  const std::string name = "cairn.test.EchoKill";
  EchoBackend* alpha = StartBackend("alpha", name);
  StartBackend("beta", name);
  ASSERT_FALSE(HasFailure());
  auto stub = Stub(name);
  std::string seen;
  ASSERT_TRUE(WaitUntilAllAnswer(*stub, {"alpha", "beta"}, &seen)) << seen;
  double baseline = QuietAcks();

  const auto origin = Clock::now();
  // Slow calls, so some are in flight on alpha when it dies.
  Load load(*stub, 6, 100);
  ASSERT_TRUE(Eventually([&] { return load.AnsweredBySince("alpha", origin) >= 20; }, seconds(10)));
  const auto killed = Clock::now();
  ASSERT_TRUE(alpha->Kill());
  const auto reaped = Clock::now();  // alpha's sockets are closed
  const auto in_flight_until = reaped + kConnectionLossGrace;
  const auto pushed = WaitForPushSeen(baseline);
  auto ms = [&](Clock::time_point t) {
    return std::chrono::duration_cast<milliseconds>(t - origin).count();
  };
  std::cout << "alpha killed at " << ms(killed) << " ms, reaped at " << ms(reaped)
            << " ms, push seen (+settle) at " << ms(pushed) << " ms\n";
  ASSERT_TRUE(Eventually([&] { return load.CountSince(pushed, [](auto&) { return true; }) >= 200; },
                         seconds(30)));
  load.Stop();

  auto calls = load.Calls();
  std::cout << Describe(calls, origin);
  SCOPED_TRACE(Describe(calls, origin));
  // Only calls in flight when alpha died may fail, and only as UNAVAILABLE.
  EXPECT_EQ(load.CountSince(origin,
                            [](const CallRecord& c) {
                              return !c.ok && c.code != grpc::StatusCode::UNAVAILABLE;
                            }),
            0u);
  EXPECT_EQ(load.CountSince(in_flight_until, [](const CallRecord& c) { return !c.ok; }), 0u);
  EXPECT_EQ(load.CountSince(pushed, [](const CallRecord& c) { return !c.ok; }), 0u);
  EXPECT_EQ(load.AnsweredBySince("alpha", reaped), 0u);
  EXPECT_GE(load.AnsweredBySince("beta", pushed), 200u);
}

TEST_F(XdsGrpcClientTest, ThirdBackendRegistersAndStartsReceivingCalls) {
  const std::string name = "cairn.test.EchoThird";
  StartBackend("alpha", name);
  StartBackend("beta", name);
  ASSERT_FALSE(HasFailure());
  auto stub = Stub(name);
  std::string seen;
  ASSERT_TRUE(WaitUntilAllAnswer(*stub, {"alpha", "beta"}, &seen)) << seen;
  double baseline = QuietAcks();

  const auto origin = Clock::now();
  Load load(*stub, 4, 10);
  ASSERT_TRUE(Eventually([&] { return load.CountSince(origin, [](auto&) { return true; }) >= 50; },
                         seconds(10)));
  StartBackend("gamma", name);
  ASSERT_FALSE(HasFailure());
  const auto pushed = WaitForPushSeen(baseline);
  ASSERT_TRUE(Eventually([&] { return load.AnsweredBySince("gamma", origin) >= 1; }, seconds(10)));
  ASSERT_TRUE(Eventually([&] { return load.CountSince(pushed, [](auto&) { return true; }) >= 300; },
                         seconds(20)));
  load.Stop();

  auto calls = load.Calls();
  std::cout << Describe(calls, origin);
  SCOPED_TRACE(Describe(calls, origin));
  EXPECT_EQ(load.CountSince(origin, [](const CallRecord& c) { return !c.ok; }), 0u);
  size_t after = load.CountSince(pushed, [](auto&) { return true; });
  // Round robin over three: a third each once gamma is connected (a few
  // calls right after the push may still go to the other two).
  for (const char* b : {"alpha", "beta", "gamma"}) {
    EXPECT_GE(load.AnsweredBySince(b, pushed), after / 5) << b;
  }
}

}  // namespace
}  // namespace cairn::testing
