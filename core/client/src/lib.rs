//! # gregor-client: a Kafka client as a deterministic state machine
//!
//! This crate contains no networking code, touches no files, starts no threads and does not read
//! the clock or the operating system's entropy, just like `gregor-core`. It is the client side of
//! the Kafka protocol as a state machine: facts come in as [`Input`]s, each carrying the time
//! `now` (a connection opened, a response frame arrived, a connection dropped, time passed);
//! effects leave as [`Output`]s (connect, send this request frame, close) together with what the
//! application waits for (delivery reports, fetched records). Randomness (the sticky
//! partitioner's choices) comes from a PRNG seeded from [`Config::seed`]. A tokio driver runs it
//! in `gregor-net` (`gregor produce`, `gregor consume`); a test or the simulator can drive the
//! very same code with scripted or simulated brokers. See [`Client`] for the calling contract.
//!
//! It speaks to any Kafka broker, not only gregor: versions are negotiated per connection with
//! ApiVersions (KIP-35, KIP-511).
//!
//! ## A guided tour, in reading order
//! 1. [`io`] — the vocabulary between the client and the world.
//! 2. [`config`] — the settings, named as the Java client names them.
//! 3. [`conn`] — a connection: the ApiVersions handshake, requests in flight.
//!    [`sasl`] — logging in with SASL PLAIN or SCRAM (KIP-43, KIP-152) before anything else.
//! 4. [`metadata`] — brokers, partitions and leaders, and when to ask again.
//! 5. [`client`] — the state machine tying them together, and the step after every input.
//! 6. [`partitioner`] — murmur2 for keys (as the Java client), sticky for the rest (KIP-480).
//! 7. [`producer`] — batching, idempotence (KIP-98), retries in order, delivery reports.
//! 8. [`consumer`] — positions, `auto.offset.reset`, fetching.
//! 9. [`group`] — the classic consumer group member: join, sync, heartbeat, commit.
//! 10. [`admin`] — topics, configs, offsets, groups and partition reassignments, each request
//!     routed to the broker it must reach (KIP-4, KIP-117, KIP-455).

pub mod admin;
pub mod client;
pub mod config;
pub mod conn;
pub mod consumer;
pub mod group;
pub mod io;
pub mod metadata;
pub mod partitioner;
pub mod producer;
pub mod sasl;

pub use admin::{AdminId, AdminOp, AdminResult, ConfigChange, NewTopic, OffsetSpec};
pub use client::Client;
pub use config::{Acks, Config, OffsetReset};
pub use consumer::SeekTo;
pub use group::GroupConfig;
pub use io::{
    ClientError, ConsumerRecord, Delivery, Fetched, Input, NodeId, Output, ProducerRecord, RecordId,
};
pub use sasl::Login;

/// Re-exported so drivers use the same types as the client.
pub use gregor_core::{Duration, Instant};
pub use kafka_protocol;
