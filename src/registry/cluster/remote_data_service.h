// RemoteDataService: the data role as a session server of cluster mode sees
// it. Implements DataService over the DataNode gRPC service, routing each
// datum to the leader of its slot in the current slot table.
//
//   * Writes queue per slot and go out in order, batched per data server
//     (one Apply in flight per slot). A write refused as mis-routed
//     (ABORTED) or not yet possible (UNAVAILABLE), or lost with its data
//     server, is retried with the newest table until `write_timeout`.
//   * This session's publishers are held here per slot: the authoritative
//     copy. When a slot gets a new leader the session re-sends its whole part
//     of the slot (a SlotSync), and every `anti_entropy_interval` it compares
//     digests with each leader and re-sends any slot that differs.
//   * Reads: every data server streams change notices (Watch); a notice
//     newer than the cached datum tells the listeners (the push engine),
//     whose Fetch then goes to the leader once per datum version, however
//     many subscribers wait for it. The cache keeps the last snapshot of
//     each datum fetched, and drops one nobody read for about
//     `datum_cache_idle` (it is fetched again when asked). When a watch
//     (re)starts, the listeners hear that every datum of the slots that
//     server leads may have changed: notices sent while it was down are lost.
//
// Thread-safety: not thread-safe, like every DataService: every method runs
// on `loop`, except Stop(), which must be called off the loop before it stops.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <prometheus/gauge.h>

#include "cairn/cluster/v1/cluster.grpc.pb.h"
#include "common/clock.h"
#include "common/event_loop.h"
#include "registry/cluster/async_calls.h"
#include "registry/cluster/cluster_view.h"
#include "registry/data/data_service.h"
#include "registry/data/datum_id_pool.h"

namespace cairn::cluster {

struct RemoteDataOptions {
  std::string session_id;  // this session's member id
  uint32_t slot_count = 256;
  std::chrono::milliseconds retry_interval{100};
  std::chrono::milliseconds write_timeout{30000};
  std::chrono::milliseconds anti_entropy_interval{10000};
  size_t max_ops_per_request = 2000;
  // A cached datum not read for between one and two halves of this is
  // dropped.
  std::chrono::milliseconds datum_cache_idle{600000};
  // Set to the number of cached datums, if given. Must outlive the service.
  prometheus::Gauge* cached_datums = nullptr;
  // Of the channels to data servers (peer_channel.h); null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> peer_credentials;
};

class RemoteDataService final : public DataService {
 public:
  RemoteDataService(EventLoop& loop, RemoteDataOptions options);
  ~RemoteDataService() override;

  // On the loop: starts the anti-entropy timer.
  void Start();
  // On the loop: the cluster changed (from ClusterView).
  void OnView(const ClusterSnapshot& snapshot);
  // Off the loop, before it stops: cancels every call; nothing is called
  // back afterwards. Pending writes are dropped unanswered (the session is
  // going away with its streams).
  void Stop();

  // DataService
  void Publish(std::shared_ptr<const PublisherRecord> record, VersionCallback done) override;
  void Unpublish(const std::string& data_info_id, const std::string& registration_id,
                 const OwnerRef& owner, VersionCallback done) override;
  void Fetch(const std::string& data_info_id, SnapshotCallback done) override;
  std::vector<DatumSummary> List(const std::string& data_id_prefix) const override;
  void AddListener(DataChangeListener* listener) override;
  void RemoveListener(DataChangeListener* listener) override;

  size_t queued_writes() const;

  // Told, for every change notice of a datum other than an app datum, the
  // apps of its publishers (cluster.proto DatumVersion.apps), before the
  // listeners hear of the change; also for the index each data server sends
  // when a watch starts. On the loop. REQUIRES: set before Start().
  using AppsObserver = std::function<void(const std::string& data_info_id, uint64_t version,
                                          const std::vector<std::string>& apps)>;
  void SetAppsObserver(AppsObserver observer) { apps_observer_ = std::move(observer); }
  // Every datum of the cluster (with a publisher or a version), from each
  // data server's Summaries, keeping a datum only from the leader of its slot
  // in this session's table; sorted by dataInfoId. A data server that does
  // not answer within the RPC timeout is left out (logged). On the loop.
  void ListCluster(const std::string& data_id_prefix,
                   std::function<void(std::vector<DatumSummary>)> done);
  // The newest datum version seen from any data server.
  uint64_t max_seen_version() const { return max_seen_version_; }

