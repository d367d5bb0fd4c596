//! # The cluster simulator: a KRaft cluster of real brokers, and clients that follow leaders
//!
//! N *combined* nodes (Kafka's `process.roles=broker,controller`; 1, 3 or 5), each the core's
//! metadata quorum [`Member`] and a real [`Broker`] with `Config.kraft = true`, wired together
//! as `gregor serve` wires them: committed images go to the broker, the broker's controller
//! requests (topic creation, producer-id blocks) go through its member to the active
//! controller. Each node has two simulated disks: the metadata log and quorum state
//! ([`Durable`], every write synced before the next, as the real driver does) and the partition
//! data ([`crate::disk::SimDisk`] through [`crate::node::Node`], with its write and fsync timing).
//!
//! The workload is gregor-client itself, the sans-IO Kafka client `gregor produce` and
//! `gregor consume` run: producers (idempotent with acks=all, plain with acks=all, plain with
//! acks=1; with one replica acks=1 and acks=all mean the same, the knob is there for
//! replication) sending unique values to chosen partitions, and readers reading every partition
//! from the start. A client knows the cluster only through Metadata: it bootstraps from the
//! nodes' advertised addresses (each maps to a simulated machine), finds each partition's
//! leader, and refreshes its metadata when a broker answers NOT_LEADER_OR_FOLLOWER, exactly as
//! it does against real brokers. The topic is created by the brokers' auto-creation, forwarded
//! to the active controller.
//!
//! Faults, in the safety phase, per seed as in the quorum world: links cut between any two
//! nodes or a node and a client (both ways or one way), clogs, a node isolated, crashes (the
//! page cache survives), power loss (only synced data survives; sometimes partway through the
//! member's outputs), clock jumps, message loss between nodes. The liveness phase heals
//! everything and restarts every node; then the producers stop, their last records settle, and
//! an auditor client reads every partition from the start (the history's `Final`).
//!
//! What is checked:
//! * the single-broker world's history checkers ([`crate::check`]), unchanged, on what the
//!   clients saw: no acknowledged record lost, none unseen by the readers, no duplicates from
//!   the idempotent producer, order within a partition, no offset naming two values. Under
//!   group commit brokers ack only synced data, so no loss is excused; a replicated seed may
//!   draw durability `none` instead, and then a loss is excused only where power losses took
//!   every in-sync copy ([`durability`]);
//! * the cluster's own ([`check`]): a produce refused with a definite error was not written by
//!   the broker that refused it (`refused-appended`), and a broker serves produce and fetch
//!   only for partitions its image says it leads (`served-unled`);
//! * after every step, on every leader, the high watermark is within the log end of every
//!   live in-sync replica and, under group commit, within the leader's durable end
//!   ([`hw_bound`]);
//! * after every truncation, the broker's idempotent-producer state is the one rebuilt from the
//!   log it kept ([`producer_state`]);
//! * the quorum's ([`crate::quorum::check`]): one leader per epoch, committed metadata never
//!   lost or changed, images handed to brokers are replays of the committed log;
//! * partition reassignment ([`reassign`], the replicated workload): an operator client moves
//!   partitions while faults are active; every accepted move completes after the heal
//!   (`reassign-complete`), and a replica moved away is never elected nor kept in the ISR, and
//!   no broker appends as leader in an epoch not given to it (`reassign-safe`);
//! * liveness: records are acknowledged after the heal, every producer's records are reported,
//!   and the auditor reads every partition to its end.
//!
//! [`Member`]: gregor_core::cluster::Member
//! [`Broker`]: gregor_core::Broker
//! [`Durable`]: gregor_core::cluster::Durable

pub mod acked_n;
pub mod check;
pub mod cli;
pub mod durability;
pub mod hw_bound;
pub mod offsets;
pub mod producer_state;
pub mod reassign;
pub mod replicated;
pub mod world;

pub use world::{run, Options, Report};
