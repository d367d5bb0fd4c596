//! # gregor-sim: the deterministic simulator
//!
//! One thread, virtual time, one u64 seed. The simulator drives the same `gregor_core::Broker`
//! the production runtime drives, but everything around it is simulated: the clients
//! ([`world`]'s workloads), the network between them, the disk ([`disk`]) and the clock. Faults
//! are injected according to a per-seed profile ([`profile`]); every operation and its outcome is
//! recorded ([`history`]) and the history is judged by [`check`]ers that never look inside the
//! broker. The same seed replays the same run, event for event: the trace hash proves it.
//!
//! Reading order: [`history`], [`check`], [`disk`], [`node`], [`network`], [`faults`],
//! [`profile`], [`world`]. Two more worlds build on these: [`quorum`] (the KRaft metadata
//! quorum under faults, with a stand-in broker) and [`cluster`] (a KRaft cluster of real brokers
//! with gregor-client as the workload). Module dependencies run one way: `world` uses everything; `node`,
//! `network` and `faults` know nothing of `world`; `check` knows only `history`.

pub mod check;
pub mod clients;
pub mod cluster;
pub mod disk;
pub mod faults;
pub mod history;
pub mod network;
pub mod node;
pub mod profile;
pub mod quorum;
pub mod world;
