//! Public networks a server can join by name, as parsec names them (`--project`, `--network`):
//! each preset gives the Kademlia protocol id and the bootstrap peers.
//!
//! The lists are copied from probe-lab/go-commons `p2p/config.go` and `p2p/bootstrap.go` (the
//! module parsec's `server dht` resolves its presets with; generated from nebula's
//! `config/bootstrap.go`), which in turn cite each network's own publication; every list below
//! names that source. Entries for transports we do not speak (`/ws`, `/wss`, meant for
//! browsers) are left out.

/// A public network a server can join by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkPreset {
    /// parsec's `--project`.
    pub project: &'static str,
    /// parsec's `--network`.
    pub network: &'static str,
    /// The Kademlia protocol id the network's DHT speaks.
    pub protocol: &'static str,
    /// Bootstrap peers as multiaddrs. Most end in `/p2p/<peer id>`; a `/dnsaddr` entry without
    /// it names a set of peers that DNS resolution reveals.
    pub bootstrap: &'static [&'static str],
}

/// The preset parsec uses when no network is given.
pub const DEFAULT_PROJECT: &str = "ipfs";
/// The preset parsec uses when no network is given.
pub const DEFAULT_NETWORK: &str = "amino";

/// Every preset, in the order `parsec networks` lists them.
pub const PRESETS: &[NetworkPreset] = &[
    NetworkPreset {
        project: "ipfs",
        network: "amino",
        protocol: "/ipfs/kad/1.0.0",
        bootstrap: IPFS_AMINO,
    },
    // go-commons lists `mainnet` as a second name for Amino.
    NetworkPreset {
        project: "ipfs",
        network: "mainnet",
        protocol: "/ipfs/kad/1.0.0",
        bootstrap: IPFS_AMINO,
    },
    NetworkPreset {
        project: "filecoin",
        network: "mainnet",
        protocol: "/fil/kad/testnetnet/kad/1.0.0",
        bootstrap: FILECOIN_MAINNET,
    },
    NetworkPreset {
        project: "filecoin",
        network: "calibnet",
        protocol: "/fil/kad/calibrationnet/kad/1.0.0",
        bootstrap: FILECOIN_CALIBNET,
    },
    NetworkPreset {
        project: "celestia",
        network: "mainnet",
        protocol: "/celestia/celestia/kad/1.0.0",
        bootstrap: CELESTIA_MAINNET,
    },
    NetworkPreset {
        project: "celestia",
        network: "arabica",
        protocol: "/celestia/arabica-10/kad/1.0.0",
        bootstrap: CELESTIA_ARABICA,
    },
    NetworkPreset {
        project: "celestia",
        network: "mocha",
        protocol: "/celestia/mocha-4/kad/1.0.0",
        bootstrap: CELESTIA_MOCHA,
    },
    NetworkPreset {
        project: "polkadot",
        network: "mainnet",
        protocol: "/dot/kad",
        bootstrap: POLKADOT,
    },
    NetworkPreset {
        project: "polkadot",
        network: "kusama",
        protocol: "/ksmcc3/kad",
        bootstrap: KUSAMA,
    },
    NetworkPreset {
        project: "avail",
        network: "mainnet_fn",
        protocol: "/Avail/kad",
        bootstrap: AVAIL_MAINNET_FULL_NODE,
    },
    NetworkPreset {
        project: "avail",
        network: "mainnet_lc",
        protocol: "/avail_kad/id/1.0.0-b91746",
        bootstrap: AVAIL_MAINNET_LIGHT_CLIENT,
    },
    NetworkPreset {
        project: "avail",
        network: "turing_fn",
        protocol: "/Avail/kad",
        bootstrap: AVAIL_TURING_FULL_NODE,
    },
    NetworkPreset {
        project: "avail",
        network: "turing_lc",
        protocol: "/avail_kad/id/1.0.0-6f0996",
        bootstrap: AVAIL_TURING_LIGHT_CLIENT,
    },
    NetworkPreset {
        project: "pactus",
        network: "mainnet",
        protocol: "/pactus/gossip/v1/kad/1.0.0",
        bootstrap: PACTUS_MAINNET,
    },
];

