#include "registry/app/compact_revision.h"

#include <algorithm>
#include <unordered_map>

namespace cairn::app {

CompactRevision CompactRevision::Build(const pb::RevisionMeta& canonical, const InternFn& intern) {
  CompactRevision out;
  // Views into `canonical`, which outlives this function: dedups the strings.
  std::unordered_map<std::string_view, uint32_t> seen;
  out.offsets_.push_back(0);
  auto add = [&out, &seen](const std::string& text) -> uint32_t {
    auto [it, inserted] = seen.emplace(text, static_cast<uint32_t>(out.offsets_.size() - 1));
    if (inserted) {
      out.strings_.append(text);
      out.offsets_.push_back(static_cast<uint32_t>(out.strings_.size()));
    }
    return it->second;
  };
  out.interfaces_.reserve(canonical.interfaces_size());
  std::vector<const google::protobuf::MapPair<std::string, std::string>*> sorted;
  for (const pb::InterfaceMeta& iface : canonical.interfaces()) {
    out.interfaces_.push_back(
        {intern(DataInfoId(iface.key())), static_cast<uint32_t>(out.params_.size())});
    sorted.clear();
    for (const auto& entry : iface.params()) sorted.push_back(&entry);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    for (const auto* entry : sorted) out.params_.push_back({add(entry->first), add(entry->second)});
  }
  out.strings_.shrink_to_fit();
  out.offsets_.shrink_to_fit();
  out.params_.shrink_to_fit();
  return out;
}

int CompactRevision::Find(std::string_view data_info_id) const {
  auto it = std::lower_bound(
      interfaces_.begin(), interfaces_.end(), data_info_id,
      [](const Interface& iface, std::string_view id) { return std::string_view(*iface.id) < id; });
  if (it == interfaces_.end() || std::string_view(*it->id) != data_info_id) return -1;
  return static_cast<int>(it - interfaces_.begin());
}

std::vector<CompactRevision::Param> CompactRevision::Params(size_t i) const {
  std::vector<Param> out;
  uint32_t end = ParamEnd(i);
  out.reserve(end - interfaces_[i].first_param);
  for (uint32_t p = interfaces_[i].first_param; p < end; ++p) {
    out.emplace_back(String(params_[p].key), String(params_[p].value));
  }
  return out;
}

pb::RevisionMeta CompactRevision::ToMeta(const std::string& revision,
                                         const std::string& app_name) const {
  pb::RevisionMeta meta;
  meta.set_revision(revision);
  meta.set_app_name(app_name);
  for (size_t i = 0; i < interfaces_.size(); ++i) {
    pb::InterfaceMeta* iface = meta.add_interfaces();
    // Validated keys hold no separator: the id parses back to the same key.
    ParseDataInfoId(*interfaces_[i].id, iface->mutable_key());
    auto& params = *iface->mutable_params();
    for (uint32_t p = interfaces_[i].first_param; p < ParamEnd(i); ++p) {
      params[std::string(String(params_[p].key))] = std::string(String(params_[p].value));
    }
  }
  return meta;
}

bool CompactRevision::SameInterfaces(const pb::RevisionMeta& meta) const {
  if (static_cast<size_t>(meta.interfaces_size()) != interfaces_.size()) return false;
  // Interfaces are unique on both sides (validated): same count and every
  // interface of `meta` found with the same params is equality. No canonical
  // copy of `meta` is made: clients re-register their revision on every stream.
  for (const pb::InterfaceMeta& iface : meta.interfaces()) {
    int found = Find(DataInfoId(NormalizeKey(iface.key())));
    if (found < 0) return false;
    size_t i = static_cast<size_t>(found);
    uint32_t begin = interfaces_[i].first_param;
    uint32_t end = ParamEnd(i);
    // Keys are unique on both sides too.
    if (static_cast<size_t>(iface.params_size()) != end - begin) return false;
    for (uint32_t p = begin; p < end; ++p) {
      auto it = iface.params().find(std::string(String(params_[p].key)));
      if (it == iface.params().end() || it->second != String(params_[p].value)) return false;
    }
  }
  return true;
}

size_t CompactRevision::MemoryBytes() const {
  return sizeof(*this) + strings_.capacity() + offsets_.capacity() * sizeof(uint32_t) +
         interfaces_.capacity() * sizeof(Interface) + params_.capacity() * sizeof(ParamRef);
}

}  // namespace cairn::app
