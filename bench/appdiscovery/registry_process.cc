#include "registry_process.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cairn/registry/v1/registry.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cairn::bench {
namespace {

namespace pb = ::cairn::registry::v1;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::unique_ptr<pb::Registry::Stub> NewStub(const std::string& target) {
  return pb::Registry::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RegistryProcess>> RegistryProcess::Start(const std::string& bin_dir,
                                                                        const std::string& tag) {
  std::unique_ptr<RegistryProcess> r(new RegistryProcess());
  r->dir_ = std::make_unique<ScratchDir>("appdisc-" + tag);
  if (r->dir_->path().empty()) return absl::InternalError("cannot create a scratch dir");
  std::string ready = r->dir_->File("ready");
  // Defaults otherwise (keepalive, push retries, revision GC): the figures are
  // those of the registry as shipped. The full interface-level fleet keeps
  // about 4,000 registrations per stream, well under the default cap.
  std::vector<std::string> argv = {
      bin_dir + "/cairn", "registry",    "--listen",    "127.0.0.1:0",
      "--admin",          "127.0.0.1:0", "--data-dir",  r->dir_->File("data"),
      "--ready-file",     ready,         "--log-level", "warn"};
  auto process = ServerProcess::Start(argv, r->dir_->File("log"));
  if (!process.ok()) return process.status();
  r->process_ = std::move(*process);
  // The server renames the ready file into place: once it exists it is whole.
  auto deadline = std::chrono::steady_clock::now() + seconds(30);
  while (!std::filesystem::exists(ready) && r->process_->Running() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  std::ifstream in(ready);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("grpc=", 0) == 0) r->grpc_address_ = line.substr(5);
    if (line.rfind("admin=", 0) == 0) {
      auto colon = line.rfind(':');
      uint32_t port = 0;
      if (colon != std::string::npos && absl::SimpleAtoi(line.substr(colon + 1), &port)) {
        r->admin_port_ = static_cast<uint16_t>(port);
      }
    }
  }
  if (r->grpc_address_.empty() || r->admin_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cairn registry did not start; log:\n", r->process_->LogTail()));
  }
  return r;
}

RegistryProcess::~RegistryProcess() {
  process_.reset();  // stop it before its data dir goes
  dir_.reset();
}

absl::StatusOr<std::map<std::string, double>> RegistryProcess::ScrapeMetrics() const {
  auto reply =
      TcpExchange(admin_port_, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", seconds(10));
  if (!reply.ok()) return reply.status();
  auto body_at = reply->find("\r\n\r\n");
  if (reply->rfind("HTTP/1.", 0) != 0 || reply->find(" 200 ") == std::string::npos ||
      body_at == std::string::npos) {
    return absl::UnavailableError(absl::StrCat("bad /metrics reply: ", reply->substr(0, 200)));
  }
  std::map<std::string, double> samples;
  std::istringstream body(reply->substr(body_at + 4));
  std::string line;
  while (std::getline(body, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    double value = 0;
    if (space == std::string::npos || !absl::SimpleAtod(line.substr(space + 1), &value)) continue;
    samples[line.substr(0, space)] = value;
  }
  return samples;
}

absl::StatusOr<RegistryCounts> RegistryProcess::Count() const {
  auto stub = NewStub(grpc_address_);
  RegistryCounts counts;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + seconds(60));
    pb::ListDataInfosResponse response;
    grpc::Status s = stub->ListDataInfos(&context, pb::ListDataInfosRequest(), &response);
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("ListDataInfos: ", s.error_message()));
    for (const auto& info : response.data_infos()) {
      counts.publishers += info.publishers();
      counts.subscribers += info.subscribers();
      ++counts.datums;
    }
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(60));
  pb::ListAppsResponse response;
  grpc::Status s = stub->ListApps(&context, pb::ListAppsRequest(), &response);
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("ListApps: ", s.error_message()));
  std::set<std::string> revisions;
  for (const auto& app : response.apps()) {
    revisions.insert(app.revisions().begin(), app.revisions().end());
  }
  counts.revisions = static_cast<int64_t>(revisions.size());
  return counts;
}

}  // namespace cairn::bench
