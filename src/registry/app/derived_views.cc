#include "registry/app/derived_views.h"

#include <set>

#include "registry/app/app_model.h"
#include "registry/app/app_records.h"

namespace cairn::app {

std::shared_ptr<DatumSnapshot> BuildInterfaceView(const std::string& interface_id,
                                                  const DatumSnapshot& own,
                                                  const std::vector<NamedPart>& apps,
                                                  const RevisionLookup& lookup, uint64_t version) {
  auto out = std::make_shared<DatumSnapshot>(own);
  out->version = version;
  std::set<std::string, std::less<>> covered;
  for (const auto& record : own.publishers) {
    for (const std::string& url : record->data) covered.emplace(EndpointKey(url));
  }
  std::shared_ptr<const DatumId> datum_id;  // the interface's, shared by the derived entries
  for (const auto& [app_name, instances] : apps) {
    for (const auto& instance : instances->publishers) {
      const CompactRevision* content = lookup(RevisionOf(*instance));
      if (content == nullptr) continue;
      int index = content->Find(interface_id);
      if (index < 0) continue;
      auto entry = std::make_shared<PublisherRecord>(*instance);
      if (!datum_id) datum_id = std::make_shared<const DatumId>(DatumId{interface_id, own.key});
      entry->datum = datum_id;
      entry->app_name = *app_name;  // the app of the key, whatever the client's default
      entry->data.clear();
      for (std::string& url : RenderInterfaceUrlsFromViews(
               instance->data, content->Params(static_cast<size_t>(index)))) {
        if (covered.emplace(EndpointKey(url)).second) entry->data.push_back(std::move(url));
      }
      if (!entry->data.empty()) out->publishers.push_back(std::move(entry));
    }
  }
  SortByRegistration(out->publishers);
  return out;
}

std::shared_ptr<DatumSnapshot> BuildAppView(const std::string& app_name, const DatumSnapshot& own,
                                            const std::vector<NamedPart>& interfaces,
                                            const RevisionLookup& lookup, uint64_t version) {
  auto out = std::make_shared<DatumSnapshot>(own);
  out->version = version;
  std::set<std::pair<std::string, std::string>> covered;  // (endpoint, interface)
  for (const auto& instance : own.publishers) {
    const CompactRevision* content = lookup(RevisionOf(*instance));
    if (content == nullptr) continue;
    for (const std::string& endpoint : instance->data) {
      for (size_t i = 0; i < content->interface_count(); ++i) {
        covered.emplace(std::string(EndpointKey(endpoint)), *content->interface_id(i));
      }
    }
  }
  for (const auto& [iface, legacy] : interfaces) {
    for (const auto& record : legacy->publishers) {
      if (record->app_name != app_name) continue;
      auto entry = std::make_shared<PublisherRecord>(*record);
      entry->data.clear();
      for (const std::string& url : record->data) {
        if (!covered.contains({std::string(EndpointKey(url)), *iface})) entry->data.push_back(url);
      }
      if (entry->data.empty()) continue;
      entry->attributes[std::string(kInterfaceAttribute)] = *iface;
      out->publishers.push_back(std::move(entry));
    }
  }
  SortByRegistration(out->publishers);
  return out;
}

}  // namespace cairn::app
