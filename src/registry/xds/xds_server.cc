#include "registry/xds/xds_server.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/data_info.h"
#include "google/protobuf/any.pb.h"

namespace cairn::xds {
namespace {

constexpr uint8_t Bit(ResourceType type) {
  return static_cast<uint8_t>(1u << static_cast<int>(type));
}

// Responses go out in this order within one flush: clusters and their
// endpoints before the listeners and routes that point at them.
constexpr ResourceType kSendOrder[] = {ResourceType::kCluster, ResourceType::kEndpoint,
                                       ResourceType::kListener, ResourceType::kRoute};
constexpr size_t kMaxNackMessage = 512;

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

XdsServer::XdsServer(EventLoop& loop, DataService& data, XdsMetrics& metrics,
                     XdsServerOptions options)
    : loop_(loop), data_(data), metrics_(metrics), options_(std::move(options)) {
  data_.AddListener(this);
}

XdsServer::~XdsServer() {
  *alive_ = false;
  data_.RemoveListener(this);
  metrics_.streams.Decrement(static_cast<double>(streams_.size()));
  for (const auto& [id, stream] : streams_) {
    for (int t = 0; t < kResourceTypes; ++t) {
      if (stream.types[t].wildcard) continue;
      metrics_.resources[t]->Decrement(static_cast<double>(stream.types[t].names.size()));
    }
  }
}

uint64_t XdsServer::OnConnect(std::string peer, std::shared_ptr<XdsStream> stream,
                              Identity identity, bool delta) {
  uint64_t id = next_stream_id_++;
  Stream& s = streams_[id];
  s.id = id;
  s.peer = std::move(peer);
  s.identity = std::move(identity);
  s.delta = delta;
  s.stream = std::move(stream);
  s.connected_at_ms = UnixMillis();
  metrics_.streams.Increment();
  return id;
}

void XdsServer::Reject(Stream& stream, const absl::Status& status, const char* reason) {
  metrics_.rejected_streams.Add({{"reason", reason}}).Increment();
  spdlog::info("xds: ending stream {} from {} (node \"{}\"): {}", stream.id, stream.peer,
               stream.node_id, std::string(status.message()));
  uint64_t id = stream.id;
  stream.stream->Close(status);
  OnDisconnect(id);
}

std::optional<ResourceType> XdsServer::Admit(Stream& s, const envoy::config::core::v3::Node* node,
                                             const std::string& type_url, size_t names) {
  if (!s.node_seen) {
    if (node == nullptr || node->id().empty()) {
      Reject(s,
             absl::InvalidArgumentError(
                 "the first DiscoveryRequest of a stream must carry node.id (the xDS bootstrap's "
                 "node id)"),
             "no_node");
      return std::nullopt;
    }
    s.node_seen = true;
    s.node_id = node->id();
    s.node_cluster = node->cluster();
    s.zone = node->locality().zone();
    s.user_agent = absl::StrCat(node->user_agent_name(), " ", node->user_agent_version());
  }
  auto type = TypeFromUrl(type_url);
  if (!type) {
    Reject(s,
           absl::InvalidArgumentError(absl::StrCat(
               "unknown type_url \"", type_url.substr(0, 200),
               "\": this server serves envoy.config.listener.v3.Listener, "
               "envoy.config.route.v3.RouteConfiguration, envoy.config.cluster.v3.Cluster and "
               "envoy.config.endpoint.v3.ClusterLoadAssignment")),
           "unknown_type");
    return std::nullopt;
  }
  if (names > options_.max_resources_per_stream) {
    Reject(s,
           absl::InvalidArgumentError(absl::StrCat(
               names, " resource names for ", std::string(ShortName(*type)), "; at most ",
               options_.max_resources_per_stream, " per stream and type")),
           "too_many_names");
    return std::nullopt;
  }
  return type;
}

void XdsServer::OnRequest(uint64_t stream_id, DiscoveryRequest request) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream& s = it->second;
  auto type = Admit(s, request.has_node() ? &request.node() : nullptr, request.type_url(),
                    static_cast<size_t>(request.resource_names_size()));
  if (!type) return;
  const int t = static_cast<int>(*type);
  TypeState& ts = s.types[t];
  // A nonce for a type never answered on this stream (a client resuming
  // after a reconnect) acknowledges nothing; it is not stale either.
  if (!request.response_nonce().empty() && ts.version > 0) {
    if (request.response_nonce() != ts.nonce) {
      // An answer to an older response: the newer one is on its way.
      metrics_.stale_requests.Increment();
      s.stream->RequestHandled();
      return;
    }
    Answered(s, *type, request.has_error_detail() ? &request.error_detail() : nullptr,
             request.version_info());
  }
  std::vector<std::string> names(request.resource_names().begin(), request.resource_names().end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  // "*" is the wildcard, like naming nothing (clusters only).
  bool star = !names.empty() && names.front() == "*";
  if (star) names.erase(names.begin());
  if (!NamesFit(s, *type, names)) return;
  bool wildcard = (names.empty() || star) && *type == ResourceType::kCluster;
  if (*type == ResourceType::kCluster && star) names.clear();
  auto same_names = [&] {
    if (ts.wildcard) return names.empty();
    if (names.size() != ts.names.size()) return false;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] != ts.names[i].name) return false;
    }
    return true;
  };
  if (!ts.requested || wildcard != ts.wildcard || !same_names()) {
    Subscribe(s, *type, std::move(names), wildcard);
  }
  MarkDirty(s);
  s.stream->RequestHandled();
}

