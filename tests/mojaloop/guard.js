'use strict'
// Preloaded into the Mojaloop Connector by the Rust harness (tests/common/mojaloop.rs):
//
//   node -r ./guard.js node_modules/@mojaloop/sdk-scheme-adapter/src/index.js
//
// The package starts its servers only when its own src/index.js is the main module, so this file
// is loaded before it with `-r` instead of wrapping it. node_modules is never edited.

// 1. Die with the test process. The harness gives the Connector a pipe as stdin and never
//    writes to it; when the test process exits, even by SIGKILL where no Drop runs, the kernel
//    closes the pipe and the Connector exits at once (no graceful shutdown: a crash is what the
//    tests model). The pipe is unref'd: it must not keep alive a Connector that would otherwise
//    have exited (one that failed at start-up must be seen exiting).
if (process.env.MOJALOOP_WATCH_STDIN !== '0') {
  process.stdin.on('end', () => process.exit(137))
  process.stdin.on('error', () => process.exit(137))
  process.stdin.resume()
  process.stdin.unref()
}

// 2. Loopback only. The Connector's servers call `listen(port, callback)`, which binds every
//    interface; a bare port gets 127.0.0.1 added, so nothing a test starts is reachable from
//    outside the machine.
const net = require('net')
const host = process.env.MOJALOOP_BIND_HOST || '127.0.0.1'
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const bare = (typeof args[0] === 'number' || typeof args[0] === 'string') &&
    (args.length === 1 || typeof args[1] === 'function')
  if (bare) args.splice(1, 0, host)
  return listen.apply(this, args)
}

// 3. No native gRPC. The Connector requires @mojaloop/central-services-shared (for a few enums
//    and header checks), whose index loads @mojaloop/event-sdk, which requires `grpc` 1.24.9 at
//    load time. That package's native binary comes from its install script (node-pre-gyp,
//    compiled on Node 20: minutes and a C++ toolchain), yet the Connector never sends events
//    over gRPC. So the packages are installed without install scripts (tests/mojaloop/.npmrc)
//    and `require('grpc')` gets this stand-in: loading it works, using it throws and says why.
const Module = require('module')
const grpcStandIn = new Proxy({}, {
  get (target, key) {
    if (typeof key === 'symbol' || key === '__esModule' || key === 'then') return undefined
    throw new Error(`grpc.${key}: native gRPC is not available in the ThitsaX test harness ` +
      '(tests/mojaloop/guard.js); the Connector was not expected to use it')
  }
})
const load = Module._load
Module._load = function (request, ...rest) {
  if (request === 'grpc') return grpcStandIn
  return load.call(this, request, ...rest)
}
