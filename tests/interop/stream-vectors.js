#!/usr/bin/env node
'use strict'
// Known-answer vectors for ThitsaX's STREAM module (src/stream/), produced by the JS reference
// ilp-protocol-stream 2.7.1 itself: its packet serializer and parser (dist/src/packet) and its
// crypto helpers (dist/src/crypto). Prints one JSON object of hex strings and decoded packets;
// src/stream/tests.rs embeds them. Re-run after changing a vector here:
//
//   node tests/interop/stream-vectors.js            (after `npm ci --prefix tests/interop`)
//
// Everything is fixed (secret, nonces) except the `*_random_nonce` encryptions, which use the
// library's own random IV, exactly as a sender would.
const nodeCrypto = require('crypto')
const Long = require('long')
const stream = require('ilp-protocol-stream/dist/src/packet')
const streamCrypto = require('ilp-protocol-stream/dist/src/crypto')
const { createReceipt } = require('ilp-protocol-stream/dist/src/util/receipt')

const {
  Packet, IlpPacketType, ErrorCode,
  ConnectionCloseFrame, ConnectionNewAddressFrame, ConnectionMaxDataFrame, ConnectionDataBlockedFrame,
  ConnectionMaxStreamIdFrame, ConnectionStreamIdBlockedFrame, ConnectionAssetDetailsFrame,
  StreamCloseFrame, StreamMoneyFrame, StreamMaxMoneyFrame, StreamMoneyBlockedFrame, StreamDataFrame,
  StreamMaxDataFrame, StreamDataBlockedFrame, StreamReceiptFrame
} = stream

const hex = (buffer) => Buffer.from(buffer).toString('hex')
const MAX = Long.MAX_UNSIGNED_VALUE

// A packet's fields as the reference reads them (Longs as decimal strings, buffers as hex).
function describe (packet) {
  return {
    sequence: packet.sequence.toString(),
    ilpPacketType: packet.ilpPacketType,
    prepareAmount: packet.prepareAmount.toString(),
    frames: packet.frames.map((frame) => {
      const out = {}
      for (const [key, value] of Object.entries(frame)) {
        out[key] = Long.isLong(value) ? value.toString() : Buffer.isBuffer(value) ? hex(value) : value
      }
      return out
    })
  }
}

// The library's encrypt draws its IV from crypto.randomBytes at call time; a fixed IV makes the
// output comparable byte for byte, through the library's own code path.
async function encryptWithIv (key, plaintext, iv) {
  const original = nodeCrypto.randomBytes
  nodeCrypto.randomBytes = (n) => {
    if (n !== iv.length) throw new Error(`expected a request for ${iv.length} random bytes, got ${n}`)
    return Buffer.from(iv)
  }
  try {
    return await streamCrypto.encrypt(key, plaintext)
  } finally {
    nodeCrypto.randomBytes = original
  }
}

