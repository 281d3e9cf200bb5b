// ClusterAppDiscovery: application-level discovery in cluster mode. It runs
// in each session role, between the SessionServer and RemoteDataService,
// and gives subscribers the same derived views as standalone AppDiscovery.
//
// Standalone's AppDiscovery sits next to the data role and sees every datum
// inline. In cluster mode datums are spread over the data servers' slots, so
// this layer builds the views lazily, from parts fetched through the slot
// leaders:
//   * Revisions live in etcd (the cluster's KvStore, layout of
//     NewKvRevisionStore: kv/revision/<id>). Every session keeps the whole
//     catalog in memory, read and then followed through an etcd watch
//     (OnStoredRevisions, then OnStoredRevisionChanges): revision -> app
//     and interfaces, and interface -> apps with a revision serving it.
//   * Fetch of an interface I that apps A1..An serve gathers I and
//     app:A1..app:An (RemoteDataService caches and deduplicates them) and
//     renders each instance whose revision serves I, as AppDiscovery does.
//     Fetch of app:A adds the interface-level publishers of A, found through
//     the app -> datums index that data servers' change notices carry
//     (cluster.proto DatumVersion.apps).
//   * A view's version is at least the newest version of its parts and of
//     any change notice that touched it, and above the version this session
//     last answered it with (DerivedViewTracker: a fetch that began before a
//     change never answers with the change's version). Data servers'
//     versions are wall-clock microseconds pushed above what the writing
//     session had seen (ApplyRequest.observed_version), so the versions of
//     two sessions' views stay close. Learning or dropping a revision
//     touches its views at the newest version this session has seen.
//   * RegisterRevision reads and writes etcd on `io_loop`, off the registry
//     loop. An instance published on a revision still being written waits for
//     it. One on a revision this session does not know is looked up in etcd
//     before it is refused: another session may have registered it a moment
//     ago and the watch not delivered it yet.
// Revisions no instance uses are deleted from etcd by the data server that
// leads their app's datum (RevisionCollector); this session drops them when
// the watch reports the delete. GetRevision's unreferenced_ms is always 0 in
// cluster mode: no session sees every reference.
//
// Thread-safety: not thread-safe; everything runs on `loop` except the
// RevisionStore calls, which run on `io_loop`.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/event_loop.h"
#include "registry/app/app_queries.h"
#include "registry/app/compact_revision.h"
#include "registry/app/revision_service.h"
#include "registry/app/revision_store.h"
#include "registry/cluster/derived_view_tracker.h"
#include "registry/cluster/remote_data_service.h"

