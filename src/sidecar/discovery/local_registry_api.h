// The sidecar's local registration API, served on its admin listener
// (127.0.0.1 by default), for apps that register their interfaces at run
// time instead of in the config: SOFARPC apps in mesh mode
// (@cairn/sofa-registry with `sidecar:`), or any app with an HTTP client.
//
//   POST /registry/publish    {"interface":"com.example.Echo","version":"1.0",
//                              "group":"SOFA","protocol":"bolt","weight":100,
//                              "params":{"serialization":"hessian2"}}
//   POST /registry/unpublish  {"interface":"com.example.Echo","version":"1.0","group":"SOFA"}
//   GET  /registry            the registrar's state (and the outbound feeds')
//
// Keys: `data_id`, or `interface` plus optional `version` (data_id =
// "interface:version", the id SOFARPC gives a service); `group`,
// `instance_id`; `listener` (which publishing listener serves it; default:
// the first that speaks its protocol). Every other scalar member, and the
// members of `params`, are the interface's params (numbers and booleans as
// written). The answer is 200 with the state once the registry reflects the
// change, 202 with the state when it has not yet after 2 s (it will: the
// registrar retries), 400 for bad JSON or input (with a message), 404 for an
// unknown listener or an interface not published through this API, 409 when
// no listener publishes.
//
// Thread-safety: the handlers run on the admin thread; the registrar is
// thread-safe.
#pragma once

#include <chrono>

#include "core/http/http_request_parser.h"
#include "sidecar/discovery/app_registrar.h"

namespace cairn::sidecar::discovery {

// `publish` selects /registry/publish (true) or /registry/unpublish.
http::Response HandleLocalRegistration(AppRegistrar& registrar, const http::Request& request,
                                       bool publish,
                                       std::chrono::milliseconds wait = std::chrono::seconds(2));

}  // namespace cairn::sidecar::discovery
