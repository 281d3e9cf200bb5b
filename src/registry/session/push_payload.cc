#include "registry/session/push_payload.h"

#include <map>
#include <string_view>

namespace cairn {
namespace {

// The per-subscriber fields must all come before the shared ones for the
// concatenation to be the message's normal encoding.
static_assert(pb::Push::kRegistrationIdFieldNumber < pb::Push::kVersionFieldNumber);
static_assert(pb::Push::kPushIdFieldNumber < pb::Push::kVersionFieldNumber);
static_assert(pb::Push::kKeyFieldNumber < pb::Push::kVersionFieldNumber);
static_assert(pb::Push::kVersionFieldNumber < pb::Push::kEmptyFieldNumber);
static_assert(pb::Push::kEmptyFieldNumber < pb::Push::kZonesFieldNumber);

// ServerMessage.push: field number 2, wire type 2 (length-delimited).
constexpr uint8_t kServerMessagePushTag = (pb::ServerMessage::kPushFieldNumber << 3) | 2;
static_assert(pb::ServerMessage::kPushFieldNumber < 16, "the tag must fit one byte");

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

}  // namespace

void FillPushDatum(const DatumSnapshot& snapshot, pb::Scope scope, const std::string& zone,
                   pb::Push* push) {
  push->set_version(snapshot.version);
  std::map<std::string_view, pb::ZoneData*> zones;
  bool zone_only = scope == pb::SCOPE_ZONE;
  for (const auto& record : snapshot.publishers) {
    if (zone_only && record->zone != zone) continue;
    auto [it, inserted] = zones.emplace(record->zone, nullptr);
    if (inserted) it->second = new pb::ZoneData();
    pb::PublisherData* out = it->second->add_publishers();
    out->set_registration_id(record->registration_id);
    out->mutable_data()->Add(record->data.begin(), record->data.end());
    out->set_app_name(record->app_name);
    out->mutable_attributes()->insert(record->attributes.begin(), record->attributes.end());
    out->set_version(record->version);
  }
  for (auto& [zone_name, data] : zones) {
    data->set_zone(std::string(zone_name));
    push->mutable_zones()->AddAllocated(data);
  }
  push->set_empty(zones.empty());
}

EncodedPush EncodePush(const std::string& registration_id, uint64_t push_id,
                       const pb::DataInfoKey& key, std::shared_ptr<const std::string> body) {
  pb::Push fields;
  fields.set_registration_id(registration_id);
  fields.set_push_id(push_id);
  *fields.mutable_key() = key;
  std::string own = fields.SerializeAsString();
  EncodedPush out;
  out.head.reserve(own.size() + 11);
  out.head.push_back(static_cast<char>(kServerMessagePushTag));
  AppendVarint(own.size() + body->size(), &out.head);
  out.head += own;
  out.body = std::move(body);
  return out;
}

std::shared_ptr<const std::string> PushPayloadCache::Body(const DatumSnapshot& snapshot,
                                                          pb::Scope scope,
                                                          const std::string& zone) {
  Entry& entry = entries_[snapshot.data_info_id];
  if (entry.version != snapshot.version) {
    entry.version = snapshot.version;
    entry.views.clear();
  }
  bool zone_only = scope == pb::SCOPE_ZONE;
  for (const View& view : entry.views) {
    if (view.zone_only == zone_only && (!zone_only || view.zone == zone)) return view.body;
  }
  pb::Push datum;
  FillPushDatum(snapshot, scope, zone, &datum);
  auto body = std::make_shared<const std::string>(datum.SerializeAsString());
  ++builds_;
  entry.views.push_back(View{zone_only, zone_only ? zone : std::string(), body});
  return body;
}

}  // namespace cairn
