// Application-level discovery end to end: the real `cairn registry` process,
// the real C++ RegistryClient (interface-level and app-level), raw gRPC stubs
// for the queries and for bad input.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <set>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "registry/app/app_model.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kIface[] = "com.foo.Bar:1.0";
constexpr int kInstances = 20;

std::string Endpoint(int i) { return "bolt://127.0.0.1:" + std::to_string(20000 + i); }
std::string LegacyUrl(int i) { return Endpoint(i) + "?weight=100"; }

RevisionSpec ShopRevision() {
  return RevisionSpec{"shop", {{Key(kIface), {{"protocol", "bolt"}, {"weight", "100"}}}}, ""};
}

// The endpoints of a push, and whether any endpoint appears twice.
std::multiset<std::string> Endpoints(const pb::Push& push) {
  std::multiset<std::string> out;
  for (const std::string& url : AllData(push)) out.insert(std::string(app::EndpointKey(url)));
  return out;
}

class AppDiscoveryIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(StartServer({})); }
  bool StartServer(std::vector<std::string> flags) {
    flags.insert(flags.end(),
                 {"--keepalive-timeout-ms", "1500", "--min-keepalive-timeout-ms", "500"});
    server_ = std::make_unique<RegistryProcess>(flags);
    bool ok = server_->Start();
    EXPECT_TRUE(ok) << server_->Log();
    if (ok) {
      stub_ = pb::Registry::NewStub(
          grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
    }
    return ok;
  }
  void TearDown() override {
    if (server_ && server_->process() && server_->process()->Running()) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
    }
  }
  std::unique_ptr<RegistryClient> Client(const std::string& id) {
    auto client = MakeClient({server_->grpc_address()}, id);
    EXPECT_NE(client, nullptr);
    EXPECT_TRUE(client->WaitConnected(seconds(10)).ok());
    return client;
  }
  grpc::Status GetRevision(const std::string& id, pb::GetRevisionResponse* out) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + seconds(5));
    pb::GetRevisionRequest request;
    request.set_revision(id);
    return stub_->GetRevision(&context, request, out);
  }

  std::unique_ptr<RegistryProcess> server_;
  std::unique_ptr<pb::Registry::Stub> stub_;
};

TEST_F(AppDiscoveryIntegrationTest, OldInterfaceSubscriberSeesNewAppPublisher) {
  auto provider = Client("provider");
  auto revision = provider->RegisterRevision(ShopRevision());
  ASSERT_TRUE(revision.ok()) << revision.status();
  auto instance = provider->PublishApp({"shop", *revision, {Endpoint(1)}, "", {}});
  ASSERT_TRUE(instance.ok()) << instance.status();

  auto consumer = Client("old-consumer");
  PushCollector pushes;
  auto sub = consumer->Subscribe({Key(kIface)}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(
      pushes.WaitForData({Endpoint(1) + "?protocol=bolt&weight=100"}, seconds(5)).has_value());

  // A second instance and the first one leaving are pushed like any change.
  auto second = provider->PublishApp({"shop", *revision, {Endpoint(2)}, "", {}});
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(pushes
                  .WaitForData({Endpoint(1) + "?protocol=bolt&weight=100",
                                Endpoint(2) + "?protocol=bolt&weight=100"},
                               seconds(5))
                  .has_value());
  ASSERT_TRUE((*instance)->Unregister().ok());
  ASSERT_TRUE(
      pushes.WaitForData({Endpoint(2) + "?protocol=bolt&weight=100"}, seconds(5)).has_value());
  auto all = pushes.All();
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i].version(), all[i - 1].version());
}

