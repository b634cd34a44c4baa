#!/usr/bin/env node
'use strict'
// ilp-connector 23.x as a plain same-asset forwarding connector, for
// benchmarks against ThitsaX:
//
//   load generator --POST Prepare, Bearer <token>--> [account "in"]
//       ilp-connector (address --address, one-to-one rate, spread 0)
//   [account "out"] --POST Prepare, Bearer <receiver-token>--> --receiver-url (fulfils)
//
// Limits lifted: the rateLimit middleware (default 10000 packets/min per
// account!) and throughput middleware are disabled; no maxPacketAmount, no
// balance limits. The deduplicate middleware is disabled too (it answers a
// repeated condition+destination+data from a cache instead of forwarding);
// --dedupe turns it back on. --lean also drops the stats (Prometheus) and
// alert middlewares. Routing: every destination under the global prefix
// ("test." with env test) goes to "out" (defaultRoute), plus --route-prefix.
// Prints one line when ready:
//   {"event":"ready","port":P,"url":"http://127.0.0.1:P/","token":"...",
//    "ilpAddress":"test.jsc", ...}
const {
  emit, fail, startServer, resolvePort, SERVER_OPTIONS
} = require('./lib/common')
const { startConnector } = require('./lib/connector')
const crypto = require('crypto')

const SPEC = {
  port: { type: 'int', default: 0, env: 'BENCH_PORT', help: 'port for incoming ILP-over-HTTP from the load generator (0: a free one)' },
  token: { default: 'bench-in-token', env: 'BENCH_TOKEN', help: 'bearer token the load generator presents (Authorization: Bearer <token>)' },
  'receiver-url': { required: true, env: 'BENCH_RECEIVER_URL', help: 'ILP-over-HTTP URL packets are forwarded to' },
  'receiver-token': { default: 'bench-out-token', env: 'BENCH_RECEIVER_TOKEN', help: 'bearer token sent to the receiver' },
  'out-port': { type: 'int', default: 0, help: 'port of the "out" account\'s own listener (unused by the benchmark; 0: a free one)' },
  address: { default: 'test.jsc', help: 'ilp-connector\'s own ILP address' },
  'route-prefix': { help: 'extra static route prefix to "out" (defaultRoute already covers "test.*")' },
  'asset-code': { default: 'USD', help: 'asset code of both accounts' },
  'asset-scale': { type: 'int', default: 9, help: 'asset scale of both accounts' },
  dedupe: { type: 'bool', default: false, help: 'keep the deduplicate middleware' },
  lean: { type: 'bool', default: false, help: 'also disable the stats and alert middlewares' },
  'min-message-window-ms': { type: 'int', default: 1000, help: 'ilp-connector minMessageWindow; Prepares need expiresAt >= now + 2x this' },
  'max-hold-time-ms': { type: 'int', default: 30000, help: 'ilp-connector maxHoldTime' },
  ...SERVER_OPTIONS
}

async function main () {
  const opts = startServer(SPEC)
  if (!opts) return

  const disableMiddleware = ['rateLimit', 'throughput', 'maxPacketAmount']
  if (!opts.dedupe) disableMiddleware.push('deduplicate')
  if (opts.lean) disableMiddleware.push('stats', 'alert')

  const asset = { assetCode: opts.assetCode, assetScale: opts.assetScale }
  const config = {
    ilpAddress: opts.address,
    env: 'test',
    backend: 'one-to-one',
    spread: 0,
    defaultRoute: 'out',
    routes: opts.routePrefix ? [{ targetPrefix: opts.routePrefix, peerId: 'out' }] : [],
    disableMiddleware,
    minMessageWindow: opts.minMessageWindowMs,
    maxHoldTime: opts.maxHoldTimeMs,
    accounts: {
      in: Object.assign({
        relation: 'peer',
        http: {
          listenPort: await resolvePort(opts.port),
          incomingToken: opts.token,
          // ilp-plugin-http needs an outgoing URL; nothing is ever sent back
          // to the load generator, so it points at a closed port.
          url: 'http://127.0.0.1:9/unused',
          outgoingToken: 'unused'
        }
      }, asset),
      out: Object.assign({
        relation: 'peer',
        http: {
          listenPort: await resolvePort(opts.outPort),
          incomingToken: crypto.randomBytes(16).toString('hex'),
          url: opts.receiverUrl,
          outgoingToken: opts.receiverToken
        }
      }, asset)
    }
  }
  const { address, accounts } = await startConnector(config)
  emit({
    event: 'ready',
    port: accounts.in.port,
    url: accounts.in.url,
    token: opts.token,
    ilpAddress: address,
    routes: ['test'].concat(opts.routePrefix ? [opts.routePrefix] : []),
    receiverUrl: opts.receiverUrl,
    outgoingAuthorization: `Bearer ${opts.receiverToken}`,
    outgoingContentType: 'application/ilp+octet-stream',
    asset: { code: opts.assetCode, scale: opts.assetScale },
    disabledMiddleware: disableMiddleware,
    minExpiryMs: 2 * opts.minMessageWindowMs
  })
}

main().catch(err => fail(err.message, err))
