// Table tests of the authorization policy: evaluation, the default policy,
// bad files (each error names the line and key), and reloads.
#include "registry/auth/policy.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "registry/auth/authorizer.h"
#include "registry/auth/policy_reloader.h"

namespace cairn::auth {
namespace {

Identity App(const std::string& app, const std::string& td = "cairn.local") {
  return IdentityFromCertificateNames({"spiffe://" + td + "/app/" + app}, "", true);
}
Identity Admin() {
  return IdentityFromCertificateNames({"spiffe://cairn.local/admin/cairnctl"}, "", true);
}
Identity Anonymous() { return Identity{}; }

Action Publish(std::string_view data_id, std::vector<std::string_view> apps) {
  return Action{Op::kPublish, data_id, std::move(apps)};
}
Action Subscribe(std::string_view data_id) { return Action{Op::kSubscribe, data_id, {}}; }
Action Query(std::string_view data_id) { return Action{Op::kQuery, data_id, {}}; }

TEST(GlobMatchTest, Table) {
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  } cases[] = {
      {"*", "", true},
      {"*", "anything/at:all", true},
      {"com.acme.*", "com.acme.Payment", true},
      {"com.acme.*", "com.acme", false},
      {"com.acme.*", "org.acme.Payment", false},
      {"*Payment*", "com.acme.Payment:1.0", true},
      {"a*b*c", "aXbYc", true},
      {"a*b*c", "aXbY", false},
      {"exact", "exact", true},
      {"exact", "exactly", false},
      {"", "", true},
      {"", "x", false},
      {"**", "x", true},
      {"spiffe://*/admin/*", "spiffe://cairn.local/admin/cairnctl", true},
      {"spiffe://*/admin/*", "spiffe://cairn.local/app/admin", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.text), c.match) << c.pattern << " vs " << c.text;
  }
}

TEST(GlobMatchTest, SegmentTable) {
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  } cases[] = {
      {"spiffe://*/admin/*", "spiffe://cairn.local/admin/cairnctl", true},
      {"spiffe://*/admin/*", "spiffe://cairn.local/app/evil/admin/x", false},
      {"spiffe://*/admin/*", "spiffe://cairn.local/admin/a/b", false},
      {"spiffe://*/admin/*", "spiffe://cairn.local/admin", false},
      {"spiffe://cairn.local/app/*", "spiffe://cairn.local/app/app-a", true},
      {"spiffe://cairn.local/app/*", "spiffe://cairn.local/app/app-a/x", false},
      {"spiffe://cairn.local/app/pay*", "spiffe://cairn.local/app/payment", true},
      {"spiffe://cairn.local/app/pay*", "spiffe://other.td/app/payment", false},
      {"a/*/c", "a//c", true},
      {"", "", true},
      {"*", "a/b", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(SegmentGlobMatch(c.pattern, c.text), c.match) << c.pattern << " vs " << c.text;
  }
}

