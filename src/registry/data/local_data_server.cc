#include "registry/data/local_data_server.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cairn {

LocalDataServer::LocalDataServer(uint32_t slot_count, VersionClock clock)
    : slots_(std::max<uint32_t>(slot_count, 1)), clock_(std::move(clock)) {}

LocalDataServer::Slot& LocalDataServer::SlotFor(const std::string& id) {
  return slots_[SlotOf(id, slot_count())];
}
const LocalDataServer::Slot& LocalDataServer::SlotFor(const std::string& id) const {
  return slots_[SlotOf(id, slot_count())];
}

DatumSnapshot& LocalDataServer::Mutable(Datum& datum) {
  // use_count is exact here: snapshots are shared on the loop, and a holder
  // on another thread only ever lowers it (then we copy needlessly, safely).
  if (datum.state.use_count() > 1) datum.state = std::make_shared<DatumSnapshot>(*datum.state);
  return *datum.state;
}

std::vector<std::shared_ptr<const PublisherRecord>>::iterator LocalDataServer::Find(
    DatumSnapshot& state, const std::string& registration_id) {
  return std::lower_bound(
      state.publishers.begin(), state.publishers.end(), registration_id,
      [](const auto& record, const std::string& id) { return record->registration_id < id; });
}

void LocalDataServer::Publish(std::shared_ptr<const PublisherRecord> record, VersionCallback done) {
  const std::string& data_info_id = record->data_info_id();
  Datum& datum = SlotFor(data_info_id).datums[data_info_id];
  if (!datum.state) {
    datum.state = std::make_shared<DatumSnapshot>();
    datum.state->data_info_id = data_info_id;
    datum.state->key = record->key();
    datum.state->slot = SlotOf(data_info_id, slot_count());
  }
  auto it = Find(*datum.state, record->registration_id);
  bool exists =
      it != datum.state->publishers.end() && (*it)->registration_id == record->registration_id;
  if (exists) {
    const PublisherRecord& old = **it;
    if (record->version < old.version) {
      done(absl::FailedPreconditionError(
          absl::StrCat("publisher ", record->registration_id, " has version ", old.version,
                       "; refusing older version ", record->version)));
      return;
    }
    bool same = old.SameContent(*record);
    auto offset = it - datum.state->publishers.begin();
    // Ownership may move to a new stream; the content only if not `same`.
    Mutable(datum).publishers[offset] = std::move(record);
    if (same) {
      done(datum.state->version);
      return;
    }
  } else {
    auto offset = it - datum.state->publishers.begin();
    auto& publishers = Mutable(datum).publishers;
    publishers.insert(publishers.begin() + offset, std::move(record));
    ++publisher_count_;
  }
  Changed(datum.state->data_info_id, datum);
  done(datum.state->version);
}

void LocalDataServer::Unpublish(const std::string& data_info_id, const std::string& registration_id,
                                const OwnerRef& owner, VersionCallback done) {
  auto& datums = SlotFor(data_info_id).datums;
  auto dit = datums.find(data_info_id);
  if (dit == datums.end()) {
    done(uint64_t{0});
    return;
  }
  Datum& datum = dit->second;
  auto it = Find(*datum.state, registration_id);
  if (it == datum.state->publishers.end() || (*it)->registration_id != registration_id ||
      !(*it)->owner->SameStream(owner)) {
    done(datum.state->version);
    return;
  }
  auto offset = it - datum.state->publishers.begin();
  auto& publishers = Mutable(datum).publishers;
  publishers.erase(publishers.begin() + offset);
  if (publishers.capacity() > 2 * publishers.size() + 16) publishers.shrink_to_fit();
  --publisher_count_;
  // The datum stays (with its version) even when empty, so that subscribers
  // see the empty state at a newer version than the last non-empty one.
  Changed(data_info_id, datum);
  done(datum.state->version);
}

void LocalDataServer::Changed(const std::string& data_info_id, Datum& datum) {
  std::string id = data_info_id;  // the datum may be touched by listeners
  uint64_t version = clock_.Next();
  Mutable(datum).version = version;
  for (DataChangeListener* listener : listeners_) listener->OnDatumChanged(id, version);
}

void LocalDataServer::Fetch(const std::string& data_info_id, SnapshotCallback done) {
  const auto& datums = SlotFor(data_info_id).datums;
  auto it = datums.find(data_info_id);
  if (it == datums.end()) {
    auto empty = std::make_shared<DatumSnapshot>();
    empty->data_info_id = data_info_id;
    empty->slot = SlotOf(data_info_id, slot_count());
    ParseDataInfoId(data_info_id, &empty->key);
    done(std::move(empty));
    return;
  }
  done(it->second.state);
}

std::vector<DatumSummary> LocalDataServer::List(const std::string& prefix) const {
  std::vector<DatumSummary> out;
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    for (const auto& [id, datum] : slots_[slot].datums) {
      const DatumSnapshot& state = *datum.state;
      if (!absl::StartsWith(state.key.data_id(), prefix)) continue;
      out.push_back(DatumSummary{id, state.key, state.version,
                                 static_cast<uint32_t>(state.publishers.size()), slot});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.data_info_id < b.data_info_id; });
  return out;
}

std::vector<std::shared_ptr<const PublisherRecord>> LocalDataServer::PublishersInSlot(
    uint32_t slot) const {
  std::vector<std::shared_ptr<const PublisherRecord>> out;
  if (slot >= slots_.size()) return out;
  for (const auto& [id, datum] : slots_[slot].datums) {
    out.insert(out.end(), datum.state->publishers.begin(), datum.state->publishers.end());
  }
  return out;
}

void LocalDataServer::TouchSlot(uint32_t slot) {
  if (slot >= slots_.size()) return;
  std::vector<std::string> ids;
  ids.reserve(slots_[slot].datums.size());
  for (const auto& [id, datum] : slots_[slot].datums) ids.push_back(id);
  for (const std::string& id : ids) {
    auto it = slots_[slot].datums.find(id);
    if (it != slots_[slot].datums.end()) Changed(id, it->second);
  }
}

void LocalDataServer::DropSlot(uint32_t slot) {
  if (slot >= slots_.size()) return;
  for (const auto& [id, datum] : slots_[slot].datums) {
    publisher_count_ -= datum.state->publishers.size();
  }
  slots_[slot].datums.clear();
}

size_t LocalDataServer::datum_count() const {
  size_t n = 0;
  for (const auto& slot : slots_) n += slot.datums.size();
  return n;
}

void LocalDataServer::AddListener(DataChangeListener* listener) { listeners_.push_back(listener); }

void LocalDataServer::RemoveListener(DataChangeListener* listener) {
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

}  // namespace cairn
