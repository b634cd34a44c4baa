#!/usr/bin/env node
'use strict'
// Self-test of the harness without ThitsaX:
//
//   sender.js --(ilp-plugin-http)--> ilp-connector --(ilp-plugin-http)--> receiver.js
//   (child "sender", maxPacketAmount small)          (child "receiver")
//
// A STREAM payment of --amount must arrive in full, split into several packets
// after F08 rejects from ilp-connector's maxPacketAmount middleware.
// Prints {"event":"ok",...} and exits 0, or {"event":"error",...} and exits 1.
const {
  emit, log, fail, done, installCrashHandlers, installTimeout, parseArgs, freePort, upstreamArgs
} = require('./lib/common')
const { startScript, killAll } = require('./lib/proc')

const SPEC = {
  amount: { type: 'uint64', default: '10000', help: 'STREAM payment amount (USD, scale 9)' },
  'max-packet-amount': { type: 'uint64', default: '1000', help: 'maxPacketAmount of the sender\'s account on ilp-connector' },
  'timeout-ms': { type: 'int', default: 90000, help: 'overall deadline' }
}

async function main () {
  installCrashHandlers()
  const opts = parseArgs(SPEC)
  installTimeout(opts.timeoutMs, () => { killAll(); fail(`run-js-only timed out after ${opts.timeoutMs} ms`) })
  const t0 = Date.now()

  const [jscForSender, jscForReceiver, senderPort, receiverPort] =
    [await freePort(), await freePort(), await freePort(), await freePort()]
  const asset = { assetCode: 'USD', assetScale: 9 }
  const config = {
    ilpAddress: 'test.jsc',
    accounts: {
      sender: Object.assign({
        relation: 'child',
        maxPacketAmount: opts.maxPacketAmount,
        http: {
          listenPort: jscForSender,
          url: `http://127.0.0.1:${senderPort}/`,
          incomingToken: 'sender-to-jsc',
          outgoingToken: 'jsc-to-sender'
        }
      }, asset),
      receiver: Object.assign({
        relation: 'child',
        http: {
          listenPort: jscForReceiver,
          url: `http://127.0.0.1:${receiverPort}/`,
          incomingToken: 'receiver-to-jsc',
          outgoingToken: 'jsc-to-receiver'
        }
      }, asset)
    }
  }

  const connector = startScript('ilp-connector', 'connector.js', ['--config', JSON.stringify(config)])
  const ready = await connector.waitFor('ready', 30000)

  const receiver = startScript('receiver', 'receiver.js', [
    ...upstreamArgs({
      port: receiverPort, url: ready.accounts.receiver.url, incomingToken: 'jsc-to-receiver', outgoingToken: 'receiver-to-jsc'
    }),
    '--expect', opts.amount,
    '--timeout-ms', String(opts.timeoutMs)
  ])
  const rx = await receiver.waitFor('ready', 30000)

  const sender = startScript('sender', 'sender.js', [
    ...upstreamArgs({
      port: senderPort, url: ready.accounts.sender.url, incomingToken: 'jsc-to-sender', outgoingToken: 'sender-to-jsc'
    }),
    '--destination', rx.address,
    '--shared-secret', rx.sharedSecret,
    '--amount', opts.amount,
    '--require-split',
    '--timeout-ms', String(Math.max(10000, opts.timeoutMs - 10000))
  ])
  const paid = await sender.waitFor('paid', opts.timeoutMs)
  const received = await receiver.waitFor('received', 10000)
  await sender.waitFor('exit', 10000)

  const problems = []
  if (paid.delivered !== opts.amount) problems.push(`sender says delivered ${paid.delivered}, want ${opts.amount}`)
  if (received.total !== opts.amount) problems.push(`receiver got ${received.total}, want ${opts.amount}`)
  if (!(paid.packets.rejectCodes.F08 >= 1)) problems.push('no F08 reject seen')
  if (BigInt(paid.packets.maxFulfilledAmount) > BigInt(opts.maxPacketAmount)) problems.push(`a fulfilled packet carried ${paid.packets.maxFulfilledAmount} > max ${opts.maxPacketAmount}`)
  if (problems.length) {
    killAll()
    return fail(problems.join('; '))
  }
  emit({
    event: 'ok',
    topology: 'sender -> ilp-connector -> receiver',
    amount: opts.amount,
    delivered: paid.delivered,
    received: received.total,
    fulfilledPackets: paid.packets.fulfills,
    f08Rejects: paid.packets.rejectCodes.F08,
    packets: paid.packets,
    paymentMs: paid.elapsedMs,
    totalMs: Date.now() - t0
  })
  killAll()
  done(0)
}

main().catch(err => { killAll(); fail(err.message, err) })
