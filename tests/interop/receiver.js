#!/usr/bin/env node
'use strict'
// STREAM receiver (ilp-protocol-stream server) behind an ilp-plugin-http
// account of an upstream connector (ThitsaX or ilp-connector). It learns its
// ILP address by ILDCP, then prints
//   {"event":"ready","address":"<destination for senders>","sharedSecret":"<base64>",
//    "port":<its ILP-over-HTTP port>,"url":"http://127.0.0.1:<port>/","clientAddress":...,
//    "assetCode":...,"assetScale":...}
// and afterwards
//   {"event":"connection",...}            a sender opened a STREAM connection
//   {"event":"money","amount":..,"total":..}   (with --verbose-money) every packet's money
//   {"event":"received","total":"<n>"}   once the total reaches --expect
//   {"event":"exit",...} / {"event":"error",...}
// All amounts are decimal strings in the receiver's asset units.
const {
  emit, log, fail, done, startup, installTimeout, connectUpstream, statsJson, upstreamSpec
} = require('./lib/common')
const { createServer } = require('ilp-protocol-stream')

const SPEC = upstreamSpec('RECEIVER', 'ILP-over-HTTP URL of the connector (outgoing packets and ILDCP)', {
  expect: { type: 'uint64', help: 'amount expected in total; emits {"event":"received"} when reached' },
  'exit-after-received': { type: 'bool', default: false, help: 'exit 0 shortly after --expect was reached' },
  'verbose-money': { type: 'bool', default: false, help: 'emit one {"event":"money"} line per incoming money packet' },
  'timeout-ms': { type: 'int', default: 120000, env: 'RECEIVER_TIMEOUT_MS', help: 'lifetime; on expiry exit 1 if --expect was not reached, else 0' }
})

async function main () {
  const opts = startup(SPEC)
  if (!opts) return

  let total = 0n
  const expect = opts.expect !== undefined ? BigInt(opts.expect) : undefined
  let reached = false

  installTimeout(opts.timeoutMs, () => {
    if (expect !== undefined && !reached) {
      fail(`timed out after ${opts.timeoutMs} ms: received ${total} of expected ${expect}`)
    } else {
      emit({ event: 'exit', reason: 'timeout', total: total.toString() })
      done(0)
    }
  })

  // ILDCP first (with retries), so a not-yet-started connector is waited for.
  const { plugin, stats: sent, port: boundPort, ildcp } = await connectUpstream(opts, 'receiver')

  const server = await createServer({ plugin })
  const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()

  server.on('connection', conn => {
    emit({ event: 'connection', connectionId: conn.connectionId })
    conn.on('stream', stream => {
      stream.setReceiveMax('18446744073709551615')
      stream.on('money', amount => {
        total += BigInt(amount)
        if (opts.verboseMoney) emit({ event: 'money', streamId: stream.id, amount: String(amount), total: total.toString() })
        if (expect !== undefined && !reached && total >= expect) {
          reached = true
          emit({ event: 'received', total: total.toString(), expected: expect.toString() })
          if (opts.exitAfterReceived) {
            // Give the Fulfill a moment to travel back before exiting.
            setTimeout(() => {
              emit({ event: 'exit', reason: 'received', total: total.toString(), outgoing: statsJson(sent) })
              done(0)
            }, 1000)
          }
        }
      })
      stream.on('data', () => {}) // drain any data
      stream.on('error', err => log(`stream ${stream.id} error: ${err.message}`))
      stream.on('close', () => emit({ event: 'stream-closed', streamId: stream.id, totalReceived: stream.totalReceived, total: total.toString() }))
    })
    conn.on('error', err => log(`connection error: ${err.message}`))
    conn.on('close', () => emit({ event: 'connection-closed', totalReceived: total.toString() }))
  })

  emit({
    event: 'ready',
    address: destinationAccount,
    sharedSecret: sharedSecret.toString('base64'),
    port: boundPort,
    url: `http://127.0.0.1:${boundPort}/`,
    clientAddress: ildcp.clientAddress,
    assetCode: ildcp.assetCode,
    assetScale: ildcp.assetScale
  })
}

main().catch(err => fail(err.message, err))
