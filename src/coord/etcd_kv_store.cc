#include "coord/etcd_kv_store.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace cairn::coord {
namespace {

class EtcdKvStore final : public KvStore {
 public:
  EtcdKvStore(EtcdClient& client, std::string key_prefix)
      : client_(client), prefix_(std::move(key_prefix)) {}

  absl::StatusOr<std::string> Get(std::string_view key) override {
    auto kv = client_.Get(Full(key));
    if (absl::IsNotFound(kv.status())) {
      return absl::NotFoundError(absl::StrCat("etcd kv: no key ", std::string(key)));
    }
    if (!kv.ok()) return Context("Get", key, kv.status());
    return std::move(kv->value);
  }

  absl::Status Put(std::string_view key, std::string_view value) override {
    auto revision = client_.Put(Full(key), std::string(value));
    if (!revision.ok()) return Context("Put", key, revision.status());
    return absl::OkStatus();
  }

  absl::Status Delete(std::string_view key) override {
    auto deleted = client_.Delete(Full(key));
    if (!deleted.ok()) return Context("Delete", key, deleted.status());
    return absl::OkStatus();
  }

  absl::StatusOr<std::map<std::string, std::string>> Scan(std::string_view prefix) override {
    auto range = client_.GetPrefix(Full(prefix));
    if (!range.ok()) return Context("Scan", prefix, range.status());
    std::map<std::string, std::string> out;
    for (auto& kv : range->kvs) {
      // etcd returned only keys under Full(prefix), hence under prefix_.
      out.emplace_hint(out.end(), kv.key.substr(prefix_.size()), std::move(kv.value));
    }
    return out;
  }

 private:
  std::string Full(std::string_view key) const { return prefix_ + std::string(key); }

  // Keeps etcd's code (UNAVAILABLE, DEADLINE_EXCEEDED, ...) so callers can
  // tell an unreachable etcd from a refused request.
  static absl::Status Context(const char* method, std::string_view key,
                              const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat("etcd kv ", method, " ", std::string(key), ": ",
                                                    std::string(status.message())));
  }

  EtcdClient& client_;
  const std::string prefix_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvStore>> OpenEtcdKvStore(EtcdClient& client,
                                                         std::string key_prefix) {
  if (key_prefix.empty() || key_prefix.back() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd kv: key prefix must end with '/', got \"", key_prefix, "\""));
  }
  return std::unique_ptr<KvStore>(new EtcdKvStore(client, std::move(key_prefix)));
}

}  // namespace cairn::coord
