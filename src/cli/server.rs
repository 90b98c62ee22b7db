//! `parsec server dht`: a parsec server on a Kademlia DHT, with parsec's flags and env vars.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroUsize,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use parsec_actors::{
    config::{DEFAULT_ALPHA, IPFS_KAD_PROTOCOL},
    dht::presets::{self, DEFAULT_NETWORK, DEFAULT_PROJECT},
    identity::Keypair,
    multiaddr::Protocol,
    Connections, DhtClient, DhtConfig, DhtMode, Multiaddr, Strategy,
};

use super::global::{DatabaseArgs, TelemetryArgs};
use crate::{api::ApiToken, server::Standalone};

/// Arguments of `parsec server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    common: ServerCommon,
    #[command(subcommand)]
    kind: ServerKind,
}

/// What every kind of server takes, as parsec has them on `server`: before or after the kind
/// (`parsec server --fleet f dht` or `parsec server dht --fleet f`).
#[derive(Clone, Debug, Args)]
struct ServerCommon {
    /// Address the HTTP API listens on.
    #[arg(
        long,
        global = true,
        env = "PARSEC_SERVER_SERVER_HOST",
        default_value = "0.0.0.0"
    )]
    server_host: IpAddr,
    /// Port of the HTTP API.
    #[arg(
        long,
        global = true,
        env = "PARSEC_SERVER_SERVER_PORT",
        default_value_t = 7070
    )]
    server_port: u16,
    /// Address the libp2p peer listens on.
    #[arg(
        long,
        global = true,
        env = "PARSEC_SERVER_PEER_HOST",
        default_value = "0.0.0.0"
    )]
    peer_host: IpAddr,
    /// Port of the libp2p peer (TCP and QUIC-v1 share it; 0 picks a free one).
    #[arg(long, global = true, env = "PARSEC_SERVER_PEER_PORT", default_value_t = 4001)]
    peer_port: u16,
    /// Fleet this server belongs to.
    #[arg(long, global = true, env = "PARSEC_SERVER_FLEET", default_value = "default")]
    fleet: String,
    /// Wait this long before starting (parsec's flag: lets a fleet's peers come up first).
    #[arg(long, global = true, env = "PARSEC_SERVER_STARTUP_DELAY", default_value = "0s", value_parser = super::parse_duration)]
    startup_delay: Duration,
}

/// A DHT server's whole configuration: its own flags, the server's and the global ones.
#[derive(Debug)]
struct DhtServer {
    dht: DhtServerArgs,
    common: ServerCommon,
    database: DatabaseArgs,
    telemetry: TelemetryArgs,
    dry_run: bool,
}

#[derive(Debug, Subcommand)]
enum ServerKind {
    /// A server that publishes and looks up provider records in a Kademlia DHT.
    Dht(DhtServerArgs),
}

