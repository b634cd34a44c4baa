#!/usr/bin/env node
'use strict'
// Runs the JavaScript reference connector `ilp-connector` (23.x) in this
// process, with its accounts on `ilp-plugin-http` (ILP-over-HTTP).
//
//   node connector.js --config FILE.json     (or --config '{"ilpAddress":...}')
//
// The config is an ilp-connector config object (see
// node_modules/ilp-connector/dist/schemas/Config.json) with one shorthand: an
// account may carry
//   "http": {"listenPort": 0, "url": "http://127.0.0.1:7770/accounts/jsc/ilp",
//            "incomingToken": "...", "outgoingToken": "..."}
// instead of "plugin"/"options"; it becomes plugin "ilp-plugin-http" with
// static bearer tokens, listening on 127.0.0.1:listenPort (0: a free port).
// Such accounts default to sendRoutes/receiveRoutes false (no CCP).
// Defaults filled in when absent: backend "one-to-one" (no rate downloads),
// spread 0, env "test". Logs go to stderr. When every account listens it prints
//   {"event":"ready","address":"<ilpAddress>","accounts":{"<id>":{"port":P,"url":"http://127.0.0.1:P/"}}}
const fs = require('fs')
const {
  emit, fail, startServer, SERVER_OPTIONS
} = require('./lib/common')
const { startConnector } = require('./lib/connector')

const SPEC = {
  config: { required: true, env: 'CONNECTOR_JSON_CONFIG', help: 'path to a JSON config file, or the JSON itself' },
  ...SERVER_OPTIONS
}

async function main () {
  const opts = startServer(SPEC)
  if (!opts) return
  const text = opts.config.trim().startsWith('{') ? opts.config : fs.readFileSync(opts.config, 'utf8')
  const { address, accounts } = await startConnector(JSON.parse(text))
  emit({ event: 'ready', address, accounts })
}

main().catch(err => fail(err.message, err))
