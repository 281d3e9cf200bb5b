// What a data server derives from its store for application-level
// discovery in cluster mode: the app names a change notice carries, and the
// revisions an app's instances use (for RevisionCollector).
//
// Thread-safety: on the data role's loop, like the store.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "cairn/cluster/v1/cluster.pb.h"
#include "registry/data/local_data_server.h"

namespace cairn::cluster {

// A change of `id` as sessions are told it (cluster.proto DatumVersion): for
// a datum other than an app datum, with the apps of its publishers (one scan
// of the datum).
v1::DatumVersion NoticeFor(LocalDataServer& store, const std::string& id, uint64_t version);

// The revisions the instances of `app_name` use, as this store holds them.
std::set<std::string> RevisionsOfApp(LocalDataServer& store, const std::string& app_name);

}  // namespace cairn::cluster
