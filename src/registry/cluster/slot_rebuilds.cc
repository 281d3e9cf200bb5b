#include "registry/cluster/slot_rebuilds.h"

namespace cairn::cluster {

void SlotRebuilds::Begin(uint32_t slot, SteadyTime now) { slots_[slot] = Rebuild{now, {}}; }

void SlotRebuilds::Synced(uint32_t slot, const std::string& session) {
  auto it = slots_.find(slot);
  if (it != slots_.end()) it->second.synced.insert(session);
}

void SlotRebuilds::End(uint32_t slot) { slots_.erase(slot); }

std::vector<std::string> SlotRebuilds::Missing(const Rebuild& r,
                                               const std::set<std::string>& live) const {
  std::vector<std::string> missing;
  for (const std::string& session : live) {
    if (!r.synced.contains(session)) missing.push_back(session);
  }
  return missing;
}

std::vector<SlotRebuilds::Ready> SlotRebuilds::TakeReady(const std::set<std::string>& live,
                                                         SteadyTime now) {
  std::vector<Ready> out;
  for (auto it = slots_.begin(); it != slots_.end();) {
    std::vector<std::string> missing = Missing(it->second, live);
    bool timed_out = now - it->second.since >= options_.give_up_after;
    if (!missing.empty() && !timed_out) {
      ++it;
      continue;
    }
    out.push_back(Ready{it->first, missing.empty(), std::move(missing)});
    it = slots_.erase(it);
  }
  return out;
}

std::map<uint32_t, std::vector<std::string>> SlotRebuilds::Overdue(
    const std::set<std::string>& live, SteadyTime now) const {
  std::map<uint32_t, std::vector<std::string>> out;
  for (const auto& [slot, rebuild] : slots_) {
    if (now - rebuild.since >= options_.warn_after) out[slot] = Missing(rebuild, live);
  }
  return out;
}

}  // namespace cairn::cluster
