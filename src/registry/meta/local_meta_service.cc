#include "registry/meta/meta_service.h"

namespace cairn {

LocalMetaService::LocalMetaService(std::string self, uint32_t slot_count) : self_(std::move(self)) {
  table_.epoch = 1;
  table_.slots.reserve(slot_count);
  for (uint32_t slot = 0; slot < slot_count; ++slot) {
    table_.slots.push_back(SlotAssignment{slot, self_, {}, 1});
  }
}

}  // namespace cairn