TEST(GlobMatchTest, LongTextIsNotExponential) {
  std::string text(5000, 'a');
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(GlobMatch("*a*a*a*a*a*a*a*b", text));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(DefaultPolicyTest, Table) {
  Policy policy = DefaultPolicy();
  struct Case {
    const char* what;
    Identity identity;
    Action action;
    bool allowed;
    const char* rule;
  } cases[] = {
      {"own app record", App("app-a"), Publish("app:app-a", {"app-a"}), true,
       "default-publish-own-app"},
      {"other app's record", App("app-a"), Publish("app:app-b", {"app-b"}), false,
       "default-publish-own-app"},
      {"own record naming another app", App("app-a"), Publish("app:app-a", {"app-a", "app-b"}),
       false, "default-publish-own-app"},
      {"interface record of its app", App("app-a"), Publish("com.acme.Payment", {"app-a"}), true,
       "default-publish-own-app"},
      {"interface record claiming app-b", App("app-a"), Publish("com.acme.Payment", {"app-b"}),
       false, "default-publish-own-app"},
      {"publish naming no app", App("app-a"), Publish("com.acme.Payment", {}), false,
       "default-publish-own-app"},
      {"subscribe anything", App("app-a"), Subscribe("app:app-b"), true, "default-subscribe"},
      {"subscribe interface", App("app-a"), Subscribe("com.acme.Payment"), true,
       "default-subscribe"},
      {"query needs admin", App("app-a"), Query(""), false, "no-matching-rule"},
      {"admin queries", Admin(), Query(""), true, "admin"},
      {"admin publishes for anyone", Admin(), Publish("app:app-b", {"app-b"}), true, "admin"},
      {"anonymous publishes", Anonymous(), Publish("app:app-a", {"app-a"}), false,
       "no-matching-rule"},
      {"anonymous subscribes", Anonymous(), Subscribe("x"), false, "no-matching-rule"},
      {"admin path in another trust domain (same CA) is admin",
       IdentityFromCertificateNames({"spiffe://other.td/admin/x"}, "", true), Query("x"), true,
       "admin"},
      {"an app whose name only starts like another's", App("app-a-evil"),
       Publish("app:app-a", {"app-a"}), false, "default-publish-own-app"},
      {"admin path deeper under /app is not admin",
       IdentityFromCertificateNames({"spiffe://cairn.local/app/x/admin/y"}, "", true), Query(""),
       false, "no-matching-rule"},
  };
  for (const Case& c : cases) {
    Decision d = policy.Evaluate(c.identity, c.action);
    EXPECT_EQ(d.allowed, c.allowed) << c.what << ": " << d.reason;
    EXPECT_EQ(d.rule, c.rule) << c.what;
    if (!d.allowed) {
      EXPECT_NE(d.reason.find(c.rule), std::string::npos) << c.what << ": " << d.reason;
      EXPECT_NE(d.reason.find(c.identity.Name()), std::string::npos) << c.what << ": " << d.reason;
    }
  }
}

constexpr const char* kPolicy = R"(# test policy
admins:
  - spiffe://cairn.local/admin/*
  - cn:root-operator
rules:
  - name: no-one-publishes-internal
    effect: deny
    ops: [publish]
    identities: ["*"]
    data_ids: ["internal.*"]
  - name: payment-providers
    ops: [publish]
    identities: [app:payment, spiffe://cairn.local/app/payment-canary]
    data_ids: ["com.acme.Payment*", "app:payment"]
  - name: own-app
    ops: publish
    identities: "*"
    data_ids: "*"
    own_app: true
  - name: subscribers
    ops: [subscribe, query]
    identities: [app:*, anonymous]
    data_ids: ["*"]
  - name: ops-team-reads
    ops: [query]
    identities: [admin]
    data_ids: ["*"]
)";

TEST(PolicyFileTest, Table) {
  auto policy = ParsePolicy(kPolicy, "test.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  ASSERT_EQ(policy->rules.size(), 5u);
  EXPECT_EQ(policy->rules[1].line, 11);
  struct Case {
    const char* what;
    Identity identity;
    Action action;
    bool allowed;
    const char* rule;
  } cases[] = {
      {"deny rule wins first", App("app-a"), Publish("internal.x", {"app-a"}), false,
       "no-one-publishes-internal"},
      {"admin beats a deny rule", Admin(), Publish("internal.x", {}), true, "admin"},
      {"cn admin", IdentityFromCertificateNames({}, "root-operator", true), Query(""), true,
       "admin"},
      {"payment app publishes the interface for any app name", App("payment"),
       Publish("com.acme.Payment:1.0", {"payment"}), true, "payment-providers"},
      {"canary by spiffe id", App("payment-canary"), Publish("com.acme.Payment", {"other"}), true,
       "payment-providers"},
      {"other app publishes Payment for itself: own-app allows", App("app-a"),
       Publish("com.acme.Payment", {"app-a"}), true, "own-app"},
      {"other app claims payment", App("app-a"), Publish("com.acme.Payment", {"payment"}), false,
       "own-app"},
      {"anonymous may subscribe here", Anonymous(), Subscribe("x"), true, "subscribers"},
      {"anonymous may not publish", Anonymous(), Publish("x", {"x"}), false, "no-matching-rule"},
      {"query by app", App("app-a"), Query("com.acme.Payment"), true, "subscribers"},
      {"a cn-only identity has the CN as app", IdentityFromCertificateNames({}, "legacy", true),
       Publish("app:legacy", {"legacy"}), true, "own-app"},
  };
  for (const Case& c : cases) {
    Decision d = policy->Evaluate(c.identity, c.action);
    EXPECT_EQ(d.allowed, c.allowed) << c.what << ": " << d.reason;
    EXPECT_EQ(d.rule, c.rule) << c.what << ": " << d.reason;
  }
}

TEST(PolicyFileTest, BadFilesNameTheLineAndKey) {
  struct Case {
    const char* what;
    const char* yaml;
    const char* expected;  // substring of the error
  } cases[] = {
      {"empty", "", "the policy is empty"},
      {"not a mapping", "- a\n- b\n", "a policy is a mapping"},
      {"no rules key", "admins: ['*']\n", "no 'rules' key"},
      {"unknown top key", "rules: []\nrulez: []\n", "p.yaml:2: key: unknown key 'rulez'"},
      {"rules not a list", "rules: {a: 1}\n", "p.yaml:1: rules: expected a list"},
      {"rule not a mapping", "rules:\n  - 5\n", "p.yaml:2: rules[0]: expected a mapping"},
      {"unknown rule key", "rules:\n  - name: a\n    opz: [publish]\n",
       "p.yaml:3: rules[0]: unknown key 'opz'"},
      {"bad op", "rules:\n  - name: a\n    ops: [pubish]\n    identities: '*'\n    data_ids: '*'\n",
       "p.yaml:3: rules[0].ops: 'pubish' is not one of publish, subscribe, query"},
      {"missing name", "rules:\n  - ops: [publish]\n    identities: '*'\n    data_ids: '*'\n",
       "p.yaml:2: rules[0]: a rule needs a name"},
      {"missing ops", "rules:\n  - name: a\n    identities: '*'\n    data_ids: '*'\n",
       "rules[0]: a rule needs ops"},
      {"missing identities", "rules:\n  - name: a\n    ops: publish\n    data_ids: '*'\n",
       "rules[0]: a rule needs identities"},
      {"missing data_ids", "rules:\n  - name: a\n    ops: publish\n    identities: '*'\n",
       "rules[0]: a rule needs data_ids"},
      {"bad rule name", "rules:\n  - name: 'a b'\n", "p.yaml:2: rules[0].name: 'a b' is not"},
      {"reserved name", "rules:\n  - name: admin\n", "rules[0].name: 'admin' is reserved"},
      {"duplicate name",
       "rules:\n  - {name: a, ops: publish, identities: '*', data_ids: '*'}\n"
       "  - {name: a, ops: publish, identities: '*', data_ids: '*'}\n",
       "p.yaml:3: rules[1].name: 'a' names two rules"},
      {"bad identity", "rules:\n  - {name: a, ops: publish, identities: [bob], data_ids: '*'}\n",
       "rules[0].identities: 'bob': not an identity pattern"},
      {"admin in admins", "admins: [admin]\nrules: []\n", "admins: 'admin': 'admin' cannot"},
      {"empty app pattern", "admins: ['app:']\nrules: []\n", "not an identity pattern"},
      {"empty list", "rules:\n  - {name: a, ops: [], identities: '*', data_ids: '*'}\n",
       "rules[0].ops: the list is empty"},
      {"nested list", "rules:\n  - {name: a, ops: [[publish]], identities: '*', data_ids: '*'}\n",
       "rules[0].ops[0]: expected a string"},
      {"empty data id pattern",
       "rules:\n  - {name: a, ops: publish, identities: '*', data_ids: ['']}\n",
       "rules[0].data_ids: '': empty pattern"},
      {"bad effect", "rules:\n  - {name: a, effect: maybe}\n", "rules[0].effect: expected allow"},
      {"bad own_app", "rules:\n  - {name: a, own_app: yes please}\n",
       "rules[0].own_app: expected true or false"},
      {"broken yaml", "rules: [\n  - a\n", "p.yaml:"},
      {"tab indentation", "rules:\n\t- name: a\n", "not valid YAML"},
  };
  for (const Case& c : cases) {
    auto policy = ParsePolicy(c.yaml, "p.yaml");
    ASSERT_FALSE(policy.ok()) << c.what;
    EXPECT_NE(policy.status().message().find(c.expected), std::string::npos)
        << c.what << ": got \"" << policy.status().message() << "\", want \"" << c.expected << "\"";
  }
}

TEST(PolicyFileTest, TooLargeIsRefused) {
  std::string big(5 << 20, '#');
  auto policy = ParsePolicy(big, "big.yaml");
  ASSERT_FALSE(policy.ok());
  EXPECT_NE(policy.status().message().find("limit"), std::string::npos);
}

TEST(PolicyFileTest, ExampleFileParses) {
  auto policy = LoadPolicyFile(std::string(CAIRN_SOURCE_DIR) + "/config/policy.example.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_FALSE(policy->rules.empty());
}

TEST(AuthorizerTest, DenialIsCountedAndNamesTheRule) {
  prometheus::Registry registry;
  auto& family = prometheus::BuildCounter().Name("denied").Help("h").Register(registry);
  Authorizer authorizer(DefaultPolicy(), &family);
  EXPECT_TRUE(authorizer.Check(App("app-a"), Publish("app:app-a", {"app-a"})).ok());
  for (int i = 0; i < 3; ++i) {
    absl::Status s = authorizer.Check(App("app-a"), Publish("app:app-b", {"app-b"}));
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_NE(s.message().find("default-publish-own-app"), std::string::npos) << s;
    EXPECT_NE(s.message().find("spiffe://cairn.local/app/app-a"), std::string::npos) << s;
  }
  EXPECT_EQ(family.Add({{"op", "publish"}, {"rule", "default-publish-own-app"}}).Value(), 3);
  EXPECT_EQ(family.Add({{"op", "subscribe"}, {"rule", "default-subscribe"}}).Value(), 0);
}

TEST(AuthorizerTest, ReplaceChangesTheOutcome) {
  Authorizer authorizer(DefaultPolicy(), nullptr);
  EXPECT_FALSE(authorizer.Check(App("app-a"), Query("")).ok());
  auto policy =
      ParsePolicy("rules:\n  - {name: q, ops: query, identities: '*', data_ids: '*'}\n", "q.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  authorizer.Replace(std::move(*policy));
  EXPECT_TRUE(authorizer.Check(App("app-a"), Query("")).ok());
  EXPECT_FALSE(authorizer.IsAdmin(Admin()));  // no admins in that file
}

class ReloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cairn-policy-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "policy.yaml").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& text) {
    std::string tmp = path_ + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, path_);
  }
  std::filesystem::path dir_;
  std::string path_;
};

