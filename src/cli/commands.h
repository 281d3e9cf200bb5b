// The cairnctl commands. Each Run* function returns the process exit code
// (see cli_util.h) and prints its own output and errors.
//
// Thread safety: meant to be called once, from main(), after
// BlockTerminationSignals().
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cli/cli_util.h"

namespace cairn::cli {

struct KeyFlags {
  std::string data_id;
  std::string group;
  std::string instance_id;
};

struct PublishFlags {
  KeyFlags key;
  std::vector<std::string> data;
  std::string app_name;
  std::string zone;
  std::vector<std::string> attributes;  // "key=value"
  std::string client_id = "cairnctl";
  double for_seconds = 0;  // 0: until SIGINT/SIGTERM
  double timeout_seconds = 5;
};

struct SubscribeFlags {
  KeyFlags key;
  std::string zone;
  std::string scope = "datacenter";
  std::string client_id = "cairnctl";
  bool once = false;
  double timeout_seconds = 0;  // 0: until SIGINT/SIGTERM
};

struct ListFlags {
  std::string prefix;
  double timeout_seconds = 5;
};

struct DescribeFlags {
  KeyFlags key;
  double timeout_seconds = 5;
};

struct ClientsFlags {
  std::string address;
  double timeout_seconds = 5;
};

struct XdsFlags {
  std::string node_prefix;
  double timeout_seconds = 5;
};

// apps / app APP / revision ID / interface NAME (application-level discovery).
struct AppQueryFlags {
  std::string name;  // app prefix (apps), app name, revision id or interface data id
  std::string group;
  std::string instance_id;
  double timeout_seconds = 5;
};

// cluster / slots (cluster mode): read etcd directly.
struct ClusterFlags {
  std::string etcd;  // HOST:PORT[,HOST:PORT...]
  std::string cluster = "cairn";
  bool all_slots = false;  // slots: one line per slot too
  double timeout_seconds = 5;
};

int RunClusterMembers(const GlobalFlags& global, const ClusterFlags& flags);
int RunSlots(const GlobalFlags& global, const ClusterFlags& flags);

int RunApps(const GlobalFlags& global, const AppQueryFlags& flags);
int RunApp(const GlobalFlags& global, const AppQueryFlags& flags);
int RunRevision(const GlobalFlags& global, const AppQueryFlags& flags);
int RunInterface(const GlobalFlags& global, const AppQueryFlags& flags);

int RunPublish(const GlobalFlags& global, const PublishFlags& flags);
int RunSubscribe(const GlobalFlags& global, const SubscribeFlags& flags);
int RunList(const GlobalFlags& global, const ListFlags& flags);
int RunDescribe(const GlobalFlags& global, const DescribeFlags& flags);
int RunClients(const GlobalFlags& global, const ClientsFlags& flags);
// xds: one row per ADS stream and resource type (node, type, names, sent and
// acknowledged versions, NACKs); --output json gives the whole answer.
int RunXds(const GlobalFlags& global, const XdsFlags& flags);

}  // namespace cairn::cli