/// The preset of `project`/`network`, or an error that lists the known ones.
pub fn find(project: &str, network: &str) -> Result<&'static NetworkPreset, String> {
    PRESETS
        .iter()
        .find(|p| p.project == project && p.network == network)
        .ok_or_else(|| {
            let known: Vec<String> = PRESETS
                .iter()
                .map(|p| format!("{}/{}", p.project, p.network))
                .collect();
            format!(
                "unknown network {project}/{network}: known are {} (see `parsec networks`), or give \
                 --bootstrap and --protocol yourself",
                known.join(", ")
            )
        })
}

// Source: go-libp2p-kad-dht `dht_bootstrap.go` (DefaultBootstrapPeers), as go-commons copies it.
const IPFS_AMINO: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

// Source: filecoin-project/lotus `build/bootstrap/mainnet.pi`.
const FILECOIN_MAINNET: &[&str] = &[
    "/dns/bootstrap.filecoin.chain.love/tcp/1235/p2p/12D3KooWBF8cpp65hp2u9LK5mh19x67ftAam84z9LsfaquTDSBpt",
    "/dnsaddr/bootstrap-mainnet.chainsafe-fil.io",
];

// Source: filecoin-project/lotus `build/bootstrap/calibnet.pi`.
const FILECOIN_CALIBNET: &[&str] = &[
    "/dns/bootstrap.calibration.filecoin.chain.love/tcp/1237/p2p/12D3KooWQPYouEAsUQKzvFUA9sQ8tz4rfpqtTzh2eL6USd9bwg7x",
    "/dnsaddr/bootstrap-calibnet.chainsafe-fil.io",
];

// Source: celestiaorg/celestia-node `nodebuilder/p2p/bootstrap.go` (mainnet).
const CELESTIA_MAINNET: &[&str] = &[
    "/dnsaddr/da-bootstrapper-1.celestia-bootstrap.net/p2p/12D3KooWSqZaLcn5Guypo2mrHr297YPJnV8KMEMXNjs3qAS8msw8",
    "/dnsaddr/da-bootstrapper-2.celestia-bootstrap.net/p2p/12D3KooWQpuTFELgsUypqp9N4a1rKBccmrmQVY8Em9yhqppTJcXf",
    "/dnsaddr/boot.celestia.pops.one/p2p/12D3KooWBBzzGy5hAHUQVh2vBvL25CKwJ7wbmooPcz4amQhzJHJq",
    "/dnsaddr/celestia.qubelabs.io/p2p/12D3KooWAzucnC7yawvLbmVxv53ihhjbHFSVZCsPuuSzTg6A7wgx",
    "/dnsaddr/celestia-bootstrapper.binary.builders/p2p/12D3KooWDKvTzMnfh9j7g4RpvU6BXwH3AydTrzr1HTW6TMBQ61HF",
    "/dnsaddr/celestia-mainnet-boot.01node.com/p2p/12D3KooWJ77n9mC9xpKHeoEc49UkP4M5EixcPoKf5Xb1tsHo99P7",
];

// Source: celestiaorg/celestia-node `nodebuilder/p2p/bootstrap.go` (arabica).
const CELESTIA_ARABICA: &[&str] = &[
    "/dns4/da-bridge.celestia-arabica-10.com/tcp/2121/p2p/12D3KooWM3e9MWtyc8GkP8QRt74Riu17QuhGfZMytB2vq5NwkWAu",
    "/dns4/da-bridge-2.celestia-arabica-10.com/tcp/2121/p2p/12D3KooWKj8mcdiBGxQRe1jqhaMnh2tGoC3rPDmr5UH2q8H4WA9M",
    "/dns4/da-full-1.celestia-arabica-10.com/tcp/2121/p2p/12D3KooWBWkgmN7kmJSFovVrCjkeG47FkLGq7yEwJ2kEqNKCsBYk",
    "/dns4/da-full-2.celestia-arabica-10.com/tcp/2121/p2p/12D3KooWRByRF67a2kVM2j4MP5Po3jgTw7H2iL2Spu8aUwPkrRfP",
];

