// AppDiscovery: application-level service discovery on top of the data role.
//
// It sits between the session role and the data role (LocalDataServer) and
// implements DataService itself, so the session server and the PushEngine
// need no special case for app-level data:
//   * Publish of an app instance (key `app:<APP>`) is checked: its revision
//     must be registered (FAILED_PRECONDITION otherwise) and belong to APP;
//   * it watches every datum change of the inner data role and keeps the
//     revision reference counts and the interface -> apps index current;
//   * Fetch of an interface's dataInfoId returns a DERIVED snapshot: the
//     interface-level publishers plus, for every app instance whose revision
//     serves the interface, one entry rendered as the URLs an interface-level
//     client expects (app::RenderInterfaceUrls), deduplicated by endpoint;
//   * Fetch of `app:<APP>` returns the app's instances plus, while a fleet
//     migrates, the interface-level publishers of APP (attribute
//     cairn.interface names the interface), again deduplicated;
//   * a derived datum's version is max(its own datum version, the newest
//     version of any change that affected it); both come from the data role's
//     VersionClock, so versions only grow and every content change gets a new
//     one. Listeners (the PushEngine) are told about derived changes too.
// Revisions are stored through a RevisionStore and garbage-collected when no
// instance has referenced them for `revision_gc_after` (a periodic sweep).
// Memory: each revision is held once, as an app::CompactRevision; interface
// ids are interned in one table that is also the interface -> apps index, and
// derived snapshots exist only for datums someone fetched, until they change.
//
// Thread-safety: not thread-safe; everything runs on the registry loop.
// REQUIRES: the inner DataService answers Fetch inline (LocalDataServer
// does); cluster mode will run this next to the data role for that reason.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "common/clock.h"
#include "common/event_loop.h"
#include "registry/app/app_queries.h"
#include "registry/app/compact_revision.h"
#include "registry/app/derived_views.h"
#include "registry/app/revision_service.h"
#include "registry/app/revision_store.h"
#include "registry/data/data_service.h"

