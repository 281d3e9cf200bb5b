// Authorization policy of the registry: who may publish, subscribe and query
// what (docs/security.md, "Authorization").
//
// A policy is a list of admin identity patterns and an ordered list of rules.
// An admin may do anything. Otherwise the FIRST rule whose ops, identities
// and data_ids all match the request decides (allow or deny). A matching
// rule with `own_app: true` decides only if every app the request claims is
// the caller's own app; if not it is skipped, and when no later rule decides
// the request is denied naming that rule. Nothing matched: denied by the
// implicit rule "no-matching-rule".
//
// Patterns are globs: `*` matches any run of characters (including none and
// '/'); every other character matches itself.
//
// Pure values and functions; a Policy is immutable once built and may be
// read from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/identity.h"

namespace cairn::auth {

enum class Op { kPublish, kSubscribe, kQuery };
std::string_view OpName(Op op);

// What a caller asks to do.
struct Action {
  Op op = Op::kPublish;
  // The dataId acted on: a publisher's or subscriber's key, "app:<APP>" for
  // app-level records and revisions, the key or app of a query ("" for list
  // queries, which only `*` matches).
  std::string_view data_id;
  // The apps the request claims to act for (publish: the dataId's app for
  // "app:<APP>", the record's app_name; revisions: the revision's app).
  std::vector<std::string_view> claimed_apps;
};

struct Decision {
  bool allowed = false;
  std::string rule;    // the deciding rule: a rule name, "admin" or "no-matching-rule"
  std::string reason;  // why, for a denial (names the identity and the request)
};

// Who a rule or the admin list names. Text forms:
//   "*"               any authenticated identity
//   "anonymous"       a caller without a verified certificate
//   "spiffe://GLOB"   SPIFFE ids matching the glob segment by segment
//                     (SegmentGlobMatch: `*` stays within one segment)
//   "app:GLOB"        identities whose app (SPIFFE /app/<app>, or CN) matches
//   "cn:GLOB"         identities whose certificate subject CN matches
//   "admin"           (rules only) identities the admin list names
struct IdentityPattern {
  enum class Kind { kAnyAuthenticated, kAnonymous, kSpiffe, kApp, kCommonName, kAdmin };
  Kind kind = Kind::kAnyAuthenticated;
  std::string glob;  // kSpiffe (the whole id), kApp, kCommonName
  std::string text;  // as written
};

// Parses one identity pattern; `allow_admin` is false in the admin list.
absl::StatusOr<IdentityPattern> ParseIdentityPattern(std::string_view text, bool allow_admin);

struct PolicyRule {
  std::string name;  // [A-Za-z0-9._-]{1,64}: a metric label
  bool allow = true;
  bool ops[3] = {false, false, false};  // indexed by Op
  std::vector<IdentityPattern> identities;
  std::vector<std::string> data_ids;  // globs
  bool own_app = false;
  int line = 0;  // 1-based line in the file, 0 for built-in rules
};

struct Policy {
  std::string source;  // file path, or "built-in default"
  std::vector<IdentityPattern> admins;
  std::vector<PolicyRule> rules;

  bool IsAdmin(const Identity& identity) const;
  Decision Evaluate(const Identity& identity, const Action& action) const;
};

// `*` in `pattern` matches any run of characters; the rest literally.
bool GlobMatch(std::string_view pattern, std::string_view text);

// The same, segment by segment: pattern and text have the same number of
// '/'-separated segments and each matches (a `*` never crosses a '/'). How
// SPIFFE id patterns match, so that spiffe://*/admin/* cannot match
// spiffe://td/app/x/admin/y.
bool SegmentGlobMatch(std::string_view pattern, std::string_view text);

// Parses a policy file's text. Errors name `source`, the line and the key.
absl::StatusOr<Policy> ParsePolicy(std::string_view yaml, std::string_view source);

// Reads and parses a file.
absl::StatusOr<Policy> LoadPolicyFile(const std::string& path);

// The policy when TLS is on and no file is given: admins are
// spiffe://*/admin/*; an identity may publish only its own app's records
// (rule "default-publish-own-app") and may subscribe to anything
// ("default-subscribe"); queries are for admins only.
Policy DefaultPolicy();

}  // namespace cairn::auth
