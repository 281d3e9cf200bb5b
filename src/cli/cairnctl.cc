// cairnctl: command-line client of the Cairn registry.
//
//   cairnctl [--server HOST:PORT[,HOST:PORT...]] [--output table|json]
//            [--cacert CA --cert CERT --key KEY] COMMAND ...
//
// Exit codes: 0 success; 1 refused (server Result/RPC status or local
// validation); 2 usage error; 3 `subscribe --timeout` passed without any push;
// 4 no server reachable / no answer in time (UNAVAILABLE, DEADLINE_EXCEEDED).
// Errors are printed as "error: <CODE_NAME>: <message>" on stderr.
#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "cli/commands.h"

namespace {

using cairn::cli::ClientsFlags;
using cairn::cli::DescribeFlags;
using cairn::cli::GlobalFlags;
using cairn::cli::KeyFlags;
using cairn::cli::ListFlags;
using cairn::cli::PublishFlags;
using cairn::cli::SubscribeFlags;

void AddKeyFlags(CLI::App* cmd, KeyFlags* key) {
  cmd->add_option("DATAID", key->data_id, "data_id of the dataInfoId")->required();
  cmd->add_option("--group", key->group, "group (empty: DEFAULT_GROUP)");
  cmd->add_option("--instance-id", key->instance_id, "instance id (empty: DEFAULT_INSTANCE_ID)");
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the blocked mask and
  // publish/subscribe can wait for the signals synchronously.
  cairn::cli::BlockTerminationSignals();

  CLI::App app{"cairnctl: command-line client of the Cairn registry"};
  app.fallthrough();  // global flags may follow the subcommand
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 ok, 1 refused, 2 usage, 3 subscribe timeout without a push, "
      "4 server unreachable or no answer in time.");
  GlobalFlags global;
  std::vector<std::string> servers = {"127.0.0.1:9600"};
  app.add_option("--server", servers, "registry address(es), HOST:PORT; comma-separated list")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--output", global.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--cacert", global.tls.ca_file,
                 "TLS: CA bundle the server's certificate must chain to (turns TLS on)");
  app.add_option("--cert", global.tls.cert_file, "TLS: client certificate (mTLS), with --key");
  app.add_option("--key", global.tls.key_file, "TLS: private key of --cert");

  PublishFlags publish;
  CLI::App* publish_cmd = app.add_subcommand(
      "publish", "publish DATA under DATAID and stay registered until SIGINT/SIGTERM or --for");
  AddKeyFlags(publish_cmd, &publish.key);
  publish_cmd->add_option("DATA", publish.data, "data entries");
  publish_cmd->add_option("--app", publish.app_name, "app name of the publisher");
  publish_cmd->add_option("--zone", publish.zone, "zone of the publisher");
  publish_cmd->add_option("--attr", publish.attributes, "attribute KEY=VALUE (repeatable)");
  publish_cmd->add_option("--client-id", publish.client_id, "client id sent in Hello")
      ->capture_default_str();
  publish_cmd->add_option("--for", publish.for_seconds, "unregister and exit after SECONDS")
      ->check(CLI::NonNegativeNumber);
  publish_cmd->add_option("--timeout", publish.timeout_seconds, "request timeout in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  SubscribeFlags subscribe;
  CLI::App* subscribe_cmd = app.add_subcommand(
      "subscribe", "print every push for DATAID as one JSON line (proto field names)");
  AddKeyFlags(subscribe_cmd, &subscribe.key);
  subscribe_cmd->add_option("--zone", subscribe.zone, "zone of the subscriber");
  subscribe_cmd->add_option("--scope", subscribe.scope, "zone, datacenter or global")
      ->check(CLI::IsMember({"zone", "datacenter", "global"}))
      ->capture_default_str();
  subscribe_cmd->add_option("--client-id", subscribe.client_id, "client id sent in Hello")
      ->capture_default_str();
  subscribe_cmd->add_flag("--once", subscribe.once, "exit 0 after the first push");
  subscribe_cmd
      ->add_option("--timeout", subscribe.timeout_seconds,
                   "exit after SECONDS: 0 if a push was printed, else 3")
      ->check(CLI::NonNegativeNumber);

  ListFlags list;
  CLI::App* list_cmd = app.add_subcommand("list", "list dataInfoIds with their counts");
  list_cmd->add_option("--prefix", list.prefix, "only data_ids starting with this");
  list_cmd->add_option("--timeout", list.timeout_seconds, "RPC deadline in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  DescribeFlags describe;
  CLI::App* describe_cmd =
      app.add_subcommand("describe", "publishers and subscribers of one dataInfoId");
  AddKeyFlags(describe_cmd, &describe.key);
  describe_cmd->add_option("--timeout", describe.timeout_seconds, "RPC deadline in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  ClientsFlags clients;
  CLI::App* clients_cmd = app.add_subcommand(
      "clients", "registrations of the clients at ADDRESS (\"host\" or \"host:port\")");
  clients_cmd->add_option("ADDRESS", clients.address, "peer address")->required();
  clients_cmd->add_option("--timeout", clients.timeout_seconds, "RPC deadline in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  cairn::cli::XdsFlags xds;
  CLI::App* xds_cmd = app.add_subcommand(
      "xds", "xDS (ADS) clients of the server: nodes, what each asked for and acknowledged");
  xds_cmd->add_option("--node", xds.node_prefix, "only nodes whose id starts with this");
  xds_cmd->add_option("--timeout", xds.timeout_seconds, "RPC deadline in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  cairn::cli::AppQueryFlags apps_flags, app_flags, revision_flags, interface_flags;
  auto timeout = [](CLI::App* cmd, cairn::cli::AppQueryFlags* f) {
    cmd->add_option("--timeout", f->timeout_seconds, "RPC deadline in seconds")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
  };
  CLI::App* apps_cmd = app.add_subcommand("apps", "applications with app-level instances");
  apps_cmd->add_option("--prefix", apps_flags.name, "only app names starting with this");
  timeout(apps_cmd, &apps_flags);
  CLI::App* app_cmd = app.add_subcommand("app", "one application's instances, by revision");
  app_cmd->add_option("APP", app_flags.name, "application name")->required();
  timeout(app_cmd, &app_flags);
  CLI::App* revision_cmd = app.add_subcommand("revision", "one revision's interfaces");
  revision_cmd->add_option("ID", revision_flags.name, "revision id")->required();
  timeout(revision_cmd, &revision_flags);
  CLI::App* interface_cmd =
      app.add_subcommand("interface", "which applications serve an interface");
  interface_cmd->add_option("NAME", interface_flags.name, "interface data id")->required();
  interface_cmd->add_option("--group", interface_flags.group, "group (default DEFAULT_GROUP)");
  interface_cmd->add_option("--instance-id", interface_flags.instance_id, "instance id");
  timeout(interface_cmd, &interface_flags);

  cairn::cli::ClusterFlags cluster_flags, slots_flags;
  auto cluster_options = [](CLI::App* cmd, cairn::cli::ClusterFlags* f) {
    cmd->add_option("--etcd", f->etcd,
                    "etcd endpoints [https://]HOST:PORT[,...] (TLS: --cacert --cert --key)")
        ->required();
    cmd->add_option("--cluster", f->cluster, "cluster name")->capture_default_str();
    cmd->add_option("--timeout", f->timeout_seconds, "etcd request timeout in seconds")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
  };
  CLI::App* cluster_cmd =
      app.add_subcommand("cluster", "cluster mode: members by role and the meta leader (etcd)");
  cluster_options(cluster_cmd, &cluster_flags);
  CLI::App* slots_cmd =
      app.add_subcommand("slots", "cluster mode: the slot table, its epoch and balance (etcd)");
  cluster_options(slots_cmd, &slots_flags);
  slots_cmd->add_flag("--all", slots_flags.all_slots, "also one line per slot");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return cairn::cli::kExitUsage;
  }
  for (const std::string& server : servers) {
    if (!server.empty()) global.servers.push_back(server);
  }
  if (global.servers.empty()) {
    std::fprintf(stderr, "error: --server needs at least one HOST:PORT\n");
    return cairn::cli::kExitUsage;
  }

  if (*publish_cmd) return cairn::cli::RunPublish(global, publish);
  if (*subscribe_cmd) return cairn::cli::RunSubscribe(global, subscribe);
  if (*list_cmd) return cairn::cli::RunList(global, list);
  if (*describe_cmd) return cairn::cli::RunDescribe(global, describe);
  if (*clients_cmd) return cairn::cli::RunClients(global, clients);
  if (*xds_cmd) return cairn::cli::RunXds(global, xds);
  if (*apps_cmd) return cairn::cli::RunApps(global, apps_flags);
  if (*app_cmd) return cairn::cli::RunApp(global, app_flags);
  if (*revision_cmd) return cairn::cli::RunRevision(global, revision_flags);
  if (*interface_cmd) return cairn::cli::RunInterface(global, interface_flags);
  if (*cluster_cmd) return cairn::cli::RunClusterMembers(global, cluster_flags);
  if (*slots_cmd) return cairn::cli::RunSlots(global, slots_flags);
  return cairn::cli::kExitUsage;
}
