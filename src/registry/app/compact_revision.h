// CompactRevision: the content of one app revision as the registry keeps it
// in memory, once, compactly.
//
// A revision is immutable and read on every app change (which interfaces it
// serves) and every derived interface fetch (the params of one interface), so
// it is held parsed, but without protobuf maps or per-string allocations:
// every distinct param key and value of the revision is stored once in one
// buffer (keys such as "protocol" and values such as "bolt" repeat for each
// interface), params are pairs of indexes into it, and interface ids are
// pointers to strings the owner interns (AppDiscovery shares them with its
// interface -> apps index). The protobuf form (GetRevision, content checks) is
// rebuilt on demand; it is exactly the canonical RevisionMeta it was built
// from (app::CanonicalRevision: keys normalized, interfaces sorted by
// dataInfoId).
//
// Thread-safety: immutable after Build; const methods are safe to call
// concurrently. Ownership: the interned interface ids are owned by the
// caller of Build and must outlive the object (see Build).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/data_info.h"

namespace cairn::app {

class CompactRevision {
 public:
  // A param as views into the revision; valid while the revision lives.
  using Param = std::pair<std::string_view, std::string_view>;
  // Returns a stable pointer to the pooled copy of an interface's dataInfoId.
  using InternFn = std::function<const std::string*(const std::string& data_info_id)>;

  CompactRevision() = default;

  // REQUIRES: `canonical` is app::CanonicalRevision of a revision that passed
  // app::ValidateRevision (normalized keys without separators, interfaces
  // sorted by dataInfoId and unique). `intern` is called once per interface;
  // the pointers it returns must stay valid while this object lives.
  static CompactRevision Build(const pb::RevisionMeta& canonical, const InternFn& intern);

  size_t interface_count() const { return interfaces_.size(); }
  // The dataInfoId of interface i (in dataInfoId order), as interned.
  const std::string* interface_id(size_t i) const { return interfaces_[i].id; }
  // Index of the interface with this dataInfoId, or -1.
  int Find(std::string_view data_info_id) const;
  bool Serves(std::string_view data_info_id) const { return Find(data_info_id) >= 0; }
  // The params of interface i, in key order.
  std::vector<Param> Params(size_t i) const;

  // The canonical RevisionMeta this was built from, with `revision` and
  // `app_name` set as given.
  pb::RevisionMeta ToMeta(const std::string& revision, const std::string& app_name) const;
  // True iff `meta` (a revision that passed app::ValidateRevision, canonical
  // or not) has the same interfaces and params: app::SameRevisionContent
  // without the app name, which the caller compares.
  bool SameInterfaces(const pb::RevisionMeta& meta) const;

  // Bytes held by this object (heap included), for tests and logs.
  size_t MemoryBytes() const;

 private:
  struct Interface {
    const std::string* id;  // interned by the owner
    uint32_t first_param;   // index into params_; the next interface's is the end
  };
  struct ParamRef {
    uint32_t key;  // indexes into offsets_
    uint32_t value;
  };

  std::string_view String(uint32_t index) const {
    return std::string_view(strings_).substr(offsets_[index],
                                             offsets_[index + 1] - offsets_[index]);
  }
  uint32_t ParamEnd(size_t i) const {
    return i + 1 < interfaces_.size() ? interfaces_[i + 1].first_param
                                      : static_cast<uint32_t>(params_.size());
  }

  std::string strings_;            // every distinct key and value, concatenated
  std::vector<uint32_t> offsets_;  // string k is strings_[offsets_[k], offsets_[k + 1])
  std::vector<Interface> interfaces_;
  std::vector<ParamRef> params_;  // grouped by interface, each group in key order
};

}  // namespace cairn::app
