// How application-level discovery renders its derived views, shared by
// standalone AppDiscovery and cluster mode's ClusterAppDiscovery (which
// differ only in where the parts come from).
//
//   * An interface's view: its own interface-level publishers first (they
//     win: during a migration the URL a client has seen does not change
//     under it), then one entry per app instance whose revision serves the
//     interface, rendered as interface URLs (app::RenderInterfaceUrls), minus
//     endpoints already listed.
//   * An app's view: its instances, then the interface-level publishers of
//     the app (attribute kInterfaceAttribute names the interface), minus URLs
//     an instance on the same endpoint already serves through its revision.
// Entries are sorted by registration id.
//
// Thread-safety: pure functions.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "registry/app/compact_revision.h"
#include "registry/data/datum.h"

namespace cairn::app {

// A revision's content by id; null if unknown.
using RevisionLookup = std::function<const CompactRevision*(const std::string& revision_id)>;
// (name, snapshot): an app's instances (its `app:` datum), or an interface's
// datum. The pointers are only read during the call.
using NamedPart = std::pair<const std::string*, const DatumSnapshot*>;

// REQUIRES: `own` is the datum of `interface_id`; `apps` are app datums.
std::shared_ptr<DatumSnapshot> BuildInterfaceView(const std::string& interface_id,
                                                  const DatumSnapshot& own,
                                                  const std::vector<NamedPart>& apps,
                                                  const RevisionLookup& lookup, uint64_t version);

// REQUIRES: `own` is the datum of app_name; `interfaces` are datums that may
// hold publishers of the app (others' entries are skipped).
std::shared_ptr<DatumSnapshot> BuildAppView(const std::string& app_name, const DatumSnapshot& own,
                                            const std::vector<NamedPart>& interfaces,
                                            const RevisionLookup& lookup, uint64_t version);

}  // namespace cairn::app