constexpr const char* kAllowQueries =
    "rules:\n  - {name: q, ops: query, identities: '*', data_ids: '*'}\n";
constexpr const char* kDenyQueries =
    "rules:\n  - {name: no-q, effect: deny, ops: query, identities: '*', data_ids: '*'}\n";

TEST_F(ReloaderTest, RequestReloadsAtOnceAndBadFileKeepsOld) {
  Write(kDenyQueries);
  const PolicyReloader::FileStamp stamp = PolicyReloader::Stamp(path_);
  auto first = LoadPolicyFile(path_);
  ASSERT_TRUE(first.ok()) << first.status();
  Authorizer authorizer(std::move(*first), nullptr);
  // A long poll: only the explicit request can reload within the test.
  PolicyReloader reloader(path_, authorizer, std::chrono::hours(1), stamp);
  EXPECT_FALSE(authorizer.Check(App("app-a"), Query("")).ok());
  Write(kAllowQueries);
  RequestPolicyReload();
  EXPECT_TRUE(authorizer.Check(App("app-a"), Query("")).ok());
  Write("rules:\n  - {name: broken\n");
  EXPECT_FALSE(reloader.ReloadNow().ok());
  EXPECT_TRUE(authorizer.Check(App("app-a"), Query("")).ok()) << "old policy kept";
  EXPECT_EQ(reloader.reloads(), 1u);
}

