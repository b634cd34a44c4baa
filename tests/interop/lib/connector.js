'use strict'
// Start ilp-connector (23.x) in this process from a config object whose
// accounts may use the `http` shorthand (see connector.js).
const { log, resolvePort } = require('./common')

/** Turn the `http` shorthand into an ilp-plugin-http account, resolving ports. */
async function expandAccounts (config) {
  const ports = {}
  for (const [id, acc] of Object.entries(config.accounts || {})) {
    if (!acc.http) continue
    const h = acc.http
    for (const k of ['url', 'incomingToken', 'outgoingToken']) {
      if (!h[k]) throw new Error(`accounts.${id}.http.${k} is required`)
    }
    const port = await resolvePort(h.listenPort)
    delete acc.http
    acc.plugin = 'ilp-plugin-http'
    acc.options = Object.assign({
      multi: false,
      incoming: { port, staticToken: h.incomingToken },
      outgoing: { url: h.url, staticToken: h.outgoingToken, name: h.name || id }
    }, acc.options || {})
    // ThitsaX and the STREAM endpoints speak no CCP: never broadcast routes to
    // them nor expect any from them.
    if (acc.sendRoutes === undefined) acc.sendRoutes = false
    if (acc.receiveRoutes === undefined) acc.receiveRoutes = false
    ports[id] = port
  }
  return ports
}

/**
 * Start ilp-connector. Resolves with {app, address, accounts: {id: {port, url}}}
 * once every ilp-plugin-http account is listening; rejects otherwise.
 */
async function startConnector (config) {
  config = JSON.parse(JSON.stringify(config))
  const ports = await expandAccounts(config)
  const defaults = {
    env: 'test',
    backend: 'one-to-one', // the default "ecb" backend downloads rates from the internet
    spread: 0,
    initialConnectTimeout: 10000
  }
  for (const [k, v] of Object.entries(defaults)) if (config[k] === undefined) config[k] = v
  if (config.routeBroadcastEnabled === false) {
    // With broadcasting off, ilp-connector 23 never loads its local routes
    // (children, defaultRoute, configured routes) and everything is F02.
    throw new Error('routeBroadcastEnabled=false breaks local routing in ilp-connector 23; use sendRoutes/receiveRoutes=false per account instead')
  }

  // ilp-connector logs to stdout by default; stdout is our JSON channel.
  require('ilp-connector/dist/common/log').setOutputStream(process.stderr)
  const { createApp } = require('ilp-connector')
  const app = createApp(config)
  await app.listen() // never rejects: errors are only logged by ilp-connector

  const accounts = {}
  for (const id of Object.keys(config.accounts)) {
    const plugin = app.getPlugin(id)
    const inner = plugin.oldPlugin || plugin // ilp-compat-plugin wrapper, if any
    const srv = inner._httpServer
    if (!plugin.isConnected()) throw new Error(`account ${id}: plugin did not connect`)
    if (srv) {
      if (!srv.listening) {
        await new Promise((resolve, reject) => {
          srv.once('listening', resolve)
          srv.once('error', err => reject(new Error(`account ${id}: cannot listen on port ${ports[id]}: ${err.message}`)))
        })
      }
      const port = srv.address().port
      accounts[id] = { port, url: `http://127.0.0.1:${port}/` }
    } else {
      accounts[id] = {}
    }
  }
  const address = app.config.ilpAddress
  log(`ilp-connector ready, address ${address}, accounts ${JSON.stringify(accounts)}`)
  return { app, address, accounts, config }
}

module.exports = { startConnector, expandAccounts }
