#include "registry/auth/policy.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cairn::auth {
namespace {

constexpr size_t kMaxPatternBytes = 1024;
constexpr size_t kMaxRules = 10000;
constexpr size_t kMaxListEntries = 10000;
constexpr size_t kMaxPolicyBytes = 4 << 20;
constexpr std::string_view kNoMatchingRule = "no-matching-rule";
constexpr std::string_view kAdminRule = "admin";

// This abseil predates std::string_view interop: StrCat takes absl's.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsRuleNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

absl::Status CheckPatternText(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty pattern");
  if (text.size() > kMaxPatternBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("pattern is ", text.size(), " bytes; the limit is ", kMaxPatternBytes));
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("pattern holds a control character");
    }
  }
  return absl::OkStatus();
}

bool MatchesIdentity(const Policy& policy, const IdentityPattern& p, const Identity& id) {
  using Kind = IdentityPattern::Kind;
  switch (p.kind) {
    case Kind::kAnonymous:
      return !id.authenticated;
    case Kind::kAnyAuthenticated:
      return id.authenticated;
    case Kind::kSpiffe:
      return id.authenticated && !id.spiffe_id.empty() && SegmentGlobMatch(p.glob, id.spiffe_id);
    case Kind::kApp:
      return id.authenticated && !id.app.empty() && GlobMatch(p.glob, id.app);
    case Kind::kCommonName:
      return id.authenticated && !id.common_name.empty() && GlobMatch(p.glob, id.common_name);
    case Kind::kAdmin:
      return policy.IsAdmin(id);
  }
  return false;
}

// Empty when every claimed app is the identity's own; else why not.
std::string OwnAppViolation(const Identity& id, const Action& action) {
  if (id.app.empty()) return absl::StrCat(id.Name(), " names no app");
  if (action.claimed_apps.empty()) return "the request names no app";
  for (std::string_view app : action.claimed_apps) {
    if (app != id.app) {
      return absl::StrCat("it claims app '", A(app), "' but the caller's app is '", id.app, "'");
    }
  }
  return "";
}

std::string Describe(const Identity& id, const Action& action) {
  return absl::StrCat(A(OpName(action.op)), " of '", A(action.data_id), "' by ", id.Name());
}

// ---- parsing

// "<source>:<line>: <what>: <message>" (line 1-based).
absl::Status ErrorAt(std::string_view source, const YAML::Node& node, std::string_view what,
                     std::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(A(source), ":", node.Mark().line + 1, ": ", A(what), ": ", A(message)));
}

absl::StatusOr<std::vector<std::string>> StringList(std::string_view source, const YAML::Node& node,
                                                    std::string_view what) {
  std::vector<std::string> out;
  if (node.IsScalar()) {
    out.push_back(node.Scalar());
    return out;
  }
  if (!node.IsSequence()) return ErrorAt(source, node, what, "expected a string or a list");
  if (node.size() == 0) return ErrorAt(source, node, what, "the list is empty");
  if (node.size() > kMaxListEntries) {
    return ErrorAt(source, node, what, absl::StrCat("more than ", kMaxListEntries, " entries"));
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    if (!item.IsScalar()) {
      return ErrorAt(source, item, absl::StrCat(A(what), "[", i, "]"), "expected a string");
    }
    out.push_back(item.Scalar());
  }
  return out;
}

absl::StatusOr<std::vector<IdentityPattern>> IdentityList(std::string_view source,
                                                          const YAML::Node& node,
                                                          std::string_view what, bool allow_admin) {
  auto texts = StringList(source, node, what);
  if (!texts.ok()) return texts.status();
  std::vector<IdentityPattern> out;
  for (const std::string& text : *texts) {
    auto pattern = ParseIdentityPattern(text, allow_admin);
    if (!pattern.ok()) {
      return ErrorAt(source, node, what,
                     absl::StrCat("'", text, "': ", pattern.status().message()));
    }
    out.push_back(std::move(*pattern));
  }
  return out;
}

absl::StatusOr<bool> Bool(std::string_view source, const YAML::Node& node, std::string_view what) {
  if (node.IsScalar()) {
    const std::string& v = node.Scalar();
    if (v == "true") return true;
    if (v == "false") return false;
  }
  return ErrorAt(source, node, what, "expected true or false");
}

