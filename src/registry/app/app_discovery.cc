#include "registry/app/app_discovery.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "registry/app/app_model.h"
#include "registry/app/app_records.h"
#include "registry/app/derived_views.h"

namespace cairn {
namespace {

using app::InfoOf;
using app::RevisionOf;

std::optional<std::string> AppOfId(const std::string& data_info_id) {
  return app::AppOfDataInfoId(data_info_id);
}

}  // namespace

absl::StatusOr<std::unique_ptr<AppDiscovery>> AppDiscovery::Create(EventLoop& loop,
                                                                   DataService& inner,
                                                                   RevisionStore* store,
                                                                   AppDiscoveryOptions options) {
  std::unique_ptr<AppDiscovery> out(new AppDiscovery(loop, inner, store, options));
  if (store != nullptr) {
    auto stored = store->List();
    if (!stored.ok()) return stored.status();
    SteadyTime now = SteadyNow();
    for (StoredRevision& s : *stored) {
      Revision& rev =
          out->AddRevision(s.meta.revision(), app::CanonicalRevision(s.meta), s.registered_at_ms);
      // Clients replay their instances after a restart: give them the full
      // grace period before a loaded revision counts as garbage.
      rev.unreferenced_since = now;
    }
    if (!stored->empty()) spdlog::info("loaded {} app revisions", stored->size());
  }
  return out;
}

AppDiscovery::AppDiscovery(EventLoop& loop, DataService& inner, RevisionStore* store,
                           AppDiscoveryOptions options)
    : loop_(loop), inner_(inner), store_(store), options_(options) {
  inner_.AddListener(this);
}

AppDiscovery::~AppDiscovery() { inner_.RemoveListener(this); }

void AppDiscovery::Start() { Sweep(); }

void AppDiscovery::Sweep() {
  CollectGarbage(SteadyNow());
  auto period = std::clamp(options_.revision_gc_after / 4, std::chrono::milliseconds(20),
                           std::chrono::milliseconds(30000));
  sweep_timer_ = loop_.RunAfter(period, [this] { Sweep(); });
}

size_t AppDiscovery::CollectGarbage(SteadyTime now) {
  std::vector<std::string> dead;
  for (const auto& [id, rev] : revisions_) {
    if (rev.refs == 0 && now - rev.unreferenced_since >= options_.revision_gc_after) {
      dead.push_back(id);
    }
  }
  size_t removed = 0;
  for (const std::string& id : dead) {
    if (store_ != nullptr) {
      if (auto s = store_->Delete(id); !s.ok()) {
        spdlog::error("cannot delete revision {}: {}", id, s.ToString());
        continue;  // retried on the next sweep
      }
    }
    // Unreferenced revisions contribute nothing to the interface index, so
    // removing one changes no datum.
    if (auto it = revisions_.find(id); it != revisions_.end()) EraseRevision(it);
    ++removed;
  }
  if (removed > 0) spdlog::info("garbage-collected {} unreferenced app revisions", removed);
  return removed;
}

// ---------------------------------------------------------------- writes

void AppDiscovery::RegisterRevision(const pb::RevisionMeta& meta,
                                    std::function<void(absl::Status)> done) {
  if (auto s = app::ValidateRevision(meta); !s.ok()) {
    done(s);
    return;
  }
  auto it = revisions_.find(meta.revision());
  if (it != revisions_.end()) {
    // The same test as app::SameRevisionContent, against the compact form.
    if (it->second.app_name != meta.app_name() || !it->second.content.SameInterfaces(meta)) {
      done(absl::AlreadyExistsError(absl::StrCat(
          "revision ", meta.revision(),
          " is already registered with other content; revisions are immutable: give the new "
          "metadata a new id (by convention the hash of its content)")));
      return;
    }
    // A client about to publish on it: restart its grace period.
    if (it->second.refs == 0) it->second.unreferenced_since = SteadyNow();
    done(absl::OkStatus());
    return;
  }
  if (revisions_.size() >= options_.max_revisions) {
    done(absl::ResourceExhaustedError(absl::StrCat("the registry holds ", revisions_.size(),
                                                   " revisions; the limit is ",
                                                   options_.max_revisions)));
    return;
  }
  StoredRevision stored{app::CanonicalRevision(meta), WallMillis()};
  if (store_ != nullptr) {
    if (auto s = store_->Put(stored); !s.ok()) {
      done(absl::UnavailableError(absl::StrCat("cannot store revision: ", s.message())));
      return;
    }
  }
  Revision& rev = AddRevision(meta.revision(), stored.meta, stored.registered_at_ms);
  rev.unreferenced_since = SteadyNow();
  done(absl::OkStatus());
}

AppDiscovery::Revision& AppDiscovery::AddRevision(const std::string& id,
                                                  const pb::RevisionMeta& canonical,
                                                  int64_t registered_at_ms) {
  // Callers add only new ids; replacing one must still release its interfaces.
  if (auto old = revisions_.find(id); old != revisions_.end()) EraseRevision(old);
  Revision& rev = revisions_[id];
  rev.app_name = canonical.app_name();
  rev.content = app::CompactRevision::Build(canonical, [this](const std::string& iface) {
    auto entry = interfaces_.try_emplace(iface).first;
    ++entry->second.revisions;
    return &entry->first;
  });
  rev.registered_at_ms = registered_at_ms;
  return rev;
}

void AppDiscovery::EraseRevision(std::unordered_map<std::string, Revision>::iterator it) {
  const app::CompactRevision& content = it->second.content;
  for (size_t i = 0; i < content.interface_count(); ++i) {
    auto entry = interfaces_.find(*content.interface_id(i));
    if (entry == interfaces_.end()) continue;
    InterfaceState& state = entry->second;
    if (state.revisions > 0) --state.revisions;
    // A bumped interface keeps its entry: its derived version must not go back.
    if (state.revisions == 0 && state.apps.empty() && state.bump == 0) interfaces_.erase(entry);
  }
  revisions_.erase(it);
}

const AppDiscovery::InterfaceState* AppDiscovery::FindInterface(
    const std::string& data_info_id) const {
  auto it = interfaces_.find(data_info_id);
  return it == interfaces_.end() || it->second.apps.empty() ? nullptr : &it->second;
}

void AppDiscovery::Publish(std::shared_ptr<const PublisherRecord> record, VersionCallback done) {
  if (absl::StartsWith(record->key().data_id(), std::string(app::kAppDataIdPrefix))) {
    absl::StatusOr<app::AppInstanceRef> instance = app::CheckAppInstance(*record);
    if (!instance.ok()) {
      done(instance.status());
      return;
    }
    auto rev = revisions_.find(instance->revision);
    if (rev == revisions_.end()) {
      done(absl::FailedPreconditionError(
          absl::StrCat("revision ", instance->revision,
                       " is not registered on this server: register the revision first "
                       "(RegisterRevision), then publish the instance")));
      return;
    }
    if (rev->second.app_name != instance->app_name) {
      done(absl::InvalidArgumentError(absl::StrCat("revision ", instance->revision,
                                                   " belongs to app ", rev->second.app_name,
                                                   ", not ", instance->app_name)));
      return;
    }
  }
  inner_.Publish(std::move(record), std::move(done));
}

void AppDiscovery::Unpublish(const std::string& data_info_id, const std::string& registration_id,
                             const OwnerRef& owner, VersionCallback done) {
  inner_.Unpublish(data_info_id, registration_id, owner, std::move(done));
}

// ---------------------------------------------------------------- change tracking

std::shared_ptr<const DatumSnapshot> AppDiscovery::FetchInner(const std::string& id) const {
  std::shared_ptr<const DatumSnapshot> out;
  inner_.Fetch(
      id, [&out](std::shared_ptr<const DatumSnapshot> snapshot) { out = std::move(snapshot); });
  if (out == nullptr) {  // an inner service that answers later is not supported
    spdlog::critical("AppDiscovery needs a data service that answers Fetch inline");
    std::abort();
  }
  return out;
}

void AppDiscovery::OnDatumChanged(const std::string& data_info_id, uint64_t version) {
  std::shared_ptr<const DatumSnapshot> snapshot = FetchInner(data_info_id);
  cache_.erase(data_info_id);  // stale now
  if (std::optional<std::string> app_name = AppOfId(data_info_id)) {
    std::vector<std::string> affected = UpdateApp(*app_name, *snapshot);
    Emit(data_info_id, version);
    for (const std::string& iface : affected) {
      // UpdateApp left an entry for every affected interface.
      interfaces_.at(iface).bump = version;
      cache_.erase(iface);
      Emit(iface, version);
    }
    return;
  }
  std::set<std::string> apps = UpdateLegacy(data_info_id, *snapshot);
  Emit(data_info_id, version);
  for (const std::string& app_name : apps) {
    std::string id = DataInfoId(app::AppKey(app_name));
    bumps_[id] = version;
    cache_.erase(id);
    Emit(id, version);
  }
}

void AppDiscovery::Emit(const std::string& data_info_id, uint64_t version) {
  for (DataChangeListener* listener : listeners_) listener->OnDatumChanged(data_info_id, version);
}

std::vector<std::string> AppDiscovery::UpdateApp(const std::string& app_name,
                                                 const DatumSnapshot& snapshot) {
  auto app_it = apps_.try_emplace(app_name).first;
  App& app = app_it->second;
  const std::string* name = &app_it->first;  // what the index points to
  SteadyTime now = SteadyNow();
  for (const auto& [revision, count] : app.revisions) DropRef(revision, count, now);
  std::map<std::string, uint32_t> revisions;
  for (const auto& record : snapshot.publishers) ++revisions[RevisionOf(*record)];
  app.revisions.assign(revisions.begin(), revisions.end());
  app.revisions.shrink_to_fit();
  app.instances = static_cast<uint32_t>(snapshot.publishers.size());
  std::vector<InterfaceEntry*> served;
  for (const auto& [revision, count] : app.revisions) {
    AddRef(revision, count);
    auto rev = revisions_.find(revision);
    if (rev == revisions_.end()) continue;
    const app::CompactRevision& content = rev->second.content;
    for (size_t i = 0; i < content.interface_count(); ++i) {
      // Revisions intern their interfaces in interfaces_: the entry exists.
      served.push_back(&*interfaces_.find(*content.interface_id(i)));
    }
  }
  std::sort(served.begin(), served.end());
  served.erase(std::unique(served.begin(), served.end()), served.end());
  // Every interface served before or now has changed data.
  std::vector<std::string> affected;
  affected.reserve(app.interfaces.size() + served.size());
  for (InterfaceEntry* entry : app.interfaces) {
    affected.push_back(entry->first);
    if (std::binary_search(served.begin(), served.end(), entry)) continue;
    auto& apps = entry->second.apps;
    apps.erase(std::remove(apps.begin(), apps.end(), name), apps.end());
  }
  auto by_name = [](const std::string* a, const std::string* b) { return *a < *b; };
  for (InterfaceEntry* entry : served) {
    affected.push_back(entry->first);
    auto& apps = entry->second.apps;
    auto pos = std::lower_bound(apps.begin(), apps.end(), name, by_name);
    if (pos == apps.end() || *pos != name) apps.insert(pos, name);
  }
  app.interfaces = std::move(served);
  app.interfaces.shrink_to_fit();
  std::sort(affected.begin(), affected.end());
  affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
  if (app.instances == 0) apps_.erase(app_it);
  return affected;
}

std::set<std::string> AppDiscovery::UpdateLegacy(const std::string& data_info_id,
                                                 const DatumSnapshot& snapshot) {
  std::set<std::string> now_apps;
  for (const auto& record : snapshot.publishers) {
    if (!record->app_name.empty()) now_apps.insert(record->app_name);
  }
  std::set<std::string> affected = now_apps;
  auto old = legacy_apps_.find(data_info_id);
  if (old != legacy_apps_.end()) {
    for (const std::string& a : old->second) {
      affected.insert(a);
      if (now_apps.count(a) > 0) continue;
      auto by_app = legacy_by_app_.find(a);
      if (by_app == legacy_by_app_.end()) continue;
      by_app->second.erase(data_info_id);
      if (by_app->second.empty()) legacy_by_app_.erase(by_app);
    }
  }
  for (const std::string& a : now_apps) legacy_by_app_[a].insert(data_info_id);
  if (now_apps.empty()) {
    legacy_apps_.erase(data_info_id);
  } else {
    legacy_apps_[data_info_id] = std::move(now_apps);
  }
  return affected;
}

void AppDiscovery::AddRef(const std::string& revision, uint32_t count) {
  auto it = revisions_.find(revision);
  if (it != revisions_.end()) it->second.refs += count;
}

void AppDiscovery::DropRef(const std::string& revision, uint32_t count, SteadyTime now) {
  auto it = revisions_.find(revision);
  if (it == revisions_.end() || it->second.refs == 0) return;
  it->second.refs -= std::min<size_t>(count, it->second.refs);
  if (it->second.refs == 0) it->second.unreferenced_since = now;
}

// ---------------------------------------------------------------- reads

uint64_t AppDiscovery::DerivedVersion(const std::string& id, uint64_t own_version) const {
  if (auto iface = interfaces_.find(id); iface != interfaces_.end()) {
    return std::max(own_version, iface->second.bump);
  }
  auto it = bumps_.find(id);
  return it == bumps_.end() ? own_version : std::max(own_version, it->second);
}

void AppDiscovery::Fetch(const std::string& data_info_id, SnapshotCallback done) {
  std::shared_ptr<const DatumSnapshot> own = FetchInner(data_info_id);
  uint64_t version = DerivedVersion(data_info_id, own->version);
  std::optional<std::string> app_name = AppOfId(data_info_id);
  bool derived = app_name.has_value() ? legacy_by_app_.count(*app_name) > 0
                                      : FindInterface(data_info_id) != nullptr;
  if (!derived) {
    cache_.erase(data_info_id);
    if (version == own->version) {
      done(std::move(own));
      return;
    }
    auto copy = std::make_shared<DatumSnapshot>(*own);  // same data, newer version
    copy->version = version;
    done(std::move(copy));
    return;
  }
  auto cached = cache_.find(data_info_id);
  if (cached != cache_.end() && cached->second->version == version) {
    done(cached->second);
    return;
  }
  std::shared_ptr<const DatumSnapshot> built = app_name.has_value()
                                                   ? BuildApp(*app_name, *own, version)
                                                   : BuildInterface(data_info_id, *own, version);
  cache_[data_info_id] = built;
  done(std::move(built));
}

app::RevisionLookup AppDiscovery::Lookup() const {
  return [this](const std::string& id) -> const app::CompactRevision* {
    auto it = revisions_.find(id);
    return it == revisions_.end() ? nullptr : &it->second.content;
  };
}

std::shared_ptr<const DatumSnapshot> AppDiscovery::BuildInterface(const std::string& id,
                                                                  const DatumSnapshot& own,
                                                                  uint64_t version) const {
  std::vector<std::shared_ptr<const DatumSnapshot>> held;  // keeps the parts alive
  std::vector<app::NamedPart> parts;
  for (const std::string* app_name : FindInterface(id)->apps) {
    if (!apps_.contains(*app_name)) continue;
    held.push_back(FetchInner(DataInfoId(app::AppKey(*app_name))));
    parts.emplace_back(app_name, held.back().get());
  }
  return app::BuildInterfaceView(id, own, parts, Lookup(), version);
}

std::shared_ptr<const DatumSnapshot> AppDiscovery::BuildApp(const std::string& app_name,
                                                            const DatumSnapshot& own,
                                                            uint64_t version) const {
  std::vector<std::shared_ptr<const DatumSnapshot>> held;
  std::vector<app::NamedPart> parts;
  for (const std::string& iface : legacy_by_app_.at(app_name)) {
    held.push_back(FetchInner(iface));
    parts.emplace_back(&iface, held.back().get());
  }
  return app::BuildAppView(app_name, own, parts, Lookup(), version);
}

std::vector<DatumSummary> AppDiscovery::List(const std::string& data_id_prefix) const {
  std::vector<DatumSummary> out = inner_.List(data_id_prefix);
  for (DatumSummary& summary : out) {
    summary.version = DerivedVersion(summary.data_info_id, summary.version);
  }
  return out;
}

void AppDiscovery::AddListener(DataChangeListener* listener) { listeners_.push_back(listener); }

void AppDiscovery::RemoveListener(DataChangeListener* listener) {
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

// ---------------------------------------------------------------- queries

absl::StatusOr<pb::GetRevisionResponse> AppDiscovery::GetRevision(
    const pb::GetRevisionRequest& request) const {
  if (auto s = app::ValidateRevisionId(request.revision()); !s.ok()) return s;
  auto it = revisions_.find(request.revision());
  if (it == revisions_.end()) {
    return absl::NotFoundError(absl::StrCat("revision ", request.revision(), " is not known"));
  }
  pb::GetRevisionResponse response;
  pb::RevisionInfo* info = response.mutable_revision();
  *info->mutable_meta() = it->second.content.ToMeta(it->first, it->second.app_name);
  info->set_instances(static_cast<uint32_t>(it->second.refs));
  info->set_registered_at_ms(it->second.registered_at_ms);
  if (it->second.refs == 0) {
    info->set_unreferenced_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  SteadyNow() - it->second.unreferenced_since)
                                  .count());
  }
  return response;
}

