'use strict'
// Shared helpers: argument parsing, script startup, JSON-lines output,
// timeouts, free ports, ilp-plugin-http construction, packet accounting and
// the upstream connection of the STREAM endpoints.
require('./compat')

const net = require('net')
const IlpPacket = require('ilp-packet')
const PluginHttp = require('ilp-plugin-http')

const SCRIPT = require('path').basename(process.argv[1] || 'interop', '.js')

// ---------------------------------------------------------------- output

/** One JSON object per line on stdout: the machine-readable channel. */
function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

/** Diagnostics go to stderr, prefixed with the script name. */
function log (...args) {
  const line = args.map(a => (typeof a === 'string' ? a : safeJson(a))).join(' ')
  process.stderr.write(`[${SCRIPT} ${new Date().toISOString()}] ${line}\n`)
}

function safeJson (v) {
  try { return JSON.stringify(v) } catch (e) { return String(v) }
}

let exiting = false
/** Print {"event":"error",...} on stdout, the reason on stderr, exit non-zero. */
function fail (message, err, code = 1) {
  if (exiting) return
  exiting = true
  const detail = err ? (err.stack || String(err)) : undefined
  log('FAILED:', message, detail ? '\n' + detail : '')
  emit({ event: 'error', script: SCRIPT, message, detail: err ? String(err.message || err) : undefined })
  // Let stdout drain before exiting.
  setImmediate(() => process.exit(code))
  setTimeout(() => process.exit(code), 200).unref()
}

/** Exit cleanly (code 0) after stdout drained. */
function done (code = 0) {
  if (exiting) return
  exiting = true
  setImmediate(() => process.exit(code))
}

function installCrashHandlers () {
  process.on('uncaughtException', err => fail('uncaught exception', err))
  process.on('unhandledRejection', err => fail('unhandled promise rejection', err))
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(sig, () => {
      log(`received ${sig}, exiting`)
      emit({ event: 'exit', reason: sig })
      done(0)
    })
  }
}

/**
 * Hard deadline for the whole script: on expiry call onTimeout() (which may
 * decide the outcome) or fail. Never hangs past it.
 */
function installTimeout (ms, onTimeout) {
  if (!ms || ms <= 0) return
  const t = setTimeout(() => {
    if (onTimeout) {
      try { onTimeout() } catch (e) { fail('timeout handler threw', e) }
    } else {
      fail(`timed out after ${ms} ms`)
    }
  }, ms)
  t.unref()
}

/** With --watch-stdin: exit when stdin closes (the parent process died). */
function watchStdin () {
  process.stdin.on('end', () => {
    log('stdin closed (parent gone), exiting')
    done(0)
  })
  process.stdin.on('error', () => done(0))
  process.stdin.resume()
}

// ---------------------------------------------------------------- args

/**
 * Parse `--key value` / `--key=value` / `--flag` arguments. `spec` maps
 * option names to {env, default, type: 'string'|'int'|'bool', required}.
 * An option also reads env var `spec.env` when not given on the command line.
 */