#[derive(Debug, Args)]
struct DhtServerArgs {
    /// Serve DHT requests (DHT server mode) instead of only issuing them.
    #[arg(long, env = "PARSEC_SERVER_DHT_SERVER_MODE")]
    server_mode: bool,
    /// Who publishes and looks up: `default` (rust-libp2p's kad, the baseline) or our engine:
    /// `classic` (lookup, then store at the k closest), `optprov` (optimistic provide) or
    /// `fullrt` (the accelerated client: crawls the network, then asks the k closest directly).
    #[arg(long, env = "PARSEC_SERVER_DHT_STRATEGY", default_value = "default", conflicts_with_all = ["optprov", "fullrt"])]
    strategy: DhtClient,
    /// What happens to connections when a provide or retrieval ends: `warm` (as parsec's
    /// servers: only the found provider's connection is closed) or `cold` (every connection is
    /// closed, so the next operation dials afresh). Recorded with every row.
    #[arg(long, env = "PARSEC_SERVER_DHT_CONNECTIONS", default_value = "warm")]
    connections: Connections,
    /// parsec's flag for `--strategy optprov`.
    #[arg(long, env = "PARSEC_SERVER_DHT_OPTPROV", conflicts_with = "fullrt")]
    optprov: bool,
    /// parsec's flag for `--strategy fullrt`.
    #[arg(long, env = "PARSEC_SERVER_DHT_FULLRT")]
    fullrt: bool,
    /// Also speak gossipsub and serve the pubsub API (`/pubsub/...`), with the gossipsub flags.
    #[arg(long, env = "PARSEC_SERVER_GOSSIPSUB")]
    gossipsub: bool,
    #[command(flatten)]
    gossipsub_params: super::pubsub::GossipsubArgs,
    /// How often `fullrt` crawls the network again (readiness waits for the first crawl).
    #[arg(long, env = "PARSEC_SERVER_DHT_CRAWL_INTERVAL", default_value = "1h", value_parser = super::parse_duration)]
    crawl_interval: Duration,
    /// Lookup concurrency (alpha).
    #[arg(long, env = "PARSEC_SERVER_DHT_ALPHA", default_value_t = NonZeroUsize::new(DEFAULT_ALPHA).expect("non-zero"))]
    alpha: NonZeroUsize,
    /// The project of the network to join, as parsec names them (`parsec networks` lists them).
    #[arg(long, env = "PARSEC_SERVER_DHT_PROJECT", default_value = DEFAULT_PROJECT)]
    project: String,
    /// The network to join within the project: its preset gives the bootstrap peers and the
    /// protocol id. `local` joins nothing by itself (the first server of a private network).
    #[arg(long, env = "PARSEC_SERVER_DHT_NETWORK", default_value = DEFAULT_NETWORK)]
    network: String,
    /// Peers to join through instead of the preset's: comma-separated multiaddrs ending in
    /// /p2p/<peer id> (or /dnsaddr names).
    #[arg(long, env = "PARSEC_SERVER_DHT_BOOTSTRAP", value_parser = parse_multiaddr_list)]
    bootstrap: Vec<MultiaddrList>,
    /// The DNS server (`host:port`) that resolves `/dns*` and `/dnsaddr` bootstrap addresses;
    /// default: the host's.
    #[arg(long, env = "PARSEC_SERVER_DNS_SERVER")]
    dns_server: Option<std::net::SocketAddr>,
    /// Kademlia protocol id instead of the preset's.
    #[arg(long, env = "PARSEC_SERVER_DHT_PROTOCOL")]
    protocol: Option<String>,
    /// Deadline of a retrieval.
    #[arg(long, env = "PARSEC_SERVER_RETRIEVE_TIMEOUT", default_value = "60s", value_parser = super::parse_duration)]
    retrieve_timeout: Duration,
    /// Fixed Ed25519 secret key (64 hex digits) for a stable peer id, so other servers can list
    /// this one in `--bootstrap` before it starts (compose, ECS). Default: a fresh key per start.
    #[arg(long, env = "PARSEC_SERVER_IDENTITY_KEY", hide_env_values = true, value_parser = parse_identity_key)]
    identity_key: Option<Keypair>,
    /// Addresses to announce in provider records (comma-separated); default: the listen addresses.
    #[arg(long, env = "PARSEC_SERVER_ANNOUNCE", value_parser = parse_multiaddr_list)]
    announce: Vec<MultiaddrList>,
    /// HTTP worker threads.
    #[arg(long, env = "PARSEC_SERVER_HTTP_WORKERS", default_value_t = NonZeroUsize::new(2).expect("non-zero"))]
    http_workers: NonZeroUsize,
    /// Threads of the runtime the swarm runs on.
    #[arg(long, env = "PARSEC_SERVER_DHT_THREADS", default_value_t = super::default_dht_threads())]
    dht_threads: NonZeroUsize,
    /// How often the node's `last_heartbeat` is refreshed (the first beat waits for readiness).
    #[arg(long, env = "PARSEC_SERVER_HEARTBEAT_INTERVAL", default_value = "60s", value_parser = super::parse_duration)]
    heartbeat_interval: Duration,
    /// After SIGINT/SIGTERM, how long requests in flight may finish before they are cancelled
    /// (answered 503, so no scheduler stores them). A provide may take 3 min.
    #[arg(long, env = "PARSEC_SERVER_SHUTDOWN_GRACE", default_value = "190s", value_parser = super::parse_duration)]
    shutdown_grace: Duration,
    /// Shared secret: provide and retrieve requests without `Authorization: Bearer <token>` get
    /// 401 (readiness stays open). Prefer the environment variable: flags show up in `ps`.
    #[arg(long, env = "PARSEC_API_TOKEN", hide_env_values = true, value_parser = parse_token)]
    api_token: Option<ApiToken>,
}

