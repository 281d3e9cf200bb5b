#include "registry/auth/policy_reloader.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <set>

namespace cairn::auth {
namespace {

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::set<PolicyReloader*>& Live() {
  static std::set<PolicyReloader*> live;
  return live;
}

}  // namespace

PolicyReloader::PolicyReloader(std::string path, Authorizer& authorizer,
                               std::chrono::milliseconds poll, FileStamp loaded)
    : path_(std::move(path)), authorizer_(authorizer), poll_(poll), last_stamp_(loaded) {
  thread_ = std::thread([this] { Run(); });
  std::lock_guard lock(RegistryMutex());
  Live().insert(this);
}

PolicyReloader::~PolicyReloader() {
  {
    std::lock_guard lock(RegistryMutex());
    Live().erase(this);
  }
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

PolicyReloader::FileStamp PolicyReloader::Stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FileStamp{};
  return FileStamp{static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

absl::Status PolicyReloader::ReloadNow() {
  std::lock_guard reload_lock(reload_mu_);
  FileStamp stamp = Stamp(path_);
  auto policy = LoadPolicyFile(path_);
  {
    std::lock_guard lock(mu_);
    last_stamp_ = stamp;
    if (policy.ok()) ++reloads_;
  }
  if (!policy.ok()) {
    spdlog::error("policy reload failed, the previous policy stays in force: {}",
                  std::string(policy.status().message()));
    return policy.status();
  }
  size_t rules = policy->rules.size(), admins = policy->admins.size();
  authorizer_.Replace(std::move(*policy));
  spdlog::info("policy reloaded from {}: {} rules, {} admin patterns", path_, rules, admins);
  return absl::OkStatus();
}

uint64_t PolicyReloader::reloads() const {
  std::lock_guard lock(mu_);
  return reloads_;
}

void PolicyReloader::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    wake_.wait_for(lock, poll_, [this] { return stop_; });
    if (stop_) return;
    FileStamp stamp = Stamp(path_);
    // A file that vanished (an editor's rename in progress) is not a change
    // to act on: the old policy stays until a file is back.
    if (stamp == last_stamp_ || stamp == FileStamp{}) continue;
    lock.unlock();
    (void)ReloadNow();  // logs its own outcome
    lock.lock();
  }
}

void RequestPolicyReload() {
  std::lock_guard lock(RegistryMutex());
  if (Live().empty()) {
    spdlog::info("SIGHUP: no policy file to reload");
    return;
  }
  for (PolicyReloader* reloader : Live()) (void)reloader->ReloadNow();
}

}  // namespace cairn::auth
