// CompactRevision: the registry's in-memory form of a revision. It must give
// back exactly the canonical revision it was built from, answer lookups like
// the protobuf would, decide content equality like app::SameRevisionContent,
// and be much smaller than the protobuf.
#include "registry/app/compact_revision.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "registry/app/app_model.h"

namespace cairn::app {
namespace {

using google::protobuf::util::MessageDifferencer;

pb::RevisionMeta Meta() {
  pb::RevisionMeta meta;
  meta.set_revision("rev-1");
  meta.set_app_name("shop");
  // Out of order and with keys not normalized: Build gets the canonical form.
  for (const char* name : {"com.foo.Zeta:1.0", "com.foo.Alpha:1.0", "com.foo.Mid:1.0"}) {
    pb::InterfaceMeta* iface = meta.add_interfaces();
    iface->mutable_key()->set_data_id(name);
    auto& params = *iface->mutable_params();
    params["weight"] = "100";
    params["protocol"] = "bolt";
    params["interface"] = name;
    params["empty"] = "";
  }
  meta.mutable_interfaces(1)->mutable_key()->set_group("G1");
  return meta;
}

// Interns like AppDiscovery: one stable copy per id.
struct Pool {
  std::set<std::string> ids;
  int calls = 0;
  CompactRevision::InternFn Fn() {
    return [this](const std::string& id) {
      ++calls;
      return &*ids.insert(id).first;
    };
  }
};

TEST(CompactRevisionTest, GivesBackTheCanonicalRevisionAndAnswersLookups) {
  pb::RevisionMeta canonical = CanonicalRevision(Meta());
  Pool pool;
  CompactRevision compact = CompactRevision::Build(canonical, pool.Fn());
  EXPECT_EQ(pool.calls, 3);
  ASSERT_EQ(compact.interface_count(), 3u);

  pb::RevisionMeta back = compact.ToMeta("rev-1", "shop");
  EXPECT_TRUE(MessageDifferencer::Equals(back, canonical)) << back.DebugString();

  for (int i = 0; i < canonical.interfaces_size(); ++i) {
    const pb::InterfaceMeta& iface = canonical.interfaces(i);
    std::string id = DataInfoId(iface.key());
    size_t index = static_cast<size_t>(i);
    // The interned copy, in dataInfoId order.
    EXPECT_EQ(compact.interface_id(index), &*pool.ids.find(id));
    EXPECT_EQ(compact.Find(id), i);
    EXPECT_TRUE(compact.Serves(id));
    std::map<std::string, std::string> sorted(iface.params().begin(), iface.params().end());
    std::vector<CompactRevision::Param> expected(sorted.begin(), sorted.end());
    EXPECT_EQ(compact.Params(index), expected);
    // Rendering from the compact params is rendering from the map.
    EXPECT_EQ(RenderInterfaceUrlsFromViews({"bolt://10.0.0.1:12200", "h2://10.0.0.1:8080"},
                                           compact.Params(index)),
              RenderInterfaceUrls({"bolt://10.0.0.1:12200", "h2://10.0.0.1:8080"}, sorted));
  }
  EXPECT_EQ(compact.Find("com.foo.Alpha:1.0"), -1);  // an id, not a data id
  EXPECT_EQ(compact.Find(""), -1);
  EXPECT_EQ(compact.Find("zzz"), -1);
}

TEST(CompactRevisionTest, SameInterfacesIsContentEquality) {
  pb::RevisionMeta meta = Meta();
  Pool pool;
  CompactRevision compact = CompactRevision::Build(CanonicalRevision(meta), pool.Fn());
  // Not canonical (other order, keys not normalized): the same content.
  EXPECT_TRUE(compact.SameInterfaces(meta));
  EXPECT_TRUE(compact.SameInterfaces(CanonicalRevision(meta)));

  std::vector<std::function<void(pb::RevisionMeta&)>> changes = {
      [](pb::RevisionMeta& m) { (*m.mutable_interfaces(0)->mutable_params())["weight"] = "99"; },
      [](pb::RevisionMeta& m) { (*m.mutable_interfaces(0)->mutable_params())["extra"] = "x"; },
      [](pb::RevisionMeta& m) { m.mutable_interfaces(2)->mutable_params()->erase("empty"); },
      [](pb::RevisionMeta& m) { m.mutable_interfaces(2)->mutable_key()->set_group("G2"); },
      [](pb::RevisionMeta& m) { m.mutable_interfaces()->RemoveLast(); },
      [](pb::RevisionMeta& m) {
        pb::InterfaceMeta* extra = m.add_interfaces();
        extra->mutable_key()->set_data_id("com.foo.New:1.0");
      },
      [](pb::RevisionMeta& m) { m.mutable_interfaces(0)->mutable_key()->set_data_id("x:1"); },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    pb::RevisionMeta other = meta;
    changes[i](other);
    EXPECT_FALSE(compact.SameInterfaces(other)) << "change " << i;
    // The same verdict as the content hash comparison the clients use.
    EXPECT_FALSE(SameRevisionContent(other, meta)) << "change " << i;
  }
}

TEST(CompactRevisionTest, IsMuchSmallerThanTheProtobuf) {
  // The shape of the app-discovery bench: 50 interfaces x 7 params, most
  // keys and values shared between interfaces.
  pb::RevisionMeta meta;
  meta.set_revision("rev");
  meta.set_app_name("bench-app-000");
  for (int i = 0; i < 50; ++i) {
    pb::InterfaceMeta* iface = meta.add_interfaces();
    std::string name = absl::StrCat("com.cairn.bench.app000.Service", i);
    iface->mutable_key()->set_data_id(name + ":1.0");
    auto& params = *iface->mutable_params();
    params["appName"] = "bench-app-000";
    params["interface"] = name;
    params["protocol"] = "bolt";
    params["serialization"] = "hessian2";
    params["timeout"] = "3000";
    params["version"] = "1.0";
    params["weight"] = "100";
  }
  pb::RevisionMeta canonical = CanonicalRevision(meta);
  Pool pool;
  CompactRevision compact = CompactRevision::Build(canonical, pool.Fn());
  // Interned ids are the owner's; what is left is smaller than the wire form
  // and a fraction of the parsed protobuf.
  EXPECT_LT(compact.MemoryBytes(), canonical.ByteSizeLong());
  EXPECT_LT(compact.MemoryBytes() * 5, canonical.SpaceUsedLong());
  EXPECT_TRUE(MessageDifferencer::Equals(compact.ToMeta("rev", "bench-app-000"), canonical));
}

}  // namespace
}  // namespace cairn::app
