//! parsec-rs: measures how fast a Kademlia DHT publishes and finds provider records.
//!
//! The actors (DHT peers, nodes, fleets, the recorder) live in the `parsec-actors` crate; this
//! crate adds what a deployment needs around them.
//!
//! # Layout
//! - [`cli`] — one clap subcommand per file (`server dht`, `testnet`, `health`).
//! - [`api`] — the parsec HTTP API, a thin actix-web adapter over node mailboxes, and the HTTP
//!   client that drives remote servers as fleet members.
//! - [`testnet`] — the main job, a local network of real libp2p peers driven through the API.
//! - [`db`] — storage: parsec's Postgres tables (diesel-async + bb8) or the embedded SQLite
//!   default, as the actors' registry and measurement sink.
//! - [`host`] — what a server registers about itself (ECS metadata or the host, versions).
//! - [`report`] — latency percentiles and resource figures of a run.
//! - [`sim`] — the large-scale Kademlia simulator (virtual time, millions of nodes).
//! - [`telemetry`] — logging, metrics and traces.

pub mod api;
pub mod cli;
pub mod db;
pub mod host;
mod progress;
mod recording;
pub mod report;
pub mod scheduler;
pub mod sim;
pub mod telemetry;
pub mod testnet;