 private:
  struct PendingWrite {
    enum class Kind { kPublish, kUnpublish, kSync } kind = Kind::kPublish;
    std::shared_ptr<const PublisherRecord> record;    // kPublish
    std::shared_ptr<const PublisherRecord> previous;  // kPublish: what it replaced in held
    v1::UnpublishWire unpublish;                      // kUnpublish
    VersionCallback done;                             // may be null (kSync)
    SteadyTime queued_at{};
  };
  struct Slot {
    uint64_t epoch = 0;
    std::string leader;
    std::deque<PendingWrite> queue;
    size_t in_flight = 0;  // writes at the queue's front sent and unanswered
    // This session's publishers in the slot, by registration id.
    std::unordered_map<std::string, std::shared_ptr<const PublisherRecord>> held;
    uint64_t max_seen_version = 0;
  };
  struct Peer;
  class WatchReactor;

  void Enqueue(uint32_t slot, PendingWrite write);
  void EnqueueSync(uint32_t slot);
  void ScheduleFlush();
  void FlushWrites();
  void OnApplied(const std::string& leader, const std::vector<std::pair<uint32_t, size_t>>& sent,
                 const grpc::Status& status, const v1::ApplyResponse& response);
  void ScheduleRetry();
  void WriteFailed(uint32_t slot, PendingWrite& write, const absl::Status& status);
  void AnswerFromCache(const std::string& id);
  void WatchStarted(const std::string& address);
  std::string AddressOf(const std::string& data_id) const;
  void FlushFetches();
  void OnFetched(const std::vector<std::string>& ids, const grpc::Status& status,
                 v1::FetchResponse& response);
  void OnNotice(const v1::ChangeNotice& notice);
  void CompareDigests();
  void EnsureWatches();
  void WatchEnded(const std::string& address);
  v1::DataNode::Stub* StubFor(const std::string& leader_id);
  void Answer(const std::string& id, const std::shared_ptr<const DatumSnapshot>& snapshot);
  struct Cached;
  // Drops the cached datums `drop` names (it may also update the others),
  // with their notices, and updates the gauge.
  void DropCached(const std::function<bool(const std::string&, Cached&)>& drop);
  // Drops the cached datums not read since the previous sweep.
  void SweepCache();

  EventLoop& loop_;
  const RemoteDataOptions options_;
  AsyncCalls calls_;
  std::vector<Slot> slots_;
  ClusterSnapshot view_;
  std::map<std::string, std::unique_ptr<Peer>> peers_;  // by address
  std::map<std::string, std::string> known_addresses_;  // data id -> last address seen
  std::set<std::string> watched_before_;                // data ids
  std::vector<DataChangeListener*> listeners_;
  AppsObserver apps_observer_;
  uint64_t max_seen_version_ = 0;
  DatumIdPool ids_;
  struct Cached {  // a copy of a datum
    std::shared_ptr<const DatumSnapshot> snapshot;
    bool read = true;  // since the last sweep
  };
  std::unordered_map<std::string, Cached> cache_;
  std::unordered_map<std::string, uint64_t> notified_;  // only for cached or awaited ids
  std::unordered_map<std::string, std::vector<SnapshotCallback>> waiters_;
  std::unordered_map<std::string, int> fetch_attempts_;
  std::vector<std::string> to_fetch_;
  bool flush_posted_ = false;
  std::unique_ptr<EventLoop::Timer> retry_timer_;
  std::unique_ptr<EventLoop::Timer> fetch_retry_timer_;
  std::unique_ptr<EventLoop::Timer> anti_entropy_timer_;
  std::unique_ptr<EventLoop::Timer> cache_sweep_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cairn::cluster
