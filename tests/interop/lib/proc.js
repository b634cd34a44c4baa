'use strict'
// Child-process helper for the orchestration scripts: spawn a harness script,
// read its JSON lines, wait for events, and kill everything on the way out.
const { spawn } = require('child_process')
const path = require('path')
const readline = require('readline')
const { log } = require('./common')

const children = new Set()

function killAll () {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try { c.kill('SIGKILL') } catch (e) { /* already gone */ }
    }
  }
  children.clear()
}
process.on('exit', killAll)

/**
 * Spawn `node <script> ...args` from the harness directory. stderr is passed
 * through with a prefix; stdout lines are parsed as JSON events.
 */
function startScript (name, script, args, { env } = {}) {
  const child = spawn(process.execPath, [path.join(__dirname, '..', script), ...args, '--watch-stdin'], {
    cwd: path.join(__dirname, '..'),
    env: Object.assign({}, process.env, env || {}),
    stdio: ['pipe', 'pipe', 'pipe']
  })
  children.add(child)
  const events = []
  const waiters = []
  const proc = { name, child, events }

  readline.createInterface({ input: child.stdout }).on('line', line => {
    let ev
    try { ev = JSON.parse(line) } catch (e) {
      log(`[${name}] non-JSON stdout: ${line}`)
      return
    }
    log(`[${name}] event: ${line}`)
    events.push(ev)
    for (const w of waiters.slice()) w()
  })
  readline.createInterface({ input: child.stderr }).on('line', line => {
    if (process.env.INTEROP_QUIET !== '1') process.stderr.write(`  [${name}] ${line}\n`)
  })
  child.on('exit', (code, sig) => {
    proc.exit = { code, sig }
    log(`[${name}] exited code=${code} signal=${sig}`)
    for (const w of waiters.slice()) w()
  })

  /** Resolve with the first event named `event`; reject on error event, exit or timeout. */
  proc.waitFor = (event, timeoutMs) => new Promise((resolve, reject) => {
    const check = () => {
      const ev = events.find(e => e.event === event)
      if (ev) return finish(null, ev)
      const err = events.find(e => e.event === 'error')
      if (err) return finish(new Error(`${name} failed: ${err.message}${err.detail ? ' (' + err.detail + ')' : ''}`))
      if (proc.exit) return finish(new Error(`${name} exited (code ${proc.exit.code}, signal ${proc.exit.sig}) before "${event}"`))
    }
    const timer = setTimeout(() => finish(new Error(`${name}: no "${event}" within ${timeoutMs} ms`)), timeoutMs)
    const finish = (err, ev) => {
      clearTimeout(timer)
      const i = waiters.indexOf(check)
      if (i >= 0) waiters.splice(i, 1)
      err ? reject(err) : resolve(ev)
    }
    waiters.push(check)
    check()
  })
  return proc
}

module.exports = { startScript, killAll }
