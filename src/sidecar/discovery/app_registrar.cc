#include "sidecar/discovery/app_registrar.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "sidecar/cluster/cluster_manager.h"  // JsonEscape
#include "sidecar/discovery/interface_url.h"

namespace cairn::sidecar::discovery {

DiscoveryMode ParseDiscoveryMode(const std::string& name) {
  if (name == "app") return DiscoveryMode::kApp;
  if (name == "both") return DiscoveryMode::kBoth;
  return DiscoveryMode::kInterface;
}

const char* DiscoveryModeName(DiscoveryMode mode) {
  switch (mode) {
    case DiscoveryMode::kApp:
      return "app";
    case DiscoveryMode::kBoth:
      return "both";
    case DiscoveryMode::kInterface:
      break;
  }
  return "interface";
}

AppRegistrar::AppRegistrar(RegistryLink& link, RegistrarOptions options,
                           std::vector<RegistrarListener> listeners)
    : link_(link), options_(std::move(options)), listeners_(std::move(listeners)) {
  desired_.healthy.assign(listeners_.size(), 0);
  for (size_t l = 0; l < listeners_.size(); ++l) {
    const auto& publish = listeners_[l].publish;
    if (!publish) continue;
    if (!publish->data_id.empty()) {
      Served served = MakeServed(l, {publish->data_id, publish->group, publish->instance_id}, {},
                                 /*plain_url=*/true, /*from_api=*/false);
      desired_.interfaces[link_.DataInfoIdOf(served.key)] = std::move(served);
    }
    for (const auto& interface : publish->interfaces) {
      Served served = MakeServed(l, {interface.data_id, interface.group, interface.instance_id},
                                 interface.params, /*plain_url=*/false, /*from_api=*/false);
      desired_.interfaces[link_.DataInfoIdOf(served.key)] = std::move(served);
    }
  }
  thread_ = std::thread([this] { Run(); });
}

AppRegistrar::~AppRegistrar() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

namespace {

// Whether `listener` can take calls of `protocol` (an interface's protocol
// parameter): an RPC protocol it serves, or anything else (HTTP) on a
// listener that is not RPC-only.
bool Serves(const RegistrarListener& listener, const std::string& protocol) {
  if (IsRpcProtocol(protocol)) {
    return std::find(listener.rpc_protocols.begin(), listener.rpc_protocols.end(), protocol) !=
           listener.rpc_protocols.end();
  }
  return !IsRpcProtocol(listener.protocol);
}

}  // namespace

AppRegistrar::Served AppRegistrar::MakeServed(size_t listener, RegistryDataKey key,
                                              std::map<std::string, std::string> params,
                                              bool plain_url, bool from_api) const {
  // The protocol picks, in the app-level record, which of the instance's
  // endpoints serves the interface (RenderInterfaceUrls).
  if (params.count("protocol") == 0) {
    params["protocol"] =
        IsRpcProtocol(listeners_[listener].protocol) ? listeners_[listener].protocol : "http";
  }
  return Served{std::move(key), listener, std::move(params), plain_url, from_api};
}

std::string AppRegistrar::EndpointOf(const Served& served) const {
  const RegistrarListener& listener = listeners_[served.listener];
  if (!listener.publish->endpoint.empty()) return listener.publish->endpoint;
  if (IsRpcProtocol(listener.protocol))
    return absl::StrCat(listener.protocol, "://", listener.address);
  auto protocol = served.params.find("protocol");
  const bool rpc = protocol != served.params.end() && Serves(listener, protocol->second) &&
                   IsRpcProtocol(protocol->second);
  return absl::StrCat(rpc ? protocol->second : std::string("http"), "://", listener.address);
}

void AppRegistrar::SetHealthy(size_t listener_index, bool healthy) {
  {
    std::lock_guard lock(mu_);
    if (listener_index >= desired_.healthy.size() ||
        (desired_.healthy[listener_index] != 0) == healthy) {
      return;
    }
    desired_.healthy[listener_index] = healthy ? 1 : 0;
    ++desired_.generation;
  }
  changed_.notify_all();
}

absl::StatusOr<bool> AppRegistrar::Publish(const std::string& listener, RegistryDataKey key,
                                           std::map<std::string, std::string> params,
                                           std::chrono::milliseconds wait) {
  std::optional<size_t> index;
  auto protocol = params.find("protocol");
  for (size_t l = 0; l < listeners_.size() && !index; ++l) {
    if (!listeners_[l].publish) continue;
    if (!listener.empty()) {
      if (listeners_[l].name == listener) index = l;
      continue;
    }
    bool speaks = protocol == params.end() || Serves(listeners_[l], protocol->second);
    if (speaks) index = l;
  }
  if (!index && listener.empty()) {
    for (size_t l = 0; l < listeners_.size() && !index; ++l) {
      if (listeners_[l].publish) index = l;
    }
  }
  if (!index) {
    if (!listener.empty()) {
      return absl::NotFoundError(absl::StrCat("no publishing listener named '", listener, "'"));
    }
    return absl::FailedPreconditionError("no listener publishes (configure listeners[].publish)");
  }
  Served served = MakeServed(*index, std::move(key), std::move(params), false, true);
  std::string id = link_.DataInfoIdOf(served.key);
  std::unique_lock lock(mu_);
  if (stopping_ || withdrawn_) return absl::FailedPreconditionError("the sidecar is draining");
  desired_.interfaces[id] = std::move(served);
  uint64_t generation = ++desired_.generation;
  changed_.notify_all();
  return WaitApplied(lock, generation, wait);
}

absl::StatusOr<bool> AppRegistrar::Unpublish(const RegistryDataKey& key,
                                             std::chrono::milliseconds wait) {
  std::string id = link_.DataInfoIdOf(key);
  std::unique_lock lock(mu_);
  auto it = desired_.interfaces.find(id);
  if (it == desired_.interfaces.end() || !it->second.from_api) {
    return absl::NotFoundError(absl::StrCat("'", id, "' was not published through this API"));
  }
  desired_.interfaces.erase(it);
  // A config interface of the same id, shadowed by the API one, comes back.
  for (size_t l = 0; l < listeners_.size(); ++l) {
    const auto& publish = listeners_[l].publish;
    if (!publish) continue;
    if (!publish->data_id.empty()) {
      RegistryDataKey k{publish->data_id, publish->group, publish->instance_id};
      if (link_.DataInfoIdOf(k) == id) desired_.interfaces[id] = MakeServed(l, k, {}, true, false);
    }
    for (const auto& f : publish->interfaces) {
      RegistryDataKey k{f.data_id, f.group, f.instance_id};
      if (link_.DataInfoIdOf(k) == id) {
        desired_.interfaces[id] = MakeServed(l, k, f.params, false, false);
      }
    }
  }
  uint64_t generation = ++desired_.generation;
  changed_.notify_all();
  return WaitApplied(lock, generation, wait);
}

absl::StatusOr<bool> AppRegistrar::WaitApplied(std::unique_lock<std::mutex>& lock,
                                               uint64_t generation,
                                               std::chrono::milliseconds wait) {
  applied_.wait_for(lock, wait,
                    [&] { return applied_generation_ >= generation || stopping_ || withdrawn_; });
  return applied_generation_ >= generation;
}

void AppRegistrar::Run() {
  std::unique_lock lock(mu_);
  uint64_t done = 0;
  bool failed = false;
  while (!stopping_) {
    if (desired_.generation == done && !failed) {
      changed_.wait(lock);
      continue;
    }
    if (failed) {
      // Retry a failed pass after a pause (or at once when the wish changes).
      uint64_t seen = desired_.generation;
      changed_.wait_for(lock, options_.retry_after,
                        [&] { return stopping_ || desired_.generation != seen; });
      if (stopping_) break;
    }
    Desired want = desired_;
    lock.unlock();
    bool ok = Pass(want);
    lock.lock();
    failed = !ok;
    done = want.generation;
    published_revision_ = app_revision_;
    app_published_ = app_pub_ != nullptr;
    published_interfaces_.clear();
    for (const auto& [id, pub] : interface_pubs_) published_interfaces_.push_back(id);
    if (ok) {
      applied_generation_ = std::max(applied_generation_, want.generation);
      applied_.notify_all();
    }
  }
  applied_.notify_all();
}

bool AppRegistrar::Pass(const Desired& want) {
  bool ok = true;
  if (options_.mode != DiscoveryMode::kApp) ok &= PassInterfaces(want);
  if (options_.mode != DiscoveryMode::kInterface) ok &= PassApp(want);
  return ok;
}

bool AppRegistrar::PassInterfaces(const Desired& want) {
  std::map<std::string, std::pair<const Served*, std::vector<std::string>>> target;
  for (const auto& [id, served] : want.interfaces) {
    if (!want.healthy[served.listener]) continue;
    std::string endpoint = EndpointOf(served);
    std::vector<std::string> data = served.plain_url
                                        ? std::vector<std::string>{endpoint}
                                        : RenderInterfaceUrls({endpoint}, served.params);
    target[id] = {&served, std::move(data)};
  }
  bool ok = true;
  for (auto it = interface_pubs_.begin(); it != interface_pubs_.end();) {
    if (target.count(it->first) > 0) {
      ++it;
      continue;
    }
    if (auto s = it->second.handle->Unregister(); !s.ok()) {
      spdlog::warn("withdrawing {}: {}", it->first, s.ToString());
    }
    spdlog::info("withdrew interface {}", it->first);
    it = interface_pubs_.erase(it);
  }
  for (auto& [id, entry] : target) {
    auto& [served, data] = entry;
    auto current = interface_pubs_.find(id);
    if (current != interface_pubs_.end()) {
      if (current->second.data == data) continue;
      if (auto s = current->second.handle->Republish(data); !s.ok()) {
        spdlog::warn("republishing {}: {}", id, s.ToString());
        ok = false;
        continue;
      }
      current->second.data = data;
      continue;
    }
    const RegistrarListener& listener = listeners_[served->listener];
    RegistryPublishSpec spec;
    spec.key = served->key;
    // The listener's own app name first, as before app.name existed.
    spec.app_name = listener.publish->app.empty() ? options_.app_name : listener.publish->app;
    spec.zone = listener.publish->zone;
    spec.data = data;
    auto published = link_.Publish(spec);
    if (!published.ok()) {
      spdlog::warn("cannot publish listener {} as {}: {}", listener.name, served->key.data_id,
                   published.status().ToString());
      ok = false;
      continue;
    }
    spdlog::info("published listener {} as {}", listener.name, served->key.data_id);
    interface_pubs_[id] = {*published, data};
  }
  return ok;
}

bool AppRegistrar::PassApp(const Desired& want) {
  RegistryRevisionSpec spec;
  spec.app_name = options_.app_name;
  std::set<std::string> endpoints;
  std::string signature;
  for (const auto& [id, served] : want.interfaces) {  // sorted by id: a stable signature
    if (!want.healthy[served.listener]) continue;
    spec.interfaces.push_back({served.key, served.params});
    endpoints.insert(EndpointOf(served));
    absl::StrAppend(&signature, id.size(), ":", id, "{");
    for (const auto& [k, v] : served.params) {
      absl::StrAppend(&signature, k.size(), ":", k, v.size(), ":", v);
    }
    absl::StrAppend(&signature, "}");
  }
  if (spec.interfaces.empty()) {
    if (app_pub_ != nullptr) {
      if (auto s = app_pub_->Unregister(); !s.ok())
        spdlog::warn("withdrawing app: {}", s.ToString());
      spdlog::info("withdrew app {} (revision {})", options_.app_name, app_revision_);
      app_pub_.reset();
      app_endpoints_.clear();
    }
    return true;
  }
  std::string revision = app_revision_;
  if (signature != revision_signature_) {
    auto registered = link_.RegisterRevision(spec);
    if (!registered.ok()) {
      spdlog::warn("cannot register a revision of app {}: {}", options_.app_name,
                   registered.status().ToString());
      return false;
    }
    revision = *registered;
  }
  std::vector<std::string> wanted(endpoints.begin(), endpoints.end());
  if (app_pub_ == nullptr || revision != app_revision_) {
    RegistryAppInstanceSpec instance{options_.app_name, revision, wanted, options_.zone};
    auto published = link_.PublishApp(instance);
    if (!published.ok()) {
      spdlog::warn("cannot publish app {} (revision {}): {}", options_.app_name, revision,
                   published.status().ToString());
      return false;
    }
    // Make before break: the new record exists before the old one goes.
    if (app_pub_ != nullptr) {
      if (auto s = app_pub_->Unregister(); !s.ok()) {
        spdlog::warn("withdrawing revision {}: {}", app_revision_, s.ToString());
      }
    }
    spdlog::info("published app {} revision {} ({} interfaces) at {}", options_.app_name, revision,
                 spec.interfaces.size(), wanted.front());
    app_pub_ = *published;
    app_revision_ = revision;
    revision_signature_ = signature;
    app_endpoints_ = wanted;
    return true;
  }
  revision_signature_ = signature;
  if (wanted != app_endpoints_) {
    if (auto s = app_pub_->Republish(wanted); !s.ok()) {
      spdlog::warn("republishing app {}: {}", options_.app_name, s.ToString());
      return false;
    }
    app_endpoints_ = wanted;
  }
  return true;
}

void AppRegistrar::Withdraw() {
  {
    std::lock_guard lock(mu_);
    if (withdrawn_) return;
    withdrawn_ = true;
    stopping_ = true;
  }
  changed_.notify_all();
  applied_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& [id, pub] : interface_pubs_) {
    if (auto s = pub.handle->Unregister(); !s.ok())
      spdlog::warn("withdrawing {}: {}", id, s.ToString());
  }
  interface_pubs_.clear();
  if (app_pub_ != nullptr) {
    if (auto s = app_pub_->Unregister(); !s.ok()) spdlog::warn("withdrawing app: {}", s.ToString());
    app_pub_.reset();
  }
  std::lock_guard lock(mu_);
  app_published_ = false;
  published_interfaces_.clear();
}

