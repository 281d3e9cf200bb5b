// AppDiscovery over the real data role: revisions, the interface -> apps
// index, derived interface and app datums, dedup, versions, GC, durability.
#include "registry/app/app_discovery.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "registry/app/app_model.h"
#include "registry/data/local_data_server.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

constexpr char kIface[] = "com.foo.Bar:1.0";
constexpr char kOther[] = "com.foo.Baz:1.0";

class RecordingListener : public DataChangeListener {
 public:
  void OnDatumChanged(const std::string& id, uint64_t version) override {
    changes.emplace_back(id, version);
  }
  std::vector<std::pair<std::string, uint64_t>> changes;
};

pb::RevisionMeta Revision(const std::string& app_name, std::vector<std::string> interfaces) {
  pb::RevisionMeta meta;
  meta.set_app_name(app_name);
  for (const std::string& name : interfaces) {
    pb::InterfaceMeta* iface = meta.add_interfaces();
    iface->mutable_key()->set_data_id(name);
    (*iface->mutable_params())["protocol"] = "bolt";
    (*iface->mutable_params())["weight"] = "100";
  }
  meta.set_revision(app::ContentRevisionId(meta));
  return meta;
}

std::string IdOf(const std::string& data_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  return DataInfoId(NormalizeKey(key));
}

std::shared_ptr<PublisherRecord> Record(const pb::DataInfoKey& raw_key, const std::string& reg_id,
                                        std::vector<std::string> data, const std::string& app_name,
                                        uint64_t version = 1) {
  auto r = std::make_shared<PublisherRecord>();
  r->datum = MakeDatumId(NormalizeKey(raw_key));
  r->registration_id = reg_id;
  r->version = version;
  r->data = std::move(data);
  r->app_name = app_name;
  r->zone = "z1";
  r->owner = std::make_shared<const OwnerRef>(OwnerRef{"local", 1, "client", "ipv4:127.0.0.1:1"});
  return r;
}

std::shared_ptr<PublisherRecord> InterfacePublisher(const std::string& reg_id,
                                                    const std::string& url,
                                                    const std::string& app_name = "shop") {
  pb::DataInfoKey key;
  key.set_data_id(kIface);
  return Record(key, reg_id, {url}, app_name);
}

std::shared_ptr<PublisherRecord> Instance(const std::string& reg_id, const std::string& endpoint,
                                          const std::string& revision,
                                          const std::string& app_name = "shop") {
  auto r = Record(app::AppKey(app_name), reg_id, {endpoint}, app_name);
  r->attributes[std::string(app::kRevisionAttribute)] = revision;
  return r;
}

std::vector<std::string> AllData(const DatumSnapshot& snapshot) {
  std::vector<std::string> out;
  for (const auto& p : snapshot.publishers) out.insert(out.end(), p->data.begin(), p->data.end());
  std::sort(out.begin(), out.end());
  return out;
}

class AppDiscoveryTest : public ::testing::Test {
 protected:
  AppDiscoveryTest() : loop_("test"), data_(16, *VersionClock::Open(nullptr)) {
    AppDiscoveryOptions options;
    options.revision_gc_after = milliseconds(1000);
    apps_ = *AppDiscovery::Create(loop_, data_, nullptr, options);
    apps_->AddListener(&listener_);
  }
  ~AppDiscoveryTest() override { apps_->RemoveListener(&listener_); }

  absl::Status Register(const pb::RevisionMeta& meta) {
    absl::Status out = absl::UnknownError("no callback");
    apps_->RegisterRevision(meta, [&out](absl::Status s) { out = s; });
    return out;
  }
  absl::StatusOr<uint64_t> Publish(std::shared_ptr<PublisherRecord> r) {
    absl::StatusOr<uint64_t> out = absl::UnknownError("no callback");
    apps_->Publish(std::move(r), [&out](absl::StatusOr<uint64_t> v) { out = v; });
    return out;
  }
  void Unpublish(const PublisherRecord& r) {
    apps_->Unpublish(r.data_info_id(), r.registration_id, *r.owner,
                     [](absl::StatusOr<uint64_t>) {});
  }
  std::shared_ptr<const DatumSnapshot> Fetch(const std::string& id) {
    std::shared_ptr<const DatumSnapshot> out;
    apps_->Fetch(id, [&out](std::shared_ptr<const DatumSnapshot> s) { out = std::move(s); });
    return out;
  }

  EventLoop loop_;
  LocalDataServer data_;
  std::unique_ptr<AppDiscovery> apps_;
  RecordingListener listener_;
};