function parseArgs (spec, argv = process.argv.slice(2)) {
  const raw = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--help' || a === '-h') {
      usage(spec)
      process.exit(0)
    }
    if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`)
    let key = a.slice(2)
    let val
    const eq = key.indexOf('=')
    if (eq >= 0) {
      val = key.slice(eq + 1)
      key = key.slice(0, eq)
    }
    if (!spec[key]) throw new Error(`unknown option --${key} (see --help)`)
    if (val === undefined) {
      if (spec[key].type === 'bool') val = 'true'
      else {
        if (i + 1 >= argv.length) throw new Error(`option --${key} needs a value`)
        val = argv[++i]
      }
    }
    raw[key] = val
  }
  const out = {}
  for (const [key, s] of Object.entries(spec)) {
    let v = raw[key]
    if (v === undefined && s.env && process.env[s.env] !== undefined) v = process.env[s.env]
    if (v === undefined) {
      if (s.required) throw new Error(`missing required option --${key}${s.env ? ' (or env ' + s.env + ')' : ''}`)
      v = s.default
    } else if (s.type === 'int') {
      if (!/^\d+$/.test(String(v))) throw new Error(`--${key} must be a non-negative integer, got ${v}`)
      v = Number(v)
    } else if (s.type === 'bool') {
      v = v === true || v === 'true' || v === '1' || v === 'yes'
    } else if (s.type === 'uint64') {
      if (!/^\d+$/.test(String(v))) throw new Error(`--${key} must be an unsigned integer string, got ${v}`)
      v = String(v)
    }
    out[camel(key)] = v
  }
  return out
}

function usage (spec) {
  process.stderr.write(`usage: node ${SCRIPT}.js [options]\n`)
  for (const [key, s] of Object.entries(spec)) {
    const d = s.default !== undefined ? ` (default ${s.default})` : ''
    const e = s.env ? ` [env ${s.env}]` : ''
    process.stderr.write(`  --${key}${s.type === 'bool' ? '' : ' VALUE'}${s.required ? ' (required)' : ''}${d}${e}\n      ${s.help || ''}\n`)
  }
}

function camel (s) {
  return s.replace(/-([a-z])/g, (_, c) => c.toUpperCase())
}

// ---------------------------------------------------------------- startup

/** `--watch-stdin`: exit when the parent process is gone (see watchStdin). */
const WATCH_STDIN_OPTION = { type: 'bool', default: false, help: 'exit when stdin closes (parent process died)' }

/**
 * The last options of the long-running servers (connector.js,
 * bench-connector.js, fulfiller.js): `--timeout-ms` (0: run until killed) and
 * `--watch-stdin`.
 */
const SERVER_OPTIONS = {
  'timeout-ms': { type: 'int', default: 0, help: 'exit (status 0) after this long; 0 = run until killed' },
  'watch-stdin': WATCH_STDIN_OPTION
}

/**
 * parseArgs(spec), or undefined after reporting the bad arguments with
 * fail(..., 2); the caller then just returns.
 */
function parseOptions (spec) {
  try {
    return parseArgs(spec)
  } catch (err) {
    fail(err.message, undefined, 2)
    return undefined
  }
}

/**
 * The start of a script run by the harness: crash handlers, then the options
 * (undefined when they are bad, see parseOptions), then watchStdin() if
 * `--watch-stdin` was given.
 */
function startup (spec) {
  installCrashHandlers()
  const opts = parseOptions(spec)
  if (opts && opts.watchStdin) watchStdin()
  return opts
}

/**
 * startup(spec) for the servers with SERVER_OPTIONS (connector.js,
 * bench-connector.js), which also print {"event":"exit","reason":"timeout"}
 * and exit 0 after a non-zero `--timeout-ms`.
 */
function startServer (spec) {
  const opts = startup(spec)
  if (opts && opts.timeoutMs) {
    installTimeout(opts.timeoutMs, () => {
      emit({ event: 'exit', reason: 'timeout' })
      process.exit(0)
    })
  }
  return opts
}

// ---------------------------------------------------------------- ports

/** A free TCP port on 127.0.0.1 (bind :0, read, close). */
function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

async function resolvePort (port) {
  return port && port > 0 ? port : freePort()
}

// ---------------------------------------------------------------- plugin

/**
 * An ilp-plugin-http (bilateral, non-multi) with static bearer tokens:
 *   incoming: listens on 127.0.0.1:listenPort and accepts `Authorization:
 *             Bearer <incomingToken>` (or the bare token) on POST (any path);
 *   outgoing: POSTs to `url` with `Authorization: Bearer <outgoingToken>`.
 */
function makeHttpPlugin ({ listenPort, url, incomingToken, outgoingToken, name }) {
  for (const [k, v] of Object.entries({ url, incomingToken, outgoingToken })) {
    if (!v) throw new Error(`plugin option ${k} is required`)
  }
  return new PluginHttp({
    multi: false,
    incoming: { port: listenPort, staticToken: incomingToken },
    outgoing: { url, staticToken: outgoingToken, name: name || String(listenPort) }
  })
}

/** Connect the plugin and wait until its HTTP server is really listening. */
async function connectPlugin (plugin) {
  await plugin.connect()
  const srv = plugin._httpServer
  if (srv && !srv.listening) {
    await new Promise((resolve, reject) => {
      srv.once('listening', resolve)
      srv.once('error', err => reject(new Error(`plugin HTTP server could not listen on port ${plugin._port}: ${err.message}`)))
    })
  }
  return srv ? srv.address().port : undefined
}

/**
 * Wrap plugin.sendData to count what goes out and what comes back. ILDCP
 * (peer.*) packets are counted separately.
 */
function countPackets (plugin) {
  const stats = {
    prepares: 0, // ILP Prepares sent (excluding peer.*)
    prepareAmountTotal: 0n,
    maxPrepareAmount: 0n,
    fulfills: 0,
    fulfilledAmount: 0n, // sum of amounts of fulfilled Prepares (source units)
    maxFulfilledAmount: 0n,
    rejects: 0,
    rejectCodes: {}, // code -> count
    rejectTriggeredBy: {}, // code -> distinct triggeredBy addresses
    transportErrors: 0,
    peerProtocol: 0 // peer.config etc.
  }
  const inner = plugin.sendData.bind(plugin)
  plugin.sendData = async (data) => {
    let prepare
    try { prepare = IlpPacket.deserializeIlpPrepare(data) } catch (e) { /* not a prepare */ }
    if (prepare && prepare.destination.startsWith('peer.')) {
      stats.peerProtocol++
      return inner(data)
    }
    const amount = prepare ? BigInt(prepare.amount) : 0n
    stats.prepares++
    stats.prepareAmountTotal += amount
    if (amount > stats.maxPrepareAmount) stats.maxPrepareAmount = amount
    let res
    try {
      res = await inner(data)
    } catch (err) {
      stats.transportErrors++
      log('sendData failed:', err.message)
      throw err
    }
    if (res[0] === IlpPacket.Type.TYPE_ILP_FULFILL) {
      stats.fulfills++
      stats.fulfilledAmount += amount
      if (amount > stats.maxFulfilledAmount) stats.maxFulfilledAmount = amount
    } else if (res[0] === IlpPacket.Type.TYPE_ILP_REJECT) {
      stats.rejects++
      try {
        const rej = IlpPacket.deserializeIlpReject(res)
        stats.rejectCodes[rej.code] = (stats.rejectCodes[rej.code] || 0) + 1
        const by = stats.rejectTriggeredBy[rej.code] || (stats.rejectTriggeredBy[rej.code] = [])
        if (!by.includes(rej.triggeredBy)) by.push(rej.triggeredBy)
      } catch (e) {
        stats.rejectCodes.unparseable = (stats.rejectCodes.unparseable || 0) + 1
      }
    }
    return res
  }
  return stats
}

/** Stats with BigInts turned into decimal strings, for JSON. */
function statsJson (stats) {
  const o = {}
  for (const [k, v] of Object.entries(stats)) o[k] = typeof v === 'bigint' ? v.toString() : v
  return o
}

module.exports = {
  emit,
  log,
  fail,
  done,
  installCrashHandlers,
  installTimeout,
  watchStdin,
  parseArgs,
  parseOptions,
  startup,
  startServer,
  SERVER_OPTIONS,
  freePort,
  resolvePort,
  makeHttpPlugin,
  connectPlugin,
  countPackets,
  statsJson
}

// ---------------------------------------------------------------- ILDCP

/**
 * ILDCP (peer.config) through the plugin, retried until `timeoutMs` passes so
 * the script can be started before the connector is listening. Returns
 * {clientAddress, assetCode, assetScale}.
 */
async function ildcpWithRetry (plugin, timeoutMs = 20000) {
  const ILDCP = require('ilp-protocol-ildcp')
  const deadline = Date.now() + timeoutMs
  let attempt = 0
  for (;;) {
    attempt++
    try {
      return await ILDCP.fetch(plugin.sendData.bind(plugin))
    } catch (err) {
      // Retry only while the connector is not reachable yet; an ILP Reject or
      // an HTTP error status (e.g. 401: token not accepted) is final.
      const transient = /ECONNREFUSED|ECONNRESET|socket hang up|code=502|code=503/.test(String(err.message)) ||
        ['ECONNREFUSED', 'ECONNRESET'].includes(err.code)
      if (!transient) {
        throw new Error(`ILDCP (peer.config) to ${plugin._url} failed: ${err.message}`)
      }
      if (Date.now() + 250 > deadline) {
        throw new Error(`ILDCP (peer.config) to ${plugin._url} failed after ${attempt} attempts: ${err.message}`)
      }
      if (attempt === 1 || attempt % 10 === 0) log(`ILDCP attempt ${attempt} failed (${err.message}); retrying`)
      await new Promise(resolve => setTimeout(resolve, 250))
    }
  }
}

module.exports.ildcpWithRetry = ildcpWithRetry

// ---------------------------------------------------------------- upstream

/**
 * The option spec of a STREAM endpoint behind an upstream connector
 * (sender.js, receiver.js): `--port`, `--url`, `--incoming-token`,
 * `--outgoing-token` (also read from env `<envPrefix>_PORT`, `_UPSTREAM_URL`,
 * `_INCOMING_TOKEN`, `_OUTGOING_TOKEN`), then the script's own `options`, then
 * `--connect-timeout-ms` and `--watch-stdin`. See connectUpstream and
 * upstreamArgs.
 */
function upstreamSpec (envPrefix, urlHelp, options) {
  return {
    port: { type: 'int', default: 0, env: `${envPrefix}_PORT`, help: 'port to listen on for ILP-over-HTTP from the connector (0: pick a free one)' },
    url: { required: true, env: `${envPrefix}_UPSTREAM_URL`, help: urlHelp },
    'incoming-token': { required: true, env: `${envPrefix}_INCOMING_TOKEN`, help: 'bearer token the connector must present to us' },
    'outgoing-token': { required: true, env: `${envPrefix}_OUTGOING_TOKEN`, help: 'bearer token we present to the connector' },
    ...options,
    'connect-timeout-ms': { type: 'int', default: 20000, help: 'how long to retry ILDCP while the connector starts' },
    'watch-stdin': WATCH_STDIN_OPTION
  }
}

/** The command-line arguments for the first four options of upstreamSpec. */
function upstreamArgs ({ port, url, incomingToken, outgoingToken }) {
  return ['--port', String(port), '--url', url, '--incoming-token', incomingToken, '--outgoing-token', outgoingToken]
}

/**
 * Listen with an ilp-plugin-http on opts.port (0: a free one) towards
 * opts.url, count its outgoing packets (countPackets), then ILDCP with retries
 * for opts.connectTimeoutMs, so a not-yet-started connector is waited for.
 * Resolves with {plugin, stats, port (the bound one), ildcp}.
 */
async function connectUpstream (opts, name) {
  const plugin = makeHttpPlugin({
    listenPort: await resolvePort(opts.port),
    url: opts.url,
    incomingToken: opts.incomingToken,
    outgoingToken: opts.outgoingToken,
    name
  })
  const stats = countPackets(plugin)
  const port = await connectPlugin(plugin)
  log(`listening on 127.0.0.1:${port}, upstream ${opts.url}`)
  const ildcp = await ildcpWithRetry(plugin, opts.connectTimeoutMs)
  log('ILDCP:', ildcp)
  return { plugin, stats, port, ildcp }
}

Object.assign(module.exports, { upstreamSpec, upstreamArgs, connectUpstream })