bool XdsServer::NamesFit(Stream& s, ResourceType type, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    if (name.size() > kMaxNameBytes) {
      Reject(s,
             absl::InvalidArgumentError(absl::StrCat(
                 "a ", std::string(ShortName(type)), " resource name of ", name.size(),
                 " bytes; names are dataIds or dataInfoIds, at most ", kMaxNameBytes, " bytes")),
             "bad_name");
      return false;
    }
  }
  return true;
}

void XdsServer::Answered(Stream& s, ResourceType type, const google::rpc::Status* error,
                         const std::string& version) {
  const int t = static_cast<int>(type);
  TypeState& ts = s.types[t];
  if (!ts.awaiting_ack) return;
  ts.awaiting_ack = false;
  if (error != nullptr) {
    ++ts.nacks;
    ts.last_nack = error->message().substr(0, kMaxNackMessage);
    metrics_.nacks[t]->Increment();
    spdlog::warn("xds: node \"{}\" ({}) rejected {} version {}: {}", s.node_id, s.peer,
                 ShortName(type), ts.version, ts.last_nack);
    return;
  }
  ts.acked_version = version.empty() ? std::to_string(ts.version) : version;
  for (NameState& name : ts.names) name.acked = name.sent == kToldAbsent ? 0 : name.sent;
  metrics_.acks[t]->Increment();
}

void XdsServer::Subscribe(Stream& stream, ResourceType type, std::vector<std::string> names,
                          bool wildcard) {
  const int t = static_cast<int>(type);
  TypeState& ts = stream.types[t];
  // What the stream watches by name: its subscription (none for a wildcard,
  // whose services the wildcard list keeps).
  std::vector<NameState> old;
  if (!ts.wildcard) old = std::move(ts.names);
  ts.names.clear();
  if (wildcard) names.clear();
  std::vector<NameState> next;
  next.reserve(names.size());
  size_t i = 0;
  for (auto& name : names) {
    while (i < old.size() && old[i].name < name) {
      Unwatch(old[i].name, stream.id, type);
      ++i;
    }
    if (i < old.size() && old[i].name == name) {
      next.push_back(std::move(old[i++]));  // keeps what it was sent
    } else {
      Watch(name, stream.id, type);
      next.push_back(NameState{std::move(name)});
    }
  }
  for (; i < old.size(); ++i) Unwatch(old[i].name, stream.id, type);
  metrics_.resources[t]->Increment(static_cast<double>(next.size()));
  metrics_.resources[t]->Decrement(static_cast<double>(old.size()));
  ts.names = std::move(next);
  if (wildcard != ts.wildcard) {
    ts.wildcard = wildcard;
    if (wildcard) {
      wildcard_streams_.insert(stream.id);
      if (wildcard_streams_.size() == 1) RefreshWildcard();
    } else {
      wildcard_streams_.erase(stream.id);
      if (wildcard_streams_.empty()) DropWildcardList();
    }
  }
  ts.requested = true;
  ts.force = true;
}