// Source: celestiaorg/celestia-node `nodebuilder/p2p/bootstrap.go` (mocha).
const CELESTIA_MOCHA: &[&str] = &[
    "/dns4/da-bridge-mocha-4.celestia-mocha.com/tcp/2121/p2p/12D3KooWCBAbQbJSpCpCGKzqz3rAN4ixYbc63K68zJg9aisuAajg",
    "/dns4/da-bridge-mocha-4-2.celestia-mocha.com/tcp/2121/p2p/12D3KooWK6wJkScGQniymdWtBwBuU36n6BRXp9rCDDUD6P5gJr3G",
    "/dns4/da-full-1-mocha-4.celestia-mocha.com/tcp/2121/p2p/12D3KooWCUHPLqQXZzpTx1x3TAsdn3vYmTNDhzg66yG8hqoxGGN8",
    "/dns4/da-full-2-mocha-4.celestia-mocha.com/tcp/2121/p2p/12D3KooWR6SHsXPkkvhCRn6vp1RqSefgaT1X1nMNvrVjU2o3GoYy",
];

// Source: paritytech/polkadot-sdk `polkadot/node/service/chain-specs/polkadot.json` (bootNodes);
// the TCP entries (the `/ws` and `/wss` ones are for browsers).
const POLKADOT: &[&str] = &[
    "/dns/polkadot-bootnode-0.polkadot.io/tcp/30333/p2p/12D3KooWSz8r2WyCdsfWHgPyvD8GKQdJ1UAiRmrcrs8sQB3fe2KU",
    "/dns/polkadot-bootnode-1.polkadot.io/tcp/30333/p2p/12D3KooWFN2mhgpkJsDBuNuE5427AcDrsib8EoqGMZmkxWwx3Md4",
    "/dns/boot-node.helikon.io/tcp/7070/p2p/12D3KooWS9ZcvRxyzrSf6p63QfTCWs12nLoNKhGux865crgxVA4H",
    "/dns/polkadot.bootnode.amforc.com/tcp/30001/p2p/12D3KooWT2HyZx5C6BBeLbCKhYG2SqJYuiu7sLMxGzUcQBko3BMr",
    "/dns/polkadot.bootnodes.polkadotters.com/tcp/30314/p2p/12D3KooWPAVUgBaBk6n8SztLrMk8ESByncbAfRKUdxY1nygb9zG3",
    "/dns/boot.gatotech.network/tcp/33100/p2p/12D3KooWK4E16jKk9nRhvC4RfrDVgcZzExg8Q3Q2G7ABUUitks1w",
    "/dns/boot.metaspan.io/tcp/13012/p2p/12D3KooWRjHFApinuqSBjoaDjQHvxwubQSpEVy5hrgC9Smvh92WF",
    "/dns/polkadot-bootnode.turboflakes.io/tcp/30300/p2p/12D3KooWHJBMZgt7ymAdTRtadPcGXpJw79vBGe8z53r9JMkZW7Ha",
    "/dns/polkadot-boot-ng.dwellir.com/tcp/30336/p2p/12D3KooWFFqjBKoSdQniRpw1Y8W6kkV7takWv1DU2ZMkaA81PYVq",
    "/dns/polkadot-bootnode.radiumblock.com/tcp/30333/p2p/12D3KooWNwWNRrPrTk4qMah1YszudMjxNw2qag7Kunhw3Ghs9ea5",
    "/dns/dot-bootnode.stakeworld.io/tcp/30310/p2p/12D3KooWAb5MyC1UJiEQJk4Hg4B2Vi3AJdqSUhTGYUqSnEqCFMFg",
    "/dns/polkadot.boot.rotko.net/tcp/31001/p2p/12D3KooWPyEvPEXghnMC67Gff6PuZiSvfx3fmziKiPZcGStZ5xff",
    "/dns/ibp-boot-polkadot.luckyfriday.io/tcp/30333/p2p/12D3KooWEjk6QXrZJ26fLpaajisJGHiz6WiQsR8k7mkM9GmWKnRZ",
];

