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
  emit, fail, installCrashHandlers, installTimeout, watchStdin, parseArgs
} = require('./lib/common')
const { startConnector } = require('./lib/connector')

const SPEC = {
  config: { required: true, env: 'CONNECTOR_JSON_CONFIG', help: 'path to a JSON config file, or the JSON itself' },
  'timeout-ms': { type: 'int', default: 0, help: 'exit (status 0) after this long; 0 = run until killed' },
  'watch-stdin': { type: 'bool', default: false, help: 'exit when stdin closes (parent process died)' }
}

async function main () {
  installCrashHandlers()
  let opts
  try {
    opts = parseArgs(SPEC)
  } catch (err) {
    return fail(err.message, undefined, 2)
  }
  if (opts.watchStdin) watchStdin()
  if (opts.timeoutMs) {
    installTimeout(opts.timeoutMs, () => {
      emit({ event: 'exit', reason: 'timeout' })
      process.exit(0)
    })
  }
  const text = opts.config.trim().startsWith('{') ? opts.config : fs.readFileSync(opts.config, 'utf8')
  const { address, accounts } = await startConnector(JSON.parse(text))
  emit({ event: 'ready', address, accounts })
}

main().catch(err => fail(err.message, err))