namespace cairn {

struct AppDiscoveryOptions {
  // A revision no instance has referenced for this long is deleted.
  std::chrono::milliseconds revision_gc_after{600000};
  // Revisions kept at most; more registrations are refused.
  size_t max_revisions = 100000;
};

class AppDiscovery final : public DataService,
                           public RevisionService,
                           public AppQueries,
                           private DataChangeListener {
 public:
  // Loads the stored revisions. store may be null (memory only, tests).
  // REQUIRES: loop, inner and store outlive this object.
  static absl::StatusOr<std::unique_ptr<AppDiscovery>> Create(EventLoop& loop, DataService& inner,
                                                              RevisionStore* store,
                                                              AppDiscoveryOptions options);
  ~AppDiscovery() override;

  // Starts the periodic GC sweep. REQUIRES: on the loop.
  void Start();

  // DataService
  void Publish(std::shared_ptr<const PublisherRecord> record, VersionCallback done) override;
  void Unpublish(const std::string& data_info_id, const std::string& registration_id,
                 const OwnerRef& owner, VersionCallback done) override;
  void Fetch(const std::string& data_info_id, SnapshotCallback done) override;
  std::vector<DatumSummary> List(const std::string& data_id_prefix) const override;
  void AddListener(DataChangeListener* listener) override;
  void RemoveListener(DataChangeListener* listener) override;

  // RevisionService
  void RegisterRevision(const pb::RevisionMeta& meta,
                        std::function<void(absl::Status)> done) override;

  // Queries (unary RPCs and admin API).
  absl::StatusOr<pb::GetRevisionResponse> GetRevision(const pb::GetRevisionRequest& request) const;
  pb::ListAppsResponse ListApps(const pb::ListAppsRequest& request) const;
  absl::StatusOr<pb::DescribeAppResponse> DescribeApp(const pb::DescribeAppRequest& request) const;
  absl::StatusOr<pb::DescribeInterfaceResponse> DescribeInterface(
      const pb::DescribeInterfaceRequest& request) const;

  // Deletes revisions unreferenced for revision_gc_after as of `now`;
  // returns how many. The sweep calls it; public for tests.
  size_t CollectGarbage(SteadyTime now);

  // AppQueries: the queries above, answered inline.
  void QueryRevision(const pb::GetRevisionRequest& request,
                     Reply<pb::GetRevisionResponse> reply) override {
    reply(GetRevision(request));
  }
  void QueryApps(const pb::ListAppsRequest& request, Reply<pb::ListAppsResponse> reply) override {
    reply(ListApps(request));
  }
  void QueryApp(const pb::DescribeAppRequest& request,
                Reply<pb::DescribeAppResponse> reply) override {
    reply(DescribeApp(request));
  }
  void QueryInterface(const pb::DescribeInterfaceRequest& request,
                      Reply<pb::DescribeInterfaceResponse> reply) override {
    reply(DescribeInterface(request));
  }
  size_t revision_count() const { return revisions_.size(); }

 private:
  // An interface some stored revision serves (or that app changes have
  // bumped). Keyed by its dataInfoId in interfaces_, whose keys are the one
  // copy of the id that revisions and the index point to.
  struct InterfaceState {
    uint32_t revisions = 0;  // stored revisions serving it
    // Apps with an instance on a revision serving it, by name order: pointers
    // to keys of apps_ (an app leaves every list before it is erased). Most
    // interfaces are served by one app: no allocation then.
    absl::InlinedVector<const std::string*, 1> apps;
    // Newest version of an app change that affected its derived datum; kept
    // while the entry lives, so the derived version never goes back.
    uint64_t bump = 0;
  };
  using InterfaceEntry = std::pair<const std::string, InterfaceState>;
  struct Revision {
    std::string app_name;
    app::CompactRevision content;  // interfaces and params, held once
    int64_t registered_at_ms = 0;
    size_t refs = 0;  // instances currently on this revision
    SteadyTime unreferenced_since{};
  };
  struct App {
    // The revisions of the app's instances with how many instances are on
    // each, by revision id (including revisions this server does not know).
    std::vector<std::pair<std::string, uint32_t>> revisions;
    uint32_t instances = 0;
    // Interfaces served by the known revisions in use, by pointer.
    std::vector<InterfaceEntry*> interfaces;
  };

  AppDiscovery(EventLoop& loop, DataService& inner, RevisionStore* store,
               AppDiscoveryOptions options);

  // DataChangeListener (the inner data role)
  void OnDatumChanged(const std::string& data_info_id, uint64_t version) override;

  std::shared_ptr<const DatumSnapshot> FetchInner(const std::string& data_info_id) const;
  // Recomputes an app's instances; returns the interfaces whose data changed.
  std::vector<std::string> UpdateApp(const std::string& app, const DatumSnapshot& snapshot);
  // Recomputes which apps publish interface-level under a dataInfoId;
  // returns the apps whose datum changed.
  std::set<std::string> UpdateLegacy(const std::string& data_info_id,
                                     const DatumSnapshot& snapshot);
  void Emit(const std::string& data_info_id, uint64_t version);
  uint64_t DerivedVersion(const std::string& data_info_id, uint64_t own_version) const;
  app::RevisionLookup Lookup() const;
  std::shared_ptr<const DatumSnapshot> BuildInterface(const std::string& id,
                                                      const DatumSnapshot& own,
                                                      uint64_t version) const;
  std::shared_ptr<const DatumSnapshot> BuildApp(const std::string& app, const DatumSnapshot& own,
                                                uint64_t version) const;
  void AddRef(const std::string& revision, uint32_t count);
  void DropRef(const std::string& revision, uint32_t count, SteadyTime now);
  // Stores a revision's content (canonical form) under `id`.
  Revision& AddRevision(const std::string& id, const pb::RevisionMeta& canonical,
                        int64_t registered_at_ms);
  void EraseRevision(std::unordered_map<std::string, Revision>::iterator it);
  // The apps serving an interface (null if none).
  const InterfaceState* FindInterface(const std::string& data_info_id) const;
  void Sweep();

  EventLoop& loop_;
  DataService& inner_;
  RevisionStore* store_;
  AppDiscoveryOptions options_;
  std::vector<DataChangeListener*> listeners_;

  std::unordered_map<std::string, Revision> revisions_;
  std::map<std::string, App> apps_;
  // Interfaces served by stored revisions (the interned ids) and, for those
  // an app in use serves, the apps: the interface -> apps index.
  std::unordered_map<std::string, InterfaceState> interfaces_;
  // Interface-level publishers by app: which dataInfoIds have publishers
  // with that app name, and the reverse.
  std::unordered_map<std::string, std::set<std::string>> legacy_apps_;    // datum -> apps
  std::unordered_map<std::string, std::set<std::string>> legacy_by_app_;  // app -> datums
  // Newest version of a legacy change that affected an app's datum.
  std::unordered_map<std::string, uint64_t> bumps_;
  // Derived snapshots, valid while their version is current; an entry is
  // dropped as soon as its datum changes (the next Fetch rebuilds it).
  mutable std::unordered_map<std::string, std::shared_ptr<const DatumSnapshot>> cache_;
  std::unique_ptr<EventLoop::Timer> sweep_timer_;
};

}  // namespace cairn
