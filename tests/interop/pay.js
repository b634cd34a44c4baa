#!/usr/bin/env node
'use strict'
// A payment by @interledger/pay 0.4.0-alpha.9 (the sender Rafiki uses) behind an ilp-plugin-http
// account of an upstream connector. It sets the payment up from --spsp-url (queried here with
// Accept: application/spsp4+json: pay's own account URLs cannot carry a port, which every
// loopback test server has), from --destination-account (a payment pointer or port-less URL,
// queried by pay), or from --destination-address and --shared-secret, quotes --amount-to-deliver (or --amount-to-send)
// in the sender's asset (learned by ILDCP), pays, closes the connection, and prints
//   {"event":"setup","destinationAddress":..,"sharedSecret":..,"destinationAsset":{..}}
//   {"event":"quoted","maxSourceAmount":..,"minDeliveryAmount":..,"maxPacketAmount":..}
//   {"event":"paid","amountSent":"<n>","amountDelivered":"<n>","error":<code or null>,"packets":{...}}
// or {"event":"failed","stage":"spsp","status":<HTTP status>} when the SPSP query is refused,
// or {"event":"failed","stage":"setup"|"quote","error":<PaymentError code>} when pay refuses
// before paying. Exits 0 once it printed "paid" or "failed" (the test judges the outcome).
const { emit, log, fail, done, startup, installTimeout, connectUpstream, statsJson, upstreamSpec } = require('./lib/common')
const { setupPayment, startQuote, pay, closeConnection, isPaymentError } = require('@interledger/pay')

const SPEC = upstreamSpec('PAY', 'ILP-over-HTTP URL of the connector', {
  'spsp-url': { help: 'SPSP URL of the receiver, queried by this script' },
  'destination-account': { help: 'payment pointer or port-less account URL, queried by pay' },
  'destination-address': { help: 'STREAM destination address (with --shared-secret)' },
  'shared-secret': { help: 'STREAM shared secret, base64 (with --destination-address)' },
  'amount-to-deliver': { help: 'amount the receiver must get, in its units' },
  'amount-to-send': { help: 'amount to send, in the sender\'s units' },
  slippage: { default: '0.01', help: 'largest fraction the rate may fall below the probed one' },
  'timeout-ms': { type: 'int', default: 60000, env: 'PAY_TIMEOUT_MS', help: 'overall deadline' }
})

/** pay throws its PaymentError codes as strings; anything else is a bug of this script. */
function code (err) {
  if (isPaymentError(err)) return err
  throw err
}

async function main () {
  const opts = startup(SPEC)
  if (!opts) return
  installTimeout(opts.timeoutMs, () => fail(`timed out after ${opts.timeoutMs} ms`))
  const { plugin, stats, ildcp } = await connectUpstream(opts, 'pay')
  const sourceAsset = { code: ildcp.assetCode, scale: ildcp.assetScale }

  if (opts.spspUrl) {
    const answer = await fetch(opts.spspUrl, { headers: { Accept: 'application/spsp4+json' } })
    if (answer.status !== 200) {
      emit({ event: 'failed', stage: 'spsp', status: answer.status })
      await plugin.disconnect().catch(() => {})
      return done(0)
    }
    const spsp = await answer.json()
    opts.destinationAddress = spsp.destination_account
    opts.sharedSecret = spsp.shared_secret
  }

  let destination
  try {
    destination = await setupPayment(opts.destinationAccount
      ? { plugin, destinationAccount: opts.destinationAccount }
      : { plugin, destinationAddress: opts.destinationAddress, sharedSecret: Buffer.from(opts.sharedSecret, 'base64') })
  } catch (err) {
    emit({ event: 'failed', stage: 'setup', error: code(err) })
    await plugin.disconnect().catch(() => {})
    return done(0)
  }
  emit({
    event: 'setup',
    destinationAddress: destination.destinationAddress,
    sharedSecret: Buffer.from(destination.sharedSecret).toString('base64'),
    destinationAsset: destination.destinationAsset
  })

  let quote
  try {
    quote = await startQuote({
      plugin,
      destination,
      sourceAsset,
      amountToDeliver: opts.amountToDeliver,
      amountToSend: opts.amountToSend,
      slippage: Number(opts.slippage)
    })
  } catch (err) {
    emit({ event: 'failed', stage: 'quote', error: code(err) })
    await plugin.disconnect().catch(() => {})
    return done(0)
  }
  emit({
    event: 'quoted',
    maxSourceAmount: quote.maxSourceAmount.toString(),
    minDeliveryAmount: quote.minDeliveryAmount.toString(),
    maxPacketAmount: quote.maxPacketAmount.toString()
  })

  const started = Date.now()
  const result = await pay({ plugin, destination, quote })
  const elapsedMs = Date.now() - started
  await closeConnection(plugin, destination).catch(err => log(`closing the connection failed: ${err}`))
  emit({
    event: 'paid',
    amountSent: result.amountSent.toString(),
    amountDelivered: result.amountDelivered.toString(),
    error: result.error || null,
    elapsedMs,
    packets: statsJson(stats)
  })
  await plugin.disconnect().catch(() => {})
  done(0)
}

main().catch(err => fail(err.message || String(err), err))
