"""A py-libp2p kad-dht peer in DHT server mode for parsec-rs's interop test.

It listens on loopback TCP and prints `listening <multiaddr>` (with /p2p/<peer id>), then serves
until killed. A line `provide <cid>` on stdin publishes a provider record of that CID (answered
`provided <cid>` or `failed <cid> <error>`); `find <cid>` looks its providers up (answered
`found <cid> <peer id>` at the first, or `failed <cid> ...`). The same lines as tests/js/kad-peer.mjs.
"""

import secrets
import sys

import trio
from multiaddr import Multiaddr

from libp2p import new_host
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.tools.anyio_service import background_trio_service


def say(line: str) -> None:
    print(line, flush=True)


async def serve_commands(dht: KadDHT) -> None:
    stdin = trio.wrap_file(sys.stdin)
    while True:
        line = await stdin.readline()
        if not line:
            return
        parts = line.split()
        if len(parts) != 2:
            continue
        command, cid = parts
        try:
            with trio.fail_after(20):
                if command == "provide":
                    if await dht.provide(cid):
                        say(f"provided {cid}")
                    else:
                        say(f"failed {cid} provide returned false")
                elif command == "find":
                    providers = await dht.find_providers(cid, 1)
                    if providers:
                        say(f"found {cid} {providers[0].peer_id}")
                    else:
                        say(f"failed {cid} no provider")
        except Exception as error:  # answer every command, whatever went wrong
            say(f"failed {cid} {error!r}")


async def main() -> None:
    host = new_host(key_pair=create_new_key_pair(secrets.token_bytes(32)))
    async with host.run(listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        dht = KadDHT(host, DHTMode.SERVER)
        async with background_trio_service(dht):
            for address in host.get_addrs():
                say(f"listening {address}")
            say("key secp256k1")
            await serve_commands(dht)
            await trio.sleep_forever()


trio.run(main)
