// LocalDataServer: the data role in-process. Publishers are kept in memory,
// sharded by slot (slot = SlotOf(dataInfoId, slot_count)), each datum with a
// version from the VersionClock that grows on every change.
//
// Standalone mode owns every slot. The slot layer exists so that cluster mode
// can hand slots to other data servers without reshaping the data.
//
// Thread-safety: not thread-safe; see DataService.
#pragma once

#include <unordered_map>
#include <vector>

#include "registry/data/data_service.h"
#include "registry/data/version_clock.h"

namespace cairn {

class LocalDataServer final : public DataService {
 public:
  LocalDataServer(uint32_t slot_count, VersionClock clock);

  // DataService
  void Publish(std::shared_ptr<const PublisherRecord> record, VersionCallback done) override;
  void Unpublish(const std::string& data_info_id, const std::string& registration_id,
                 const OwnerRef& owner, VersionCallback done) override;
  void Fetch(const std::string& data_info_id, SnapshotCallback done) override;
  std::vector<DatumSummary> List(const std::string& data_id_prefix) const override;
  void AddListener(DataChangeListener* listener) override;
  void RemoveListener(DataChangeListener* listener) override;

  // Slot-level operations for cluster mode's data role (src/registry/cluster),
  // which leads some slots, follows others and hands slots over.
  // Every publisher of the slot, in no particular order.
  std::vector<std::shared_ptr<const PublisherRecord>> PublishersInSlot(uint32_t slot) const;
  // Gives every datum of the slot a new version and tells the listeners: a
  // new slot leader's versions are then above anything it replicated.
  void TouchSlot(uint32_t slot);
  // Forgets the slot, telling no one (this server no longer serves it).
  void DropSlot(uint32_t slot);
  // The next versions are above `version`.
  void ObserveVersion(uint64_t version) { clock_.Observe(version); }
  uint64_t last_version() const { return clock_.last(); }

  uint32_t slot_count() const { return static_cast<uint32_t>(slots_.size()); }
  size_t publisher_count() const { return publisher_count_; }
  size_t datum_count() const;

 private:
  // A datum's publishers live in the snapshot Fetch hands out (sorted by
  // registration id, 16 bytes each): no second index and no copy per Fetch.
  // The snapshot is immutable to everyone else, so a change mutates it in
  // place only while no one else holds it, and otherwise copies it first
  // (copy on write).
  struct Datum {
    std::shared_ptr<DatumSnapshot> state;  // never null
  };
  struct Slot {
    std::unordered_map<std::string, Datum> datums;
  };

  Slot& SlotFor(const std::string& data_info_id);
  const Slot& SlotFor(const std::string& data_info_id) const;
  void Changed(const std::string& data_info_id, Datum& datum);
  // The datum's snapshot, copied first if someone else holds it.
  static DatumSnapshot& Mutable(Datum& datum);
  // The position of registration_id in the sorted publishers (or where it goes).
  static std::vector<std::shared_ptr<const PublisherRecord>>::iterator Find(
      DatumSnapshot& state, const std::string& registration_id);

  std::vector<Slot> slots_;
  VersionClock clock_;
  std::vector<DataChangeListener*> listeners_;
  size_t publisher_count_ = 0;
};

}  // namespace cairn
