'use strict';

const CairnRegistry = require('./lib/cairn_registry');
const { CairnSessionClient, CairnRegistryError, DEFAULT_PROTO_PATH } = require('./lib/session_client');
const { dataInfoKey } = require('./lib/data_info');

module.exports = {
  CairnRegistry,
  CairnSessionClient,
  CairnRegistryError,
  dataInfoKey,
  DEFAULT_PROTO_PATH,
};
