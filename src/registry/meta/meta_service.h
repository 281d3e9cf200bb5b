// MetaService: membership and the slot table.
//
// The slot table says which data server leads (and which follow) each slot,
// with an epoch that grows on every change, so a data server can refuse work
// for a slot it no longer owns. Standalone mode has one member that leads
// every slot at epoch 1; cluster mode keeps the table in etcd.
//
// Thread-safety: implementations are immutable after construction or
// internally synchronized; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cairn {

struct SlotAssignment {
  uint32_t slot = 0;
  std::string leader;
  std::vector<std::string> followers;
  uint64_t epoch = 0;
};

struct SlotTable {
  uint64_t epoch = 0;
  std::vector<SlotAssignment> slots;  // index == slot number
};

class MetaService {
 public:
  virtual ~MetaService() = default;
  virtual SlotTable GetSlotTable() const = 0;
  virtual std::vector<std::string> DataServers() const = 0;
  virtual std::vector<std::string> SessionServers() const = 0;
};

// The standalone meta role: this process is the only member.
class LocalMetaService final : public MetaService {
 public:
  LocalMetaService(std::string self, uint32_t slot_count);
  SlotTable GetSlotTable() const override { return table_; }
  std::vector<std::string> DataServers() const override { return {self_}; }
  std::vector<std::string> SessionServers() const override { return {self_}; }

 private:
  std::string self_;
  SlotTable table_;
};

}  // namespace cairn
