#!/usr/bin/env node
'use strict'
// STREAM sender (ilp-protocol-stream client) behind an ilp-plugin-http
// account of an upstream connector. Learns its own address by ILDCP, opens a
// STREAM connection to --destination with --shared-secret and sends --amount
// (source units) on one stream. Prints
//   {"event":"connected","sourceAddress":..,"destination":..,"exchangeRate":..}
//   {"event":"paid","sent":"<n>","delivered":"<n>","amount":"<n>","packets":{...}}
// where packets counts every ILP Prepare this sender put on the wire (ILDCP
// excluded): prepares, fulfills, rejects, rejectCodes {"F08":k,...},
// maxFulfilledAmount, ... Exits 0 only if the whole amount was sent.
const {
  emit, log, fail, done, startup, installTimeout, connectUpstream, statsJson, upstreamSpec
} = require('./lib/common')
const { createConnection } = require('ilp-protocol-stream')

const SPEC = upstreamSpec('SENDER', 'ILP-over-HTTP URL of the connector', {
  destination: { required: true, help: 'STREAM destination address (receiver\'s "address")' },
  'shared-secret': { required: true, help: 'STREAM shared secret, base64 (receiver\'s "sharedSecret")' },
  amount: { type: 'uint64', required: true, help: 'amount to send, in the sender\'s asset units' },
  slippage: { default: '0', help: 'STREAM slippage (0..1); 0 = the probed exchange rate must hold exactly' },
  'require-split': { type: 'bool', default: false, help: 'fail unless the money went in >1 fulfilled packets after at least one F08' },
  'timeout-ms': { type: 'int', default: 60000, env: 'SENDER_TIMEOUT_MS', help: 'overall deadline' }
})

async function main () {
  const opts = startup(SPEC)
  if (!opts) return
  let stats
  let connection
  installTimeout(opts.timeoutMs, () => {
    fail(`timed out after ${opts.timeoutMs} ms` + (connection
      ? `: sent ${connection.totalSent}, delivered ${connection.totalDelivered} of ${opts.amount}; packets ${JSON.stringify(statsJson(stats))}`
      : ' before the STREAM connection was established'))
  })

  const upstream = await connectUpstream(opts, 'sender')
  const { plugin, port: boundPort } = upstream
  stats = upstream.stats

  const slippage = Number(opts.slippage)
  if (!(slippage >= 0 && slippage < 1)) return fail(`--slippage must be in [0,1), got ${opts.slippage}`, undefined, 2)

  connection = await createConnection({
    plugin,
    destinationAccount: opts.destination,
    sharedSecret: Buffer.from(opts.sharedSecret, 'base64'),
    slippage
  })
  connection.on('error', err => log(`connection error: ${err.message}`))
  emit({
    event: 'connected',
    sourceAddress: connection.sourceAccount,
    destination: connection.destinationAccount,
    sourceAsset: { code: connection.sourceAssetCode, scale: connection.sourceAssetScale },
    destinationAsset: { code: connection.destinationAssetCode, scale: connection.destinationAssetScale },
    exchangeRate: connection.exchangeRate ? connection.exchangeRate.toString() : null,
    port: boundPort
  })

  const started = Date.now()
  const stream = connection.createStream()
  stream.on('error', err => log(`stream error: ${err.message}`))
  await stream.sendTotal(opts.amount, { timeout: Math.max(1000, opts.timeoutMs - 2000) })
  const elapsedMs = Date.now() - started

  const result = {
    event: 'paid',
    amount: opts.amount,
    sent: connection.totalSent,
    delivered: connection.totalDelivered,
    sourceAddress: connection.sourceAccount,
    elapsedMs,
    packets: statsJson(stats)
  }
  emit(result)

  // Close politely, but never wait long for it.
  await Promise.race([
    connection.end().catch(err => log(`connection.end failed: ${err.message}`)),
    new Promise(resolve => setTimeout(resolve, 3000))
  ])
  await plugin.disconnect().catch(() => {})

  if (BigInt(result.sent) !== BigInt(opts.amount)) {
    return fail(`sent ${result.sent} of ${opts.amount}`)
  }
  if (opts.requireSplit) {
    const f08 = stats.rejectCodes.F08 || 0
    if (f08 < 1 || stats.fulfills < 2) {
      return fail(`expected the payment to be split after F08 rejects, got ${stats.fulfills} fulfilled packets and ${f08} F08 rejects`)
    }
  }
  emit({ event: 'exit', reason: 'paid' })
  done(0)
}

main().catch(err => fail(err.message, err))
