// cairn_test_coord_member: a process that campaigns for leadership and/or
// registers a member key in etcd, so tests can kill -9 a real participant.
//
//   cairn_test_coord_member --etcd HOST:PORT --ttl SECONDS
//       [--elect KEY --value VALUE [--sample-us N]] [--member KEY --value VALUE]
//
// Prints "registered" once the member key is written and "leader" /
// "follower" on each election transition, one per line, flushed. Runs until
// killed; SIGTERM resigns and leaves cleanly.
//
// With --sample-us, a thread also asks IsLeader() every N microseconds and
// prints what it answered, in CLOCK_MONOTONIC microseconds (one clock for all
// processes on the machine), so a test can put the candidates' answers on one
// time line:
//   "sample leader FIRST"          the first `true` (read just before asking)
//   "sample follower LAST NOW"     the first `false`; LAST was read just after
//                                  the last `true` answer
// and, on SIGTERM while leading, "sample end LAST".
#include <signal.h>
#include <unistd.h>

#include <time.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "coord/leader_election.h"
#include "coord/membership.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

long long MonotonicMicros() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// Samples election.IsLeader() until g_stop; see the header comment.
void SampleLeadership(const cairn::coord::LeaderElection& election, int period_us) {
  bool leading = false;
  long long last_true = 0;
  while (!g_stop) {
    long long before = MonotonicMicros();
    bool now = election.IsLeader();
    long long after = MonotonicMicros();
    if (now && !leading) std::printf("sample leader %lld\n", before);
    if (!now && leading) std::printf("sample follower %lld %lld\n", last_true, before);
    if (now != leading) std::fflush(stdout);
    if (now) last_true = after;
    leading = now;
    std::this_thread::sleep_for(std::chrono::microseconds(period_us));
  }
  if (leading) std::printf("sample end %lld\n", last_true);
  std::fflush(stdout);
}
}  // namespace

int main(int argc, char** argv) {
  std::string etcd, elect, member, value = "candidate";
  int ttl = 2;
  int sample_us = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--etcd") etcd = argv[i + 1];
    if (flag == "--ttl") ttl = std::atoi(argv[i + 1]);
    if (flag == "--elect") elect = argv[i + 1];
    if (flag == "--member") member = argv[i + 1];
    if (flag == "--value") value = argv[i + 1];
    if (flag == "--sample-us") sample_us = std::atoi(argv[i + 1]);
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  cairn::coord::EtcdOptions options;
  options.endpoints = {etcd};
  auto client = cairn::coord::EtcdClient::Create(options);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", std::string(client.status().message()).c_str());
    return 2;
  }
  std::unique_ptr<cairn::coord::MemberRegistration> registration;
  if (!member.empty()) {
    registration = std::make_unique<cairn::coord::MemberRegistration>(**client, member, value,
                                                                      std::chrono::seconds(ttl));
    if (registration->Start().ok()) std::printf("registered\n");
    std::fflush(stdout);
  }
  std::unique_ptr<cairn::coord::LeaderElection> election;
  if (!elect.empty()) {
    cairn::coord::ElectionOptions eo;
    eo.key = elect;
    eo.value = value;
    eo.ttl = std::chrono::seconds(ttl);
    election = std::make_unique<cairn::coord::LeaderElection>(**client, eo, [](bool leader) {
      std::printf("%s\n", leader ? "leader" : "follower");
      std::fflush(stdout);
    });
    election->Start();
  }
  std::thread sampler;
  if (election != nullptr && sample_us > 0) {
    sampler = std::thread([&] { SampleLeadership(*election, sample_us); });
  }
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (sampler.joinable()) sampler.join();
  election.reset();
  registration.reset();
  return 0;
}
