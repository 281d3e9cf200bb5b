#include "cli/cli_util.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "common/data_info.h"
#include "common/grpc_status.h"
#include "google/protobuf/util/json_util.h"

namespace cairn::cli {

int ReportError(const absl::Status& status) {
  std::fprintf(stderr, "error: %s: %s\n", absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  std::fflush(stderr);
  if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) return kExitUnreachable;
  return kExitRefused;
}

pb::DataInfoKey MakeKey(const std::string& data_id, const std::string& group,
                        const std::string& instance_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  key.set_group(group);
  key.set_instance_id(instance_id);
  return key;
}

std::string KeyText(const pb::DataInfoKey& key) { return DataInfoId(NormalizeKey(key)); }

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return absl::StrCat("{\"error\":\"cannot print ", message.GetTypeName(), "\"}");
  return out;
}

void PrintLine(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    PrintLine(line);
  }
}

absl::Status ExplainConnectFailure(const absl::Status& status, const TlsFiles& tls) {
  if (!absl::IsUnavailable(status) && !absl::IsDeadlineExceeded(status)) return status;
  const char* hint =
      !tls.enabled()
          ? " (if the registry uses TLS, pass --cacert, and --cert/--key when it requires "
            "client certificates)"
      : tls.cert_file.empty()
          ? " (TLS: does the registry require a client certificate (--cert/--key), is it "
            "serving TLS, and does its certificate chain to --cacert and name this address?)"
          : " (TLS: is the registry serving TLS, does its certificate chain to --cacert and name "
            "this address, and was --cert issued by the CA it trusts?)";
  return absl::Status(status.code(), absl::StrCat(status.message(), hint));
}

absl::Status CallUnary(
    const GlobalFlags& global, std::chrono::milliseconds timeout,
    const std::function<grpc::Status(pb::Registry::Stub&, grpc::ClientContext&)>& call) {
  return CallUnaryOnChannel(
      global, timeout,
      [&](const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext& context) {
        auto stub = pb::Registry::NewStub(channel);
        return call(*stub, context);
      });
}

absl::Status CallUnaryOnChannel(
    const GlobalFlags& global, std::chrono::milliseconds timeout,
    const std::function<grpc::Status(const std::shared_ptr<grpc::Channel>&, grpc::ClientContext&)>&
        call) {
  auto credentials = MakeChannelCredentials(global.tls);
  if (!credentials.ok()) return credentials.status();
  absl::Status status = absl::InvalidArgumentError("no server given");
  for (const std::string& server : global.servers) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    status = FromGrpcStatus(call(grpc::CreateChannel(server, *credentials), context));
    if (!absl::IsUnavailable(status)) return status;
    status = absl::UnavailableError(absl::StrCat(server, ": ", status.message()));
  }
  return ExplainConnectFailure(status, global.tls);
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

bool WaitForSignal(std::chrono::milliseconds timeout) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  timeout = std::max(timeout, std::chrono::milliseconds(0));
  timespec ts;
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1000000);
  while (true) {
    int signo = sigtimedwait(&set, nullptr, &ts);
    if (signo > 0) return true;
    if (errno != EINTR) return false;  // EAGAIN: timed out
  }
}

}  // namespace cairn::cli
