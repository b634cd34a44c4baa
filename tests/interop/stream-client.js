#!/usr/bin/env node
'use strict'
// STREAM sender (ilp-protocol-stream client) whose plugin is this process's stdio, so that a
// Rust test can be the network and the receiver at once (tests/stream_js_sender.rs: ThitsaX's
// src/stream/ answering the JS reference). Every Prepare the sender puts on the wire, ILDCP
// included, is printed as
//   {"event":"prepare","id":<n>,"packet":"<hex>"}
// and its answer is read from stdin, one line each:
//   {"id":<n>,"packet":"<hex of the Fulfill or Reject>"}
// The script opens a connection to --destination with --shared-secret (base64), sends
// --amount on one stream and prints
//   {"event":"connected","destinationAsset":{...},...}
//   {"event":"paid","sent":..,"delivered":..,"packets":{...}}   or
//   {"event":"send-failed","message":..,"sent":..,"delivered":..,"packets":{...}}
// It exits when stdin closes (the test is gone).
const readline = require('readline')
const { emit, log, fail, done, startup, installTimeout, countPackets, statsJson } = require('./lib/common')
const { createConnection } = require('ilp-protocol-stream')

const SPEC = {
  destination: { required: true, help: 'STREAM destination address' },
  'shared-secret': { required: true, help: 'STREAM shared secret, base64' },
  amount: { type: 'uint64', required: true, help: 'amount to send on one stream' },
  'timeout-ms': { type: 'int', default: 30000, help: 'overall deadline' }
}

/** A plugin (the ilp-protocol-stream plugin interface) whose other end is stdio. */
class StdioPlugin {
  constructor () {
    this.connected = false
    this.nextId = 1
    this.waiting = new Map()
    const lines = readline.createInterface({ input: process.stdin })
    lines.on('line', (line) => {
      let answer
      try { answer = JSON.parse(line) } catch (err) { return fail(`not JSON on stdin: ${line}`) }
      const resolve = this.waiting.get(answer.id)
      if (!resolve) return fail(`answer for unknown packet ${answer.id}`)
      this.waiting.delete(answer.id)
      resolve(Buffer.from(answer.packet, 'hex'))
    })
    lines.on('close', () => {
      log('stdin closed, exiting')
      done(0)
    })
  }

  async connect () { this.connected = true }
  async disconnect () { this.connected = false }
  isConnected () { return this.connected }
  async sendMoney () {}
  registerDataHandler () {}
  deregisterDataHandler () {}
  registerMoneyHandler () {}
  deregisterMoneyHandler () {}

  sendData (data) {
    const id = this.nextId++
    return new Promise((resolve) => {
      this.waiting.set(id, resolve)
      emit({ event: 'prepare', id, packet: data.toString('hex') })
    })
  }
}

async function main () {
  const opts = startup(SPEC)
  if (!opts) return
  installTimeout(opts.timeoutMs)
  const plugin = new StdioPlugin()
  const stats = countPackets(plugin)
  const connection = await createConnection({
    plugin,
    destinationAccount: opts.destination,
    sharedSecret: Buffer.from(opts.sharedSecret, 'base64'),
    slippage: 0
  })
  connection.on('error', (err) => log(`connection error: ${err.message}`))
  emit({
    event: 'connected',
    sourceAddress: connection.sourceAccount,
    destinationAsset: { code: connection.destinationAssetCode, scale: connection.destinationAssetScale },
    exchangeRate: connection.exchangeRate ? connection.exchangeRate.toString() : null
  })
  const stream = connection.createStream()
  stream.on('error', (err) => log(`stream error: ${err.message}`))
  const totals = () => ({
    sent: connection.totalSent, delivered: connection.totalDelivered, packets: statsJson(stats)
  })
  try {
    await stream.sendTotal(opts.amount, { timeout: Math.max(1000, opts.timeoutMs - 2000) })
    emit({ event: 'paid', amount: opts.amount, ...totals() })
  } catch (err) {
    emit({ event: 'send-failed', message: err.message, ...totals() })
  }
}

main().catch((err) => fail(err.message, err))
