//! The quorum simulator's checkers. Each reads only what a node exposes (its role, its epoch,
//! its committed entries as its outputs delivered them, its image) and what the client was told,
//! never the simulator's own bookkeeping, and each has a unit test that plants exactly the
//! anomaly it looks for.
//!
//! * [`one_leader`]: at most one leader per quorum epoch (Raft's Election Safety).
//! * [`committed`]: committed entries are never lost or changed: every node's committed prefix,
//!   across restarts and snapshots, is a prefix of one log (Log Matching + Leader Completeness).
//! * [`image`]: a node's metadata image is exactly a fresh replay of the committed log up to its
//!   offset (the image changes only by replay).
//! * [`liveness`]: once the faults heal, a leader is elected and a new record commits within a
//!   bound.
//! * [`acked_topics`]: a topic whose creation the client saw acknowledged is in every later
//!   image until the client asks to delete it.
//! * [`served_images`]: every image a node hands its broker is a replay of a committed prefix
//!   (through [`image`]), and within one process life their offsets only grow.
//! * [`registered`]: by the end of the liveness phase every node's broker (combined or
//!   broker-only) is registered and unfenced, in its own lifecycle and in the image it serves.
//! * [`local_requests`]: a request a broker hands its node's metadata side is answered exactly
//!   once, with an answer of its own kind, within its deadline.
//! * [`replication`]: the controller's replication decisions on the committed log: one leader
//!   per (partition, leader epoch), no fenced broker in an ISR (beyond the last member of an
//!   offline partition), elections from the ISR unless an unclean one is recorded, partition
//!   epochs rising by one, and every accepted AlterPartition built on the state it changed.

pub mod acked_topics;
pub mod committed;
pub mod image;
pub mod liveness;
pub mod local_requests;
pub mod one_leader;
pub mod registered;
pub mod replication;
pub mod served_images;

/// One thing a checker found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// Which checker (its module's name).
    pub kind: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}