TEST_F(ReloaderTest, FileChangeIsPickedUpByThePoll) {
  Write(kDenyQueries);
  const PolicyReloader::FileStamp stamp = PolicyReloader::Stamp(path_);
  auto first = LoadPolicyFile(path_);
  ASSERT_TRUE(first.ok());
  Authorizer authorizer(std::move(*first), nullptr);
  PolicyReloader reloader(path_, authorizer, std::chrono::milliseconds(20), stamp);
  Write(kAllowQueries);
  bool allowed = false;
  for (int i = 0; i < 250 && !allowed; ++i) {  // at most 5 s
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    allowed = authorizer.Check(App("app-a"), Query("")).ok();
  }
  EXPECT_TRUE(allowed);
  EXPECT_EQ(reloader.reloads(), 1u);
}

// The file is replaced after startup read it but before the reloader began
// watching: the first poll still picks the new version up (the reloader
// compares with the version that was read, not the one it first sees).
TEST_F(ReloaderTest, FileReplacedDuringStartupIsReloaded) {
  Write(kDenyQueries);
  const PolicyReloader::FileStamp stamp = PolicyReloader::Stamp(path_);
  auto first = LoadPolicyFile(path_);
  ASSERT_TRUE(first.ok());
  Authorizer authorizer(std::move(*first), nullptr);
  Write(kAllowQueries);
  PolicyReloader reloader(path_, authorizer, std::chrono::milliseconds(20), stamp);
  bool allowed = false;
  for (int i = 0; i < 250 && !allowed; ++i) {  // at most 5 s
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    allowed = authorizer.Check(App("app-a"), Query("")).ok();
  }
  EXPECT_TRUE(allowed);
}

}  // namespace
}  // namespace cairn::auth
