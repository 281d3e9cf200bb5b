#include "registry/cluster/derived_view_tracker.h"

#include <algorithm>
#include <utility>

namespace cairn::cluster {

DerivedViewTracker::DerivedViewTracker(std::function<uint64_t()> max_seen)
    : max_seen_(std::move(max_seen)) {}

DerivedViewTracker::View& DerivedViewTracker::StateOf(const std::string& id) {
  auto [it, created] = views_.try_emplace(id);
  // Until now the view was answered as a plain datum, with a version the
  // session has seen: start above all of those.
  if (created) it->second.bump = max_seen_() + 1;
  return it->second;
}

uint64_t DerivedViewTracker::Touch(const std::string& id, uint64_t version) {
  View& view = StateOf(id);
  ++view.generation;
  view.bump = std::max(view.bump, version);
  if (view.answer.has_value()) view.bump = std::max(view.bump, view.answer->version + 1);
  return view.bump;
}

DerivedViewTracker::Ticket DerivedViewTracker::Begin(const std::string& id) const {
  auto it = views_.find(id);
  if (it == views_.end()) return {};
  return {it->second.generation, it->second.bump};
}

std::shared_ptr<const DatumSnapshot> DerivedViewTracker::Complete(
    const std::string& id, const Ticket& ticket, const std::vector<std::string>& ids, Parts parts,
    const Render& render) {
  if (parts.size() == 1 && !views_.contains(id)) return parts.front();  // a plain datum
  View& view = StateOf(id);
  if (view.answer.has_value()) {
    const Answer& answer = *view.answer;
    // A fetch that began before the one answered last saw older inputs.
    if (ticket.generation < answer.generation) return answer.view;
    // Never go back on a part: keep the newer of this fetch's and the answer's.
    for (size_t i = 0; i < ids.size(); ++i) {
      auto same = std::find(answer.ids.begin(), answer.ids.end(), ids[i]);
      if (same == answer.ids.end()) continue;
      const auto& used = answer.parts[static_cast<size_t>(same - answer.ids.begin())];
      if (used->version > parts[i]->version) parts[i] = used;
    }
    bool unchanged = ticket.generation == answer.generation && ids == answer.ids;
    for (size_t i = 0; unchanged && i < parts.size(); ++i) {
      unchanged = parts[i]->version == answer.parts[i]->version;
    }
    if (unchanged) return answer.view;
  }
  uint64_t version = ticket.bump;
  for (const auto& part : parts) version = std::max(version, part->version);
  if (view.answer.has_value()) version = std::max(version, view.answer->version + 1);
  std::shared_ptr<const DatumSnapshot> built = render(parts, version);
  view.answer = Answer{ticket.generation, version, ids, std::move(parts), built};
  return built;
}

uint64_t DerivedViewTracker::VersionOf(const std::string& id, uint64_t part_version) const {
  auto it = views_.find(id);
  if (it == views_.end()) return part_version;
  uint64_t version = std::max(part_version, it->second.bump);
  if (it->second.answer.has_value()) version = std::max(version, it->second.answer->version);
  return version;
}

uint64_t DerivedViewTracker::VersionOf(const std::string& id, const Parts& parts) const {
  uint64_t version = 0;
  for (const auto& part : parts) version = std::max(version, part->version);
  return VersionOf(id, version);
}

}  // namespace cairn::cluster
