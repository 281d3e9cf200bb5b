// XdsServer: the registry as an xDS control plane (ADS, state of the world;
// incremental xDS in xds_delta.cc).
//
// Each ADS stream asks, per resource type, for names (xds_resources.h); the
// server keeps one ServiceEntry per name any stream watches, fed by the
// same DataService (and its change listener) the session role uses, so it
// serves interface- and application-level data alike, standalone or in a
// cluster session. Per stream and type it follows the protocol:
//   * version_info counts the responses of that type on the stream; every
//     response has a new nonce;
//   * a request naming an older nonce is stale and ignored;
//   * a request with error_detail is a NACK: logged, counted, remembered;
//     the rejected content is not sent again, only newer content is;
//   * at most one response per type awaits its ACK; changes meanwhile
//     coalesce (memory per stream stays bounded) and go after it;
//   * Listener and Cluster responses hold every subscribed resource that
//     exists; Route and ClusterLoadAssignment responses hold the ones that
//     changed (clients keep the others); a name that does not exist is left
//     out, which is how the protocol says "does not exist";
//   * make before break: a stream's Listener and Route responses wait while
//     its Cluster or ClusterLoadAssignment responses are unacknowledged (at
//     most kMakeBeforeBreakWait), so a client never holds a route to a
//     cluster it has not been sent.
// A datum's resources are encoded once per datum version and shared by every
// stream.
//
// Thread-safety: not thread-safe. Every method runs on the registry loop;
// the gRPC layer posts into it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "cairn/registry/v1/xds_admin.pb.h"
#include "common/clock.h"
#include "common/data_info.h"
#include "common/event_loop.h"
#include "common/identity.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "registry/auth/authorizer.h"
#include "registry/data/data_service.h"
#include "registry/xds/xds_metrics.h"
#include "registry/xds/xds_resources.h"

namespace cairn::xds {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

// A DiscoveryResponse as bytes: `head` holds this stream's own fields
// (version_info, type_url, nonce, control_plane) and `resources` each whole
// `resources` field (tag, length, Any), shared by every stream sent that
// resource version. Protobuf merges concatenated fields, so head followed by
// the resources is the response.
struct EncodedResponse {
  std::string head;
  std::vector<std::shared_ptr<const std::string>> resources;
  std::string Flatten() const;
};

// The server's side of one ADS stream. The gRPC reactor implements it.
// Thread-safety: every method may be called from any thread.
class XdsStream {
 public:
  virtual ~XdsStream() = default;
  // Queues a response. Returns false once the stream is closed.
  virtual bool Send(EncodedResponse&& response) = 0;
  // Ends the stream with this status. Idempotent.
  virtual void Close(const absl::Status& status) = 0;
  // The server finished handling one request: the stream may read the next.
  virtual void RequestHandled() = 0;
};

struct XdsServerOptions {
  // Names one stream may subscribe to, per type.
  size_t max_resources_per_stream = 1000;
  // Services a wildcard Cluster subscription lists at most.
  size_t max_wildcard_resources = 10000;
  ResourceOptions resources;
};

class XdsServer final : public DataChangeListener {
 public:
  // How long a Listener or Route response may wait for the stream's Cluster
  // and ClusterLoadAssignment responses to be acknowledged.
  static constexpr std::chrono::milliseconds kMakeBeforeBreakWait{1000};
  // With a DatumLister (cluster sessions), how often wildcard subscriptions
  // list every datum again to find services created through other sessions.
  static constexpr std::chrono::milliseconds kWildcardRelist{5000};
  // The longest resource name: a dataInfoId (dataId, instance id and group
  // at their limits, and two separators).
  static constexpr size_t kMaxNameBytes = Limits::kMaxDataId + 2 * Limits::kMaxName + 6;

  // REQUIRES: loop, data and metrics outlive the server. Registers itself as
  // data's listener until destroyed.
  XdsServer(EventLoop& loop, DataService& data, XdsMetrics& metrics, XdsServerOptions options);
  ~XdsServer() override;

  // Every datum summary (for wildcard subscriptions). Default: data.List.
  // Cluster sessions set every data server's list.
  using DatumLister = std::function<void(std::function<void(std::vector<DatumSummary>)> done)>;
  void SetDatumLister(DatumLister lister) { lister_ = std::move(lister); }

