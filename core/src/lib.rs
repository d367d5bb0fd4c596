//! # gregor-core: Kafka's broker as a deterministic state machine
//!
//! This crate contains no networking code, touches no files, starts no threads and does not read
//! the clock or the operating system's entropy. It is a state machine: facts come in as
//! [`Input`]s, each carrying the time `now`; effects leave as [`Output`]s — responses for
//! clients, and storage operations (append, sync, read, truncate) whose completions come back as
//! inputs. The production runtime (`gregor-net`) and the simulator (`gregor-sim`) drive the very
//! same code; see [`Broker`] for the calling contract.
//!
//! ## A guided tour, in reading order
//! 1. [`io`] — the vocabulary between the broker and the world.
//! 2. [`batch`] — Kafka's record batch (format v2), read by its header only.
//! 3. [`log`] — the partition log: segments, offsets, the offset and time indexes.
//! 4. [`files`] — what is stored on disk and how a crashed log is recovered.
//! 5. [`producer`] — the idempotent producer: sequence numbers and epochs (KIP-98).
//! 6. [`partition`] — one partition replica: written, durable and acknowledged ends, the fsync in
//!    flight, and the safety properties it checks after every step.
//! 7. [`broker`] — one front door (`broker/mod.rs`) routing each input to the file serving it:
//!    `produce.rs`, `fetch.rs`, `admin.rs`, `producer_ids.rs`; storage completions in
//!    `storage.rs`; what runs after every input in `step.rs`; how "persist before acknowledge" is
//!    kept.
//! 8. [`purgatory`] — requests parked until what they wait for happens (Kafka's
//!    `DelayedProduce` / `DelayedFetch`), woken by key; deadlines in [`time::TimerTable`].
//! 9. [`coordinator`] — the coordinator runtime (KIP-848's `CoordinatorRuntime`): an operation's
//!    records are appended, replayed, and its response released once they are durable.
//! 10. [`group`] — consumer groups and committed offsets, one file per concern (records, state,
//!     join and rebalance, members, offsets, timers); [`assignor`] — who reads which partition.
//! 11. [`wire`] — the Kafka protocol at the edge: frames, versions, KIP-511.

pub mod acl;
pub mod assignor;
pub mod batch;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod files;
pub mod group;
pub mod ids;
pub mod io;
pub mod log;
pub mod partition;
pub mod prng;
pub mod producer;
pub mod purgatory;
pub mod raft;
pub mod replication;
pub mod sasl;
pub mod scram;
/// A synchronous in-memory driver and the record-batch encoder for tests (feature `testkit`).
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
pub mod wire;

pub use broker::Broker;
pub use config::{Config, Durability};
pub use error::{ClientError, ErrorCode};
pub use io::{ConnId, Input, OpId, Output, Request, StorageFault, StorageReply, StorageRequest};
pub use log::recover::Recovered;
pub use time::{Duration, Instant};

/// Re-exported so drivers and tests use the same message types as the core.
pub use kafka_protocol;
