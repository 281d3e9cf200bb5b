#include "client/push_assembler.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace cairn {

PushAssembler::Outcome PushAssembler::Apply(pb::Push& push) {
  if (push.base_version() == 0) {
    state_.set_version(push.version());
    state_.set_empty(push.empty());
    *state_.mutable_zones() = push.zones();
    has_state_ = true;
    return Outcome::kWhole;
  }
  if (has_state_ && push.version() <= state_.version()) return Outcome::kStale;
  if (!has_state_ || push.base_version() != state_.version()) return Outcome::kNeedFull;

  // Every publisher of the result, by zone then registration id: what the
  // state had, less the removed and the changed, plus the changed.
  std::set<std::string> replaced(push.removed().begin(), push.removed().end());
  for (const auto& zone : push.zones()) {
    for (const auto& publisher : zone.publishers()) replaced.insert(publisher.registration_id());
  }
  std::map<std::string, std::map<std::string, const pb::PublisherData*>> zones;
  for (const auto& zone : state_.zones()) {
    for (const auto& publisher : zone.publishers()) {
      if (replaced.count(publisher.registration_id()) == 0) {
        zones[zone.zone()][publisher.registration_id()] = &publisher;
      }
    }
  }
  for (const auto& zone : push.zones()) {
    for (const auto& publisher : zone.publishers()) {
      zones[zone.zone()][publisher.registration_id()] = &publisher;
    }
  }
  pb::Push next;
  next.set_version(push.version());
  next.set_empty(push.empty());
  for (const auto& [zone_name, publishers] : zones) {
    pb::ZoneData* out = next.add_zones();
    out->set_zone(zone_name);
    for (const auto& [id, publisher] : publishers) *out->add_publishers() = *publisher;
  }
  // `next` borrows nothing now: replace the state, then hand out a copy.
  state_ = std::move(next);
  push.clear_base_version();
  push.clear_removed();
  push.set_empty(state_.empty());
  *push.mutable_zones() = state_.zones();
  has_state_ = true;
  return Outcome::kApplied;
}

}  // namespace cairn