absl::StatusOr<PolicyRule> ParseRule(std::string_view source, const YAML::Node& node,
                                     const std::string& where) {
  if (!node.IsMap()) return ErrorAt(source, node, where, "expected a mapping");
  PolicyRule rule;
  rule.line = node.Mark().line + 1;
  bool has_ops = false, has_identities = false, has_data_ids = false;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) return ErrorAt(source, entry.first, where, "key is not a string");
    const std::string key = entry.first.Scalar();
    const std::string what = absl::StrCat(where, ".", key);
    const YAML::Node& value = entry.second;
    if (key == "name") {
      if (!value.IsScalar()) return ErrorAt(source, value, what, "expected a string");
      rule.name = value.Scalar();
      if (rule.name.empty() || rule.name.size() > 64 ||
          !std::all_of(rule.name.begin(), rule.name.end(), IsRuleNameChar)) {
        return ErrorAt(source, value, what,
                       absl::StrCat("'", rule.name, "' is not 1..64 characters of [A-Za-z0-9._-]"));
      }
      if (rule.name == kAdminRule || rule.name == kNoMatchingRule) {
        return ErrorAt(source, value, what, absl::StrCat("'", rule.name, "' is reserved"));
      }
    } else if (key == "effect") {
      std::string effect = value.IsScalar() ? value.Scalar() : "";
      if (effect != "allow" && effect != "deny") {
        return ErrorAt(source, value, what, "expected allow or deny");
      }
      rule.allow = effect == "allow";
    } else if (key == "ops") {
      auto ops = StringList(source, value, what);
      if (!ops.ok()) return ops.status();
      for (const std::string& op : *ops) {
        if (op == "publish") {
          rule.ops[static_cast<int>(Op::kPublish)] = true;
        } else if (op == "subscribe") {
          rule.ops[static_cast<int>(Op::kSubscribe)] = true;
        } else if (op == "query") {
          rule.ops[static_cast<int>(Op::kQuery)] = true;
        } else {
          return ErrorAt(source, value, what,
                         absl::StrCat("'", op, "' is not one of publish, subscribe, query"));
        }
      }
      has_ops = true;
    } else if (key == "identities") {
      auto ids = IdentityList(source, value, what, /*allow_admin=*/true);
      if (!ids.ok()) return ids.status();
      rule.identities = std::move(*ids);
      has_identities = true;
    } else if (key == "data_ids") {
      auto globs = StringList(source, value, what);
      if (!globs.ok()) return globs.status();
      for (const std::string& glob : *globs) {
        if (auto s = CheckPatternText(glob); !s.ok()) {
          return ErrorAt(source, value, what, absl::StrCat("'", glob, "': ", s.message()));
        }
      }
      rule.data_ids = std::move(*globs);
      has_data_ids = true;
    } else if (key == "own_app") {
      auto own = Bool(source, value, what);
      if (!own.ok()) return own.status();
      rule.own_app = *own;
    } else {
      return ErrorAt(source, entry.first, where,
                     absl::StrCat("unknown key '", key,
                                  "' (name, effect, ops, identities, data_ids, own_app)"));
    }
  }
  if (rule.name.empty()) return ErrorAt(source, node, where, "a rule needs a name");
  if (!has_ops) return ErrorAt(source, node, where, "a rule needs ops");
  if (!has_identities) return ErrorAt(source, node, where, "a rule needs identities");
  if (!has_data_ids) return ErrorAt(source, node, where, "a rule needs data_ids");
  return rule;
}

absl::StatusOr<Policy> ParseRoot(std::string_view source, const YAML::Node& root) {
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(A(source), ": a policy is a mapping with the keys admins and rules"));
  }
  Policy policy;
  policy.source = std::string(source);
  bool has_rules = false;
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) return ErrorAt(source, entry.first, "key", "not a string");
    const std::string key = entry.first.Scalar();
    if (key == "admins") {
      if (entry.second.IsSequence() && entry.second.size() == 0) continue;  // `admins: []`
      auto admins = IdentityList(source, entry.second, "admins", /*allow_admin=*/false);
      if (!admins.ok()) return admins.status();
      policy.admins = std::move(*admins);
    } else if (key == "rules") {
      const YAML::Node& rules = entry.second;
      if (!rules.IsSequence()) return ErrorAt(source, rules, "rules", "expected a list of rules");
      if (rules.size() > kMaxRules) {
        return ErrorAt(source, rules, "rules", absl::StrCat("more than ", kMaxRules, " rules"));
      }
      std::set<std::string> names;
      for (size_t i = 0; i < rules.size(); ++i) {
        auto rule = ParseRule(source, rules[i], absl::StrCat("rules[", i, "]"));
        if (!rule.ok()) return rule.status();
        if (!names.insert(rule->name).second) {
          return ErrorAt(source, rules[i], absl::StrCat("rules[", i, "].name"),
                         absl::StrCat("'", rule->name, "' names two rules"));
        }
        policy.rules.push_back(std::move(*rule));
      }
      has_rules = true;
    } else {
      return ErrorAt(source, entry.first, "key",
                     absl::StrCat("unknown key '", key, "' (admins, rules)"));
    }
  }
  if (!has_rules) {
    return absl::InvalidArgumentError(
        absl::StrCat(A(source), ": no 'rules' key (write `rules: []` to allow only the admins)"));
  }
  return policy;
}

}  // namespace

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kPublish:
      return "publish";
    case Op::kSubscribe:
      return "subscribe";
    case Op::kQuery:
      return "query";
  }
  return "?";
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Iterative matcher with one backtrack point (the last '*'): linear in
  // practice, never exponential.
  size_t p = 0, t = 0;
  size_t star = std::string_view::npos, star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_text = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool SegmentGlobMatch(std::string_view pattern, std::string_view text) {
  while (true) {
    size_t p_slash = pattern.find('/');
    size_t t_slash = text.find('/');
    if ((p_slash == std::string_view::npos) != (t_slash == std::string_view::npos)) return false;
    if (!GlobMatch(pattern.substr(0, p_slash), text.substr(0, t_slash))) return false;
    if (p_slash == std::string_view::npos) return true;
    pattern.remove_prefix(p_slash + 1);
    text.remove_prefix(t_slash + 1);
  }
}