pb::ListAppsResponse AppDiscovery::ListApps(const pb::ListAppsRequest& request) const {
  std::map<std::string, pb::AppSummary> apps;
  for (const auto& [id, rev] : revisions_) {
    if (absl::StartsWith(rev.app_name, request.app_name_prefix())) {
      apps[rev.app_name].set_app_name(rev.app_name);
    }
  }
  for (const auto& [name, app] : apps_) {
    if (!absl::StartsWith(name, request.app_name_prefix())) continue;
    pb::AppSummary& summary = apps[name];
    summary.set_app_name(name);
    summary.set_instances(app.instances);
    for (const auto& [revision, count] : app.revisions) summary.add_revisions(revision);
  }
  pb::ListAppsResponse response;
  for (auto& [name, summary] : apps) {
    std::string id = DataInfoId(app::AppKey(name));
    summary.set_version(DerivedVersion(id, FetchInner(id)->version));
    *response.add_apps() = std::move(summary);
  }
  return response;
}

absl::StatusOr<pb::DescribeAppResponse> AppDiscovery::DescribeApp(
    const pb::DescribeAppRequest& request) const {
  if (auto s = app::ValidateAppName(request.app_name()); !s.ok()) return s;
  std::string id = DataInfoId(app::AppKey(request.app_name()));
  std::shared_ptr<const DatumSnapshot> own = FetchInner(id);
  bool has_revision = std::any_of(revisions_.begin(), revisions_.end(), [&](const auto& entry) {
    return entry.second.app_name == request.app_name();
  });
  if (own->publishers.empty() && !has_revision) {
    return absl::NotFoundError(absl::StrCat("app ", request.app_name(), " is not known"));
  }
  pb::DescribeAppResponse response;
  response.set_app_name(request.app_name());
  response.set_version(DerivedVersion(id, own->version));
  std::map<std::string, pb::AppRevisionInstances> by_revision;
  for (const auto& instance : own->publishers) {
    std::string revision = RevisionOf(*instance);
    pb::AppRevisionInstances& group = by_revision[revision];
    group.set_revision(revision);
    *group.add_instances() = InfoOf(*instance);
  }
  for (auto& [revision, group] : by_revision) *response.add_revisions() = std::move(group);
  return response;
}

