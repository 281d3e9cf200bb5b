#include "netns.h"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "process.h"

namespace cairn::chaos {

namespace {

constexpr char kPrefixBase[] = "cairnchaos";

const std::string& IpTool() {
  static const std::string path = [] {
    for (const char* candidate : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (std::filesystem::exists(candidate)) return std::string(candidate);
    }
    return std::string("/usr/sbin/ip");
  }();
  return path;
}

// Runs `ip args...`; an error carries its output.
absl::Status Ip(std::vector<std::string> args) {
  args.insert(args.begin(), IpTool());
  auto [code, output] = cairn::testing::RunCommand(args, std::chrono::seconds(10));
  if (code == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(absl::StrJoin(args, " "), ": exit ", code, ": ", output));
}

std::vector<std::string> ListNamespaces() {
  auto [code, output] =
      cairn::testing::RunCommand({IpTool(), "netns", "list"}, std::chrono::seconds(10));
  std::vector<std::string> names;
  if (code != 0) return names;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    std::string name = line.substr(0, line.find(' '));  // "NAME (id: 3)"
    if (!name.empty()) names.push_back(name);
  }
  return names;
}

// SIGKILLs every process inside namespace `name`, then deletes it.
void KillAndDelete(const std::string& name) {
  auto [code, output] =
      cairn::testing::RunCommand({IpTool(), "netns", "pids", name}, std::chrono::seconds(10));
  if (code == 0) {
    std::istringstream in(output);
    int pid = 0;
    while (in >> pid) {
      if (pid > 1) ::kill(pid, SIGKILL);
    }
  }
  (void)Ip({"netns", "del", name});
}

}  // namespace

std::string NetnsLab::PrefixFor(int pid) { return kPrefixBase + std::to_string(pid); }

void NetnsLab::DeleteLeftovers() {
  const std::string base = kPrefixBase;
  for (const std::string& name : ListNamespaces()) {
    if (name.rfind(base, 0) != 0) continue;
    size_t end = base.size();
    while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
    if (end == base.size()) continue;
    int owner = std::stoi(name.substr(base.size(), end - base.size()));
    if (::kill(owner, 0) == 0 || errno != ESRCH) continue;  // its run is still going
    KillAndDelete(name);
  }
}

absl::StatusOr<NetnsLab> NetnsLab::Create(const std::string& prefix,
                                          const std::vector<std::string>& members) {
  if (members.size() > 250) return absl::InvalidArgumentError("too many members");
  NetnsLab lab(prefix, members);
  auto fail = [&lab](absl::Status status) {
    lab.Destroy();
    return status;
  };
  const std::string& hub = lab.hub_;
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"netns", "add", hub},
           {"-n", hub, "link", "set", "lo", "up"},
           {"netns", "exec", hub, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"}}) {
    if (auto done = Ip(step); !done.ok()) return fail(done);
  }
  for (const std::string& id : members) {
    const std::string ns = lab.Namespace(id);
    const std::string n = std::to_string(lab.Index(id));
    const std::string hub_side = "vh" + n;
    for (const auto& step : std::vector<std::vector<std::string>>{
             {"netns", "add", ns},
             {"-n", ns, "link", "set", "lo", "up"},
             {"-n", hub, "link", "add", hub_side, "type", "veth", "peer", "name", "eth0", "netns",
              ns},
             {"-n", hub, "addr", "add", "10.213." + n + ".1/30", "dev", hub_side},
             {"-n", hub, "link", "set", hub_side, "up"},
             {"-n", ns, "addr", "add", "10.213." + n + ".2/30", "dev", "eth0"},
             {"-n", ns, "link", "set", "eth0", "up"},
             {"-n", ns, "route", "add", "default", "via", "10.213." + n + ".1"}}) {
      if (auto done = Ip(step); !done.ok()) return fail(done);
    }
  }
  return lab;
}

NetnsLab NetnsLab::Attach(const std::string& prefix, const std::vector<std::string>& members) {
  return NetnsLab(prefix, members);
}

void NetnsLab::Destroy() {
  for (const std::string& name : ListNamespaces()) {
    if (name == hub_ || name.rfind(prefix_ + "-", 0) == 0) KillAndDelete(name);
  }
}

int NetnsLab::Index(const std::string& id) const {
  auto it = std::find(members_.begin(), members_.end(), id);
  return it == members_.end() ? 0 : static_cast<int>(it - members_.begin()) + 1;
}

std::vector<std::string> NetnsLab::ExecInHub() const { return {IpTool(), "netns", "exec", hub_}; }

std::vector<std::string> NetnsLab::ExecPrefix(const std::string& id) const {
  std::vector<std::string> prefix = {IpTool(), "netns", "exec", Namespace(id)};
  // The harness's processes are not tied to the driver; setpriv (execing in
  // the same process too) makes the kernel kill them if the driver dies.
  if (std::filesystem::exists("/usr/bin/setpriv")) {
    prefix.insert(prefix.end(), {"/usr/bin/setpriv", "--pdeathsig", "KILL"});
  }
  return prefix;
}

std::string NetnsLab::Address(const std::string& id) const {
  return "10.213." + std::to_string(Index(id)) + ".2";
}

absl::Status NetnsLab::Cut(const std::string& from, const std::string& to) {
  if (Index(from) == 0 || Index(to) == 0) {
    return absl::InvalidArgumentError("unknown member " + from + " or " + to);
  }
  std::string a = Address(from), b = Address(to);
  if (auto added = Ip({"-n", hub_, "rule", "add", "from", a, "to", b, "blackhole"}); !added.ok()) {
    return added;
  }
  cuts_.emplace_back(a, b);
  return absl::OkStatus();
}

absl::Status NetnsLab::HealAll() {
  absl::Status result;
  for (const auto& [a, b] : cuts_) {
    if (auto removed = Ip({"-n", hub_, "rule", "del", "from", a, "to", b, "blackhole"});
        !removed.ok()) {
      result = removed;
    }
  }
  cuts_.clear();
  return result;
}

std::string NetnsLab::Rules() const {
  return cairn::testing::RunCommand({IpTool(), "-n", hub_, "rule", "list"},
                                    std::chrono::seconds(10))
      .second;
}

}  // namespace cairn::chaos