/// Parses `--identity-key`: 32 bytes as 64 hex digits.
fn parse_identity_key(text: &str) -> Result<Keypair, String> {
    let text = text.trim();
    let digits: Option<Vec<u8>> = (text.len() == 64 && text.is_ascii())
        .then(|| {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                .collect()
        })
        .flatten();
    let bytes =
        digits.ok_or("expected 64 hex digits (an Ed25519 secret key), e.g. `openssl rand -hex 32`")?;
    Keypair::ed25519_from_bytes(bytes).map_err(|e| format!("not an Ed25519 secret key: {e}"))
}

/// The `--network` that names no preset: a private network that the server does not join by
/// itself (other servers join it).
pub(crate) const LOCAL_NETWORK: &str = "local";

/// Multiaddrs given as one comma-separated value.
#[derive(Clone, Debug)]
pub(crate) struct MultiaddrList(Vec<Multiaddr>);

/// Parses a comma-separated list of multiaddrs; empty items (a trailing comma, `a,,b`) are
/// skipped rather than read as an empty address, but a list of nothing else (`,,,`) is refused.
pub(crate) fn parse_multiaddr_list(text: &str) -> Result<MultiaddrList, String> {
    if !text.trim().is_empty() && text.split(',').all(|item| item.trim().is_empty()) {
        return Err(format!(
            "{text:?} lists no address; expected comma-separated multiaddrs, e.g. /ip4/1.2.3.4/tcp/4001/p2p/12D3KooW…"
        ));
    }
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<Multiaddr>().map_err(|e| {
                format!(
                    "{item:?} is not a multiaddr ({e}); expected e.g. /ip4/1.2.3.4/tcp/4001/p2p/12D3KooW…"
                )
            })
        })
        .collect::<Result<_, _>>()
        .map(MultiaddrList)
}

fn flatten(lists: &[MultiaddrList]) -> Vec<Multiaddr> {
    lists.iter().flat_map(|list| list.0.iter().cloned()).collect()
}

/// Parses `--api-token`.
pub(crate) fn parse_token(text: &str) -> Result<ApiToken, String> {
    ApiToken::new(text)
}

impl ServerArgs {
    pub(crate) fn run(self, global: super::GlobalArgs) -> anyhow::Result<ExitCode> {
        match self.kind {
            ServerKind::Dht(dht) => DhtServer {
                dht,
                common: self.common,
                database: global.database,
                telemetry: global.telemetry,
                dry_run: global.dry_run,
            }
            .run(),
        }
    }
}

impl DhtServer {
    fn run(self) -> anyhow::Result<ExitCode> {
        // Configuration errors first (an unknown network), before anything starts.
        let standalone = self.standalone()?;
        standalone.run_until_signalled(self.dht.dht_threads.get())?;
        Ok(ExitCode::SUCCESS)
    }

