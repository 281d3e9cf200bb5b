#include "registry/cluster/data_views.h"

#include "absl/strings/match.h"
#include "registry/app/app_model.h"
#include "registry/app/app_records.h"

namespace cairn::cluster {

v1::DatumVersion NoticeFor(LocalDataServer& store, const std::string& id, uint64_t version) {
  v1::DatumVersion change;
  change.set_data_info_id(id);
  change.set_version(version);
  if (absl::StartsWith(id, std::string(app::kAppDataIdPrefix))) return change;
  std::set<std::string> apps;
  store.Fetch(id, [&apps](std::shared_ptr<const DatumSnapshot> snapshot) {
    for (const auto& record : snapshot->publishers) {
      if (!record->app_name.empty()) apps.insert(record->app_name);
    }
  });
  for (const std::string& app_name : apps) change.add_apps(app_name);
  return change;
}

std::set<std::string> RevisionsOfApp(LocalDataServer& store, const std::string& app_name) {
  std::set<std::string> out;
  store.Fetch(DataInfoId(app::AppKey(app_name)),
              [&out](std::shared_ptr<const DatumSnapshot> snapshot) {
                for (const auto& record : snapshot->publishers) {
                  out.insert(app::RevisionOf(*record));
                }
              });
  return out;
}

}  // namespace cairn::cluster
