#include "registry/xds/xds_part.h"

#include <future>

namespace cairn::xds {

std::unique_ptr<XdsPart> XdsPart::Create(EventLoop& loop, DataService& data,
                                         prometheus::Registry& registry,
                                         auth::Authorizer* authorizer, XdsPartOptions options) {
  if (!options.enabled) return nullptr;
  std::unique_ptr<XdsPart> part(new XdsPart(loop, registry));
  part->server_ = std::make_unique<XdsServer>(loop, data, part->metrics_, options.server);
  part->server_->SetAuthorizer(authorizer);
  part->service_ =
      std::make_unique<XdsGrpcService>(loop, *part->server_, part->metrics_, options.service);
  part->admin_ = std::make_unique<XdsAdminService>(loop, *part->server_, authorizer);
  return part;
}

void XdsPart::Register(grpc::ServerBuilder& builder) {
  builder.RegisterService(service_.get());
  builder.RegisterService(admin_.get());
}

void XdsPart::CloseStreams() {
  std::promise<void> done;
  loop_.Post([this, &done] {
    if (server_) server_->CloseAll();
    done.set_value();
  });
  done.get_future().wait();
}

void XdsPart::DestroyOnLoop() {
  std::promise<void> done;
  loop_.Post([this, &done] {
    server_.reset();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace cairn::xds
