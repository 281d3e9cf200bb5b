// The revision-catalog workload of bench/cluster: what one app revision
// registration costs a cluster as the catalog in etcd grows.
//
// Starts etcd, a meta, a data and two session processes on 127.0.0.1. Times
// `registrations` RegisterRevision calls through session 1 (one at a time,
// each a new revision of its own app) with an empty catalog, then writes
// `preload` revisions straight into etcd (as other sessions would have) and
// times the same number again. For each phase it reports the call latency
// and the CPU time both session processes spent per registration (every
// session follows the catalog). Anchor, in the same run: a direct etcd put
// of the same record through the same client library.
#pragma once

#include <functional>
#include <string>

namespace cairn::bench {

struct CatalogSizes {
  int preload = 20000;
  int registrations = 300;
};

// Called once per figure: workload, system, metric, unit, value.
using RecordFn = std::function<void(const std::string&, const std::string&, const std::string&,
                                    const std::string&, double)>;

// False if the cluster did not start or a registration failed.
bool RunCatalog(const CatalogSizes& sizes, const RecordFn& record);

}  // namespace cairn::bench