absl::StatusOr<pb::DescribeInterfaceResponse> AppDiscovery::DescribeInterface(
    const pb::DescribeInterfaceRequest& request) const {
  if (auto s = ValidateKey(request.key()); !s.ok()) return s;
  pb::DataInfoKey key = NormalizeKey(request.key());
  std::string id = DataInfoId(key);
  std::shared_ptr<const DatumSnapshot> own = FetchInner(id);
  pb::DescribeInterfaceResponse response;
  *response.mutable_key() = key;
  response.set_version(DerivedVersion(id, own->version));
  response.set_interface_publishers(static_cast<uint32_t>(own->publishers.size()));
  const InterfaceState* iface = FindInterface(id);
  if (iface == nullptr) return response;
  for (const std::string* app_name_ptr : iface->apps) {
    const std::string& app_name = *app_name_ptr;
    auto app = apps_.find(app_name);
    if (app == apps_.end()) continue;
    pb::InterfaceApp* out = response.add_apps();
    out->set_app_name(app_name);
    std::set<std::string> serving;
    uint32_t instances = 0;
    for (const auto& [revision, count] : app->second.revisions) {
      auto rev = revisions_.find(revision);
      if (rev == revisions_.end() || !rev->second.content.Serves(id)) continue;
      serving.insert(revision);
      instances += count;
    }
    for (const std::string& revision : serving) out->add_revisions(revision);
    out->set_instances(instances);
  }
  return response;
}

}  // namespace cairn