// Source: paritytech/polkadot-sdk `polkadot/node/service/chain-specs/kusama.json` (bootNodes);
// the TCP entries.
const KUSAMA: &[&str] = &[
    "/dns/kusama-bootnode-0.polkadot.io/tcp/30333/p2p/12D3KooWSueCPH3puP2PcvqPJdNaDNF3jMZjtJtDiSy35pWrbt5h",
    "/dns/kusama-bootnode-1.polkadot.io/tcp/30333/p2p/12D3KooWQKqane1SqWJNWMQkbia9qiMWXkcHtAdfW5eVF8hbwEDw",
    "/dns/boot.stake.plus/tcp/31333/p2p/12D3KooWLa1UyG5xLPds2GbiRBCTJjpsVwRWHWN7Dff14yiNJRpR",
    "/dns/boot-node.helikon.io/tcp/7060/p2p/12D3KooWL4KPqfAsPE2aY1g5Zo1CxsDwcdJ7mmAghK7cg6M2fdbD",
    "/dns/kusama.bootnode.amforc.com/tcp/30333/p2p/12D3KooWLx6nsj6Fpd8biP1VDyuCUjazvRiGWyBam8PsqRJkbUb9",
    "/dns/kusama.bootnodes.polkadotters.com/tcp/30311/p2p/12D3KooWHB5rTeNkQdXNJ9ynvGz8Lpnmsctt7Tvp7mrYv6bcwbPG",
    "/dns/boot-cr.gatotech.network/tcp/33200/p2p/12D3KooWRNZXf99BfzQDE1C8YhuBbuy7Sj18UEf7FNpD8egbURYD",
    "/dns/boot-kusama.metaspan.io/tcp/23012/p2p/12D3KooWE1tq9ZL9AAxMiUBBqy1ENmh5pwfWabnoBPMo8gFPXhn6",
    "/dns/kusama-bootnode.turboflakes.io/tcp/30305/p2p/12D3KooWR6cMhCYRhbJdqYZfzWZT6bcck3unpRLk8GBQGmHBgPwu",
    "/dns/kusama-boot-ng.dwellir.com/tcp/30334/p2p/12D3KooWLswepVYVdCNduvWRTyNTaDMXEBcmvJdZ9Bhw3u2Jhad2",
    "/dns/kusama-bootnode.radiumblock.com/tcp/30333/p2p/12D3KooWGzKffWe7JSXeKMQeSQC5xfBafZtgBDCuBVxmwe2TJRuc",
    "/dns/ksm-bootnode.stakeworld.io/tcp/30300/p2p/12D3KooWFRin7WWVS6RgUsSpkfUHSv4tfGKnr2zJPmf1pbMv118H",
    "/dns/ksm14.rotko.net/tcp/33224/p2p/12D3KooWAa5THTw8HPfnhEei23HdL8P9McBXdozG2oTtMMksjZkK",
    "/dns/ibp-boot-kusama.luckyfriday.io/tcp/30333/p2p/12D3KooW9vu1GWHBuxyhm7rZgD3fhGZpNajPXFexadvhujWMgwfT",
];

