//! # The quorum simulator: KRaft's metadata quorum under faults
//!
//! A cluster of 3 or 5 *combined* nodes (Kafka's `process.roles=broker,controller`) and three
//! broker-only nodes, each the core's [`Member`] in its role: a combined node is a Raft voter
//! with its metadata image and, while it leads, the active controller, plus the broker's
//! lifecycle registering that very node as a broker; a broker-only node is a Raft observer
//! replaying the log, and its lifecycle. Above each metadata side, a stand-in broker asks for
//! producer-id blocks and forwards an admin client's CreateTopics and DeleteTopics to the active
//! controller, the way Kafka's brokers forward them (KIP-590): through its node, which routes to
//! the local controller or over the wire. One seeded event loop drives it all in virtual time,
//! and everything between the nodes is simulated and faulted from the seed ([`world`]):
//!
//! * the network: each message is delayed (and so reordered), some are lost; any directed link
//!   can be cut (a partition between a pair is both directions, a one-way link one) or clogged
//!   (messages wait, then arrive late);
//! * controllers crash and restart from their disk: only what their storage outputs made
//!   durable (quorum state, log, snapshot: [`Durable`]); a *power loss* stops a node halfway
//!   through performing one step's outputs, so its disk holds a prefix of them;
//! * clocks jump forward on one node (elections, session lapses and check-quorum fire early);
//! * broker-only nodes crash and come back as new incarnations (a combined node's broker comes
//!   back with its controller).
//!
//! A run has a safety phase (faults on) and a liveness phase (every fault healed, every node
//! up). The [`check`]ers watch the whole run from the outside: one leader per epoch, committed
//! entries never lost or changed, images handed to brokers that are replays of the committed
//! log and never go back within a process life, acknowledged topics present in every later
//! image, every local broker request answered exactly once, and, in the liveness phase, a
//! leader, a new commit and every node's broker registered and unfenced within the phase.
//!
//! [`Member`]: gregor_core::cluster::Member
//! [`Durable`]: gregor_core::cluster::Durable

pub mod check;
pub mod cli;
pub mod world;

pub use world::{run, Options, Report};
