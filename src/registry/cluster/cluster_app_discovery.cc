#include "registry/cluster/cluster_app_discovery.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "registry/app/app_model.h"
#include "registry/app/app_records.h"
#include "registry/app/derived_views.h"

namespace cairn::cluster {
namespace {

std::string AppDatumId(const std::string& app_name) { return DataInfoId(app::AppKey(app_name)); }

absl::Status NotRegistered(const std::string& revision) {
  return absl::FailedPreconditionError(
      absl::StrCat("revision ", revision,
                   " is not registered in this cluster: register the revision first "
                   "(RegisterRevision), then publish the instance"));
}

absl::Status OtherContent(const std::string& revision) {
  return absl::AlreadyExistsError(
      absl::StrCat("revision ", revision,
                   " is already registered with other content; revisions are immutable: give "
                   "the new metadata a new id (by convention the hash of its content)"));
}

}  // namespace

ClusterAppDiscovery::ClusterAppDiscovery(EventLoop& loop, EventLoop& io_loop,
                                         RemoteDataService& inner, RevisionStore& store,
                                         ClusterAppOptions options)
    : loop_(loop),
      io_loop_(io_loop),
      inner_(inner),
      store_(store),
      options_(options),
      views_([&inner] { return inner.max_seen_version(); }) {
  inner_.AddListener(this);
  inner_.SetAppsObserver(
      [this](const std::string& id, uint64_t version, const std::vector<std::string>& apps) {
        OnApps(id, version, apps);
      });
}

ClusterAppDiscovery::~ClusterAppDiscovery() {
  *alive_ = false;
  inner_.RemoveListener(this);
  inner_.SetAppsObserver(nullptr);
}

// ---------------------------------------------------------------- catalog

bool ClusterAppDiscovery::AddStored(const std::string& id, const std::string& value) {
  auto known = revisions_.find(id);
  if (known != revisions_.end()) {
    known->second.seen_in_store = true;  // immutable: nothing else can have changed
    return false;
  }
  pb::RevisionInfo info;
  if (!info.ParseFromString(value) || info.meta().revision() != id ||
      !app::ValidateRevision(info.meta()).ok()) {
    spdlog::warn("ignoring revision {} in etcd: not a valid RevisionInfo", id);
    return false;
  }
  AddRevision(id, app::CanonicalRevision(info.meta()), info.registered_at_ms(), true);
  return true;
}

void ClusterAppDiscovery::OnStoredRevisionChanges(const std::map<std::string, std::string>& puts,
                                                  const std::vector<std::string>& deletes) {
  // A delete follows the put it undoes (etcd's order), so it is final even
  // for a revision this session registered itself.
  for (const std::string& id : deletes) EraseRevision(id);
  for (const auto& [id, value] : puts) AddStored(id, value);
}

void ClusterAppDiscovery::OnStoredRevisions(const std::map<std::string, std::string>& stored) {
  size_t added = 0;
  for (const auto& [id, value] : stored) {
    if (AddStored(id, value)) ++added;
  }
  std::vector<std::string> deleted;
  for (const auto& [id, rev] : revisions_) {
    if (rev.seen_in_store && !stored.contains(id)) deleted.push_back(id);
  }
  for (const std::string& id : deleted) EraseRevision(id);
  if (added > 0 || !deleted.empty()) {
    spdlog::debug("app revisions from etcd: {} added, {} deleted, {} known", added, deleted.size(),
                  revisions_.size());
  }
}

void ClusterAppDiscovery::AddRevision(const std::string& id, const pb::RevisionMeta& canonical,
                                      int64_t registered_at_ms, bool seen_in_store) {
  Revision& rev = revisions_[id];
  rev.app_name = canonical.app_name();
  rev.registered_at_ms = registered_at_ms;
  rev.seen_in_store = seen_in_store;
  std::vector<std::string> served;
  rev.content = app::CompactRevision::Build(canonical, [&](const std::string& iface) {
    auto entry = interfaces_.try_emplace(iface).first;
    ++entry->second.apps[rev.app_name];
    served.push_back(iface);
    return &entry->first;
  });
  app_revisions_[rev.app_name].insert(id);
  // Instances on this revision may already be published (registered through
  // another session): the views that can now render them must be pushed.
  uint64_t now = inner_.max_seen_version();
  for (const std::string& iface : served) TouchView(iface, now);
  TouchView(AppDatumId(rev.app_name), now);
}

void ClusterAppDiscovery::EraseRevision(const std::string& id) {
  auto it = revisions_.find(id);
  if (it == revisions_.end()) return;
  const Revision& rev = it->second;
  // Views rendered with this revision change (the collector deletes only
  // unused ones, but an operator may delete any).
  uint64_t now = inner_.max_seen_version();
  std::vector<std::string> touched{AppDatumId(rev.app_name)};
  for (size_t i = 0; i < rev.content.interface_count(); ++i) {
    auto entry = interfaces_.find(*rev.content.interface_id(i));
    if (entry == interfaces_.end()) continue;
    touched.push_back(entry->first);
    InterfaceState& state = entry->second;
    auto app = state.apps.find(rev.app_name);
    if (app != state.apps.end() && --app->second == 0) state.apps.erase(app);
    if (state.apps.empty()) interfaces_.erase(entry);
  }
  auto by_app = app_revisions_.find(rev.app_name);
  if (by_app != app_revisions_.end()) {
    by_app->second.erase(id);
    if (by_app->second.empty()) app_revisions_.erase(by_app);
  }
  revisions_.erase(it);
  for (const std::string& view : touched) TouchView(view, now);
}

void ClusterAppDiscovery::RewriteInStore(const std::string& id, Revision& rev) {
  SteadyTime now = SteadyNow();
  if (rev.touched != SteadyTime{} && now - rev.touched < options_.touch_interval) return;
  rev.touched = now;
  StoredRevision stored{rev.content.ToMeta(id, rev.app_name), rev.registered_at_ms};
  // Fire and forget: a failed rewrite only leaves the collector's count as is.
  io_loop_.Post([&store = store_, stored = std::move(stored)] {
    if (auto s = store.Put(stored); !s.ok()) {
      spdlog::warn("cannot rewrite revision {} in etcd: {}", stored.meta.revision(), s.ToString());
    }
  });
}

std::vector<std::string> ClusterAppDiscovery::InterfacesOfApp(const std::string& app_name) const {
  std::set<std::string> out;
  auto by_app = app_revisions_.find(app_name);
  if (by_app == app_revisions_.end()) return {};
  for (const std::string& id : by_app->second) {
    const app::CompactRevision& content = revisions_.at(id).content;
    for (size_t i = 0; i < content.interface_count(); ++i) out.insert(*content.interface_id(i));
  }
  return {out.begin(), out.end()};
}

// ---------------------------------------------------------------- writes

void ClusterAppDiscovery::RegisterRevision(const pb::RevisionMeta& meta,
                                           std::function<void(absl::Status)> done) {
  if (auto s = app::ValidateRevision(meta); !s.ok()) {
    done(s);
    return;
  }
  const std::string& id = meta.revision();
  if (auto known = revisions_.find(id); known != revisions_.end()) {
    bool same =
        known->second.app_name == meta.app_name() && known->second.content.SameInterfaces(meta);
    if (same) RewriteInStore(id, known->second);
    done(same ? absl::OkStatus() : OtherContent(id));
    return;
  }
  if (auto pending = pending_.find(id); pending != pending_.end()) {
    if (!app::SameRevisionContent(pending->second.canonical, meta)) {
      done(OtherContent(id));
      return;
    }
    pending->second.waiters.push_back(std::move(done));
    return;
  }
  if (revisions_.size() + pending_.size() >= options_.max_revisions) {
    done(absl::ResourceExhaustedError(absl::StrCat("the cluster holds ", revisions_.size(),
                                                   " revisions; the limit is ",
                                                   options_.max_revisions)));
    return;
  }
  PendingRevision& pending = pending_[id];
  pending.canonical = app::CanonicalRevision(meta);
  pending.waiters.push_back(std::move(done));
  StoredRevision wanted{pending.canonical, WallMillis()};
  io_loop_.Post([this, alive = alive_, wanted = std::move(wanted)]() mutable {
    // Another session may have stored it since this one last heard from etcd.
    absl::Status status;
    absl::StatusOr<StoredRevision> existing = store_.Get(wanted.meta.revision());
    if (existing.ok()) {
      wanted = std::move(*existing);
    } else if (absl::IsNotFound(existing.status())) {
      status = store_.Put(wanted);
    } else {
      status = existing.status();
    }
    if (!status.ok()) {
      status = absl::UnavailableError(
          absl::StrCat("cannot store the revision in etcd: ", status.message(), "; retry"));
    }
    std::string id = wanted.meta.revision();  // not a reference into what is moved below
    loop_.Post([this, alive, id = std::move(id), status, wanted = std::move(wanted)]() mutable {
      if (*alive) FinishRegistration(id, status, std::move(wanted));
    });
  });
}

void ClusterAppDiscovery::FinishRegistration(const std::string& id, absl::Status status,
                                             StoredRevision stored) {
  auto node = pending_.extract(id);
  if (node.empty()) return;
  PendingRevision& pending = node.mapped();
  if (status.ok() && !app::SameRevisionContent(stored.meta, pending.canonical)) {
    status = OtherContent(id);
  }
  if (status.ok() && !revisions_.contains(id)) {
    AddRevision(id, pending.canonical, stored.registered_at_ms, false);
    revisions_.at(id).touched = SteadyNow();
  }
  for (auto& waiter : pending.waiters) waiter(status);
  for (auto& [record, done] : pending.publishes) {
    if (!status.ok()) {
      done(absl::FailedPreconditionError(
          absl::StrCat("revision ", id, " could not be registered: ", status.message())));
      continue;
    }
    Publish(std::move(record), std::move(done));
  }
}

void ClusterAppDiscovery::Publish(std::shared_ptr<const PublisherRecord> record,
                                  VersionCallback done) {
  if (!absl::StartsWith(record->key().data_id(), std::string(app::kAppDataIdPrefix))) {
    inner_.Publish(std::move(record), std::move(done));
    return;
  }
  absl::StatusOr<app::AppInstanceRef> instance = app::CheckAppInstance(*record);
  if (!instance.ok()) {
    done(instance.status());
    return;
  }
  PublishInstance(std::move(record), instance->app_name, instance->revision, std::move(done), true);
}

void ClusterAppDiscovery::PublishInstance(std::shared_ptr<const PublisherRecord> record,
                                          const std::string& app_name, const std::string& revision,
                                          VersionCallback done, bool may_look_up) {
  if (auto rev = revisions_.find(revision); rev != revisions_.end()) {
    if (rev->second.app_name != app_name) {
      done(absl::InvalidArgumentError(absl::StrCat("revision ", revision, " belongs to app ",
                                                   rev->second.app_name, ", not ", app_name)));
      return;
    }
    inner_.Publish(std::move(record), std::move(done));
    return;
  }
  if (auto pending = pending_.find(revision); pending != pending_.end()) {
    pending->second.publishes.emplace_back(std::move(record), std::move(done));
    return;
  }
  if (!may_look_up) {
    done(NotRegistered(revision));
    return;
  }
  io_loop_.Post([this, alive = alive_, record = std::move(record), app_name, revision,
                 done = std::move(done)]() mutable {
    absl::StatusOr<StoredRevision> stored = store_.Get(revision);
    loop_.Post([this, alive, record = std::move(record), app_name, revision, done = std::move(done),
                stored = std::move(stored)]() mutable {
      if (!*alive) return;
      if (!stored.ok() && !absl::IsNotFound(stored.status())) {
        done(absl::UnavailableError(absl::StrCat("cannot read revision ", revision,
                                                 " from etcd: ", stored.status().message())));
        return;
      }
      if (stored.ok() && !revisions_.contains(revision) &&
          app::ValidateRevision(stored->meta).ok()) {
        AddRevision(revision, app::CanonicalRevision(stored->meta), stored->registered_at_ms, true);
      }
      PublishInstance(std::move(record), app_name, revision, std::move(done), false);
    });
  });
}

void ClusterAppDiscovery::Unpublish(const std::string& data_info_id,
                                    const std::string& registration_id, const OwnerRef& owner,
                                    VersionCallback done) {
  inner_.Unpublish(data_info_id, registration_id, owner, std::move(done));
}

// ---------------------------------------------------------------- change tracking

void ClusterAppDiscovery::OnDatumChanged(const std::string& data_info_id, uint64_t version) {
  if (views_.Tracks(data_info_id)) {
    TouchView(data_info_id, version);  // its own part changed
  } else {
    Emit(data_info_id, version);
  }
  if (std::optional<std::string> app_name = app::AppOfDataInfoId(data_info_id)) {
    for (const std::string& iface : InterfacesOfApp(*app_name)) TouchView(iface, version);
  }
}

void ClusterAppDiscovery::OnDatumsMaybeChanged(
    const std::function<bool(const std::string&)>& affected) {
  auto view_affected = [&](const std::string& id) {
    for (const std::string& part : PartsOf(id)) {
      if (affected(part)) return true;
    }
    return false;
  };
  for (DataChangeListener* listener : listeners_) listener->OnDatumsMaybeChanged(view_affected);
}

void ClusterAppDiscovery::OnApps(const std::string& data_info_id, uint64_t version,
                                 const std::vector<std::string>& apps) {
  auto [it, inserted] = datum_apps_.try_emplace(data_info_id);
  if (!inserted && version < it->second.first) return;  // an older notice, from an old leader
  std::vector<std::string> old = std::move(it->second.second);
  for (const std::string& a : old) {
    if (std::find(apps.begin(), apps.end(), a) != apps.end()) continue;
    auto datums = datums_of_app_.find(a);
    if (datums == datums_of_app_.end()) continue;
    datums->second.erase(data_info_id);
    if (datums->second.empty()) datums_of_app_.erase(datums);
  }
  for (const std::string& a : apps) datums_of_app_[a].insert(data_info_id);
  // Every app whose view has (or had) publishers of this datum changes.
  std::set<std::string> touched(old.begin(), old.end());
  touched.insert(apps.begin(), apps.end());
  if (apps.empty()) {
    datum_apps_.erase(it);
  } else {
    it->second = {version, apps};
  }
  for (const std::string& a : touched) TouchView(AppDatumId(a), version);
}

void ClusterAppDiscovery::TouchView(const std::string& data_info_id, uint64_t version) {
  Emit(data_info_id, views_.Touch(data_info_id, version));
}

void ClusterAppDiscovery::Emit(const std::string& data_info_id, uint64_t version) {
  for (DataChangeListener* listener : listeners_) listener->OnDatumChanged(data_info_id, version);
}

void ClusterAppDiscovery::AddListener(DataChangeListener* listener) {
  listeners_.push_back(listener);
}

void ClusterAppDiscovery::RemoveListener(DataChangeListener* listener) {
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

// ---------------------------------------------------------------- reads

std::vector<std::string> ClusterAppDiscovery::PartsOf(const std::string& data_info_id) const {
  std::vector<std::string> ids{data_info_id};
  if (std::optional<std::string> app_name = app::AppOfDataInfoId(data_info_id)) {
    auto datums = datums_of_app_.find(*app_name);
    if (datums != datums_of_app_.end()) {
      ids.insert(ids.end(), datums->second.begin(), datums->second.end());
    }
    return ids;
  }
  auto iface = interfaces_.find(data_info_id);
  if (iface != interfaces_.end()) {
    for (const auto& [app_name, count] : iface->second.apps) ids.push_back(AppDatumId(app_name));
  }
  return ids;
}

void ClusterAppDiscovery::FetchParts(const std::vector<std::string>& ids,
                                     std::function<void(Parts)> done) {
  struct Gather {
    Parts parts;
    size_t left = 0;
    std::function<void(Parts)> done;
  };
  auto gather = std::make_shared<Gather>();
  gather->parts.resize(ids.size());
  gather->left = ids.size();
  gather->done = std::move(done);
  for (size_t i = 0; i < ids.size(); ++i) {
    inner_.Fetch(ids[i], [gather, i, alive = alive_](std::shared_ptr<const DatumSnapshot> part) {
      if (!*alive) return;
      gather->parts[i] = std::move(part);
      if (--gather->left == 0) gather->done(std::move(gather->parts));
    });
  }
}

void ClusterAppDiscovery::Fetch(const std::string& data_info_id, SnapshotCallback done) {
  DerivedViewTracker::Ticket ticket = views_.Begin(data_info_id);
  std::vector<std::string> ids = PartsOf(data_info_id);
  FetchParts(ids, [this, data_info_id, ids, ticket, done = std::move(done)](Parts parts) {
    done(views_.Complete(data_info_id, ticket, ids, std::move(parts),
                         [&](const Parts& used, uint64_t version) {
                           return Render(data_info_id, ids, used, version);
                         }));
  });
}

std::shared_ptr<const DatumSnapshot> ClusterAppDiscovery::Render(
    const std::string& data_info_id, const std::vector<std::string>& ids, const Parts& parts,
    uint64_t version) const {
  const std::shared_ptr<const DatumSnapshot>& own = parts.front();
  if (parts.size() == 1) {
    if (version == own->version) return own;
    auto copy = std::make_shared<DatumSnapshot>(*own);  // same data, newer version
    copy->version = version;
    return copy;
  }
  app::RevisionLookup lookup = [this](const std::string& id) -> const app::CompactRevision* {
    auto it = revisions_.find(id);
    return it == revisions_.end() ? nullptr : &it->second.content;
  };
  std::optional<std::string> app_name = app::AppOfDataInfoId(data_info_id);
  std::vector<std::string> names;  // the parts' app names (interface view) or ids (app view)
  std::vector<app::NamedPart> named;
  names.reserve(parts.size());
  for (size_t i = 1; i < parts.size(); ++i) {
    names.push_back(app_name.has_value() ? ids[i]
                                         : app::AppOfDataInfoId(ids[i]).value_or(std::string()));
  }
  for (size_t i = 1; i < parts.size(); ++i) named.emplace_back(&names[i - 1], parts[i].get());
  return app_name.has_value() ? app::BuildAppView(*app_name, *own, named, lookup, version)
                              : app::BuildInterfaceView(data_info_id, *own, named, lookup, version);
}

std::vector<DatumSummary> ClusterAppDiscovery::List(const std::string& data_id_prefix) const {
  std::vector<DatumSummary> out = inner_.List(data_id_prefix);
  for (DatumSummary& summary : out) {
    summary.version = views_.VersionOf(summary.data_info_id, summary.version);
  }
  return out;
}

}  // namespace cairn::cluster

// ---------------------------------------------------------------- queries

namespace cairn::cluster {

void ClusterAppDiscovery::QueryRevision(const pb::GetRevisionRequest& request,
                                        Reply<pb::GetRevisionResponse> reply) {
  if (auto s = app::ValidateRevisionId(request.revision()); !s.ok()) {
    reply(s);
    return;
  }
  auto it = revisions_.find(request.revision());
  if (it == revisions_.end()) {
    reply(absl::NotFoundError(absl::StrCat("revision ", request.revision(), " is not known")));
    return;
  }
  pb::GetRevisionResponse response;
  pb::RevisionInfo* info = response.mutable_revision();
  *info->mutable_meta() = it->second.content.ToMeta(it->first, it->second.app_name);
  info->set_registered_at_ms(it->second.registered_at_ms);
  FetchParts({AppDatumId(it->second.app_name)},
             [response = std::move(response), id = request.revision(),
              reply = std::move(reply)](Parts parts) mutable {
               uint32_t instances = 0;
               for (const auto& instance : parts.front()->publishers) {
                 if (app::RevisionOf(*instance) == id) ++instances;
               }
               response.mutable_revision()->set_instances(instances);
               reply(std::move(response));
             });
}

void ClusterAppDiscovery::QueryApps(const pb::ListAppsRequest& request,
                                    Reply<pb::ListAppsResponse> reply) {
  std::vector<std::string> names;
  for (const auto& [app_name, revisions] : app_revisions_) {
    if (absl::StartsWith(app_name, request.app_name_prefix())) names.push_back(app_name);
  }
  std::sort(names.begin(), names.end());
  std::vector<std::string> ids;
  for (const std::string& name : names) ids.push_back(AppDatumId(name));
  FetchParts(ids, [this, names, ids, reply = std::move(reply)](Parts parts) {
    pb::ListAppsResponse response;
    for (size_t i = 0; i < names.size(); ++i) {
      pb::AppSummary* summary = response.add_apps();
      summary->set_app_name(names[i]);
      summary->set_instances(static_cast<uint32_t>(parts[i]->publishers.size()));
      std::set<std::string> in_use;
      for (const auto& instance : parts[i]->publishers) in_use.insert(app::RevisionOf(*instance));
      for (const std::string& revision : in_use) summary->add_revisions(revision);
      summary->set_version(views_.VersionOf(ids[i], parts[i]->version));
    }
    reply(std::move(response));
  });
}

void ClusterAppDiscovery::QueryApp(const pb::DescribeAppRequest& request,
                                   Reply<pb::DescribeAppResponse> reply) {
  if (auto s = app::ValidateAppName(request.app_name()); !s.ok()) {
    reply(s);
    return;
  }
  std::string id = AppDatumId(request.app_name());
  FetchParts({id}, [this, id, name = request.app_name(), reply = std::move(reply)](Parts parts) {
    const DatumSnapshot& own = *parts.front();
    if (own.publishers.empty() && !app_revisions_.contains(name)) {
      reply(absl::NotFoundError(absl::StrCat("app ", name, " is not known")));
      return;
    }
    pb::DescribeAppResponse response;
    response.set_app_name(name);
    response.set_version(views_.VersionOf(id, parts));
    std::map<std::string, pb::AppRevisionInstances> by_revision;
    for (const auto& instance : own.publishers) {
      std::string revision = app::RevisionOf(*instance);
      pb::AppRevisionInstances& group = by_revision[revision];
      group.set_revision(revision);
      *group.add_instances() = app::InfoOf(*instance);
    }
    for (auto& [revision, group] : by_revision) *response.add_revisions() = std::move(group);
    reply(std::move(response));
  });
}

void ClusterAppDiscovery::QueryInterface(const pb::DescribeInterfaceRequest& request,
                                         Reply<pb::DescribeInterfaceResponse> reply) {
  if (auto s = ValidateKey(request.key()); !s.ok()) {
    reply(s);
    return;
  }
  pb::DataInfoKey key = NormalizeKey(request.key());
  std::string id = DataInfoId(key);
  std::vector<std::string> ids = PartsOf(id);
  FetchParts(ids, [this, id, ids, key, reply = std::move(reply)](Parts parts) {
    pb::DescribeInterfaceResponse response;
    *response.mutable_key() = key;
    response.set_version(views_.VersionOf(id, parts));
    response.set_interface_publishers(static_cast<uint32_t>(parts.front()->publishers.size()));
    for (size_t i = 1; i < parts.size(); ++i) {
      std::set<std::string> serving;
      uint32_t instances = 0;
      for (const auto& instance : parts[i]->publishers) {
        std::string revision = app::RevisionOf(*instance);
        auto rev = revisions_.find(revision);
        if (rev == revisions_.end() || !rev->second.content.Serves(id)) continue;
        serving.insert(revision);
        ++instances;
      }
      if (instances == 0) continue;
      pb::InterfaceApp* out = response.add_apps();
      out->set_app_name(app::AppOfDataInfoId(ids[i]).value_or(std::string()));
      for (const std::string& revision : serving) out->add_revisions(revision);
      out->set_instances(instances);
    }
    reply(std::move(response));
  });
}

}  // namespace cairn::cluster