void XdsServer::DropWildcardList() {
  std::vector<std::string> listed = std::move(wildcard_names_);
  wildcard_names_.clear();
  wildcard_timer_.reset();
  for (const auto& name : listed) {
    auto it = services_.find(name);
    if (it != services_.end()) it->second.in_wildcard = false;
    MaybeErase(name);
  }
}

XdsServer::ServiceEntry* XdsServer::Watch(const std::string& name, uint64_t stream_id,
                                          ResourceType type) {
  auto data_info_id = DataInfoIdOfName(name);
  if (!data_info_id) return nullptr;  // never exists: simply absent from responses
  auto [it, added] = services_.try_emplace(name);
  ServiceEntry& entry = it->second;
  entry.watchers[stream_id] |= Bit(type);
  if (added) {
    entry.name = name;
    entry.data_info_id = *data_info_id;
    names_by_datum_[*data_info_id].push_back(name);
    Fetch(entry);
  }
  return &entry;
}

void XdsServer::Unwatch(const std::string& name, uint64_t stream_id, ResourceType type) {
  auto it = services_.find(name);
  if (it == services_.end()) return;
  auto w = it->second.watchers.find(stream_id);
  if (w == it->second.watchers.end()) return;
  w->second &= static_cast<uint8_t>(~Bit(type));
  if (w->second == 0) it->second.watchers.erase(w);
  MaybeErase(name);
}

void XdsServer::MaybeErase(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end() || !it->second.watchers.empty() || it->second.in_wildcard) return;
  auto by = names_by_datum_.find(it->second.data_info_id);
  if (by != names_by_datum_.end()) {
    auto& list = by->second;
    list.erase(std::remove(list.begin(), list.end(), name), list.end());
    if (list.empty()) names_by_datum_.erase(by);
  }
  services_.erase(it);
}

void XdsServer::Fetch(ServiceEntry& entry) {
  if (entry.fetching) {
    entry.refetch = true;
    return;
  }
  entry.fetching = true;
  data_.Fetch(entry.data_info_id, [this, alive = alive_, name = entry.name](
                                      std::shared_ptr<const DatumSnapshot> snapshot) {
    if (*alive) OnFetched(name, std::move(snapshot));
  });
}

void XdsServer::OnFetched(const std::string& name, std::shared_ptr<const DatumSnapshot> snapshot) {
  auto it = services_.find(name);
  if (it == services_.end()) return;  // nobody watches it any more
  ServiceEntry& entry = it->second;
  entry.fetching = false;
  if (snapshot == nullptr) snapshot = std::make_shared<const DatumSnapshot>();
  // Never go back: a cluster session that cannot reach a data server may
  // answer from an older cache, or with version 0 (nothing known), and that
  // must not withdraw a service clients use (the push engine likewise never
  // pushes below what a subscriber acknowledged).
  if (entry.snapshot != nullptr && snapshot->version < entry.snapshot->version) {
    snapshot = entry.snapshot;
  }
  if (entry.snapshot == nullptr || entry.snapshot->version != snapshot->version) {
    entry.snapshot = std::move(snapshot);
    // Once per version, not per stream and flush.
    entry.http2 = SpeaksHttp2(*entry.snapshot, options_.resources);
    MarkWatchersDirty(entry);
  }
  if (entry.refetch) {
    entry.refetch = false;
    Fetch(entry);
  }
}

