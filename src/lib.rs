//! parsec-rs: measures how fast a Kademlia DHT publishes and finds provider records.
//!
//! The actors (DHT peers, nodes, fleets, the recorder) live in the `parsec-actors` crate; this
//! crate adds what a deployment needs around them.
//!
//! # Layout
//! - [`cli`] — one clap subcommand per file: `server dht`, `scheduler`, `testnet`, `simulate`,
//!   `health`, `networks`. They parse arguments and call the modules below.
//! - [`server`] — one parsec server assembled: node, HTTP API, registration, heartbeat.
//! - [`job`] — the round runner the three jobs share (storage, rounds, shutdown, drain, report):
//!   - [`scheduler`] — fleets discovered in the database, measured over HTTP, for weeks;
//!   - [`testnet`] — the main job, a local network of real libp2p peers driven through the API;
//!   - [`sim`] — the large-scale Kademlia simulator (virtual time, millions of nodes).
//! - [`api`] — the parsec HTTP API, a thin actix-web adapter over node mailboxes, and the HTTP
//!   client that drives remote servers as fleet members.
//! - [`db`] — storage: parsec's Postgres tables (diesel-async + bb8) or the embedded SQLite
//!   default, as the actors' registry and measurement sink.
//! - [`host`] — what a server registers about itself (ECS metadata or the host, versions).
//! - [`report`] — latency percentiles and tables of a run, and the printer of its report.
//! - [`telemetry`] — logging, metrics and traces.
//! - `testing` (feature `test-utils`) — a throwaway PostgreSQL and process helpers for tests and
//!   benchmarks.

pub mod api;
pub mod cli;
pub mod db;
pub mod host;
pub mod job;
mod progress;
pub mod report;
pub mod scheduler;
pub mod server;
pub mod sim;
pub mod telemetry;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod testnet;
