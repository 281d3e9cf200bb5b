'use strict';

const CairnRegistry = require('./lib/cairn_registry');
const { CairnSessionClient, CairnRegistryError, DEFAULT_PROTO_PATH } = require('./lib/session_client');
const { dataInfoKey } = require('./lib/data_info');
const { SidecarRegistrationClient, SidecarRegistrationError } = require('./lib/sidecar_client');

module.exports = {
  CairnRegistry,
  CairnSessionClient,
  CairnRegistryError,
  dataInfoKey,
  SidecarRegistrationClient,
  SidecarRegistrationError,
  DEFAULT_PROTO_PATH,
};