void XdsServer::MarkWatchersDirty(const ServiceEntry& entry) {
  for (const auto& [stream_id, types] : entry.watchers) {
    auto it = streams_.find(stream_id);
    if (it != streams_.end()) MarkDirty(it->second);
  }
  if (entry.in_wildcard) {
    for (uint64_t stream_id : wildcard_streams_) {
      auto it = streams_.find(stream_id);
      if (it != streams_.end()) MarkDirty(it->second);
    }
  }
}

void XdsServer::OnDatumChanged(const std::string& data_info_id, uint64_t version) {
  // A wildcard lists every service, also one some stream already watches by
  // name (its entry exists before it joins the list).
  if (!wildcard_streams_.empty()) AddToWildcard(NameOfDataInfoId(data_info_id));
  auto it = names_by_datum_.find(data_info_id);
  if (it == names_by_datum_.end()) return;
  std::vector<std::string> names = it->second;  // Fetch may answer inline
  for (const auto& name : names) {
    auto entry = services_.find(name);
    if (entry == services_.end()) continue;
    if (entry->second.snapshot != nullptr && entry->second.snapshot->version == version) continue;
    entry->second.changed_at = SteadyNow();
    Fetch(entry->second);
  }
}

void XdsServer::OnDatumsMaybeChanged(const std::function<bool(const std::string&)>& affected) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : services_) {
    if (affected(entry.data_info_id)) names.push_back(name);
  }
  for (const auto& name : names) {
    auto it = services_.find(name);
    if (it != services_.end()) Fetch(it->second);
  }
}

bool XdsServer::Allowed(const Stream& stream, const ServiceEntry& entry) const {
  if (authorizer_ == nullptr) return true;
  pb::DataInfoKey key;
  if (!ParseDataInfoId(entry.data_info_id, &key)) return false;
  return authorizer_->Check(stream.identity, auth::Action{auth::Op::kSubscribe, key.data_id(), {}})
      .ok();
}

void XdsServer::RefreshWildcard() {
  if (wildcard_listing_) return;
  auto add_all = [this](const std::vector<DatumSummary>& datums) {
    for (const auto& datum : datums) {
      if (datum.publishers > 0) AddToWildcard(NameOfDataInfoId(datum.data_info_id));
    }
    for (uint64_t stream_id : wildcard_streams_) {
      auto it = streams_.find(stream_id);
      if (it != streams_.end()) MarkDirty(it->second);
    }
  };
  if (!lister_) {
    add_all(data_.List(""));
    return;
  }
  wildcard_listing_ = true;
  lister_([this, alive = alive_, add_all](std::vector<DatumSummary> datums) {
    if (!*alive) return;
    wildcard_listing_ = false;
    if (wildcard_streams_.empty()) return;
    add_all(datums);
    // A cluster session hears only of datums it holds: new services on
    // other sessions are found by listing again.
    wildcard_timer_ = loop_.RunAfter(kWildcardRelist, [this] {
      if (!wildcard_streams_.empty()) RefreshWildcard();
    });
  });
}

void XdsServer::AddToWildcard(const std::string& name) {
  auto pos = std::lower_bound(wildcard_names_.begin(), wildcard_names_.end(), name);
  if (pos != wildcard_names_.end() && *pos == name) return;
  if (wildcard_names_.size() >= options_.max_wildcard_resources) return;
  auto data_info_id = DataInfoIdOfName(name);
  if (!data_info_id) return;
  wildcard_names_.insert(pos, name);
  auto [it, added] = services_.try_emplace(name);
  ServiceEntry& entry = it->second;
  entry.in_wildcard = true;
  if (added) {
    entry.name = name;
    entry.data_info_id = *data_info_id;
    names_by_datum_[*data_info_id].push_back(name);
    entry.changed_at = SteadyNow();
    Fetch(entry);
  } else if (entry.snapshot != nullptr) {
    MarkWatchersDirty(entry);  // fetched already (a stream watches it by name)
  }
}

