// A js-libp2p kad-dht peer in DHT server mode with an RSA identity, as the IPFS Amino
// bootstrappers and many long-lived Kubo nodes have. It listens on loopback TCP, prints
// `listening <multiaddr>` once per address, and runs until killed. A line `provide <cid>` on stdin
// publishes a provider record of that CID (answered `provided <cid>`, or `failed <cid> <error>`);
// `find <cid>` looks its providers up (answered `found <cid> <peer id>` at the first, or `failed`).
// The current js-libp2p wants Node 22's Promise.withResolvers; Debian's Node is 20.
Promise.withResolvers ??= function () {
  let resolve, reject
  const promise = new Promise((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { generateKeyPair } = await import('@libp2p/crypto/keys')
const { identify } = await import('@libp2p/identify')
const { kadDHT } = await import('@libp2p/kad-dht')
const { ping } = await import('@libp2p/ping')
const { tcp } = await import('@libp2p/tcp')
const { createLibp2p } = await import('libp2p')
const { CID } = await import('multiformats/cid')
const { createInterface } = await import('node:readline')

const node = await createLibp2p({
  privateKey: await generateKeyPair('RSA', 2048),
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({
      protocol: '/ipfs/kad/1.0.0',
      clientMode: false,
      // Loopback peers are all this test has.
      peerInfoMapper: (peer) => peer,
      allowQueryWithZeroPeers: true
    })
  }
})
for (const address of node.getMultiaddrs()) {
  console.log(`listening ${address.toString()}`)
}
console.log(`key ${node.peerId.type}`)
process.on('SIGTERM', async () => { await node.stop(); process.exit(0) })

for await (const line of createInterface({ input: process.stdin })) {
  const [command, text] = line.trim().split(/\s+/)
  const options = { signal: AbortSignal.timeout(20000) }
  try {
    if (command === 'provide') {
      await node.contentRouting.provide(CID.parse(text), options)
      console.log(`provided ${text}`)
    } else if (command === 'find') {
      let found = null
      for await (const provider of node.contentRouting.findProviders(CID.parse(text), options)) {
        found = provider.id.toString()
        break
      }
      console.log(found ? `found ${text} ${found}` : `failed ${text} no provider`)
    }
  } catch (error) {
    console.log(`failed ${text} ${error.message}`)
  }
}