// Source: availproject/avail `misc/genesis/mainnet.chain.spec.json` (bootNodes).
const AVAIL_MAINNET_FULL_NODE: &[&str] = &[
    "/dns/bootnode-mainnet-001.avail.so/tcp/30333/p2p/12D3KooWBXk3rcfKkvd1YbJ8fHPH4WZy34QCw8Czrvqf6cbmrdKh",
    "/dns/bootnode-mainnet-002.avail.so/tcp/30333/p2p/12D3KooWMJt1z4ap2UacerW7vJprr7Mqws5sqmJXZqg8XpZswiwF",
    "/dns/bootnode-mainnet-003.avail.so/tcp/30333/p2p/12D3KooWK85zotBy9jjgVhHzsvntAWWzRxTosF3RxwnJ9zJsGQbi",
    "/dns/bootnode-mainnet-004.avail.so/tcp/30333/p2p/12D3KooWFyPvzGbTH7qbB3foBDDfwtn4LJsb4ryvTGGCokUyYDm7",
    "/dns/bootnode-mainnet-005.avail.so/tcp/30333/p2p/12D3KooWFB6wBdwS1aacu3QZdmZb2sPDiVxP9iLFecLBiHKZELCX",
    "/dns/bootnode-mainnet-006.avail.so/tcp/30333/p2p/12D3KooWLVJtN3hpUJYPjQzGKiHnbw6fpD5vvH5EkztdP1VAAgrj",
    "/dns/bootnode-mainnet-007.avail.so/tcp/30333/p2p/12D3KooWPfsS6gAYoEiB8EaWbHdrbd6ugcru2kGguz56B9PxD4HT",
    "/dns/bootnode-mainnet-008.avail.so/tcp/30333/p2p/12D3KooWSYiWfRCigRwWU9UzVJfZRz3SkCpYySH9w5ZydXUJWVuJ",
    "/dns/bootnode-mainnet-009.avail.so/tcp/30333/p2p/12D3KooWH1dPXxYyxwYjhbrjJ3PUJht9DyQkgdiJyiTtKVx5Voh4",
    "/dns/bootnode-mainnet-010.avail.so/tcp/30333/p2p/12D3KooWLeXFyp1Ghm7oCt1EghhT39wnsNhZWT1jYEWTHn2pHU3E",
];

// Source: Avail's light-client mainnet configuration, as go-commons records it.
const AVAIL_MAINNET_LIGHT_CLIENT: &[&str] =
    &["/dns/bootnode.1.lightclient.mainnet.avail.so/tcp/37000/p2p/12D3KooWHgPbEYcvZvZz4aT3KiBdjQmphG5qJ9StWoUps1ofKbJx"];

// Source: availproject/avail `misc/genesis/testnet.turing.chain.spec.raw.json` (bootNodes).
const AVAIL_TURING_FULL_NODE: &[&str] = &[
    "/dns/bootnode-turing-001.avail.so/tcp/30333/p2p/12D3KooWRYCs192er73R2oyE4QWkKdtoRk1fL28tR3immzxTQQAq",
    "/dns/bootnode-turing-002.avail.so/tcp/30333/p2p/12D3KooWLxzYHmGXpRnN4rAKkkZVzFgpGuqKofPggUnWz4iUR5yT",
    "/dns/bootnode-turing-003.avail.so/tcp/30333/p2p/12D3KooWR8yPHmBZxHPoZrjjvCZEq5mJh9h7yewgM4zGgUVEANcG",
    "/dns/bootnode-turing-004.avail.so/tcp/30333/p2p/12D3KooWKkLgiqxweQ1QCbJrDKeg5HCktZMM1kd81F4jMMTnBtD6",
    "/dns/bootnode-turing-005.avail.so/tcp/30333/p2p/12D3KooWQRTgqX2j2HMideuPKUg12yeCbbp6cCi6xtf4cACYSiKb",
    "/dns/bootnode-turing-006.avail.so/tcp/30333/p2p/12D3KooWPNmovc7n6mET56bmpB8tM6XtjcRb8qBir3sTBWk5cttK",
    "/dns/bootnode-turing-007.avail.so/tcp/30333/p2p/12D3KooWFzqtue91MrdmqVRddA48dPYQVAFBtcFkf5HrmgiqUJ6F",
    "/dns/bootnode-turing-008.avail.so/tcp/30333/p2p/12D3KooWMHRgZhDMUbN55NQcXB19Ww6SnL8shz1un3K6X3K2XoAh",
    "/dns/bootnode-turing-009.avail.so/tcp/30333/p2p/12D3KooWQLdPYPEHRGAJ4J6dGYoiKyjm36VhaSCJkvKAuJBohJYi",
];

// Source: Avail's light-client Turing configuration, as go-commons records it.
const AVAIL_TURING_LIGHT_CLIENT: &[&str] =
    &["/dns/bootnode.1.lightclient.turing.avail.so/tcp/37000/p2p/12D3KooWKK5KfQcec2Q6bLJnTo1UxuavrF8qnb48Ajtg6AJsRsJb"];

