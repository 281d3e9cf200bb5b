// SPIFFE ids and certificate names: what parses, what is refused, and which
// app an identity may act as.
#include "common/identity.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(SpiffeIdTest, ParsesTrustDomainAndPath) {
  auto id = ParseSpiffeId("spiffe://cairn.local/app/payment");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->trust_domain, "cairn.local");
  EXPECT_EQ(id->path, "/app/payment");
  EXPECT_EQ(id->ToString(), "spiffe://cairn.local/app/payment");
}

TEST(SpiffeIdTest, RefusesWhatIsNotAWorkloadId) {
  const char* bad[] = {
      "",
      "https://cairn.local/app/a",
      "SPIFFE://cairn.local/app/a",
      "spiffe://",
      "spiffe:///app/a",
      "spiffe://cairn.local",
      "spiffe://cairn.local/",
      "spiffe://Cairn.Local/app/a",
      "spiffe://cairn.local:443/app/a",
      "spiffe://user@cairn.local/app/a",
      "spiffe://cairn.local/app//a",
      "spiffe://cairn.local/app/a/",
      "spiffe://cairn.local/app/../admin/x",
      "spiffe://cairn.local/./app",
      "spiffe://cairn.local/app/a?x=1",
      "spiffe://cairn.local/app/a#frag",
      "spiffe://cairn.local/app/a b",
      "spiffe://cairn.local/app/a%2F",
  };
  for (const char* uri : bad) {
    EXPECT_FALSE(ParseSpiffeId(uri).ok()) << uri;
  }
  EXPECT_FALSE(
      ParseSpiffeId(std::string("spiffe://cairn.local/app/") + std::string(3000, 'a')).ok());
  EXPECT_FALSE(ParseSpiffeId(std::string("spiffe://cairn.local/app/a\0b", 29)).ok());
}

TEST(IdentityTest, AppComesFromAnAppPathOnly) {
  Identity app = IdentityFromCertificateNames({"spiffe://td/app/payment"}, "ignored", true);
  EXPECT_EQ(app.app, "payment");
  EXPECT_EQ(app.Name(), "spiffe://td/app/payment");
  EXPECT_TRUE(app.authenticated);

  Identity admin = IdentityFromCertificateNames({"spiffe://td/admin/cairnctl"}, "cairnctl", true);
  EXPECT_EQ(admin.app, "");
  EXPECT_EQ(admin.path, "/admin/cairnctl");

  Identity deep = IdentityFromCertificateNames({"spiffe://td/app/payment/extra"}, "", true);
  EXPECT_EQ(deep.app, "") << "only /app/<app> names an app";
}

TEST(IdentityTest, OneValidSpiffeUriNamesItElseTheCommonNameWithoutAnySpiffeUri) {
  Identity id = IdentityFromCertificateNames(
      {"https://example.com/x", "spiffe://BAD/app/x", "spiffe://td/app/b"}, "cn-name", true);
  EXPECT_EQ(id.spiffe_id, "spiffe://td/app/b");
  EXPECT_EQ(id.app, "b");

  Identity cn = IdentityFromCertificateNames({"https://example.com/x"}, "billing", true);
  EXPECT_EQ(cn.spiffe_id, "");
  EXPECT_EQ(cn.app, "billing");
  EXPECT_EQ(cn.Name(), "cn=billing");

  Identity none = IdentityFromCertificateNames({}, "", false);
  EXPECT_EQ(none.Name(), "anonymous");
  EXPECT_FALSE(none.authenticated);
  EXPECT_EQ(none.app, "");
}

// A certificate meant to carry a SPIFFE id never falls back to its CN for
// the app: a typo in the URI must not turn a host name into an app.
TEST(IdentityTest, BrokenOrAmbiguousSpiffeUrisNameNoApp) {
  for (const char* uri : {"spiffe://Cairn.local/app/payment", "spiffe://td/app/payment/",
                          "SPIFFE://td/app/payment", "spiffe:td/app/payment"}) {
    Identity id = IdentityFromCertificateNames({uri}, "payment", true);
    EXPECT_EQ(id.spiffe_id, "") << uri;
    EXPECT_EQ(id.app, "") << uri;
    EXPECT_EQ(id.Name(), "cn=payment") << uri;
  }
  Identity two =
      IdentityFromCertificateNames({"spiffe://td/app/a", "spiffe://td/app/b"}, "a", true);
  EXPECT_EQ(two.spiffe_id, "");
  EXPECT_EQ(two.app, "");
  EXPECT_EQ(two.path, "");
}

}  // namespace
}  // namespace cairn