TEST_F(AppDiscoveryIntegrationTest, NewAppSubscriberSeesOldInterfacePublisher) {
  auto old_provider = Client("old-provider");
  auto legacy = old_provider->Publish({Key(kIface), {LegacyUrl(1)}, "shop", "", {}});
  ASSERT_TRUE(legacy.ok());

  auto consumer = Client("new-consumer");
  PushCollector pushes;
  auto sub = consumer->SubscribeApp("shop", pushes.Callback());
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto push = pushes.WaitForData({LegacyUrl(1)}, seconds(5));
  ASSERT_TRUE(push.has_value());
  const auto& entry = push->zones(0).publishers(0);
  EXPECT_EQ(entry.attributes().at(std::string(app::kInterfaceAttribute)),
            DataInfoId(NormalizeKey(Key(kIface))));

  // The same instance goes app-level: one entry for the endpoint, now with a
  // revision the subscriber can resolve.
  auto new_provider = Client("new-provider");
  auto revision = new_provider->RegisterRevision(ShopRevision());
  ASSERT_TRUE(revision.ok());
  auto instance = new_provider->PublishApp({"shop", *revision, {Endpoint(1)}, "", {}});
  ASSERT_TRUE(instance.ok());
  push = pushes.WaitForData({Endpoint(1)}, seconds(5));
  ASSERT_TRUE(push.has_value());
  EXPECT_EQ(push->zones(0).publishers(0).attributes().at(std::string(app::kRevisionAttribute)),
            *revision);
  auto meta = consumer->GetRevision(*revision);
  ASSERT_TRUE(meta.ok()) << meta.status();
  ASSERT_EQ(meta->interfaces_size(), 1);
  EXPECT_EQ(meta->interfaces(0).params().at("protocol"), "bolt");
}

// 20 instances move from interface-level to app-level one by one (publish
// app-level, then unregister interface-level), then back (publish
// interface-level, then unregister app-level), while an interface-level and
// an app-level subscriber record every push. No push may miss a live
// provider or list one twice.
TEST_F(AppDiscoveryIntegrationTest, RollingMigrationBothWaysNeverDropsAProvider) {
  std::vector<std::unique_ptr<RegistryClient>> instances;
  std::vector<std::shared_ptr<Publisher>> legacy(kInstances), modern(kInstances);
  std::string revision;
  for (int i = 0; i < kInstances; ++i) {
    instances.push_back(Client("instance-" + std::to_string(i)));
    auto p = instances[i]->Publish({Key(kIface), {LegacyUrl(i)}, "shop", "", {}});
    ASSERT_TRUE(p.ok()) << p.status();
    legacy[i] = *p;
    auto r = instances[i]->RegisterRevision(ShopRevision());
    ASSERT_TRUE(r.ok()) << r.status();
    revision = *r;
  }
  std::multiset<std::string> everyone;
  for (int i = 0; i < kInstances; ++i) everyone.insert(Endpoint(i));

  auto consumer = Client("consumer");
  PushCollector iface_pushes, app_pushes;
  auto iface_sub = consumer->Subscribe({Key(kIface)}, iface_pushes.Callback());
  auto app_sub = consumer->SubscribeApp("shop", app_pushes.Callback());
  ASSERT_TRUE(iface_sub.ok() && app_sub.ok());
  ASSERT_TRUE(
      Eventually([&] { return iface_pushes.Count() > 0 && app_pushes.Count() > 0; }, seconds(5)));

  for (int i = 0; i < kInstances; ++i) {
    auto p = instances[i]->PublishApp({"shop", revision, {Endpoint(i)}, "", {}});
    ASSERT_TRUE(p.ok()) << p.status();
    modern[i] = *p;
    ASSERT_TRUE(legacy[i]->Unregister().ok());
  }
  for (int i = 0; i < kInstances; ++i) {
    auto p = instances[i]->Publish({Key(kIface), {LegacyUrl(i)}, "shop", "", {}});
    ASSERT_TRUE(p.ok()) << p.status();
    legacy[i] = *p;
    ASSERT_TRUE(modern[i]->Unregister().ok());
  }
  // The last state: all interface-level again.
  std::vector<std::string> final_urls;
  for (int i = 0; i < kInstances; ++i) final_urls.push_back(LegacyUrl(i));
  ASSERT_TRUE(iface_pushes.WaitForData(final_urls, seconds(10)).has_value());
  ASSERT_TRUE(app_pushes.WaitForData(final_urls, seconds(10)).has_value());

  for (auto* collector : {&iface_pushes, &app_pushes}) {
    auto all = collector->All();
    ASSERT_GE(all.size(), 2u);
    for (size_t i = 0; i < all.size(); ++i) {
      EXPECT_EQ(Endpoints(all[i]), everyone)
          << "push " << i << " of " << all.size() << " (version " << all[i].version() << ")";
      EXPECT_FALSE(all[i].empty());
      if (i > 0) {
        EXPECT_GT(all[i].version(), all[i - 1].version());
      }
    }
  }
}