void XdsServer::MarkDirty(Stream& stream) {
  if (!stream.dirty) {
    stream.dirty = true;
    dirty_.push_back(stream.id);
  }
  ScheduleFlush();
}

void XdsServer::ScheduleFlush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  loop_.Post([this, alive = alive_] {
    if (*alive) Flush();
  });
}

void XdsServer::Flush() {
  flush_posted_ = false;
  std::vector<uint64_t> dirty;
  dirty.swap(dirty_);
  for (uint64_t id : dirty) {
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;
    it->second.dirty = false;
    FlushStream(it->second);
  }
}

void XdsServer::FlushStream(Stream& stream) {
  for (ResourceType type : kSendOrder) {
    if (stream.delta) {
      MaybeSendDelta(stream, type);
    } else {
      MaybeSend(stream, type);
    }
  }
}

void XdsServer::SyncWildcard(TypeState& state) const {
  if (state.names.size() == wildcard_names_.size()) return;  // the list only grows
  std::vector<NameState> merged;
  merged.reserve(wildcard_names_.size());
  size_t i = 0;
  for (const auto& name : wildcard_names_) {
    while (i < state.names.size() && state.names[i].name < name) ++i;
    if (i < state.names.size() && state.names[i].name == name) {
      merged.push_back(std::move(state.names[i++]));
    } else {
      merged.push_back(NameState{name});
    }
  }
  state.names = std::move(merged);
}

uint64_t XdsServer::ContentVersion(const ServiceEntry& entry, ResourceType type) const {
  switch (type) {
    case ResourceType::kEndpoint:
      return entry.snapshot->version;
    case ResourceType::kCluster:
      // Changes only when the endpoints' protocol does (HTTP/2 or not).
      return entry.http2 ? 2 : 1;
    default:
      return 1;
  }
}

