#include "registry/session/push_payload.h"

#include <algorithm>
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
static_assert(pb::Push::kZonesFieldNumber < pb::Push::kBaseVersionFieldNumber);
static_assert(pb::Push::kBaseVersionFieldNumber < pb::Push::kRemovedFieldNumber);

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

// Publishers grouped by zone, zones in name order (as a push lists them).
class ZoneGrouper {
 public:
  void Add(const PublisherRecord& record) {
    auto [it, inserted] = zones_.emplace(record.zone, nullptr);
    if (inserted) it->second = new pb::ZoneData();
    pb::PublisherData* out = it->second->add_publishers();
    out->set_registration_id(record.registration_id);
    out->mutable_data()->Add(record.data.begin(), record.data.end());
    out->set_app_name(record.app_name);
    out->mutable_attributes()->insert(record.attributes.begin(), record.attributes.end());
    out->set_version(record.version);
  }
  // Moves the zones into `push`; false when there were none.
  bool MoveTo(pb::Push* push) {
    for (auto& [zone_name, data] : zones_) {
      data->set_zone(std::string(zone_name));
      push->mutable_zones()->AddAllocated(data);
    }
    bool any = !zones_.empty();
    zones_.clear();
    return any;
  }

 private:
  std::map<std::string_view, pb::ZoneData*> zones_;
};

bool ByRegistration(const std::shared_ptr<const PublisherRecord>& a,
                    const std::shared_ptr<const PublisherRecord>& b) {
  return a->registration_id < b->registration_id;
}

}  // namespace

void FillPushDatum(const DatumSnapshot& snapshot, pb::Scope scope, const std::string& zone,
                   pb::Push* push) {
  push->set_version(snapshot.version);
  ZoneGrouper zones;
  bool zone_only = scope == pb::SCOPE_ZONE;
  for (const auto& record : snapshot.publishers) {
    if (zone_only && record->zone != zone) continue;
    zones.Add(*record);
  }
  push->set_empty(!zones.MoveTo(push));
}

void FillPushDelta(const DatumSnapshot& base, const DatumSnapshot& now, pb::Scope scope,
                   const std::string& zone, pb::Push* push) {
  push->set_version(now.version);
  push->set_base_version(base.version);
  bool zone_only = scope == pb::SCOPE_ZONE;
  auto visible = [&](const PublisherRecord& r) { return !zone_only || r.zone == zone; };
  ZoneGrouper changed;
  bool any_visible = false;
  // A merge walk over both lists (ordered by registration id).
  auto b = base.publishers.begin();
  auto n = now.publishers.begin();
  while (b != base.publishers.end() || n != now.publishers.end()) {
    if (n == now.publishers.end() ||
        (b != base.publishers.end() && (*b)->registration_id < (*n)->registration_id)) {
      if (visible(**b)) push->add_removed((*b)->registration_id);
      ++b;
      continue;
    }
    bool now_visible = visible(**n);
    any_visible |= now_visible;
    if (b == base.publishers.end() || (*n)->registration_id < (*b)->registration_id) {
      if (now_visible) changed.Add(**n);
      ++n;
      continue;
    }
    // The same registration id in both.
    bool was_visible = visible(**b);
    if (was_visible && !now_visible) {
      push->add_removed((*b)->registration_id);
    } else if (now_visible && (!was_visible || (*b != *n && !(*b)->SameContent(**n)))) {
      changed.Add(**n);
    }
    ++b;
    ++n;
  }
  changed.MoveTo(push);
  push->set_empty(!any_visible);
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

const PushPayloadCache::View* PushPayloadCache::FindView(const std::vector<View>& views,
                                                         bool zone_only, const std::string& zone) {
  for (const View& view : views) {
    if (view.zone_only == zone_only && (!zone_only || view.zone == zone)) return &view;
  }
  return nullptr;
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
  if (const View* view = FindView(entry.views, zone_only, zone)) return view->body;
  pb::Push datum;
  FillPushDatum(snapshot, scope, zone, &datum);
  auto body = std::make_shared<const std::string>(datum.SerializeAsString());
  ++builds_;
  entry.views.push_back(View{zone_only, zone_only ? zone : std::string(), body});
  return body;
}

void PushPayloadCache::Observe(const std::shared_ptr<const DatumSnapshot>& snapshot) {
  Entry& entry = entries_[snapshot->data_info_id];
  if (entry.newest != nullptr && snapshot->version <= entry.newest->version) return;
  entry.previous = std::move(entry.newest);
  entry.newest = snapshot;
  entry.delta_views.clear();
}

std::shared_ptr<const std::string> PushPayloadCache::DeltaBody(const DatumSnapshot& snapshot,
                                                               uint64_t base_version,
                                                               pb::Scope scope,
                                                               const std::string& zone) {
  auto it = entries_.find(snapshot.data_info_id);
  if (it == entries_.end()) return nullptr;
  Entry& entry = it->second;
  if (entry.newest == nullptr || entry.previous == nullptr ||
      entry.newest->version != snapshot.version || entry.previous->version != base_version) {
    return nullptr;
  }
  bool zone_only = scope == pb::SCOPE_ZONE;
  if (const View* view = FindView(entry.delta_views, zone_only, zone)) return view->body;
  std::shared_ptr<const std::string> body;
  // The merge walk needs both lists in registration-id order (every data
  // service keeps them so); anything else gets the whole datum.
  const auto& before = entry.previous->publishers;
  const auto& after = entry.newest->publishers;
  if (std::is_sorted(before.begin(), before.end(), ByRegistration) &&
      std::is_sorted(after.begin(), after.end(), ByRegistration)) {
    pb::Push delta;
    FillPushDelta(*entry.previous, *entry.newest, scope, zone, &delta);
    auto whole = Body(snapshot, scope, zone);
    auto encoded = std::make_shared<const std::string>(delta.SerializeAsString());
    ++delta_builds_;
    if (encoded->size() < whole->size()) body = std::move(encoded);
  }
  entry.delta_views.push_back(View{zone_only, zone_only ? zone : std::string(), body});
  return body;
}

}  // namespace cairn
