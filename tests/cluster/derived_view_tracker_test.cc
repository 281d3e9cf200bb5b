// DerivedViewTracker: the orders in which fetches and change notices of a
// cluster derived view can interleave, and the rule every answer must keep:
// a version names one content, and fresher content has a higher version.
#include "registry/cluster/derived_view_tracker.h"

#include <gtest/gtest.h>

#include <map>

namespace cairn::cluster {
namespace {

using Parts = DerivedViewTracker::Parts;

std::shared_ptr<const DatumSnapshot> Part(const std::string& id, uint64_t version) {
  auto part = std::make_shared<DatumSnapshot>();
  part->data_info_id = id;
  part->version = version;
  return part;
}

class DerivedViewTrackerTest : public ::testing::Test {
 protected:
  // Renders a view and remembers the part versions it was rendered from.
  std::shared_ptr<const DatumSnapshot> Complete(const std::string& id,
                                                const DerivedViewTracker::Ticket& ticket,
                                                const std::vector<std::string>& ids, Parts parts) {
    return tracker_.Complete(id, ticket, ids, std::move(parts),
                             [&](const Parts& used, uint64_t version) {
                               auto view = std::make_shared<DatumSnapshot>();
                               view->data_info_id = id;
                               view->version = version;
                               for (const auto& part : used) {
                                 rendered_from_[view.get()].push_back(part->version);
                               }
                               ++renders_;
                               return view;
                             });
  }
  std::vector<uint64_t> From(const std::shared_ptr<const DatumSnapshot>& view) {
    return rendered_from_[view.get()];
  }

  uint64_t max_seen_ = 0;
  DerivedViewTracker tracker_{[this] { return max_seen_; }};
  std::map<const DatumSnapshot*, std::vector<uint64_t>> rendered_from_;
  int renders_ = 0;
  const std::vector<std::string> ids_{"iface", "app:a"};
};

TEST_F(DerivedViewTrackerTest, PlainDatumPassesThroughUntracked) {
  auto part = Part("plain", 42);
  auto ticket = tracker_.Begin("plain");
  EXPECT_EQ(Complete("plain", ticket, {"plain"}, {part}), part);
  EXPECT_FALSE(tracker_.Tracks("plain"));
  EXPECT_EQ(renders_, 0);
  EXPECT_EQ(tracker_.VersionOf("plain", 42), 42u);
}

// The race behind the stuck interface views: a fetch that began before the
// app part changed finishes after the change was announced.
TEST_F(DerivedViewTrackerTest, FetchBegunBeforeAChangeNeverGetsItsVersion) {
  tracker_.Touch("iface", 100);
  auto before = tracker_.Begin("iface");
  uint64_t announced = tracker_.Touch("iface", 200);  // app:a changed at 200
  EXPECT_GE(announced, 200u);
  auto after = tracker_.Begin("iface");

  // The old fetch lands first, with the app part from before the change.
  auto stale = Complete("iface", before, ids_, {Part("iface", 50), Part("app:a", 150)});
  EXPECT_LT(stale->version, announced);
  // The fresh fetch renders the change at a higher version.
  auto fresh = Complete("iface", after, ids_, {Part("iface", 50), Part("app:a", 200)});
  EXPECT_GT(fresh->version, stale->version);
  EXPECT_GE(fresh->version, announced);
  EXPECT_EQ(From(fresh), (std::vector<uint64_t>{50, 200}));
  // Asked again with nothing new, the same answer (and no new render).
  int renders = renders_;
  auto again =
      Complete("iface", tracker_.Begin("iface"), ids_, {Part("iface", 50), Part("app:a", 200)});
  EXPECT_EQ(again, fresh);
  EXPECT_EQ(renders_, renders);
}

TEST_F(DerivedViewTrackerTest, FetchBegunEarlierThanTheAnswerGetsTheAnswer) {
  tracker_.Touch("iface", 100);
  auto before = tracker_.Begin("iface");
  tracker_.Touch("iface", 200);
  auto after = tracker_.Begin("iface");
  auto fresh = Complete("iface", after, ids_, {Part("iface", 50), Part("app:a", 200)});
  // The old fetch lands last: it must not replace what was answered.
  auto late = Complete("iface", before, ids_, {Part("iface", 50), Part("app:a", 150)});
  EXPECT_EQ(late, fresh);
}

// While a slot has no leader a part can come back empty at version 0; the
// view must not drop the instances it already rendered.
TEST_F(DerivedViewTrackerTest, APartNeverGoesBackToAnOlderVersion) {
  tracker_.Touch("iface", 100);
  auto first =
      Complete("iface", tracker_.Begin("iface"), ids_, {Part("iface", 50), Part("app:a", 200)});
  tracker_.Touch("iface", 300);  // the interface datum changed
  auto next =
      Complete("iface", tracker_.Begin("iface"), ids_, {Part("iface", 300), Part("app:a", 0)});
  EXPECT_EQ(From(next), (std::vector<uint64_t>{300, 200}));
  EXPECT_GT(next->version, first->version);
}

// Same generation, but one fetch's part is newer (its notice is on its way).
TEST_F(DerivedViewTrackerTest, NewerPartInTheSameGenerationGetsAHigherVersion) {
  tracker_.Touch("iface", 100);
  auto ticket = tracker_.Begin("iface");
  auto a = Complete("iface", ticket, ids_, {Part("iface", 50), Part("app:a", 90)});
  auto b = Complete("iface", ticket, ids_, {Part("iface", 50), Part("app:a", 95)});
  EXPECT_GT(b->version, a->version);
  EXPECT_EQ(From(b), (std::vector<uint64_t>{50, 95}));
}

// An interface becomes derived when a revision serving it is learned; it was
// answered before as a plain datum at a version the session had seen.
TEST_F(DerivedViewTrackerTest, ViewBecomingDerivedStartsAboveEverySeenVersion) {
  max_seen_ = 500;
  auto plain = Part("iface", 500);
  EXPECT_EQ(Complete("iface", tracker_.Begin("iface"), {"iface"}, {plain}), plain);
  tracker_.Touch("iface", max_seen_);  // revision learned
  auto derived =
      Complete("iface", tracker_.Begin("iface"), ids_, {Part("iface", 500), Part("app:a", 400)});
  EXPECT_GT(derived->version, 500u);
}

// A plain fetch in flight when the view becomes derived is answered through
// the tracker, so the derived build after it still gets a higher version.
TEST_F(DerivedViewTrackerTest, PlainFetchLandingAfterTheViewBecameDerived) {
  max_seen_ = 500;
  auto plain_ticket = tracker_.Begin("iface");
  tracker_.Touch("iface", max_seen_);
  auto derived_ticket = tracker_.Begin("iface");
  auto plain = Complete("iface", plain_ticket, {"iface"}, {Part("iface", 900)});
  auto derived = Complete("iface", derived_ticket, ids_, {Part("iface", 900), Part("app:a", 400)});
  EXPECT_GT(derived->version, plain->version);
  EXPECT_EQ(From(derived), (std::vector<uint64_t>{900, 400}));
}

TEST_F(DerivedViewTrackerTest, TouchAnnouncesAboveTheLastAnswer) {
  tracker_.Touch("iface", 100);
  auto answer =
      Complete("iface", tracker_.Begin("iface"), ids_, {Part("iface", 300), Part("app:a", 10)});
  EXPECT_GT(tracker_.Touch("iface", 250), answer->version);
  EXPECT_EQ(tracker_.VersionOf("iface", 1), tracker_.Touch("iface", 1));
}

}  // namespace
}  // namespace cairn::cluster
