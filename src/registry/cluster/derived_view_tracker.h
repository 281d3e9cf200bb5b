// DerivedViewTracker: the versions of the views a session derives from
// several datums (cluster application-level discovery), and which build of a
// view is the freshest.
//
// A derived view (interface I rendered from I and app:A1..An, or app:A with
// the interface-level publishers of A) is assembled from parts fetched at
// different moments, while change notices keep arriving. Subscribers and the
// push payload cache rely on one rule: a view's version names its content, and
// newer content has a higher version. Two races break the naive "newest part
// version" rule:
//   * a fetch that began before an input changed finishes after it; its build
//     is stale but could carry the version of the change (and, cached, hide
//     the fresh build that follows under the same version);
//   * a part can come back older than one already used (an empty version-0
//     answer while a slot has no leader).
// The tracker keeps, per derived view, a generation (one per input change)
// and the last build it answered with. A build from a fetch that began before
// that answer's fetch is replaced by the answer; parts are never older than
// the answer's parts; and every new build gets a version above the answer's.
//
// Plain datums (no tracked state and a single part) pass through untouched:
// their versions come from the data servers.
//
// Thread-safety: not thread-safe; the owner calls it from one loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "registry/data/datum.h"

namespace cairn::cluster {

class DerivedViewTracker {
 public:
  using Parts = std::vector<std::shared_ptr<const DatumSnapshot>>;
  // Renders the view from parts (in the order of the ids given to Complete)
  // with the given version.
  using Render = std::function<std::shared_ptr<const DatumSnapshot>(const Parts&, uint64_t)>;

  // What a fetch remembers from its start.
  struct Ticket {
    uint64_t generation = 0;
    uint64_t bump = 0;
  };

  // max_seen: the newest datum version the session has seen (answered or
  // notified); a view that becomes derived starts above it, so above any
  // version it was answered with as a plain datum.
  explicit DerivedViewTracker(std::function<uint64_t()> max_seen);

  bool Tracks(const std::string& id) const { return views_.contains(id); }

  // An input of view `id` changed at `version` (a part's notice, or the
  // session's newest version for a catalog change). Starts tracking the view.
  // Returns the version the change should be announced with.
  uint64_t Touch(const std::string& id, uint64_t version);

  // Call when a fetch of view `id` begins, before its parts are listed.
  Ticket Begin(const std::string& id) const;

  // The answer for a fetch of `id` that began with `ticket`, over `parts`
  // fetched for `ids` (ids.front() == id). Renders only when the result is
  // new. REQUIRES: parts.size() == ids.size() >= 1, no part is null.
  std::shared_ptr<const DatumSnapshot> Complete(const std::string& id, const Ticket& ticket,
                                                const std::vector<std::string>& ids, Parts parts,
                                                const Render& render);

  // The version to report for `id` over `parts` (queries, listings): at least
  // the newest part, touch and answer.
  uint64_t VersionOf(const std::string& id, const Parts& parts) const;
  uint64_t VersionOf(const std::string& id, uint64_t part_version) const;

  size_t tracked() const { return views_.size(); }

 private:
  struct Answer {
    uint64_t generation = 0;  // of the fetch that produced it
    uint64_t version = 0;
    std::vector<std::string> ids;
    Parts parts;
    std::shared_ptr<const DatumSnapshot> view;
  };
  struct View {
    uint64_t generation = 0;  // +1 per Touch
    uint64_t bump = 0;        // newest version a Touch asked for
    std::optional<Answer> answer;
  };

  View& StateOf(const std::string& id);

  std::function<uint64_t()> max_seen_;
  std::unordered_map<std::string, View> views_;
};

}  // namespace cairn::cluster