absl::StatusOr<IdentityPattern> ParseIdentityPattern(std::string_view text, bool allow_admin) {
  if (auto s = CheckPatternText(text); !s.ok()) return s;
  IdentityPattern p;
  p.text = std::string(text);
  using Kind = IdentityPattern::Kind;
  if (text == "*") {
    p.kind = Kind::kAnyAuthenticated;
  } else if (text == "anonymous") {
    p.kind = Kind::kAnonymous;
  } else if (text == "admin") {
    if (!allow_admin) return absl::InvalidArgumentError("'admin' cannot name an admin");
    p.kind = Kind::kAdmin;
  } else if (text.starts_with("spiffe://")) {
    p.kind = Kind::kSpiffe;
    p.glob = std::string(text);
  } else if (text.starts_with("app:") && text.size() > 4) {
    p.kind = Kind::kApp;
    p.glob = std::string(text.substr(4));
  } else if (text.starts_with("cn:") && text.size() > 3) {
    p.kind = Kind::kCommonName;
    p.glob = std::string(text.substr(3));
  } else {
    return absl::InvalidArgumentError(
        "not an identity pattern (*, anonymous, admin, spiffe://..., app:NAME, cn:NAME)");
  }
  return p;
}

bool Policy::IsAdmin(const Identity& identity) const {
  for (const IdentityPattern& p : admins) {
    if (MatchesIdentity(*this, p, identity)) return true;
  }
  return false;
}

Decision Policy::Evaluate(const Identity& identity, const Action& action) const {
  if (IsAdmin(identity)) return Decision{true, std::string(kAdminRule), ""};
  const PolicyRule* unmet = nullptr;
  std::string unmet_reason;
  for (const PolicyRule& rule : rules) {
    if (!rule.ops[static_cast<int>(action.op)]) continue;
    bool data_matches = false;
    for (const std::string& glob : rule.data_ids) {
      if (GlobMatch(glob, action.data_id)) {
        data_matches = true;
        break;
      }
    }
    if (!data_matches) continue;
    bool identity_matches = false;
    for (const IdentityPattern& p : rule.identities) {
      if (MatchesIdentity(*this, p, identity)) {
        identity_matches = true;
        break;
      }
    }
    if (!identity_matches) continue;
    if (rule.own_app) {
      std::string violation = OwnAppViolation(identity, action);
      if (!violation.empty()) {
        if (unmet == nullptr) {
          unmet = &rule;
          unmet_reason = std::move(violation);
        }
        continue;
      }
    }
    if (rule.allow) return Decision{true, rule.name, ""};
    return Decision{false, rule.name,
                    absl::StrCat(Describe(identity, action), " denied by rule '", rule.name, "'")};
  }
  if (unmet != nullptr) {
    return Decision{false, unmet->name,
                    absl::StrCat(Describe(identity, action), " denied by rule '", unmet->name,
                                 "' (own_app: ", unmet_reason, ")")};
  }
  return Decision{false, std::string(kNoMatchingRule),
                  absl::StrCat(Describe(identity, action), " denied: no rule of the policy (",
                               source, ") allows it (rule 'no-matching-rule')")};
}

absl::StatusOr<Policy> ParsePolicy(std::string_view yaml, std::string_view source) {
  if (yaml.size() > kMaxPolicyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(A(source), ": the policy is ", yaml.size(),
                                                   " bytes; the limit is ", kMaxPolicyBytes));
  }
  // yaml-cpp reports errors by exception; they stay inside this function.
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsDefined() || root.IsNull()) {
      return absl::InvalidArgumentError(absl::StrCat(A(source), ": the policy is empty"));
    }
    return ParseRoot(source, root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(A(source), ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
}

absl::StatusOr<Policy> LoadPolicyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("policy ", path, ": cannot open the file"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat("policy ", path, ": read error"));
  return ParsePolicy(text.str(), path);
}

Policy DefaultPolicy() {
  Policy policy;
  policy.source = "built-in default";
  policy.admins.push_back(*ParseIdentityPattern("spiffe://*/admin/*", false));
  PolicyRule publish;
  publish.name = "default-publish-own-app";
  publish.ops[static_cast<int>(Op::kPublish)] = true;
  publish.identities.push_back(*ParseIdentityPattern("*", true));
  publish.data_ids = {"*"};
  publish.own_app = true;
  policy.rules.push_back(std::move(publish));
  PolicyRule subscribe;
  subscribe.name = "default-subscribe";
  subscribe.ops[static_cast<int>(Op::kSubscribe)] = true;
  subscribe.identities.push_back(*ParseIdentityPattern("*", true));
  subscribe.data_ids = {"*"};
  policy.rules.push_back(std::move(subscribe));
  return policy;
}

}  // namespace cairn::auth