async function main () {
  const secret = Buffer.from([...Array(32).keys()]) // 00 01 .. 1f
  const key = await streamCrypto.generatePskEncryptionKey(secret)
  const fulfillmentKey = await streamCrypto.generateFulfillmentKey(secret)
  const iv = Buffer.from([...Array(12).keys()].map((i) => 0xa0 + i))

  // Every frame type of RFC 0029, with edge values.
  const allFrames = new Packet('18446744073709551615', IlpPacketType.Prepare, '1000000000000', [
    new ConnectionCloseFrame(ErrorCode.ApplicationError, 'payment done ✓'),
    new ConnectionNewAddressFrame('test.thitsax.sender'),
    new ConnectionMaxDataFrame(0),
    new ConnectionDataBlockedFrame(65536),
    new ConnectionMaxStreamIdFrame(20),
    new ConnectionStreamIdBlockedFrame(MAX),
    new ConnectionAssetDetailsFrame('USD', 9),
    new StreamCloseFrame(1, ErrorCode.NoError, ''),
    new StreamMoneyFrame(1, '9007199254740993'),
    new StreamMaxMoneyFrame(3, Infinity, 12345),
    new StreamMoneyBlockedFrame(5, MAX, MAX),
    new StreamDataFrame(7, 128, Buffer.alloc(200, 0x42)),
    new StreamMaxDataFrame(9, 16384),
    new StreamDataBlockedFrame(11, 255),
    new StreamReceiptFrame(13, Buffer.alloc(58, 0x17))
  ])
  const allFramesBytes = allFrames._serialize()
  const allFramesFixedNonce = await encryptWithIv(key, allFramesBytes, iv)
  const allFramesRandomNonce = await allFrames.serializeAndEncrypt(key)
  const fulfillment = await streamCrypto.generateFulfillment(fulfillmentKey, allFramesRandomNonce)

  // What a JS sender puts in a money packet, and what a JS server answers to it.
  const money = new Packet(1, IlpPacketType.Prepare, 990, [
    new StreamMoneyFrame(1, 1),
    new ConnectionNewAddressFrame('test.thitsax.sender'),
    new ConnectionAssetDetailsFrame('USD', 9)
  ])
  const moneyData = await money.serializeAndEncrypt(key)
  const moneyFulfillment = await streamCrypto.generateFulfillment(fulfillmentKey, moneyData)
  const reply = new Packet(1, IlpPacketType.Fulfill, 1000, [
    new StreamMaxMoneyFrame(1, Infinity, 1000),
    new ConnectionAssetDetailsFrame('USD', 9)
  ])

  // @interledger/pay's first packet: an empty address to ask for the asset details.
  const payProbe = new Packet(1, IlpPacketType.Prepare, 0, [
    new ConnectionNewAddressFrame(''),
    new StreamMaxMoneyFrame(1, 0, 0),
    new ConnectionMaxDataFrame(0),
    new ConnectionMaxStreamIdFrame(1)
  ])

  // Hand-made bytes the serializer cannot produce: receive_max and send_max wider than a u64
  // (9 and 10 bytes, RFC 0029 § 5.1.4), and frames of unknown types around a known one.
  const wide = Buffer.from(
    '01' + '0c' + '0101' + '0100' + '0102' +
    '12' + '0e' + '0101' + '09' + '000000000000000001' + '0102' +
    '13' + '0f' + '0103' + '0a' + '01000000000000000000' + '0104',
    'hex')
  const unknown = Buffer.from(
    '01' + '0d' + '0102' + '0103' + '0103' +
    '50' + '03' + 'aabbcc' +
    '11' + '04' + '0101' + '0105' +
    'ff' + '00',
    'hex')
  // A padded packet, as a sender with `enablePadding` sends it: zeros after the frames.
  const padded = await money.serializeAndEncrypt(key, 1024)

  const out = {
    generator: 'ilp-protocol-stream ' + require('ilp-protocol-stream/package.json').version,
    secret: hex(secret),
    iv: hex(iv),
    all_frames: { bytes: hex(allFramesBytes), packet: describe(Packet._deserializeUnencrypted(allFramesBytes)) },
    all_frames_fixed_nonce: hex(allFramesFixedNonce),
    all_frames_random_nonce: hex(allFramesRandomNonce),
    all_frames_random_nonce_fulfillment: hex(fulfillment),
    all_frames_random_nonce_condition: hex(await streamCrypto.hash(fulfillment)),
    money_prepare: {
      data: hex(moneyData),
      fulfillment: hex(moneyFulfillment),
      condition: hex(await streamCrypto.hash(moneyFulfillment))
    },
    money_reply: hex(reply._serialize()),
    pay_probe: hex(payProbe._serialize()),
    wide_var_uints: { bytes: hex(wide), packet: describe(Packet._deserializeUnencrypted(wide)) },
    wide_var_uints_reserialized: hex(Packet._deserializeUnencrypted(wide)._serialize()),
    unknown_frames: { bytes: hex(unknown), packet: describe(Packet._deserializeUnencrypted(unknown)) },
    padded: { data: hex(padded), length: padded.length },
    // An RFC 0039 receipt: nonce 16 × 0x11, secret 32 × 0x22, stream 1, 1000000 received.
    receipt: hex(createReceipt({
      nonce: Buffer.alloc(16, 0x11), secret: Buffer.alloc(32, 0x22), streamId: 1, totalReceived: '1000000'
    }))
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n')
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