namespace cairn::cluster {

struct ClusterAppOptions {
  // Revisions kept at most (the whole cluster's); more registrations are
  // refused.
  size_t max_revisions = 100000;
  // A client registering a known revision again rewrites it in etcd, at most
  // this often per revision and session: the rewrite tells the revision
  // collector (revision_collector.h) that the revision is about to be used.
  // A quarter of revision_gc_after.
  std::chrono::milliseconds touch_interval{150000};
};

class ClusterAppDiscovery final : public DataService,
                                  public RevisionService,
                                  public AppQueries,
                                  private DataChangeListener {
 public:
  // Registers itself as inner's listener and apps observer.
  // REQUIRES: loop, io_loop, inner and store outlive this object, and io_loop
  // runs no more tasks (it is stopped) before store is destroyed. Constructed
  // before inner.Start().
  ClusterAppDiscovery(EventLoop& loop, EventLoop& io_loop, RemoteDataService& inner,
                      RevisionStore& store, ClusterAppOptions options);
  ~ClusterAppDiscovery() override;

  // Every revision stored in etcd: id -> serialized RevisionInfo (the values
  // of kv/revision/). Adds the new ones and drops those deleted from etcd.
  // O(revisions): for the first read and re-reads of the prefix.
  void OnStoredRevisions(const std::map<std::string, std::string>& stored);
  // What changed in etcd since the last call: revisions written (id ->
  // serialized RevisionInfo) and ids deleted. O(changes).
  void OnStoredRevisionChanges(const std::map<std::string, std::string>& puts,
                               const std::vector<std::string>& deletes);

  // DataService
  void Publish(std::shared_ptr<const PublisherRecord> record, VersionCallback done) override;
  void Unpublish(const std::string& data_info_id, const std::string& registration_id,
                 const OwnerRef& owner, VersionCallback done) override;
  void Fetch(const std::string& data_info_id, SnapshotCallback done) override;
  std::vector<DatumSummary> List(const std::string& data_id_prefix) const override;
  void AddListener(DataChangeListener* listener) override;
  void RemoveListener(DataChangeListener* listener) override;

  // RevisionService: durable in etcd when it answers OK.
  void RegisterRevision(const pb::RevisionMeta& meta,
                        std::function<void(absl::Status)> done) override;

  // AppQueries
  void QueryRevision(const pb::GetRevisionRequest& request,
                     Reply<pb::GetRevisionResponse> reply) override;
  void QueryApps(const pb::ListAppsRequest& request, Reply<pb::ListAppsResponse> reply) override;
  void QueryApp(const pb::DescribeAppRequest& request,
                Reply<pb::DescribeAppResponse> reply) override;
  void QueryInterface(const pb::DescribeInterfaceRequest& request,
                      Reply<pb::DescribeInterfaceResponse> reply) override;

  size_t revision_count() const { return revisions_.size(); }

 private:
  struct Revision {
    std::string app_name;
    app::CompactRevision content;
    int64_t registered_at_ms = 0;
    bool seen_in_store = false;  // only those can be dropped by a later etcd snapshot
    SteadyTime touched{};        // last written to etcd by this session
  };
  // An interface some known revision serves; the key is the interned id the
  // revisions point to.
  struct InterfaceState {
    // app -> how many of its known revisions serve the interface; the entry
    // goes when the last one does.
    std::map<std::string, uint32_t> apps;
  };
  struct PendingRevision {
    pb::RevisionMeta canonical;
    std::vector<std::function<void(absl::Status)>> waiters;
    std::vector<std::pair<std::shared_ptr<const PublisherRecord>, VersionCallback>> publishes;
  };
  using Parts = std::vector<std::shared_ptr<const DatumSnapshot>>;

  // DataChangeListener (RemoteDataService)
  void OnDatumChanged(const std::string& data_info_id, uint64_t version) override;
  // A view is affected when any of its parts is.
  void OnDatumsMaybeChanged(const std::function<bool(const std::string&)>& affected) override;
  // RemoteDataService's apps observer: the apps of a datum's publishers.
  void OnApps(const std::string& data_info_id, uint64_t version,
              const std::vector<std::string>& apps);

  void PublishInstance(std::shared_ptr<const PublisherRecord> record, const std::string& app_name,
                       const std::string& revision, VersionCallback done, bool may_look_up);
  void FinishRegistration(const std::string& id, absl::Status status, StoredRevision stored);
  void AddRevision(const std::string& id, const pb::RevisionMeta& canonical,
                   int64_t registered_at_ms, bool seen_in_store);
  void EraseRevision(const std::string& id);
  // Adds a revision read from etcd (or marks a known one as stored there);
  // false if the value is not a valid RevisionInfo for `id`.
  bool AddStored(const std::string& id, const std::string& value);
  // Rewrites a known revision in etcd (see ClusterAppOptions::touch_interval).
  void RewriteInStore(const std::string& id, Revision& rev);

  // The datums a view is built from: the datum itself first.
  std::vector<std::string> PartsOf(const std::string& data_info_id) const;
  // Fetches every id (in any order, some inline) and calls done with the
  // snapshots in the order of ids. done is not called once this is destroyed.
  void FetchParts(const std::vector<std::string>& ids, std::function<void(Parts)> done);
  std::shared_ptr<const DatumSnapshot> Render(const std::string& data_info_id,
                                              const std::vector<std::string>& ids,
                                              const Parts& parts, uint64_t version) const;
  std::vector<std::string> InterfacesOfApp(const std::string& app_name) const;
  // A view that depends on a change: a new generation for the tracker, and
  // the listeners are told.
  void TouchView(const std::string& data_info_id, uint64_t version);
  void Emit(const std::string& data_info_id, uint64_t version);

  EventLoop& loop_;
  EventLoop& io_loop_;
  RemoteDataService& inner_;
  RevisionStore& store_;
  ClusterAppOptions options_;
  std::vector<DataChangeListener*> listeners_;

  std::unordered_map<std::string, Revision> revisions_;
  // Node-based: revisions hold pointers to its keys.
  std::unordered_map<std::string, InterfaceState> interfaces_;
  std::unordered_map<std::string, std::set<std::string>> app_revisions_;  // app -> revision ids
  std::unordered_map<std::string, PendingRevision> pending_;              // being written to etcd
  // From the data servers' notices: datum -> apps of its publishers (with the
  // notice's version), and app -> datums.
  std::unordered_map<std::string, std::pair<uint64_t, std::vector<std::string>>> datum_apps_;
  std::unordered_map<std::string, std::set<std::string>> datums_of_app_;
  // Versions and last answers of the derived views.
  DerivedViewTracker views_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cairn::cluster
