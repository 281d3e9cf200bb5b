#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "sidecar/registry/registry_link.h"

namespace cairn::sidecar {
namespace {

constexpr char kModuleName[] = "libcairn_sidecar_registry.so";

std::vector<std::filesystem::path> ModuleCandidates() {
  std::vector<std::filesystem::path> paths;
  if (const char* dir = std::getenv("CAIRN_MODULE_DIR"); dir != nullptr && *dir != '\0') {
    paths.push_back(std::filesystem::path(dir) / kModuleName);
  }
  std::error_code ec;
  auto exe = std::filesystem::canonical("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back(exe.parent_path().parent_path() / "lib" / "cairn" / kModuleName);
    paths.push_back(exe.parent_path() / kModuleName);
  }
  return paths;
}

// dlopen once per process; the module stays mapped until exit (unloading a
// library that started gRPC threads is unsafe).
absl::StatusOr<CreateRegistryLinkFn> LoadModule() {
  static std::mutex mu;
  static CreateRegistryLinkFn create = nullptr;
  std::lock_guard lock(mu);
  if (create != nullptr) return create;
  std::string tried;
  for (const auto& path : ModuleCandidates()) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      absl::StrAppend(&tried, tried.empty() ? "" : ", ", path.string(), " (missing)");
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      absl::StrAppend(&tried, tried.empty() ? "" : ", ", path.string(), " (", dlerror(), ")");
      continue;
    }
    auto* fn = reinterpret_cast<CreateRegistryLinkFn>(dlsym(handle, kCreateRegistryLinkSymbol));
    if (fn == nullptr) {
      absl::StrAppend(&tried, tried.empty() ? "" : ", ", path.string(), " (no ",
                      kCreateRegistryLinkSymbol, ")");
      continue;
    }
    create = fn;
    return create;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("the registry module is not installed; tried: ", tried));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RegistryLink>> LoadRegistryLink(const RegistryLinkOptions& options) {
  auto create = LoadModule();
  if (!create.ok()) return create.status();
  std::string error;
  RegistryLink* link = (*create)(options, &error);
  if (link == nullptr) return absl::InvalidArgumentError(absl::StrCat("registry client: ", error));
  return std::unique_ptr<RegistryLink>(link);
}

}  // namespace cairn::sidecar
