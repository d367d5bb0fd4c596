//! # The quorum simulator: KRaft's metadata quorum under faults
//!
//! A cluster of 3 or 5 controller nodes, each the core's [`QuorumController`] (a Raft voter, its
//! metadata image, and the active controller while it leads), driven by one seeded event loop in
//! virtual time, with a few simulated brokers registering and heartbeating, and a client
//! creating and deleting topics through whichever controller is active. Everything between
//! them is simulated and faulted from the seed ([`world`]):
//!
//! * the network: each message is delayed (and so reordered), some are lost; any directed link
//!   can be cut (a partition between a pair is both directions, a one-way link one) or clogged
//!   (messages wait, then arrive late);
//! * controllers crash and restart from their disk: only what their storage outputs made
//!   durable (quorum state, log, snapshot: [`Durable`]); a *power loss* stops a node halfway
//!   through performing one step's outputs, so its disk holds a prefix of them;
//! * clocks jump forward on one node (elections, session lapses and check-quorum fire early);
//! * brokers crash and come back as new incarnations.
//!
//! A run has a safety phase (faults on) and a liveness phase (every fault healed, every node
//! up). The [`check`]ers watch the whole run from the outside: one leader per epoch, committed
//! entries never lost or changed, images that are replays of the committed log, acknowledged
//! topics present in every later image, and, in the liveness phase, a leader and a new commit
//! within the phase.
//!
//! [`QuorumController`]: gregor_core::cluster::QuorumController
//! [`Durable`]: gregor_core::cluster::Durable

pub mod check;
pub mod cli;
pub mod world;

pub use world::{run, Options, Report};
