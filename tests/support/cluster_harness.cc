#include "cluster_harness.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace cairn::testing {

ClusterHarness::~ClusterHarness() {
  for (auto& member : members_) {
    if (member->process && member->process->Running()) member->process->Signal(SIGKILL);
  }
  members_.clear();  // reaps
}

void ClusterHarness::UseTls(std::string certs_dir) {
  certs_dir_ = std::move(certs_dir);
  etcd_.UseTls({certs_dir_ + "/etcd.crt", certs_dir_ + "/etcd.key", certs_dir_ + "/ca.crt",
                certs_dir_ + "/registry.crt", certs_dir_ + "/registry.key"});
}

TlsFiles ClusterHarness::ClientTls(const std::string& name) const {
  TlsFiles files;
  if (certs_dir_.empty()) return files;
  files.ca_file = certs_dir_ + "/ca.crt";
  if (!name.empty()) {
    files.cert_file = certs_dir_ + "/" + name + ".crt";
    files.key_file = certs_dir_ + "/" + name + ".key";
  }
  return files;
}

bool ClusterHarness::StartEtcd() { return etcd_.Start(); }

absl::StatusOr<std::unique_ptr<coord::EtcdClient>> ClusterHarness::ConnectEtcd() const {
  coord::EtcdOptions options;
  options.endpoints = {tls() ? etcd_.url() : etcd_.endpoint()};
  if (tls()) {
    auto credentials = MakeChannelCredentials(ClientTls("registry"));
    if (!credentials.ok()) return credentials.status();
    options.credentials = std::move(*credentials);
  }
  return coord::EtcdClient::Create(options);
}

ClusterHarness::Member* ClusterHarness::Start(const std::string& role, const std::string& id,
                                              std::vector<std::string> extra_flags) {
  std::string ready = dir_.File("ready-" + id);
  std::filesystem::remove(ready);
  Placement placement;
  if (auto placed = placements_.find(id); placed != placements_.end()) placement = placed->second;
  // A restarted session keeps its address: its clients know it by that.
  std::string listen = placement.host + ":0";
  if (Member* previous = Find(id); previous != nullptr && !previous->grpc_address.empty()) {
    listen = previous->grpc_address;
  }
  std::vector<std::string> argv = placement.command_prefix;
  argv.insert(argv.end(), {BinDir() + "/cairn",
                           "registry",
                           "--role",
                           role,
                           "--etcd",
                           tls() ? etcd_.url() : etcd_.endpoint(),
                           "--node-id",
                           id,
                           "--listen",
                           listen,
                           "--admin",
                           placement.host + ":0",
                           "--slots",
                           std::to_string(slots_),
                           "--replicas",
                           std::to_string(replicas_),
                           "--lease-ttl-s",
                           "2",
                           "--session-lease-ms",
                           "4000",
                           "--rebuild-timeout-ms",
                           "2000",
                           "--anti-entropy-interval-ms",
                           "1000",
                           "--keepalive-timeout-ms",
                           "3000",
                           "--ready-file",
                           ready});
  // Sessions drop idle datum copies within 1-2 s (unless the test sets its
  // own period), so every cluster test also runs through fetches of dropped
  // datums.
  if (std::find(extra_flags.begin(), extra_flags.end(), "--datum-cache-idle-ms") ==
      extra_flags.end()) {
    argv.insert(argv.end(), {"--datum-cache-idle-ms", "1000"});
  }
  if (tls()) {
    MemberTls files;
    if (auto own = member_tls_.find(id); own != member_tls_.end()) files = own->second;
    auto or_default = [](const std::string& value, const std::string& fallback) {
      return value.empty() ? fallback : value;
    };
    const std::string cert = or_default(files.cert_file, certs_dir_ + "/registry.crt");
    const std::string key = or_default(files.key_file, certs_dir_ + "/registry.key");
    const std::string ca = certs_dir_ + "/ca.crt";
    argv.insert(argv.end(),
                {"--tls-cert", cert, "--tls-key", key, "--tls-ca", or_default(files.ca_file, ca),
                 "--etcd-cacert", ca, "--etcd-cert", or_default(files.etcd_cert_file, cert),
                 "--etcd-key", or_default(files.etcd_key_file, key)});
  }
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  auto member = std::make_unique<Member>();
  member->id = id;
  member->role = role;
  member->process = ChildProcess::Start(argv, dir_.File("log-" + id));
  if (!member->process) return nullptr;
  bool ok =
      Eventually([&] { return std::filesystem::exists(ready) || !member->process->Running(); },
                 std::chrono::seconds(20));
  if (!ok || !std::filesystem::exists(ready)) return nullptr;
  std::ifstream in(ready);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("grpc=", 0) == 0) member->grpc_address = line.substr(5);
    if (line.rfind("admin=", 0) == 0) member->admin_address = line.substr(6);
    if (line.rfind("data=", 0) == 0) member->data_address = line.substr(5);
  }
  // A restarted member replaces its earlier incarnation.
  for (auto& old : members_) {
    if (old->id == id) {
      if (old->process && old->process->Running()) old->process->Signal(SIGKILL);
      old = std::move(member);
      return old.get();
    }
  }
  members_.push_back(std::move(member));
  return members_.back().get();
}

std::optional<int> ClusterHarness::Stop(const std::string& id, int signal,
                                        std::chrono::milliseconds timeout) {
  Member* member = Find(id);
  if (member == nullptr || !member->process) return std::nullopt;
  member->process->Signal(signal);
  if (auto code = member->process->Wait(timeout)) return code;
  member->process->Signal(SIGKILL);
  member->process->Wait(std::chrono::seconds(10));
  return std::nullopt;
}

ClusterHarness::Member* ClusterHarness::Find(const std::string& id) {
  for (auto& member : members_) {
    if (member->id == id) return member.get();
  }
  return nullptr;
}

std::vector<std::string> ClusterHarness::SessionAddresses() {
  std::vector<std::string> out;
  for (auto& member : members_) {
    if (member->role.find("session") != std::string::npos && member->process->Running()) {
      out.push_back(member->grpc_address);
    }
  }
  return out;
}

std::string ClusterHarness::MemberLog(const std::string& id) const {
  std::ifstream in(dir_.File("log-" + id));
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string ClusterHarness::Logs() const {
  std::string out;
  for (const auto& member : members_) {
    std::string log = member->process ? member->process->Output() : "";
    if (log.size() > 6000) log = "..." + log.substr(log.size() - 6000);
    out += "---- " + member->id + " (" + member->role + ")\n" + log;
  }
  return out;
}

double ClusterHarness::Metric(const std::string& id, const std::string& name) {
  Member* member = Find(id);
  if (member == nullptr || member->admin_address.empty()) return -1;
  std::string metrics =
      RunCommand({"/usr/bin/curl", "-s", "http://" + member->admin_address + "/metrics"},
                 std::chrono::seconds(10))
          .second;
  std::string line = "\n" + name + " ";
  auto at = metrics.find(line);
  return at == std::string::npos ? -1 : std::atof(metrics.c_str() + at + line.size());
}

}  // namespace cairn::testing