  // Checks every name a stream would be sent against `authorizer`'s policy
  // (a subscribe of the name's dataId, with the identity the stream's
  // client certificate proved): a name refused is absent for that stream,
  // like one that does not exist, and the refusal is counted and logged by
  // the authorizer. Null (TLS off): every name is served. REQUIRES:
  // authorizer outlives the server.
  void SetAuthorizer(auth::Authorizer* authorizer) { authorizer_ = authorizer; }

  // `delta`: the stream is DeltaAggregatedResources (incremental xDS).
  uint64_t OnConnect(std::string peer, std::shared_ptr<XdsStream> stream, Identity identity = {},
                     bool delta = false);
  // Calls stream->RequestHandled() when done (unless it closed the stream).
  void OnRequest(uint64_t stream_id, DiscoveryRequest request);
  // Incremental xDS (xds_delta.cc): subscriptions change by the names a
  // request adds and removes; a response carries the resources that changed,
  // each with its own version, and the names that no longer exist (or never
  // did) in removed_resources; the client's initial_resource_versions are
  // taken as what it already holds. ACK/NACK, one response per type in
  // flight, make before break and the limits are as in state of the world.
  void OnDeltaRequest(uint64_t stream_id, DeltaDiscoveryRequest request);
  // Idempotent.
  void OnDisconnect(uint64_t stream_id);
  // Ends every stream (UNAVAILABLE): the registry is stopping.
  void CloseAll();

  cairn::registry::v1::ListXdsClientsResponse ListClients(const std::string& node_id_prefix) const;
  size_t stream_count() const { return streams_.size(); }

  // DataChangeListener
  void OnDatumChanged(const std::string& data_info_id, uint64_t version) override;
  void OnDatumsMaybeChanged(const std::function<bool(const std::string&)>& affected) override;

 private:
  // One xDS name some stream watches (or the wildcard list holds).
  struct ServiceEntry {
    std::string name;
    std::string data_info_id;
    std::shared_ptr<const DatumSnapshot> snapshot;  // null until the first fetch answers
    bool http2 = false;                             // SpeaksHttp2(snapshot), kept with it
    bool fetching = false;
    bool refetch = false;     // a change came while fetching
    SteadyTime changed_at{};  // when the newest change was heard of
    // Encoded resources (whole `resources` fields of a response), built on
    // first use: listener and route once, cluster per endpoint protocol,
    // assignment per snapshot version.
    std::array<std::shared_ptr<const std::string>, kResourceTypes> encoded;
    // The same as delta `resources` fields (Resource {name, version, Any}).
    std::array<std::shared_ptr<const std::string>, kResourceTypes> encoded_delta;
    std::array<uint64_t, kResourceTypes> encoded_delta_version{};
    uint64_t encoded_assignment_version = 0;
    uint64_t encoded_cluster_version = 0;
    // Streams watching it, with the types (bit per ResourceType).
    std::unordered_map<uint64_t, uint8_t> watchers;
    bool in_wildcard = false;
    bool exists() const { return snapshot != nullptr && snapshot->version > 0; }
  };

  // One name a stream asked for, with the content version (ContentVersion)
  // of the resource it was last sent and last acknowledged; 0: none.
  // NameState::sent of a delta stream told that the name does not exist.
  static constexpr uint64_t kToldAbsent = UINT64_MAX;

  struct NameState {
    std::string name;
    uint64_t sent = 0;
    uint64_t acked = 0;
  };

  struct TypeState {
    bool requested = false;  // the stream asked for this type
    bool wildcard = false;
    // Sorted by name: what the stream subscribed to, or for a wildcard the
    // services listed to it so far.
    std::vector<NameState> names;
    uint64_t version = 0;  // responses of this type sent
    std::string nonce;     // of the latest response
    bool awaiting_ack = false;
    bool force = false;  // the subscription changed: answer even if nothing else did
    std::string acked_version;
    uint64_t nacks = 0;
    std::string last_nack;
    SteadyTime held_since{};  // a Listener/Route response waiting (make before break)
    // Re-checks the held response when its wait is over.
    std::unique_ptr<EventLoop::Timer> hold_timer;
  };