TEST_F(AppDiscoveryIntegrationTest, UnreferencedRevisionsAreGarbageCollected) {
  TearDown();
  ASSERT_TRUE(StartServer({"--revision-gc-after-ms", "300"}));
  auto client = Client("gc");
  auto unused = client->RegisterRevision({"shop", {{Key("com.foo.Unused:1.0"), {}}}, ""});
  ASSERT_TRUE(unused.ok());
  auto used = client->RegisterRevision(ShopRevision());
  ASSERT_TRUE(used.ok());
  auto instance = client->PublishApp({"shop", *used, {Endpoint(1)}, "", {}});
  ASSERT_TRUE(instance.ok());
  pb::GetRevisionResponse response;
  ASSERT_TRUE(Eventually(
      [&] { return GetRevision(*unused, &response).error_code() == grpc::StatusCode::NOT_FOUND; },
      seconds(5)));
  std::this_thread::sleep_for(milliseconds(600));
  ASSERT_TRUE(GetRevision(*used, &response).ok());
  EXPECT_EQ(response.revision().instances(), 1u);
  ASSERT_TRUE((*instance)->Unregister().ok());
  EXPECT_TRUE(Eventually(
      [&] { return GetRevision(*used, &response).error_code() == grpc::StatusCode::NOT_FOUND; },
      seconds(5)));
  // A new instance on the collected revision: the client re-sends it.
  auto again = client->PublishApp({"shop", *used, {Endpoint(2)}, "", {}});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(GetRevision(*used, &response).ok());
}

