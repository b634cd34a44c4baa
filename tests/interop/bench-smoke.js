#!/usr/bin/env node
'use strict'
// Smoke test / reference client for bench-connector.js:
//   this script --Prepare (Bearer)--> bench-connector.js (ilp-connector) --> fulfiller.js
// Sends --count Prepares (--concurrency at a time) exactly the way the Rust
// load tool will (POST, Authorization: Bearer <token>, Content-Type:
// application/octet-stream, body = OER Prepare) and checks every answer is an
// ILP Fulfill. Prints {"event":"ok","packets":N,"seconds":..,"packetsPerSecond":..,
// "receiverSaw":{headers of the forwarded request}} or fails.
const http = require('http')
const crypto = require('crypto')
const IlpPacket = require('ilp-packet')
const {
  emit, fail, done, installCrashHandlers, installTimeout, parseArgs
} = require('./lib/common')
const { startScript, killAll } = require('./lib/proc')

const SPEC = {
  count: { type: 'int', default: 2000, help: 'Prepares to send' },
  concurrency: { type: 'int', default: 16, help: 'requests in flight' },
  lean: { type: 'bool', default: false, help: 'pass --lean to bench-connector.js' },
  'timeout-ms': { type: 'int', default: 120000, help: 'overall deadline' }
}

function post (agent, port, token, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/',
      method: 'POST',
      agent,
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/octet-stream',
        'Content-Length': body.length
      }
    }, res => {
      const chunks = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function main () {
  installCrashHandlers()
  const opts = parseArgs(SPEC)
  installTimeout(opts.timeoutMs, () => { killAll(); fail(`bench-smoke timed out after ${opts.timeoutMs} ms`) })

  const fulfiller = startScript('fulfiller', 'fulfiller.js', ['--token', 'bench-out-token'])
  const f = await fulfiller.waitFor('ready', 15000)
  const bench = startScript('bench-connector', 'bench-connector.js',
    ['--receiver-url', f.url, '--receiver-token', 'bench-out-token', '--token', 'bench-in-token'].concat(opts.lean ? ['--lean'] : []),
    { env: { INTEROP_QUIET: '1' } })
  const b = await bench.waitFor('ready', 30000)

  // Unauthorized request must be refused with 401.
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency })
  const probe = IlpPacket.serializeIlpPrepare({
    amount: '1', executionCondition: crypto.randomBytes(32), expiresAt: new Date(Date.now() + 30000),
    destination: 'test.receiver.x', data: Buffer.alloc(0)
  })
  const unauth = await post(agent, b.port, 'wrong-token', probe)
  if (unauth.status !== 401) throw new Error(`wrong token: expected 401, got ${unauth.status}`)

  let next = 0
  let fulfilled = 0
  const codes = {}
  const t0 = process.hrtime.bigint()
  async function worker () {
    while (next < opts.count) {
      next++
      const preimage = crypto.randomBytes(32)
      const prepare = IlpPacket.serializeIlpPrepare({
        amount: '100',
        executionCondition: crypto.createHash('sha256').update(preimage).digest(),
        expiresAt: new Date(Date.now() + 30000),
        destination: 'test.receiver.bench',
        data: preimage
      })
      const res = await post(agent, b.port, b.token, prepare)
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`)
      if (res.body[0] === IlpPacket.Type.TYPE_ILP_FULFILL) {
        const ful = IlpPacket.deserializeIlpFulfill(res.body)
        if (!ful.fulfillment.equals(preimage)) throw new Error('fulfillment mismatch')
        fulfilled++
      } else {
        const rej = IlpPacket.deserializeIlpReject(res.body)
        codes[rej.code] = (codes[rej.code] || 0) + 1
        if (Object.values(codes).reduce((a, c) => a + c, 0) === 1) process.stderr.write(`first reject: ${JSON.stringify(rej)}\n`)
      }
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  agent.destroy()

  fulfiller.child.kill('SIGTERM')
  const fstats = await fulfiller.waitFor('stats', 5000)
  killAll()
  if (fulfilled !== opts.count) throw new Error(`only ${fulfilled}/${opts.count} fulfilled; rejects ${JSON.stringify(codes)}`)
  emit({
    event: 'ok',
    packets: opts.count,
    concurrency: opts.concurrency,
    seconds: Number(seconds.toFixed(3)),
    packetsPerSecond: Math.round(opts.count / seconds),
    connectorPort: b.port,
    receiverSaw: fstats.firstRequest
  })
  done(0)
}

main().catch(err => { killAll(); fail(err.message, err) })