namespace {

// The bytes of one `resources` field of a DiscoveryResponse: its tag and
// length, then the Any (type_url, value) holding `message`.
std::shared_ptr<const std::string> LengthDelimitedField(int number, const std::string& body) {
  std::string field;
  field.reserve(body.size() + 6);
  field.push_back(static_cast<char>((number << 3) | 2));
  for (size_t n = body.size();; n >>= 7) {
    if (n < 0x80) {
      field.push_back(static_cast<char>(n));
      break;
    }
    field.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  field += body;
  return std::make_shared<const std::string>(std::move(field));
}

std::shared_ptr<const std::string> ResourceField(ResourceType type, const std::string& message) {
  google::protobuf::Any any;
  any.set_type_url(std::string(TypeUrl(type)));
  any.set_value(message);
  return LengthDelimitedField(DiscoveryResponse::kResourcesFieldNumber, any.SerializeAsString());
}

}  // namespace

std::shared_ptr<const std::string> XdsServer::EncodedDelta(ServiceEntry& entry, ResourceType type) {
  const int t = static_cast<int>(type);
  std::shared_ptr<const std::string> any_field = Encoded(entry, type);
  uint64_t version = ContentVersion(entry, type);
  auto& slot = entry.encoded_delta[t];
  if (slot == nullptr || entry.encoded_delta_version[t] != version) {
    // A Resource {version, resource: the Any, name}. Its `resource` is field 2
    // holding an Any, exactly like a state-of-the-world response's
    // `resources` field: the SotW field's bytes are that field as they are.
    static_assert(static_cast<int>(envoy::service::discovery::v3::Resource::kResourceFieldNumber) ==
                  static_cast<int>(DiscoveryResponse::kResourcesFieldNumber));
    envoy::service::discovery::v3::Resource resource;
    resource.set_version(std::to_string(version));
    resource.set_name(entry.name);
    slot = LengthDelimitedField(DeltaDiscoveryResponse::kResourcesFieldNumber,
                                resource.SerializeAsString() + *any_field);
    entry.encoded_delta_version[t] = version;
  }
  return slot;
}

std::string EncodedResponse::Flatten() const {
  std::string out = head;
  for (const auto& resource : resources) out += *resource;
  return out;
}

std::shared_ptr<const std::string> XdsServer::Encoded(ServiceEntry& entry, ResourceType type) {
  auto& slot = entry.encoded[static_cast<int>(type)];
  if (type == ResourceType::kCluster) {
    uint64_t version = ContentVersion(entry, type);
    if (slot == nullptr || entry.encoded_cluster_version != version) {
      slot = ResourceField(type, BuildCluster(entry.name, options_.resources, version == 2));
      entry.encoded_cluster_version = version;
    }
    return slot;
  }
  if (type == ResourceType::kEndpoint) {
    if (slot == nullptr || entry.encoded_assignment_version != entry.snapshot->version) {
      slot = ResourceField(
          type, BuildClusterLoadAssignment(entry.name, *entry.snapshot, options_.resources));
      entry.encoded_assignment_version = entry.snapshot->version;
    }
    return slot;
  }
  if (slot == nullptr) {
    switch (type) {
      case ResourceType::kListener:
        slot = ResourceField(type, BuildListener(entry.name));
        break;
      case ResourceType::kRoute:
        slot = ResourceField(type, BuildRouteConfiguration(entry.name, options_.resources));
        break;
      default:
        break;
    }
  }
  return slot;
}

bool XdsServer::HoldForMakeBeforeBreak(Stream& stream, TypeState& ts, SteadyTime now) {
  if (&ts != &stream.types[static_cast<int>(ResourceType::kListener)] &&
      &ts != &stream.types[static_cast<int>(ResourceType::kRoute)]) {
    return false;
  }
  const bool pending = stream.types[static_cast<int>(ResourceType::kCluster)].awaiting_ack ||
                       stream.types[static_cast<int>(ResourceType::kEndpoint)].awaiting_ack;
  if (pending) {
    if (ts.held_since == SteadyTime{}) ts.held_since = now;
    auto waited = now - ts.held_since;
    if (waited < kMakeBeforeBreakWait) {
      // The ACK marks the stream dirty; this timer does if it never comes.
      ts.hold_timer = loop_.RunAfter(
          std::chrono::duration_cast<std::chrono::milliseconds>(kMakeBeforeBreakWait - waited) +
              std::chrono::milliseconds(1),
          [this, id = stream.id] {
            auto it = streams_.find(id);
            if (it != streams_.end()) MarkDirty(it->second);
          });
      return true;
    }
  }
  ts.held_since = {};
  ts.hold_timer.reset();
  return false;
}

void XdsServer::MaybeSend(Stream& stream, ResourceType type) {
  const int t = static_cast<int>(type);
  TypeState& ts = stream.types[t];
  if (!ts.requested || ts.awaiting_ack) return;
  if (ts.wildcard) SyncWildcard(ts);
  // Route and endpoint responses may carry only what changed: clients keep
  // the resources a response leaves out. Listener and cluster responses
  // must carry every one (a missing one is deleted).
  const bool partial = type == ResourceType::kRoute || type == ResourceType::kEndpoint;
  bool changed = ts.force;
  desired_.assign(ts.names.size(), 0);
  for (size_t i = 0; i < ts.names.size(); ++i) {
    auto it = services_.find(ts.names[i].name);
    if (it == services_.end()) continue;  // not a valid name: never exists
    ServiceEntry& entry = it->second;
    if (entry.snapshot == nullptr) return;  // its first fetch will mark us dirty
    if (entry.exists() && Allowed(stream, entry)) desired_[i] = ContentVersion(entry, type);
    // A resource that went away cannot be said in a partial response: the
    // client keeps it until the next one.
    if (desired_[i] != ts.names[i].sent && (!partial || desired_[i] != 0)) changed = true;
  }
  if (!changed) {
    ts.held_since = {};
    return;
  }
  const SteadyTime now = SteadyNow();
  if (HoldForMakeBeforeBreak(stream, ts, now)) return;
  DiscoveryResponse head;
  head.set_version_info(std::to_string(++ts.version));
  head.set_type_url(std::string(TypeUrl(type)));
  head.set_nonce(std::to_string(++stream.nonces));
  head.mutable_control_plane()->set_identifier("cairn");
  EncodedResponse response;
  response.head = head.SerializeAsString();
  SteadyTime oldest_change{};
  for (size_t i = 0; i < ts.names.size(); ++i) {
    NameState& name = ts.names[i];
    const uint64_t version = desired_[i];
    const bool fresh = version != name.sent;
    if (version != 0 && (!partial || fresh)) {
      ServiceEntry& entry = services_.find(name.name)->second;
      response.resources.push_back(Encoded(entry, type));
      if (fresh && entry.changed_at != SteadyTime{} &&
          (oldest_change == SteadyTime{} || entry.changed_at < oldest_change)) {
        oldest_change = entry.changed_at;
      }
    }
    name.sent = version;
  }
  ts.nonce = head.nonce();
  ts.awaiting_ack = true;
  ts.force = false;
  metrics_.responses[t]->Increment();
  if (oldest_change != SteadyTime{}) {
    metrics_.push_latency.Observe(std::chrono::duration<double>(now - oldest_change).count());
  }
  stream.stream->Send(std::move(response));
}

void XdsServer::OnDisconnect(uint64_t stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream& s = it->second;
  for (int t = 0; t < kResourceTypes; ++t) {
    TypeState& ts = s.types[t];
    if (ts.wildcard) continue;  // its names are the wildcard list's
    metrics_.resources[t]->Decrement(static_cast<double>(ts.names.size()));
    for (const auto& name : ts.names) Unwatch(name.name, stream_id, static_cast<ResourceType>(t));
  }
  streams_.erase(it);
  metrics_.streams.Decrement();
  if (wildcard_streams_.erase(stream_id) != 0 && wildcard_streams_.empty()) DropWildcardList();
}

void XdsServer::CloseAll() {
  for (auto& [id, stream] : streams_) {
    stream.stream->Close(absl::UnavailableError("the registry is stopping"));
  }
}

cairn::registry::v1::ListXdsClientsResponse XdsServer::ListClients(
    const std::string& node_id_prefix) const {
  cairn::registry::v1::ListXdsClientsResponse out;
  std::vector<const Stream*> sorted;
  for (const auto& [id, stream] : streams_) {
    if (stream.node_id.compare(0, node_id_prefix.size(), node_id_prefix) == 0) {
      sorted.push_back(&stream);
    }
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const Stream* a, const Stream* b) { return a->id < b->id; });
  for (const Stream* s : sorted) {
    auto* client = out.add_clients();
    client->set_stream_id(s->id);
    client->set_node_id(s->node_id);
    client->set_node_cluster(s->node_cluster);
    client->set_zone(s->zone);
    client->set_user_agent(s->user_agent);
    client->set_peer(s->peer);
    client->set_connected_at_ms(s->connected_at_ms);
    client->set_delta(s->delta);
    for (ResourceType type : kSendOrder) {
      const TypeState& ts = s->types[static_cast<int>(type)];
      if (!ts.requested) continue;
      auto* state = client->add_types();
      state->set_type_url(std::string(TypeUrl(type)));
      state->set_wildcard(ts.wildcard);
      if (!ts.wildcard) {
        for (const auto& name : ts.names) state->add_resource_names(name.name);
      }
      if (ts.version > 0) state->set_sent_version(std::to_string(ts.version));
      state->set_sent_nonce(ts.nonce);
      state->set_awaiting_ack(ts.awaiting_ack);
      state->set_acked_version(ts.acked_version);
      for (const auto& name : ts.names) {
        if (name.acked == 0 || name.acked == kToldAbsent) continue;
        auto* acked = state->add_acked();
        acked->set_name(name.name);
        acked->set_version(name.acked);
      }
      state->set_nacks(ts.nacks);
      state->set_last_nack(ts.last_nack);
    }
  }
  return out;
}

}  // namespace cairn::xds
