// A js-libp2p gossipsub peer (@libp2p/gossipsub) for parsec-rs's pubsub interop test. It listens
// on loopback TCP, prints `listening <multiaddr>` and `peer <id>`, then takes lines on stdin:
//   dial <multiaddr>                 -> `dialed <multiaddr>` or `failed dial <error>`
//   subscribe <topic>                -> `subscribed <topic>`
//   publish <topic> <uuid> <bytes>   -> `published <uuid> <peers>` or `failed <uuid> <error>`
//   copies <uuid>                    -> `copies <uuid> <n>`
// and prints `received <uuid> <topic> <from>` at the first copy of every message. A message id
// is the UUID a payload starts with, as parsec-rs's peers derive it, so both name it alike; the
// id function is called for every copy that arrives, which counts the copies.
Promise.withResolvers ??= function () {
  let resolve, reject
  const promise = new Promise((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { gossipsub } = await import('@libp2p/gossipsub')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { tcp } = await import('@libp2p/tcp')
const { createLibp2p } = await import('libp2p')
const { multiaddr } = await import('@multiformats/multiaddr')
const { createInterface } = await import('node:readline')
const { randomBytes } = await import('node:crypto')

const hex = (bytes) => Buffer.from(bytes).toString('hex')
const uuid = (bytes) => {
  const h = hex(bytes.subarray(0, 16))
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}
const copies = new Map()

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({
      heartbeatInterval: 200,
      emitSelf: false,
      msgIdFn: (message) => {
        const id = message.data.subarray(0, 16)
        const key = uuid(id)
        copies.set(key, (copies.get(key) ?? 0) + 1)
        return id
      }
    })
  }
})
node.services.pubsub.addEventListener('message', (event) => {
  const message = event.detail
  if (message.data.length >= 16) {
    const from = message.type === 'signed' ? message.from.toString() : '-'
    console.log(`received ${uuid(message.data)} ${message.topic} ${from}`)
  }
})
for (const address of node.getMultiaddrs()) {
  console.log(`listening ${address.toString()}`)
}
console.log(`peer ${node.peerId.toString()}`)
process.on('SIGTERM', async () => { await node.stop(); process.exit(0) })

for await (const line of createInterface({ input: process.stdin })) {
  const [command, ...args] = line.trim().split(/\s+/)
  try {
    if (command === 'dial') {
      await node.dial(multiaddr(args[0]), { signal: AbortSignal.timeout(10000) })
      console.log(`dialed ${args[0]}`)
    } else if (command === 'subscribe') {
      node.services.pubsub.subscribe(args[0])
      console.log(`subscribed ${args[0]}`)
    } else if (command === 'publish') {
      const [topic, id, size] = args
      const data = randomBytes(Math.max(16, Number(size)))
      Buffer.from(id.replaceAll('-', ''), 'hex').copy(data, 0)
      const result = await node.services.pubsub.publish(topic, data)
      console.log(`published ${id} ${result.recipients.length}`)
    } else if (command === 'copies') {
      console.log(`copies ${args[0]} ${copies.get(args[0]) ?? 0}`)
    }
  } catch (error) {
    console.log(`failed ${args[0]} ${error.message}`)
  }
}