std::string AppRegistrar::StateJson() {
  std::lock_guard lock(mu_);
  std::string out = absl::StrCat(
      "{\"app\":\"", JsonEscape(options_.app_name), "\",\"discovery\":\"",
      DiscoveryModeName(options_.mode), "\",\"revision\":\"", JsonEscape(published_revision_),
      "\",\"app_published\":", app_published_ ? "true" : "false",
      ",\"pending\":", applied_generation_ < desired_.generation ? "true" : "false",
      ",\"interfaces\":[");
  bool first = true;
  for (const auto& [id, served] : desired_.interfaces) {
    absl::StrAppend(&out, first ? "" : ",", "{\"data_info_id\":\"", JsonEscape(id),
                    "\",\"data_id\":\"", JsonEscape(served.key.data_id), "\",\"listener\":\"",
                    JsonEscape(listeners_[served.listener].name), "\",\"source\":\"",
                    served.from_api ? "api" : "config",
                    "\",\"healthy\":", desired_.healthy[served.listener] ? "true" : "false",
                    ",\"params\":{");
    bool first_param = true;
    for (const auto& [k, v] : served.params) {
      absl::StrAppend(&out, first_param ? "" : ",", "\"", JsonEscape(k), "\":\"", JsonEscape(v),
                      "\"");
      first_param = false;
    }
    absl::StrAppend(&out, "}}");
    first = false;
  }
  absl::StrAppend(&out, "],\"interface_publications\":[");
  first = true;
  for (const auto& id : published_interfaces_) {
    absl::StrAppend(&out, first ? "" : ",", "\"", JsonEscape(id), "\"");
    first = false;
  }
  absl::StrAppend(&out, "]}\n");
  return out;
}

}  // namespace cairn::sidecar::discovery