  struct Stream {
    uint64_t id = 0;
    std::string peer;
    Identity identity;
    std::shared_ptr<XdsStream> stream;
    bool delta = false;
    bool node_seen = false;
    std::string node_id;
    std::string node_cluster;
    std::string zone;
    std::string user_agent;
    int64_t connected_at_ms = 0;
    uint64_t nonces = 0;
    std::array<TypeState, kResourceTypes> types;
    bool dirty = false;  // in dirty_
  };

  void Reject(Stream& stream, const absl::Status& status, const char* reason);
  // Checks what every request is checked for (node on the first, a known
  // type, the names limit); nullopt when it ended the stream.
  std::optional<ResourceType> Admit(Stream& stream, const envoy::config::core::v3::Node* node,
                                    const std::string& type_url, size_t names);
  // False (and the stream ended) when a name is longer than any dataInfoId.
  bool NamesFit(Stream& stream, ResourceType type, const std::vector<std::string>& names);
  // The latest response of `type` was answered: a NACK (error set) or an ACK.
  void Answered(Stream& stream, ResourceType type, const google::rpc::Status* error,
                const std::string& version);
  void MaybeSendDelta(Stream& stream, ResourceType type);
  // Whether a Listener/Route response must wait for the stream's Cluster and
  // assignment ACKs (make before break); arms the hold timer if so.
  bool HoldForMakeBeforeBreak(Stream& stream, TypeState& state, SteadyTime now);
  std::shared_ptr<const std::string> EncodedDelta(ServiceEntry& entry, ResourceType type);
  void Subscribe(Stream& stream, ResourceType type, std::vector<std::string> names, bool wildcard);
  ServiceEntry* Watch(const std::string& name, uint64_t stream_id, ResourceType type);
  void Unwatch(const std::string& name, uint64_t stream_id, ResourceType type);
  void MaybeErase(const std::string& name);
  void Fetch(ServiceEntry& entry);
  void OnFetched(const std::string& name, std::shared_ptr<const DatumSnapshot> snapshot);
  void MarkWatchersDirty(const ServiceEntry& entry);
  void MarkDirty(Stream& stream);
  void ScheduleFlush();
  void Flush();
  void FlushStream(Stream& stream);
  // Sends the type's response if its content or subscription changed;
  // returns whether one is (now or still) awaiting its ACK.
  void MaybeSend(Stream& stream, ResourceType type);
  // A wildcard stream's names: every listed service, keeping their states.
  void SyncWildcard(TypeState& state) const;
  std::shared_ptr<const std::string> Encoded(ServiceEntry& entry, ResourceType type);
  // What identifies the content of the entry's resource of `type` (equal:
  // the client already has it): the datum version for assignments, the
  // endpoints' protocol for clusters, existence alone for the others.
  uint64_t ContentVersion(const ServiceEntry& entry, ResourceType type) const;
  bool Allowed(const Stream& stream, const ServiceEntry& entry) const;
  void RefreshWildcard();
  // The last wildcard stream went: forget the list (and the entries only it held).
  void DropWildcardList();
  void AddToWildcard(const std::string& name);

  EventLoop& loop_;
  DataService& data_;
  XdsMetrics& metrics_;
  XdsServerOptions options_;
  DatumLister lister_;
  auth::Authorizer* authorizer_ = nullptr;

  uint64_t next_stream_id_ = 1;
  std::unordered_map<uint64_t, Stream> streams_;
  std::unordered_map<std::string, ServiceEntry> services_;                    // by xDS name
  std::unordered_map<std::string, std::vector<std::string>> names_by_datum_;  // id -> xDS names
  // Streams with a wildcard Cluster subscription, and the names it lists.
  std::unordered_set<uint64_t> wildcard_streams_;
  std::vector<std::string> wildcard_names_;  // sorted
  bool wildcard_listing_ = false;
  std::unique_ptr<EventLoop::Timer> wildcard_timer_;
  std::vector<uint64_t> dirty_;
  std::vector<uint64_t> desired_;  // MaybeSend's scratch: a content version per name
  bool flush_posted_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cairn::xds
