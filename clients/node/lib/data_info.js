'use strict';

// How a sofa-rpc-node service maps to a Cairn dataInfoId.
//
// sofa-rpc-node hands the registry a config with interfaceName, version and
// group (the provider's `register` config also carries the URL; the
// consumer's `subscribe` config carries protocol, appName and timeout). Both
// sides must derive the same key, so the key uses only what both send:
//
//   data_id     = interfaceName + ':' + version        (version default '1.0')
//                 + ':' + uniqueId                     (only when uniqueId is set)
//   group       = group                                (default 'SOFA')
//   instance_id = ''                                   (the server's DEFAULT_INSTANCE_ID)
//
// This is the id sofa-rpc-node itself gives a service (RpcService#id,
// RpcConsumer#id). SOFARPC's Java SOFARegistry integration names bolt
// services with an extra `@DEFAULT` suffix: Java peers do not share these
// datums.

const DEFAULT_VERSION = '1.0';
const DEFAULT_GROUP = 'SOFA';

function nonEmpty(value) {
  return value !== undefined && value !== null && String(value) !== '';
}

// Returns a DataInfoKey ({ data_id, group, instance_id }) for a
// register/subscribe config. Throws a TypeError without interfaceName.
function dataInfoKey(config) {
  if (!config || !nonEmpty(config.interfaceName)) {
    throw new TypeError('[CairnRegistry] config.interfaceName is required');
  }
  const version = nonEmpty(config.version) ? String(config.version) : DEFAULT_VERSION;
  let dataId = `${config.interfaceName}:${version}`;
  if (nonEmpty(config.uniqueId)) dataId += `:${config.uniqueId}`;
  return {
    data_id: dataId,
    group: nonEmpty(config.group) ? String(config.group) : DEFAULT_GROUP,
    instance_id: '',
  };
}

// The text form the server uses, `data_id#@#instance_id#@#group`, with the
// server's defaults filled in. Used as a map key on the client side.
function dataInfoIdString(key) {
  return `${key.data_id}#@#${key.instance_id || 'DEFAULT_INSTANCE_ID'}#@#${key.group || 'DEFAULT_GROUP'}`;
}

module.exports = { dataInfoKey, dataInfoIdString, DEFAULT_VERSION, DEFAULT_GROUP };
