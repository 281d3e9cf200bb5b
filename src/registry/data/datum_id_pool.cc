#include "registry/data/datum_id_pool.h"

#include <algorithm>

namespace cairn {

std::shared_ptr<const DatumId> DatumIdPool::Get(const pb::DataInfoKey& normalized_key) {
  std::string id = DataInfoId(normalized_key);
  auto [it, inserted] = ids_.try_emplace(id);
  if (!inserted) {
    if (auto live = it->second.lock()) return live;
  }
  // Not make_shared: a weak reference would keep a make_shared object's
  // memory until the entry is swept.
  std::shared_ptr<const DatumId> made(new DatumId{std::move(id), normalized_key});
  it->second = made;
  if (ids_.size() >= next_sweep_at_) SweepExpired();
  return made;
}

void DatumIdPool::SweepExpired() {
  std::erase_if(ids_, [](const auto& entry) { return entry.second.expired(); });
  next_sweep_at_ = std::max<size_t>(1024, ids_.size() * 2);
}

}  // namespace cairn
