#!/usr/bin/env node
'use strict'
// A STREAM receiver (ilp-protocol-stream server) found by SPSP (RFC 0009), behind an
// ilp-plugin-http account of an upstream connector (ThitsaX or ilp-connector): what a wallet of
// the JS reference looks like to a sender that knows only its SPSP URL.
//
// It learns its ILP address by ILDCP, then serves on 127.0.0.1:--spsp-port
//   GET <any path but /totals>, Accept: application/spsp4+json
//       200, Content-Type: application/spsp4+json,
//       {"destination_account": ..., "shared_secret": "<base64>", "receipts_enabled": false}:
//       a fresh address and secret per query (as SPSP servers do), whose connection is tagged
//       "q<n>", n the query's number from 1; without that Accept: 406.
//   GET /totals
//       200 application/json {"total": "<n>", "packets": <n>, "queries": <n>,
//       "connections": {"q<n>": {"received": "<n>", "packets": <n>}}}: what it received so
//       far, read at once (the money is counted before its Fulfill is returned).
// and prints JSON lines:
//   {"event":"ready","clientAddress":<its ILP address>,"spspPort":..,"port":..,"assetCode":..,
//    "assetScale":..}
//   {"event":"spsp-query","query":"q<n>","path":..,"destination":..}
//   {"event":"connection","query":"q<n>"}           a sender used that query's address
//   {"event":"money","query":"q<n>","amount":..,"total":..,"atMs":<Date.now()>}   every money
//       packet, before its Fulfill goes back
//   {"event":"connection-closed","query":"q<n>","received":..}
//   {"event":"exit",...} / {"event":"error",...}
// All amounts are decimal strings in the receiver's asset units.
//
// Totals are kept per query tag, not per connection object: a connection whose own send loop
// fails (the library probes the rate back towards the sender's ConnectionNewAddress, and destroys
// the connection when nothing comes through) is opened again under the same tag by the next
// packet for it, with a "connection" event of its own. It runs until killed, its
// stdin closes (--watch-stdin), or --timeout-ms passes (then it exits 0).
const http = require('http')
const {
  emit, log, fail, done, startup, installTimeout, connectUpstream, upstreamSpec
} = require('./lib/common')
const { createServer } = require('ilp-protocol-stream')

const SPEC = upstreamSpec('SPSP_RECEIVER', 'ILP-over-HTTP URL of the connector (outgoing packets and ILDCP)', {
  'spsp-port': { type: 'int', required: true, env: 'SPSP_RECEIVER_SPSP_PORT', help: 'port of the SPSP server on 127.0.0.1 (given by the caller: never 0)' },
  'timeout-ms': { type: 'int', default: 120000, env: 'SPSP_RECEIVER_TIMEOUT_MS', help: 'lifetime; exits 0 when it is over' }
})

const SPSP_CONTENT_TYPE = 'application/spsp4+json'
const U64_MAX = '18446744073709551615'

async function main () {
  const opts = startup(SPEC)
  if (!opts) return
  if (!opts.spspPort) return fail('--spsp-port must be a port the caller holds, not 0', undefined, 2)

  installTimeout(opts.timeoutMs, () => {
    emit({ event: 'exit', reason: 'timeout', total: totals.total.toString() })
    done(0)
  })

  // Everything received, by the SPSP query whose address the sender used.
  const totals = { total: 0n, packets: 0, queries: 0, connections: new Map() }
  const ofQuery = tag => {
    let c = totals.connections.get(tag)
    if (!c) totals.connections.set(tag, (c = { received: 0n, packets: 0 }))
    return c
  }

  // ILDCP first (with retries), so a not-yet-started connector is waited for.
  const { plugin, port: boundPort, ildcp } = await connectUpstream(opts, 'spsp-receiver')
  const server = await createServer({ plugin })

  server.on('connection', conn => {
    const tag = conn.connectionTag || ''
    ofQuery(tag)
    emit({ event: 'connection', query: tag })
    conn.on('stream', stream => {
      stream.setReceiveMax(U64_MAX)
      stream.on('money', amount => {
        // Emitted by the library before the packet's Fulfill is built.
        const c = ofQuery(tag)
        c.received += BigInt(amount)
        c.packets++
        totals.total += BigInt(amount)
        totals.packets++
        emit({ event: 'money', query: tag, streamId: stream.id, amount: String(amount), total: totals.total.toString(), atMs: Date.now() })
      })
      stream.on('data', () => {}) // drain any data
      stream.on('error', err => log(`stream ${stream.id} error: ${err.message}`))
    })
    conn.on('error', err => log(`connection ${tag} error: ${err.message}`))
    conn.on('close', () => emit({ event: 'connection-closed', query: tag, received: ofQuery(tag).received.toString() }))
  })

  const spsp = http.createServer((req, res) => {
    const path = req.url || '/'
    if (req.method !== 'GET') {
      res.writeHead(405, { Allow: 'GET', 'Content-Type': 'text/plain' })
      return res.end('GET only\n')
    }
    if (path === '/totals') {
      const connections = {}
      for (const [tag, c] of totals.connections) connections[tag] = { received: c.received.toString(), packets: c.packets }
      const body = { total: totals.total.toString(), packets: totals.packets, queries: totals.queries, connections }
      res.writeHead(200, { 'Content-Type': 'application/json' })
      return res.end(JSON.stringify(body))
    }
    if (!String(req.headers.accept || '').includes(SPSP_CONTENT_TYPE)) {
      res.writeHead(406, { 'Content-Type': 'text/plain' })
      return res.end(`SPSP answers Accept: ${SPSP_CONTENT_TYPE} only\n`)
    }
    totals.queries++
    const tag = `q${totals.queries}`
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret({ connectionTag: tag })
    emit({ event: 'spsp-query', query: tag, path, destination: destinationAccount })
    res.writeHead(200, { 'Content-Type': SPSP_CONTENT_TYPE })
    res.end(JSON.stringify({
      destination_account: destinationAccount,
      shared_secret: sharedSecret.toString('base64'),
      receipts_enabled: false
    }))
  })
  await new Promise((resolve, reject) => {
    spsp.once('error', err => reject(new Error(`SPSP server could not listen on 127.0.0.1:${opts.spspPort}: ${err.message}`)))
    spsp.listen(opts.spspPort, '127.0.0.1', resolve)
  })
  log(`SPSP on http://127.0.0.1:${opts.spspPort}/`)

  emit({
    event: 'ready',
    spspPort: opts.spspPort,
    port: boundPort,
    clientAddress: ildcp.clientAddress,
    assetCode: ildcp.assetCode,
    assetScale: ildcp.assetScale
  })
}

main().catch(err => fail(err.message, err))
