#!/usr/bin/env node
'use strict'
// Minimal ILP-over-HTTP receiver for benchmarks and smoke tests: answers every
// POST carrying an ILP Prepare with 200 and
//   - an ILP Fulfill whose fulfillment is the first 32 bytes of the Prepare's
//     data, if sha256(those bytes) equals the execution condition;
//   - else an F99 Reject (triggeredBy --address).
// It checks `Authorization` against --token (401 otherwise; --token '' accepts
// anything). Prints {"event":"ready","port":P,"url":"http://127.0.0.1:P/"},
// and on exit (SIGTERM/timeout) {"event":"stats",...} with counts and the
// request headers it saw (to document what the sending connector sends).
const http = require('http')
const crypto = require('crypto')
const IlpPacket = require('ilp-packet')
const {
  emit, log, fail, done, installTimeout, parseOptions, resolvePort, SERVER_OPTIONS
} = require('./lib/common')

const SPEC = {
  port: { type: 'int', default: 0, env: 'FULFILLER_PORT', help: 'port (0: a free one)' },
  token: { default: 'bench-out-token', env: 'FULFILLER_TOKEN', help: 'expected bearer token; empty: accept any' },
  address: { default: 'test.receiver', help: 'ILP address used as triggeredBy in rejects' },
  ...SERVER_OPTIONS
}

async function main () {
  const opts = parseOptions(SPEC)
  if (!opts) return
  const stats = { requests: 0, fulfilled: 0, rejected: 0, unauthorized: 0, badRequests: 0, firstRequest: null }
  const finish = (reason) => {
    emit(Object.assign({ event: 'stats', reason }, stats))
    done(0)
  }
  process.on('uncaughtException', err => fail('uncaught exception', err))
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => finish(sig))
  if (opts.watchStdin) {
    process.stdin.on('end', () => finish('stdin closed'))
    process.stdin.resume()
  }
  if (opts.timeoutMs) installTimeout(opts.timeoutMs, () => finish('timeout'))
  const expected = opts.token ? `Bearer ${opts.token}` : null

  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      stats.requests++
      if (!stats.firstRequest) {
        stats.firstRequest = { method: req.method, url: req.url, headers: req.headers }
        log('first request:', stats.firstRequest)
      }
      if (expected && req.headers.authorization !== expected) {
        stats.unauthorized++
        res.writeHead(401)
        return res.end('invalid authorization')
      }
      let prepare
      try {
        prepare = IlpPacket.deserializeIlpPrepare(Buffer.concat(chunks))
      } catch (e) {
        stats.badRequests++
        res.writeHead(400)
        return res.end('expected an ILP Prepare')
      }
      let body
      const pre = prepare.data.slice(0, 32)
      if (pre.length === 32 && crypto.createHash('sha256').update(pre).digest().equals(prepare.executionCondition)) {
        stats.fulfilled++
        body = IlpPacket.serializeIlpFulfill({ fulfillment: pre, data: Buffer.alloc(0) })
      } else {
        stats.rejected++
        body = IlpPacket.serializeIlpReject({
          code: 'F99', triggeredBy: opts.address, message: 'fulfiller: data does not start with the preimage', data: Buffer.alloc(0)
        })
      }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length })
      res.end(body)
    })
  })
  server.keepAliveTimeout = 60000
  const port = await resolvePort(opts.port)
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  emit({ event: 'ready', port, url: `http://127.0.0.1:${port}/` })
}

main().catch(err => fail(err.message, err))
