'use strict'
// Harness-side compatibility shims for running 2018-2020 era Interledger JS
// packages on Node >= 18. Never edit node_modules; everything is patched here,
// at run time, before the packages are used. Every script requires this first
// (it can also be preloaded with `node -r ./lib/compat.js`).

// 1. ilp-protocol-stream 2.7.1: DataAndMoneyStream (a stream.Duplex) does
//    `this.closed = false` in its constructor and assigns it later. Since
//    Node 18, stream.Duplex.prototype.closed is a getter without a setter, so
//    the assignment throws "Cannot set property closed of #<DataAndMoneyStream>
//    which has only a getter". We give the subclass its own accessor backed by a
//    private slot. Node's stream internals read the state objects
//    (_readableState/_writableState.closed), not this property, so shadowing it
//    on the subclass does not change Node's own bookkeeping.
const { DataAndMoneyStream } = require('ilp-protocol-stream/dist/src/stream')
const CLOSED = Symbol('ilpStreamClosed')
const own = Object.getOwnPropertyDescriptor(DataAndMoneyStream.prototype, 'closed')
if (!own) {
  Object.defineProperty(DataAndMoneyStream.prototype, 'closed', {
    configurable: true,
    enumerable: false,
    get () { return this[CLOSED] === true },
    set (value) { this[CLOSED] = !!value }
  })
}

// 2. Loopback only. ilp-plugin-http calls `new Koa().listen(port)`, which binds
//    every interface. The harness must only use 127.0.0.1, so a bare
//    `listen(port)` gets the host added.
const Koa = require('koa')
if (!Koa.prototype.__thitsaxLoopback) {
  const listen = Koa.prototype.listen
  Koa.prototype.listen = function (...args) {
    if (args.length === 1 && (typeof args[0] === 'number' || typeof args[0] === 'string')) {
      args.push(process.env.INTEROP_BIND_HOST || '127.0.0.1')
    }
    return listen.apply(this, args)
  }
  Koa.prototype.__thitsaxLoopback = true
}

module.exports = { patched: true }