TEST(AppModelTest, RevisionIdIsAContentHashIndependentOfOrder) {
  pb::RevisionMeta a = Revision("shop", {kIface, kOther});
  pb::RevisionMeta b = Revision("shop", {kOther, kIface});
  EXPECT_EQ(app::ContentRevisionId(a), app::ContentRevisionId(b));
  EXPECT_EQ(a.revision().size(), 64u);
  (*b.mutable_interfaces(0)->mutable_params())["weight"] = "50";
  EXPECT_NE(app::ContentRevisionId(a), app::ContentRevisionId(b));
}

TEST(AppModelTest, RendersEndpointWithSortedEncodedParams) {
  auto urls = app::RenderInterfaceUrls({"bolt://10.0.0.1:12200", "h2://10.0.0.1:8080"},
                                       {{"protocol", "bolt"}, {"group", "a&b"}, {"weight", "100"}});
  ASSERT_EQ(urls.size(), 1u);
  EXPECT_EQ(urls[0], "bolt://10.0.0.1:12200?group=a%26b&protocol=bolt&weight=100");
  EXPECT_EQ(app::EndpointKey(urls[0]), "bolt://10.0.0.1:12200");
}

TEST(AppModelTest, ValidationRefusesBadRevisions) {
  pb::RevisionMeta meta = Revision("shop", {kIface});
  EXPECT_TRUE(app::ValidateRevision(meta).ok());
  pb::RevisionMeta bad = meta;
  bad.set_app_name("");
  EXPECT_EQ(app::ValidateRevision(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = meta;
  bad.set_revision(std::string(200, 'a'));
  EXPECT_EQ(app::ValidateRevision(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = meta;
  bad.set_revision("has space");
  EXPECT_EQ(app::ValidateRevision(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = meta;
  bad.clear_interfaces();
  EXPECT_EQ(app::ValidateRevision(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = meta;
  for (size_t i = 0; i <= app::kMaxInterfaces; ++i) {
    bad.add_interfaces()->mutable_key()->set_data_id("i" + std::to_string(i));
  }
  EXPECT_EQ(app::ValidateRevision(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = meta;
  *bad.add_interfaces() = meta.interfaces(0);  // twice
  EXPECT_EQ(app::ValidateRevision(bad).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AppDiscoveryTest, RevisionsAreImmutable) {
  pb::RevisionMeta meta = Revision("shop", {kIface});
  ASSERT_TRUE(Register(meta).ok());
  EXPECT_TRUE(Register(meta).ok());  // idempotent
  pb::RevisionMeta other = Revision("shop", {kOther});
  other.set_revision(meta.revision());
  EXPECT_EQ(Register(other).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(AppDiscoveryTest, InstanceWithUnknownRevisionIsRefused) {
  auto status = Publish(Instance("i1", "bolt://10.0.0.1:12200", "nope"));
  EXPECT_EQ(status.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.status().message().find("register the revision first"), std::string::npos);
  pb::RevisionMeta meta = Revision("other-app", {kIface});
  ASSERT_TRUE(Register(meta).ok());
  EXPECT_EQ(Publish(Instance("i1", "bolt://10.0.0.1:12200", meta.revision())).status().code(),
            absl::StatusCode::kInvalidArgument);  // revision of another app
  auto no_rev = Instance("i1", "bolt://10.0.0.1:12200", "");
  no_rev->attributes.clear();
  EXPECT_EQ(Publish(no_rev).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AppDiscoveryTest, InterfaceDatumIsDerivedFromAppInstances) {
  pb::RevisionMeta meta = Revision("shop", {kIface});
  ASSERT_TRUE(Register(meta).ok());
  listener_.changes.clear();
  ASSERT_TRUE(Publish(Instance("i1", "bolt://10.0.0.1:12200", meta.revision())).ok());
  // Both the app datum and the interface it serves changed.
  bool iface_changed = false;
  for (const auto& [id, v] : listener_.changes) iface_changed |= id == IdOf(kIface);
  EXPECT_TRUE(iface_changed);
  auto snap = Fetch(IdOf(kIface));
  EXPECT_EQ(AllData(*snap),
            std::vector<std::string>{"bolt://10.0.0.1:12200?protocol=bolt&weight=100"});
  EXPECT_GT(snap->version, 0u);
  EXPECT_TRUE(Fetch(IdOf(kOther))->publishers.empty());
  auto index = apps_->DescribeInterface([] {
    pb::DescribeInterfaceRequest r;
    r.mutable_key()->set_data_id(kIface);
    return r;
  }());
  ASSERT_TRUE(index.ok());
  ASSERT_EQ(index->apps_size(), 1);
  EXPECT_EQ(index->apps(0).app_name(), "shop");
  EXPECT_EQ(index->apps(0).instances(), 1u);
}

TEST_F(AppDiscoveryTest, UnionIsDeduplicatedByEndpoint) {
  pb::RevisionMeta meta = Revision("shop", {kIface});
  ASSERT_TRUE(Register(meta).ok());
  ASSERT_TRUE(Publish(InterfacePublisher("p1", "bolt://10.0.0.1:12200?weight=100")).ok());
  ASSERT_TRUE(Publish(InterfacePublisher("p2", "bolt://10.0.0.2:12200?weight=100")).ok());
  ASSERT_TRUE(Publish(Instance("i1", "bolt://10.0.0.1:12200", meta.revision())).ok());
  ASSERT_TRUE(Publish(Instance("i3", "bolt://10.0.0.3:12200", meta.revision())).ok());
  auto snap = Fetch(IdOf(kIface));
  EXPECT_EQ(AllData(*snap),
            (std::vector<std::string>{"bolt://10.0.0.1:12200?weight=100",
                                      "bolt://10.0.0.2:12200?weight=100",
                                      "bolt://10.0.0.3:12200?protocol=bolt&weight=100"}));
  // The app datum shows its instances plus the interface-level publisher
  // not already covered by an instance.
  auto app_snap = Fetch(DataInfoId(app::AppKey("shop")));
  EXPECT_EQ(AllData(*app_snap),
            (std::vector<std::string>{"bolt://10.0.0.1:12200", "bolt://10.0.0.2:12200?weight=100",
                                      "bolt://10.0.0.3:12200"}));
}

// The rolling-migration order, one instance: publish app-level, then drop
// the interface-level publisher; and the reverse. Every intermediate state
// keeps the provider and every change gets a higher version.
TEST_F(AppDiscoveryTest, MigrationStepsNeverDropTheProvider) {
  pb::RevisionMeta meta = Revision("shop", {kIface});
  ASSERT_TRUE(Register(meta).ok());
  auto legacy = InterfacePublisher("p1", "bolt://10.0.0.1:12200?weight=100");
  ASSERT_TRUE(Publish(legacy).ok());
  uint64_t last = Fetch(IdOf(kIface))->version;
  auto check = [&] {
    auto snap = Fetch(IdOf(kIface));
    EXPECT_EQ(AllData(*snap).size(), 1u);
    EXPECT_GT(snap->version, last);
    last = snap->version;
  };
  auto instance = Instance("i1", "bolt://10.0.0.1:12200", meta.revision());
  ASSERT_TRUE(Publish(instance).ok());
  check();
  Unpublish(*legacy);
  check();
  // Back again.
  ASSERT_TRUE(Publish(legacy).ok());
  check();
  Unpublish(*instance);
  check();
  Unpublish(*legacy);
  auto snap = Fetch(IdOf(kIface));
  EXPECT_TRUE(snap->publishers.empty());
  EXPECT_GT(snap->version, last);
}

TEST_F(AppDiscoveryTest, UnreferencedRevisionsAreCollected) {
  pb::RevisionMeta used = Revision("shop", {kIface});
  pb::RevisionMeta unused = Revision("shop", {kOther});
  ASSERT_TRUE(Register(used).ok());
  ASSERT_TRUE(Register(unused).ok());
  auto instance = Instance("i1", "bolt://10.0.0.1:12200", used.revision());
  ASSERT_TRUE(Publish(instance).ok());
  EXPECT_EQ(apps_->CollectGarbage(SteadyNow()), 0u);  // too young
  EXPECT_EQ(apps_->CollectGarbage(SteadyNow() + milliseconds(1500)), 1u);
  EXPECT_EQ(apps_->revision_count(), 1u);
  pb::GetRevisionRequest get;
  get.set_revision(unused.revision());
  EXPECT_EQ(apps_->GetRevision(get).status().code(), absl::StatusCode::kNotFound);
  Unpublish(*instance);
  EXPECT_EQ(apps_->CollectGarbage(SteadyNow() + milliseconds(1500)), 1u);
  EXPECT_EQ(apps_->revision_count(), 0u);
}

TEST_F(AppDiscoveryTest, GetRevisionGivesTheCanonicalRevisionAndContentChecksAreExact) {
  pb::RevisionMeta meta = Revision("shop", {kOther, kIface});  // not in canonical order
  (*meta.mutable_interfaces(0)->mutable_params())["timeout"] = "3000";
  ASSERT_TRUE(Register(meta).ok());
  pb::GetRevisionRequest get;
  get.set_revision(meta.revision());
  auto got = apps_->GetRevision(get);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got->revision().meta(),
                                                                 app::CanonicalRevision(meta)))
      << got->revision().meta().DebugString();
  // Identical content in another order is the same revision; one other
  // param value or another app is not.
  pb::RevisionMeta reordered = meta;
  reordered.mutable_interfaces()->SwapElements(0, 1);
  EXPECT_TRUE(Register(reordered).ok());
  pb::RevisionMeta other_value = meta;
  (*other_value.mutable_interfaces(1)->mutable_params())["weight"] = "99";
  EXPECT_EQ(Register(other_value).code(), absl::StatusCode::kAlreadyExists);
  pb::RevisionMeta other_app = meta;
  other_app.set_app_name("cart");
  EXPECT_EQ(Register(other_app).code(), absl::StatusCode::kAlreadyExists);
}

// Two apps serve one interface: the index lists both in name order and
// follows their instances; after both left and their revisions were
// collected, the interface's version still does not go back, and the
// interface can be served again.
TEST_F(AppDiscoveryTest, InterfaceIndexFollowsAppsAndVersionsNeverGoBack) {
  pb::RevisionMeta shop = Revision("shop", {kIface, kOther});
  pb::RevisionMeta cart = Revision("cart", {kIface});
  ASSERT_TRUE(Register(shop).ok());
  ASSERT_TRUE(Register(cart).ok());
  auto shop1 = Instance("s1", "bolt://10.0.0.1:12200", shop.revision(), "shop");
  auto cart1 = Instance("c1", "bolt://10.0.0.2:12200", cart.revision(), "cart");
  ASSERT_TRUE(Publish(shop1).ok());
  ASSERT_TRUE(Publish(cart1).ok());
  auto describe = [this](const char* data_id) {
    pb::DescribeInterfaceRequest r;
    r.mutable_key()->set_data_id(data_id);
    auto out = apps_->DescribeInterface(r);
    EXPECT_TRUE(out.ok());
    std::vector<std::string> apps;
    for (const auto& a : out->apps()) apps.push_back(a.app_name());
    return apps;
  };
  EXPECT_EQ(describe(kIface), (std::vector<std::string>{"cart", "shop"}));
  EXPECT_EQ(describe(kOther), std::vector<std::string>{"shop"});
  auto snap = Fetch(IdOf(kIface));
  EXPECT_EQ(AllData(*snap),
            (std::vector<std::string>{"bolt://10.0.0.1:12200?protocol=bolt&weight=100",
                                      "bolt://10.0.0.2:12200?protocol=bolt&weight=100"}));
  uint64_t last = snap->version;

  Unpublish(*shop1);
  EXPECT_EQ(describe(kIface), std::vector<std::string>{"cart"});
  EXPECT_TRUE(describe(kOther).empty());
  snap = Fetch(IdOf(kIface));
  EXPECT_EQ(AllData(*snap),
            std::vector<std::string>{"bolt://10.0.0.2:12200?protocol=bolt&weight=100"});
  EXPECT_GT(snap->version, last);
  last = snap->version;
  uint64_t other_version = Fetch(IdOf(kOther))->version;
  EXPECT_GT(other_version, 0u);

  Unpublish(*cart1);
  snap = Fetch(IdOf(kIface));
  EXPECT_TRUE(snap->publishers.empty());
  EXPECT_GT(snap->version, last);
  last = snap->version;
  EXPECT_EQ(apps_->CollectGarbage(SteadyNow() + milliseconds(1500)), 2u);
  EXPECT_EQ(Fetch(IdOf(kIface))->version, last);
  EXPECT_EQ(Fetch(IdOf(kOther))->version, other_version);
  EXPECT_TRUE(describe(kIface).empty());

  ASSERT_TRUE(Register(cart).ok());
  ASSERT_TRUE(Publish(cart1).ok());
  snap = Fetch(IdOf(kIface));
  EXPECT_EQ(AllData(*snap),
            std::vector<std::string>{"bolt://10.0.0.2:12200?protocol=bolt&weight=100"});
  EXPECT_GT(snap->version, last);
  EXPECT_EQ(describe(kIface), std::vector<std::string>{"cart"});
}

TEST(AppDiscoveryStoreTest, RevisionsSurviveARestart) {
  std::string dir = ::testing::TempDir() + "/app_discovery_store_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  pb::RevisionMeta meta = Revision("shop", {kIface, kOther});
  {
    auto kv = *OpenSqliteKvStore(dir);
    auto store = NewKvRevisionStore(*kv);
    EventLoop loop("test");
    LocalDataServer data(4, *VersionClock::Open(nullptr));
    auto apps = *AppDiscovery::Create(loop, data, store.get(), {});
    absl::Status status = absl::UnknownError("no callback");
    apps->RegisterRevision(meta, [&status](absl::Status s) { status = s; });
    ASSERT_TRUE(status.ok()) << status;
  }
  auto kv = *OpenSqliteKvStore(dir);
  auto store = NewKvRevisionStore(*kv);
  EventLoop loop("test");
  LocalDataServer data(4, *VersionClock::Open(nullptr));
  auto apps = *AppDiscovery::Create(loop, data, store.get(), {});
  pb::GetRevisionRequest get;
  get.set_revision(meta.revision());
  auto got = apps->GetRevision(get);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(app::SameRevisionContent(got->revision().meta(), meta));
  EXPECT_EQ(got->revision().meta().interfaces_size(), 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cairn
