// The query side of SessionServer: what the unary RPCs and the admin API show.
#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "registry/app/app_records.h"
#include "registry/session/session_server.h"

namespace cairn {

pb::Owner SessionServer::OwnerProto(uint64_t connection_id) const {
  pb::Owner owner;
  owner.set_connection_id(connection_id);
  auto it = connections_.find(connection_id);
  if (it != connections_.end()) {
    owner.set_client_id(it->second.client_id);
    owner.set_address(it->second.peer);
  }
  return owner;
}

pb::SubscriberInfo SessionServer::SubscriberInfoOf(const PushEngine::SubscriberView& view) const {
  pb::SubscriberInfo info;
  info.set_registration_id(view.spec.registration_id);
  info.set_scope(view.spec.scope);
  info.set_zone(view.spec.zone);
  *info.mutable_owner() = OwnerProto(view.spec.connection_id);
  info.set_acked_version(view.acked_version);
  info.set_pushed_version(view.pushed_version);
  *info.mutable_key() = view.spec.key;
  return info;
}

pb::ListDataInfosResponse SessionServer::ListDataInfos(
    const pb::ListDataInfosRequest& request) const {
  return ListFrom(request, data_.List(request.data_id_prefix()));
}

void SessionServer::ListDataInfosAsync(const pb::ListDataInfosRequest& request, ListReply reply) {
  if (!lister_) {
    reply(ListDataInfos(request));
    return;
  }
  lister_(request.data_id_prefix(), [this, alive = alive_, request,
                                     reply = std::move(reply)](std::vector<DatumSummary> datums) {
    if (*alive) reply(ListFrom(request, datums));
  });
}

pb::ListDataInfosResponse SessionServer::ListFrom(const pb::ListDataInfosRequest& request,
                                                  const std::vector<DatumSummary>& datums) const {
  pb::ListDataInfosResponse response;
  std::set<std::string> seen;
  for (const DatumSummary& summary : datums) {
    if (summary.publishers == 0 && push_.SubscriberCountOf(summary.data_info_id) == 0) continue;
    pb::DataInfoSummary* out = response.add_data_infos();
    *out->mutable_key() = summary.key;
    out->set_version(summary.version);
    out->set_publishers(summary.publishers);
    out->set_subscribers(static_cast<uint32_t>(push_.SubscriberCountOf(summary.data_info_id)));
    out->set_slot(summary.slot);
    seen.insert(summary.data_info_id);
  }
  // dataInfoIds that have subscribers but were never published.
  std::set<std::string> subscribed_only;
  for (const auto& [reg_id, conn_id] : subscriber_owner_) {
    auto conn = connections_.find(conn_id);
    if (conn == connections_.end()) continue;
    auto sub = conn->second.subscribers.find(reg_id);
    if (sub == conn->second.subscribers.end()) continue;
    auto view = push_.View(sub->second);
    if (!view || !absl::StartsWith(view->spec.key.data_id(), request.data_id_prefix())) continue;
    std::string id = DataInfoId(view->spec.key);
    if (seen.count(id) == 0) subscribed_only.insert(id);
  }
  for (const std::string& id : subscribed_only) {
    pb::DataInfoSummary* out = response.add_data_infos();
    ParseDataInfoId(id, out->mutable_key());
    out->set_subscribers(static_cast<uint32_t>(push_.SubscriberCountOf(id)));
  }
  std::sort(response.mutable_data_infos()->begin(), response.mutable_data_infos()->end(),
            [](const pb::DataInfoSummary& a, const pb::DataInfoSummary& b) {
              return DataInfoId(a.key()) < DataInfoId(b.key());
            });
  return response;
}

void SessionServer::DescribeAsync(const pb::DescribeRequest& request, DescribeReply reply) {
  if (auto s = ValidateKey(request.key()); !s.ok()) {
    reply(s);
    return;
  }
  pb::DataInfoKey key = NormalizeKey(request.key());
  data_.Fetch(DataInfoId(key), [this, alive = alive_, key, reply = std::move(reply)](
                                   std::shared_ptr<const DatumSnapshot> snapshot) {
    if (*alive) reply(DescribeFrom(key, *snapshot));
  });
}

pb::DescribeResponse SessionServer::DescribeFrom(const pb::DataInfoKey& key,
                                                 const DatumSnapshot& snapshot) const {
  pb::DescribeResponse response;
  std::string id = DataInfoId(key);
  *response.mutable_key() = key;
  response.set_version(snapshot.version);
  response.set_slot(snapshot.slot);
  for (const auto& record : snapshot.publishers) {
    *response.add_publishers() = app::InfoOf(*record);
  }
  for (const auto& view : push_.SubscribersOf(id)) {
    *response.add_subscribers() = SubscriberInfoOf(view);
  }
  return response;
}

pb::QueryByClientResponse SessionServer::QueryByClient(
    const pb::QueryByClientRequest& request) const {
  pb::QueryByClientResponse response;
  const std::string& wanted = request.address();
  std::vector<const Connection*> matches;
  for (const auto& [id, conn] : connections_) {
    // Peers look like "ipv4:127.0.0.1:5555" or "ipv6:[::1]:5555". Match the
    // whole "host:port", or the host alone.
    std::string_view peer = conn.peer;
    if (auto colon = peer.find(':'); colon != std::string_view::npos && colon < 5) {
      peer.remove_prefix(colon + 1);
    }
    std::string_view host = peer.substr(0, peer.rfind(':'));
    if (wanted.empty() || peer == wanted || host == wanted || conn.client_id == wanted) {
      matches.push_back(&conn);
    }
  }
  std::sort(matches.begin(), matches.end(),
            [](const Connection* a, const Connection* b) { return a->id < b->id; });
  for (const Connection* conn : matches) {
    pb::ClientInfo* info = response.add_clients();
    *info->mutable_owner() = OwnerProto(conn->id);
    for (const PublisherEntry* e = conn->publishers; e != nullptr; e = e->next) {
      *info->add_publishers() = app::InfoOf(*e->record);
    }
    for (const auto& [reg_id, sub_id] : conn->subscribers) {
      if (auto view = push_.View(sub_id)) *info->add_subscribers() = SubscriberInfoOf(*view);
    }
  }
  return response;
}

}  // namespace cairn
