#include "registry/app/revision_store.h"

#include "absl/strings/str_cat.h"

namespace cairn {
namespace {

constexpr const char* kPrefix = kRevisionKeyPrefix;

// Stored value: the serialized StoredRevision wrapped in a RevisionInfo (its
// meta and registered_at_ms fields), so the format is a documented message.
class KvRevisionStore final : public RevisionStore {
 public:
  explicit KvRevisionStore(KvStore& store) : store_(store) {}

  absl::Status Put(const StoredRevision& revision) override {
    pb::RevisionInfo info;
    *info.mutable_meta() = revision.meta;
    info.set_registered_at_ms(revision.registered_at_ms);
    return store_.Put(absl::StrCat(kPrefix, revision.meta.revision()), info.SerializeAsString());
  }

  absl::StatusOr<StoredRevision> Get(const std::string& revision_id) override {
    auto value = store_.Get(absl::StrCat(kPrefix, revision_id));
    if (!value.ok()) return value.status();
    return Decode(revision_id, *value);
  }

  absl::StatusOr<std::vector<StoredRevision>> List() override {
    auto all = store_.Scan(kPrefix);
    if (!all.ok()) return all.status();
    std::vector<StoredRevision> out;
    out.reserve(all->size());
    for (const auto& [key, value] : *all) {
      auto revision = Decode(key.substr(sizeof(kRevisionKeyPrefix) - 1), value);
      if (!revision.ok()) return revision.status();
      out.push_back(std::move(*revision));
    }
    return out;
  }

  absl::Status Delete(const std::string& revision_id) override {
    return store_.Delete(absl::StrCat(kPrefix, revision_id));
  }

 private:
  static absl::StatusOr<StoredRevision> Decode(const std::string& id, const std::string& value) {
    pb::RevisionInfo info;
    if (!info.ParseFromString(value) || info.meta().revision() != id) {
      return absl::DataLossError(absl::StrCat("stored revision ", id, " is corrupt"));
    }
    StoredRevision out;
    out.meta = std::move(*info.mutable_meta());
    out.registered_at_ms = info.registered_at_ms();
    return out;
  }

  KvStore& store_;
};

}  // namespace

std::unique_ptr<RevisionStore> NewKvRevisionStore(KvStore& store) {
  return std::make_unique<KvRevisionStore>(store);
}

}  // namespace cairn