TEST_F(AppDiscoveryIntegrationTest, RestartKeepsRevisions) {
  auto client = Client("restart");
  auto revision = client->RegisterRevision(ShopRevision());
  ASSERT_TRUE(revision.ok());
  client->Close();  // nobody can replay it: it must come from the store
  ASSERT_TRUE(server_->Restart()) << server_->Log();
  stub_ = pb::Registry::NewStub(
      grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
  pb::GetRevisionResponse response;
  grpc::Status status = GetRevision(*revision, &response);
  ASSERT_TRUE(status.ok()) << status.error_message() << server_->Log();
  EXPECT_EQ(response.revision().meta().app_name(), "shop");
  EXPECT_EQ(response.revision().meta().interfaces(0).key().data_id(), kIface);
}

TEST_F(AppDiscoveryIntegrationTest, BadInputGetsClearStatusesAndTheServerKeepsServing) {
  auto client = Client("bad");
  auto unknown = client->PublishApp({"shop", "not-registered", {Endpoint(1)}, "", {}});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(unknown.status().message().find("register the revision first"), std::string::npos);
  // Raw publish to the reserved key without a revision, and bad revisions.
  auto raw = client->Publish({app::AppKey("shop"), {Endpoint(1)}, "", "", {}});
  EXPECT_EQ(raw.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client->RegisterRevision({"bad app", {{Key(kIface), {}}}, ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      client->RegisterRevision({std::string(300, 'a'), {{Key(kIface), {}}}, ""}).status().code(),
      absl::StatusCode::kInvalidArgument);
  RevisionSpec many{"shop", {}, ""};
  for (int i = 0; i < 600; ++i) many.interfaces.push_back({Key("i" + std::to_string(i)), {}});
  EXPECT_EQ(client->RegisterRevision(many).status().code(), absl::StatusCode::kInvalidArgument);
  // Same id, other content: refused by the server (a second client, so the
  // first one's local check does not answer first).
  auto first = client->RegisterRevision({"shop", {{Key(kIface), {}}}, "fixed-id"});
  ASSERT_TRUE(first.ok());
  auto other = Client("other");
  auto clash = other->RegisterRevision({"shop", {{Key("com.foo.Baz:1.0"), {}}}, "fixed-id"});
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists) << clash.status();
  pb::GetRevisionResponse response;
  EXPECT_EQ(GetRevision("", &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GetRevision("unknown", &response).error_code(), grpc::StatusCode::NOT_FOUND);
  // Still serving.
  auto ok = client->RegisterRevision(ShopRevision());
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(client->PublishApp({"shop", *ok, {Endpoint(1)}, "", {}}).ok());
}

TEST_F(AppDiscoveryIntegrationTest, CairnctlAndAdminShowAppsRevisionsAndInterfaces) {
  auto client = Client("ctl");
  auto revision = client->RegisterRevision(ShopRevision());
  ASSERT_TRUE(revision.ok());
  auto instance = client->PublishApp({"shop", *revision, {Endpoint(7)}, "", {}});
  ASSERT_TRUE(instance.ok());
  std::string ctl = BinDir() + "/cairnctl";
  std::string server = server_->grpc_address();
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {ctl, "--server", server});
    return RunCommand(args, seconds(10));
  };
  auto [apps_rc, apps] = run({"apps"});
  EXPECT_EQ(apps_rc, 0) << apps;
  EXPECT_NE(apps.find("shop"), std::string::npos) << apps;
  auto [app_rc, app_out] = run({"app", "shop"});
  EXPECT_EQ(app_rc, 0) << app_out;
  EXPECT_NE(app_out.find(*revision), std::string::npos) << app_out;
  EXPECT_NE(app_out.find(Endpoint(7)), std::string::npos) << app_out;
  auto [rev_rc, rev_out] = run({"revision", *revision});
  EXPECT_EQ(rev_rc, 0) << rev_out;
  EXPECT_NE(rev_out.find(kIface), std::string::npos) << rev_out;
  EXPECT_NE(rev_out.find("protocol=bolt"), std::string::npos) << rev_out;
  auto [if_rc, if_out] = run({"interface", kIface});
  EXPECT_EQ(if_rc, 0) << if_out;
  EXPECT_NE(if_out.find("shop"), std::string::npos) << if_out;
  auto [json_rc, json] = run({"--output", "json", "interface", kIface});
  EXPECT_EQ(json_rc, 0) << json;
  EXPECT_NE(json.find("\"app_name\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"shop\""), std::string::npos) << json;
  auto [missing_rc, missing] = run({"revision", "unknown"});
  EXPECT_NE(missing_rc, 0) << missing;

  std::string base = "http://" + server_->admin_address();
  auto [c1, body] =
      RunCommand({"/usr/bin/curl", "-sS", base + "/api/v1/revision?id=" + *revision}, seconds(10));
  EXPECT_EQ(c1, 0);
  EXPECT_NE(body.find(kIface), std::string::npos) << body;
  auto [c2, apps_json] = RunCommand({"/usr/bin/curl", "-sS", base + "/api/v1/apps"}, seconds(10));
  EXPECT_NE(apps_json.find("\"shop\""), std::string::npos) << apps_json;
  auto [c3, app_json] =
      RunCommand({"/usr/bin/curl", "-sS", base + "/api/v1/app?name=shop"}, seconds(10));
  EXPECT_NE(app_json.find(Endpoint(7)), std::string::npos) << app_json;
  auto [c4, iface_json] = RunCommand(
      {"/usr/bin/curl", "-sS", base + "/api/v1/interface?data_id=" + kIface}, seconds(10));
  EXPECT_NE(iface_json.find("\"shop\""), std::string::npos) << iface_json;
  (void)c2;
  (void)c3;
  (void)c4;
}

}  // namespace
}  // namespace cairn::testing
