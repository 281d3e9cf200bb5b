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

void LocalDataServer::Publish(std::shared_ptr<const PublisherRecord> record, VersionCallback done) {
  const std::string data_info_id = record->data_info_id;
  Datum& datum = SlotFor(data_info_id).datums[data_info_id];
  if (datum.key.data_id().empty()) datum.key = record->key;
  auto it = datum.publishers.find(record->registration_id);
  if (it != datum.publishers.end()) {
    const PublisherRecord& old = *it->second;
    if (record->version < old.version) {
      done(absl::FailedPreconditionError(
          absl::StrCat("publisher ", record->registration_id, " has version ", old.version,
                       "; refusing older version ", record->version)));
      return;
    }
    bool same = old.SameContent(*record);
    it->second = std::move(record);  // ownership may move to a new stream
    if (same) {
      done(datum.version);
      return;
    }
  } else {
    std::string id = record->registration_id;
    datum.publishers.emplace(std::move(id), std::move(record));
    ++publisher_count_;
  }
  Changed(data_info_id, datum);
  done(datum.version);
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
  auto it = datum.publishers.find(registration_id);
  if (it == datum.publishers.end() || !it->second->owner.SameStream(owner)) {
    done(datum.version);
    return;
  }
  datum.publishers.erase(it);
  --publisher_count_;
  // The datum stays (with its version) even when empty, so that subscribers
  // see the empty state at a newer version than the last non-empty one.
  Changed(data_info_id, datum);
  done(datum.version);
}

void LocalDataServer::Changed(const std::string& data_info_id, Datum& datum) {
  datum.version = clock_.Next();
  datum.snapshot.reset();
  std::string id = data_info_id;  // the datum may be touched by listeners
  uint64_t version = datum.version;
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
  const Datum& datum = it->second;
  if (!datum.snapshot) {
    auto snap = std::make_shared<DatumSnapshot>();
    snap->data_info_id = data_info_id;
    snap->key = datum.key;
    snap->version = datum.version;
    snap->slot = SlotOf(data_info_id, slot_count());
    snap->publishers.reserve(datum.publishers.size());
    for (const auto& [id, rec] : datum.publishers) snap->publishers.push_back(rec);
    std::sort(snap->publishers.begin(), snap->publishers.end(),
              [](const auto& a, const auto& b) { return a->registration_id < b->registration_id; });
    datum.snapshot = std::move(snap);
  }
  done(datum.snapshot);
}

std::vector<DatumSummary> LocalDataServer::List(const std::string& prefix) const {
  std::vector<DatumSummary> out;
  for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
    for (const auto& [id, datum] : slots_[slot].datums) {
      if (!absl::StartsWith(datum.key.data_id(), prefix)) continue;
      out.push_back(DatumSummary{id, datum.key, datum.version,
                                 static_cast<uint32_t>(datum.publishers.size()), slot});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.data_info_id < b.data_info_id; });
  return out;
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
