//! # gregor-streams: Kafka Streams' processing, sans-IO
//!
//! Kafka Streams is a library, not a cluster: an application links it, describes a *topology*
//! (read these topics, transform, aggregate into *state stores*, write those topics), and runs
//! it in as many instances as it likes. The instances of one `application.id` form a consumer
//! group, so the input partitions are shared among them; each partition (with the same
//! partition of every co-partitioned topic) is a *task* with its own state stores, and a store
//! is backed by a compacted *changelog* topic from which a task rebuilds it wherever it runs
//! next. See docs/streams.md.
//!
//! This crate is the part that decides, with no IO: it is handed records (their timestamps
//! carry the time) and says which records to produce — outputs, repartition records and
//! changelog records. It has no sockets, files, threads or clocks, like gregor's core.
//! `gregor streams` (`net/src/streams/`) drives it with `gregor-client`: the group, the
//! restoration from changelogs, and at-least-once commits.
//!
//! ## A tour, in reading order
//! 1. [`record`] — a record, and what a task asks to be produced ([`Emit`]).
//! 2. [`dsl`] — the builder: `stream`, `map`, `filter`, `flat_map`, `branch`, `group_by_key`,
//!    `count`, `aggregate`, `reduce`, `windowed_by`, `join`, `to`.
//! 3. [`window`] — tumbling and hopping windows with a grace period (KIP-328).
//! 4. [`topology`] — the graph the builder makes, split into sub-topologies at repartition
//!    topics, and the internal topics it needs.
//! 5. [`store`] — a state store: an ordered map whose every change is a changelog record.
//! 6. [`task`] — one task: a sub-topology on one partition, its stores and its stream time.

pub mod dsl;
pub mod record;
pub mod store;
pub mod task;
pub mod topology;
pub mod window;

pub use dsl::{KGroupedStream, KStream, KTable, StreamsBuilder};
pub use record::{Emit, EmitKind, Record};
pub use task::{Task, TaskId};
pub use topology::{InternalTopic, Topology};
pub use window::Windows;
