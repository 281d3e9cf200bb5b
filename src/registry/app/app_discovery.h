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

#include "common/clock.h"
#include "common/event_loop.h"
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

class AppDiscovery final : public DataService, public RevisionService, private DataChangeListener {
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
  size_t revision_count() const { return revisions_.size(); }

 private:
  struct Revision {
    pb::RevisionMeta meta;                                             // canonical
    std::map<std::string, std::map<std::string, std::string>> params;  // interface id -> params
    int64_t registered_at_ms = 0;
    size_t refs = 0;  // instances currently on this revision
    SteadyTime unreferenced_since{};
  };
  struct App {
    std::map<std::string, std::string> instances;  // registration id -> revision
    std::set<std::string> interfaces;              // served by revisions in use
  };

  AppDiscovery(EventLoop& loop, DataService& inner, RevisionStore* store,
               AppDiscoveryOptions options);

  // DataChangeListener (the inner data role)
  void OnDatumChanged(const std::string& data_info_id, uint64_t version) override;

  std::shared_ptr<const DatumSnapshot> FetchInner(const std::string& data_info_id) const;
  // Recomputes an app's instances; returns the interfaces whose data changed.
  std::set<std::string> UpdateApp(const std::string& app, const DatumSnapshot& snapshot);
  // Recomputes which apps publish interface-level under a dataInfoId;
  // returns the apps whose datum changed.
  std::set<std::string> UpdateLegacy(const std::string& data_info_id,
                                     const DatumSnapshot& snapshot);
  void Emit(const std::string& data_info_id, uint64_t version);
  uint64_t DerivedVersion(const std::string& data_info_id, uint64_t own_version) const;
  std::shared_ptr<const DatumSnapshot> BuildInterface(const std::string& id,
                                                      const DatumSnapshot& own,
                                                      uint64_t version) const;
  std::shared_ptr<const DatumSnapshot> BuildApp(const std::string& app, const DatumSnapshot& own,
                                                uint64_t version) const;
  void AddRef(const std::string& revision);
  void DropRef(const std::string& revision, SteadyTime now);
  void Sweep();

  EventLoop& loop_;
  DataService& inner_;
  RevisionStore* store_;
  AppDiscoveryOptions options_;
  std::vector<DataChangeListener*> listeners_;

  std::unordered_map<std::string, Revision> revisions_;
  std::map<std::string, App> apps_;
  std::unordered_map<std::string, std::set<std::string>> interface_apps_;  // iface -> apps
  // Interface-level publishers by app: which dataInfoIds have publishers
  // with that app name, and the reverse.
  std::unordered_map<std::string, std::set<std::string>> legacy_apps_;    // datum -> apps
  std::unordered_map<std::string, std::set<std::string>> legacy_by_app_;  // app -> datums
  // Newest version of a change that affected a derived datum.
  std::unordered_map<std::string, uint64_t> bumps_;
  // Derived snapshots, valid while their version is current.
  mutable std::unordered_map<std::string, std::shared_ptr<const DatumSnapshot>> cache_;
  std::unique_ptr<EventLoop::Timer> sweep_timer_;
};

}  // namespace cairn