    /// The bootstrap peers and protocol id: the preset's, unless given.
    fn network(&self) -> anyhow::Result<(Vec<Multiaddr>, String)> {
        if !presets::PRESETS.iter().any(|p| p.project == self.dht.project) {
            let mut known: Vec<&str> = presets::PRESETS.iter().map(|p| p.project).collect();
            known.dedup();
            anyhow::bail!(
                "--project: unknown project {:?}; known are {} (see `parsec networks`)",
                self.dht.project,
                known.join(", ")
            );
        }
        let (preset_bootstrap, preset_protocol) = if self.dht.network == LOCAL_NETWORK {
            (Vec::new(), IPFS_KAD_PROTOCOL.to_owned())
        } else {
            let preset = presets::find(&self.dht.project, &self.dht.network).map_err(anyhow::Error::msg)?;
            let bootstrap = preset
                .bootstrap
                .iter()
                .map(|a| a.parse().with_context(|| format!("preset address {a}")))
                .collect::<anyhow::Result<_>>()?;
            (bootstrap, preset.protocol.to_owned())
        };
        let bootstrap = if self.dht.bootstrap.is_empty() {
            preset_bootstrap
        } else {
            flatten(&self.dht.bootstrap)
        };
        Ok((bootstrap, self.dht.protocol.clone().unwrap_or(preset_protocol)))
    }

    fn dht_config(&self) -> anyhow::Result<DhtConfig> {
        let (bootstrap, protocol) = self.network()?;
        let local = self.dht.network == LOCAL_NETWORK;
        let announce = flatten(&self.dht.announce);
        let ip = match self.common.peer_host {
            IpAddr::V4(ip) => Protocol::Ip4(ip),
            IpAddr::V6(ip) => Protocol::Ip6(ip),
        };
        let tcp = Multiaddr::empty()
            .with(ip.clone())
            .with(Protocol::Tcp(self.common.peer_port));
        let quic = Multiaddr::empty()
            .with(ip)
            .with(Protocol::Udp(self.common.peer_port))
            .with(Protocol::QuicV1);
        let uses_dns = bootstrap.iter().any(|a| {
            a.iter().any(|p| {
                matches!(
                    p,
                    Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_)
                )
            })
        });
        let mut config = DhtConfig::default();
        if let Some(keypair) = &self.dht.identity_key {
            config.set_keypair(keypair.clone());
        }
        config
            .set_listen(vec![tcp, quic])
            .set_bootstrap(bootstrap)
            .set_protocol(protocol)
            .set_alpha(self.dht.alpha)
            .set_client(self.client())
            .set_connections(self.dht.connections)
            .set_crawl_interval(self.dht.crawl_interval)
            .set_mode(if self.dht.server_mode {
                DhtMode::Server
            } else {
                DhtMode::Client
            })
            .set_retrieve_timeout(self.dht.retrieve_timeout)
            // A private network announces where it listens; on a public one, listen addresses
            // are often private, so only addresses a peer dialled back are announced.
            .set_announce_listen_addrs(announce.is_empty() && local)
            .set_confirm_external_addrs(announce.is_empty() && !local)
            .set_external_addrs(announce)
            // Public networks hand out /dns and /dnsaddr addresses in lookups, not only in
            // bootstrap lists.
            .set_resolve_dns(uses_dns || !local)
            .set_dns_server(self.dht.dns_server);
        if self.dht.gossipsub {
            config.set_pubsub(Some(self.dht.gossipsub_params.config()?));
        }
        Ok(config)
    }

    /// The client `--strategy`, `--optprov` or `--fullrt` chose.
    fn client(&self) -> DhtClient {
        if self.dht.fullrt {
            DhtClient::Engine(Strategy::FullRoutingTable)
        } else if self.dht.optprov {
            DhtClient::Engine(Strategy::Optimistic)
        } else {
            self.dht.strategy
        }
    }

    /// The standalone server these flags describe.
    fn standalone(&self) -> anyhow::Result<Standalone> {
        Ok(Standalone {
            dht: self.dht_config()?,
            network: format!("{}/{}", self.dht.project, self.dht.network),
            database: if self.dry_run {
                None
            } else {
                Some(self.database.target()?)
            },
            schema: self.database.schema_policy(),
            api_address: SocketAddr::new(self.common.server_host, self.common.server_port),
            token: self.dht.api_token.clone(),
            http_workers: self.dht.http_workers.get(),
            fleet: self.common.fleet.clone(),
            heartbeat_interval: self.dht.heartbeat_interval,
            shutdown_grace: self.dht.shutdown_grace,
            startup_delay: self.common.startup_delay,
            metrics: self.telemetry.endpoint(),
        })
    }
}