// Source: pactus-project/pactus `config/bootstrap.json`: its named (DNS) entries and the first of
// its bare-IP ones; the full list has ~70 community nodes, any few of which suffice to join.
const PACTUS_MAINNET: &[&str] = &[
    "/dns/bootstrap1.pactus.org/tcp/21888/p2p/12D3KooWMnDsu8TDTk2VV8uD8zsNSB6eUkqtQs6ttg4bHq9zNaBe",
    "/dns/bootstrap2.pactus.org/tcp/21888/p2p/12D3KooWM39ag7ghta49qybf7McADgT8FLakTYkCsiBvwdnjuG5q",
    "/dns/bootstrap3.pactus.org/tcp/21888/p2p/12D3KooWBCPSZWheet6tMoHbVBCDfBwQm4yzCwcQ8hJ6NMCN97sj",
    "/dns/bootstrap4.pactus.org/tcp/21888/p2p/12D3KooWKg6aLa77yAaqMCb45aH5iQuTr5GzRUWUCJ1sZYB5vnoL",
    "/dns/pactus-bootstrap.sensifai.com/tcp/21888/p2p/12D3KooWLpgBQt7A1W8FhTLVYwQMEnTBEX7uudLvd1YMZsDHqqWh",
    "/ip4/65.108.211.187/tcp/21888/p2p/12D3KooWGLrSiE5KWoc9GpXfryvKqheHj6j78ryMDDC17SY4YoCi",
    "/ip4/84.247.165.249/tcp/21888/p2p/12D3KooWQmv2FcNQfh1EhA98twt8ePdkQaxEPeYfinEYyVS16juY",
    "/ip4/62.171.130.196/tcp/21888/p2p/12D3KooWSkwB8AiWz3VGyG5cgC3ry5dmCw3TthQNc1jvRNe9EEKH",
    "/ip4/135.181.42.222/tcp/21888/p2p/12D3KooWN46UYQNoZvzd9GiJPQC7LByj6RAg8rRxdUTiQ24vHsN1",
    "/dns/pactus-bootstrap.stakers.world/tcp/21888/p2p/12D3KooWK1DAcxf8RJA2PVkwr9ehk1zgXcnjLyPCsYCpvw1NSfhc",
];

#[cfg(test)]
mod tests {
    use libp2p::{multiaddr::Protocol, Multiaddr};

    use super::*;

    #[test]
    fn every_preset_parses_and_names_its_peers_or_a_dnsaddr() {
        for preset in PRESETS {
            assert!(!preset.bootstrap.is_empty(), "{preset:?}");
            assert!(preset.protocol.starts_with('/'), "{preset:?}");
            for text in preset.bootstrap {
                let address: Multiaddr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
                let has_peer = matches!(address.iter().last(), Some(Protocol::P2p(_)));
                let is_dnsaddr = matches!(address.iter().next(), Some(Protocol::Dnsaddr(_)));
                assert!(has_peer || is_dnsaddr, "{text} names no peer");
            }
        }
    }

    #[test]
    fn the_networks_the_issue_names_are_all_there() {
        for (project, network) in [
            ("ipfs", "amino"),
            ("filecoin", "mainnet"),
            ("filecoin", "calibnet"),
            ("celestia", "mainnet"),
            ("celestia", "arabica"),
            ("celestia", "mocha"),
            ("polkadot", "mainnet"),
            ("polkadot", "kusama"),
            ("avail", "mainnet_fn"),
            ("pactus", "mainnet"),
        ] {
            find(project, network).unwrap();
        }
        let amino = find(DEFAULT_PROJECT, DEFAULT_NETWORK).unwrap();
        assert_eq!(amino.protocol, crate::IPFS_KAD_PROTOCOL);
        assert!(amino.bootstrap[0].ends_with("QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"));
        let error = find("ipfs", "nope").unwrap_err();
        assert!(
            error.contains("ipfs/amino") && error.contains("--bootstrap"),
            "{error}"
        );
    }
}
