// cairn_test_coord_member: a process that campaigns for leadership and/or
// registers a member key in etcd, so tests can kill -9 a real participant.
//
//   cairn_test_coord_member --etcd HOST:PORT --ttl SECONDS
//       [--elect KEY --value VALUE] [--member KEY --value VALUE]
//
// Prints "registered" once the member key is written and "leader" /
// "follower" on each election transition, one per line, flushed. Runs until
// killed; SIGTERM resigns and leaves cleanly.
#include <signal.h>
#include <unistd.h>

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
}  // namespace

int main(int argc, char** argv) {
  std::string etcd, elect, member, value = "candidate";
  int ttl = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--etcd") etcd = argv[i + 1];
    if (flag == "--ttl") ttl = std::atoi(argv[i + 1]);
    if (flag == "--elect") elect = argv[i + 1];
    if (flag == "--member") member = argv[i + 1];
    if (flag == "--value") value = argv[i + 1];
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
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  election.reset();
  registration.reset();
  return 0;
}
