// Incremental (delta) xDS on XdsServer: the request side and the response
// builder. The rest (entries, fetches, flushes, ACK bookkeeping, make before
// break) is shared with state of the world in xds_server.cc.
#include <algorithm>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "registry/xds/xds_server.h"

namespace cairn::xds {

void XdsServer::OnDeltaRequest(uint64_t stream_id, DeltaDiscoveryRequest request) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream& s = it->second;
  auto type = Admit(s, request.has_node() ? &request.node() : nullptr, request.type_url(),
                    static_cast<size_t>(request.resource_names_subscribe_size()));
  if (!type) return;
  TypeState& ts = s.types[static_cast<int>(*type)];
  if (!request.response_nonce().empty() && ts.version > 0) {
    if (request.response_nonce() == ts.nonce) {
      Answered(s, *type, request.has_error_detail() ? &request.error_detail() : nullptr, "");
    } else {
      // An answer to an older response. Unlike state of the world, its
      // subscription changes still count: they are not repeated.
      metrics_.stale_requests.Increment();
    }
  }
  // The subscription after this request. "*" is the wildcard (clusters
  // only: a wildcard Listener lists nothing, as in state of the world); the
  // first request of a type naming nothing is the legacy wildcard.
  const bool first = !ts.requested;
  bool wildcard = ts.wildcard;
  std::vector<std::string> names;
  if (!ts.wildcard) {
    for (const auto& name : ts.names) names.push_back(name.name);
  }
  for (const auto& name : request.resource_names_subscribe()) {
    if (name == "*") {
      wildcard = true;
    } else {
      names.push_back(name);
    }
  }
  if (first && request.resource_names_subscribe_size() == 0) wildcard = true;
  for (const auto& name : request.resource_names_unsubscribe()) {
    if (name == "*") {
      wildcard = false;
    } else {
      names.erase(std::remove(names.begin(), names.end(), name), names.end());
    }
  }
  if (*type != ResourceType::kCluster) wildcard = false;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (!NamesFit(s, *type, names)) return;
  if (names.size() > options_.max_resources_per_stream) {
    Reject(s,
           absl::InvalidArgumentError(absl::StrCat(
               names.size(), " resource names subscribed for ", std::string(ShortName(*type)),
               "; at most ", options_.max_resources_per_stream, " per stream and type")),
           "too_many_names");
    return;
  }
  bool same = !first && wildcard == ts.wildcard && (wildcard || names.size() == ts.names.size());
  for (size_t i = 0; same && !wildcard && i < names.size(); ++i)
    same = names[i] == ts.names[i].name;
  if (!same) Subscribe(s, *type, std::move(names), wildcard);
  // What a reconnecting client already holds is not sent again while its
  // version is current (versions are the registry's, the same on every
  // session server).
  if (first && request.initial_resource_versions_size() > 0) {
    if (ts.wildcard) SyncWildcard(ts);
    for (NameState& name : ts.names) {
      auto held = request.initial_resource_versions().find(name.name);
      if (held == request.initial_resource_versions().end()) continue;
      uint64_t version = 0;
      const std::string& text = held->second;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), version);
      if (ec == std::errc() && ptr == text.data() + text.size() && version != kToldAbsent) {
        name.sent = name.acked = version;
      }
    }
  }
  MarkDirty(s);
  s.stream->RequestHandled();
}

void XdsServer::MaybeSendDelta(Stream& stream, ResourceType type) {
  const int t = static_cast<int>(type);
  TypeState& ts = stream.types[t];
  if (!ts.requested || ts.awaiting_ack) return;
  if (ts.wildcard) SyncWildcard(ts);
  bool changed = false;
  desired_.assign(ts.names.size(), 0);
  for (size_t i = 0; i < ts.names.size(); ++i) {
    auto it = services_.find(ts.names[i].name);
    if (it != services_.end()) {
      ServiceEntry& entry = it->second;
      if (entry.snapshot == nullptr) return;  // its first fetch will mark us dirty
      if (entry.exists() && Allowed(stream, entry)) desired_[i] = ContentVersion(entry, type);
    }
    const uint64_t sent = ts.names[i].sent;
    // A new or changed resource, or one the client may hold that is gone
    // (or a new name that never existed: say so at once).
    if (desired_[i] != 0 ? desired_[i] != sent : sent != kToldAbsent) changed = true;
  }
  ts.force = false;
  if (!changed) {
    ts.held_since = {};
    return;
  }
  const SteadyTime now = SteadyNow();
  if (HoldForMakeBeforeBreak(stream, ts, now)) return;
  DeltaDiscoveryResponse head;
  head.set_system_version_info(std::to_string(++ts.version));
  head.set_type_url(std::string(TypeUrl(type)));
  head.set_nonce(std::to_string(++stream.nonces));
  head.mutable_control_plane()->set_identifier("cairn");
  EncodedResponse response;
  SteadyTime oldest_change{};
  for (size_t i = 0; i < ts.names.size(); ++i) {
    NameState& name = ts.names[i];
    const uint64_t version = desired_[i];
    if (version == 0) {
      if (name.sent != kToldAbsent) head.add_removed_resources(name.name);
      name.sent = kToldAbsent;
      continue;
    }
    if (version == name.sent) continue;
    ServiceEntry& entry = services_.find(name.name)->second;
    response.resources.push_back(EncodedDelta(entry, type));
    if (entry.changed_at != SteadyTime{} &&
        (oldest_change == SteadyTime{} || entry.changed_at < oldest_change)) {
      oldest_change = entry.changed_at;
    }
    name.sent = version;
  }
  response.head = head.SerializeAsString();
  ts.nonce = head.nonce();
  ts.awaiting_ack = true;
  metrics_.responses[t]->Increment();
  if (oldest_change != SteadyTime{}) {
    metrics_.push_latency.Observe(std::chrono::duration<double>(now - oldest_change).count());
  }
  stream.stream->Send(std::move(response));
}

}  // namespace cairn::xds
