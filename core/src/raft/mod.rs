//! A Raft metadata quorum in Kafka's shape (KRaft, KIP-595), sans-IO.
//!
//! Kafka keeps its cluster metadata (brokers, topics, partition leaders, configs) in one
//! replicated log, `__cluster_metadata`, agreed by a quorum of *controllers* with a Raft variant.
//! This module is that variant, written as a state machine like the rest of the core: time and
//! randomness arrive as inputs ([`RaftNode::tick`], a seeded [`crate::prng::Prng`]), and every
//! effect (a message to a peer, a write to the node's own log or quorum-state file) leaves as an
//! [`Output`] value. The simulator can then delay, drop and reorder messages, crash nodes and
//! replay any run from its seed. (The Rust Raft crates draw their own randomness or spawn tasks;
//! that is why this one is gregor's: see `../shared/guide/REPLICATION.md` §4.)
//!
//! ## How KRaft differs from textbook Raft
//! * **Pull, not push.** Followers (and non-voting *observers*, Kafka's brokers) replicate by
//!   sending `Fetch` to the leader, the same API data replicas use; the leader never pushes
//!   entries. A fetch carries the follower's log end (`fetch_offset`) and the epoch of its last
//!   entry (`last_fetched_epoch`); the leader answers with entries, or with a *diverging epoch*
//!   (KIP-595's `DivergingEpoch`) telling the follower where its log stops agreeing, so it
//!   truncates there and fetches again (the KIP-101/279 rule data replicas use too).
//! * **A fetch is also the heartbeat.** The leader learns a follower is alive and how far it got
//!   from its fetches; a follower that gets no answer within the *fetch timeout* starts an
//!   election. A leader that hears from no majority within 1.5 × the fetch timeout resigns
//!   (*check-quorum*, the fix for KAFKA-15489's split brain).
//! * **Elections** are Raft's: a candidate moves to the next epoch (Raft's term), votes for
//!   itself, persists that, and asks the other voters (`Vote`); a voter grants one vote per
//!   epoch, only to a candidate whose log is at least as up to date as its own (compared by last
//!   epoch, then end offset). The winner announces itself with `BeginQuorumEpoch`; a leader that
//!   steps down gracefully sends `EndQuorumEpoch` so the others need not wait for a timeout.
//! * **The high watermark** (Raft's commit index) is the largest offset a majority of voters has,
//!   *and only once that includes a record of the leader's own epoch*: the leader writes a
//!   `LeaderChange` control record at the start of its epoch and exposes nothing from earlier
//!   epochs before that record is replicated (Raft §5.4.2; Kafka's
//!   `LeaderState.maybeUpdateHighWatermark`).
//!
//! ## The calling contract
//! Call [`RaftNode::handle`] for every message from a peer, [`RaftNode::tick`] when the time
//! from [`RaftNode::poll_timeout`] has come, and [`RaftNode::propose`] to append on the leader;
//! after each call drain [`RaftNode::poll_output`] to `None` and perform the outputs **in order**:
//! a storage output ([`Output::SaveQuorumState`], [`Output::Append`], [`Output::Truncate`],
//! [`Output::SaveSnapshot`], [`Output::InstallSnapshot`]) must be durable before any output
//! after it is performed. [`RaftNode::take_snapshot`] is the fourth call: the driver's state
//! machine hands over its serialized state at an offset it has applied. That is what makes a vote count (it is on
//! disk before the candidate hears of it) and a fetch offset safe to count toward the high
//! watermark (the follower has the entries on disk before it asks for more).
//!
//! ## Snapshots (KIP-630)
//! The metadata log would grow forever, and a node that restarts would replay all of it. So each
//! node, on its own schedule, asks its state machine for a snapshot of the state as of an offset
//! it has committed and applied ([`RaftNode::snapshot`]); the node keeps it and drops its log
//! behind it, so the log now *starts* at the snapshot's end offset. A follower (or observer) that
//! fetches from below the leader's log start, or whose last fetched epoch is older than the
//! snapshot's, cannot be sent entries the leader no longer has: the leader answers with its
//! snapshot's id ([`FetchResult::Snapshot`]), the follower downloads it in chunks
//! ([`Message::FetchSnapshot`]), replaces its log and state machine by it
//! ([`Output::InstallSnapshot`]) and fetches on from its end. A snapshot holds only committed
//! entries, so its end is committed everywhere: a restarted node's high watermark starts there,
//! and a vote or a fetch compares the snapshot's (end offset, epoch) where the log is empty.
//!
//! Not here yet (issue 9 goes on): PreVote (KIP-996), dynamic voters (KIP-853), the Kafka wire
//! encoding of these messages.

mod election;
mod log;
mod node;
mod replication;
mod snapshot;
pub mod wire;

pub use log::RaftLog;
pub use node::{RaftNode, Role};

use crate::time::Duration;
use bytes::Bytes;

/// A node of the cluster: a controller (a voter) or a broker (an observer). Kafka's `node.id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub i32);

/// The quorum epoch: Raft's term. It goes up by one at every election; at most one leader is
/// ever elected in an epoch. (Not a partition's leader epoch, nor a broker epoch: see
/// `REPLICATION.md` §1.1 for Kafka's four epochs.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub i32);

impl Epoch {
    pub fn next(self) -> Epoch {
        Epoch(self.0.checked_add(1).expect("epoch overflow"))
    }
}

/// What a log entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The control record a new leader writes first in its epoch (Kafka's `LeaderChangeMessage`).
    /// Committing it is what lets the leader expose entries from earlier epochs.
    LeaderChange { leader: NodeId },
    /// A metadata record, opaque to Raft.
    Data(Bytes),
}

/// One entry of the replicated log; its offset is its position in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The epoch of the leader that appended it.
    pub epoch: Epoch,
    pub record: Record,
}

/// Names a snapshot: it holds the state after applying every entry below `end_offset`, the last
/// of which has epoch `epoch` (Kafka's `OffsetAndEpoch`, the `<endOffset>-<epoch>.checkpoint`
/// file name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: Epoch,
}

/// A snapshot: its id and the state machine's bytes, opaque to Raft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub id: SnapshotId,
    pub data: Bytes,
}

/// What a node must persist besides its log: Kafka's `quorum-state` file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct QuorumState {
    pub epoch: Epoch,
    /// Whom this node voted for in `epoch`, if anyone. Persisting it is what stops a node from
    /// voting twice in one epoch across a restart.
    pub voted_for: Option<NodeId>,
    /// The leader of `epoch`, once known.
    pub leader: Option<NodeId>,
}

/// The messages between quorum members; each names the sender's epoch so a stale one is
/// recognised. They mirror KRaft's RPCs (`Vote`, `BeginQuorumEpoch`, `EndQuorumEpoch`,
/// `Fetch`), in domain terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Vote {
        epoch: Epoch,
        /// The candidate's last entry: (its epoch, the log end offset).
        last_epoch: Epoch,
        end_offset: i64,
    },
    VoteResponse {
        epoch: Epoch,
        granted: bool,
    },
    BeginQuorumEpoch {
        epoch: Epoch,
    },
    EndQuorumEpoch {
        epoch: Epoch,
        /// Voters in the order they should try to take over (most caught up first).
        successors: Vec<NodeId>,
    },
    Fetch {
        epoch: Epoch,
        /// Matches the response to its request: a node has at most one fetch in flight.
        fetch_id: u64,
        /// The fetcher's log end offset: it has every entry below it.
        fetch_offset: i64,
        /// The epoch of the entry just below `fetch_offset` (the default epoch for an empty log).
        last_fetched_epoch: Epoch,
    },
    FetchResponse {
        epoch: Epoch,
        fetch_id: u64,
        /// The leader of `epoch` as the responder knows it (a hint when it is not the leader).
        leader: Option<NodeId>,
        result: FetchResult,
        high_watermark: i64,
    },
    /// KIP-630's FetchSnapshot: the bytes of snapshot `snapshot_id` from `position` on.
    FetchSnapshot {
        epoch: Epoch,
        /// Shares the id space (and the one-in-flight rule) of `Fetch`.
        fetch_id: u64,
        snapshot_id: SnapshotId,
        position: u64,
    },
    FetchSnapshotResponse {
        epoch: Epoch,
        fetch_id: u64,
        leader: Option<NodeId>,
        result: SnapshotResult,
    },
}

/// The answer to a FetchSnapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotResult {
    /// The bytes `[position, position + bytes.len())` of a snapshot of `size` bytes.
    Chunk {
        snapshot_id: SnapshotId,
        size: u64,
        position: u64,
        bytes: Bytes,
    },
    /// The leader no longer has that snapshot (it took a newer one) or the position is past its
    /// end (Kafka's SNAPSHOT_NOT_FOUND / POSITION_OUT_OF_RANGE): fetch again to learn the new id.
    NotFound,
    /// The responder is not the leader of the fetcher's epoch.
    NotLeader,
}

/// The answer to a fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchResult {
    /// Entries starting at `base_offset` (the fetch offset); possibly none.
    Entries {
        base_offset: i64,
        entries: Vec<Entry>,
    },
    /// The fetcher's log stops agreeing with the leader's: the leader's log has `epoch` ending
    /// at `end_offset` (exclusive). Truncate there and fetch again.
    Diverging { epoch: Epoch, end_offset: i64 },
    /// The fetcher's log ends below the leader's log start, or stops agreeing behind it: the
    /// entries it needs are only in the leader's snapshot. Fetch that (KIP-630).
    Snapshot { snapshot_id: SnapshotId },
    /// The responder is not the leader of the fetcher's epoch (or the fetcher's epoch is stale).
    NotLeader,
}

/// The effects a node asks its driver to perform, in order (see the calling contract above).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write the quorum-state file (durably, before the next output).
    SaveQuorumState(QuorumState),
    /// Append entries at `base_offset`, which is the log's current end (durably).
    Append {
        base_offset: i64,
        entries: Vec<Entry>,
    },
    /// Remove every entry at or above `end_offset` (durably).
    Truncate {
        end_offset: i64,
    },
    Send {
        to: NodeId,
        message: Message,
    },
    /// Durably store this node's own snapshot, then delete the log entries below its end
    /// offset (the log start moves there). The state machine made it and keeps its state.
    SaveSnapshot(Snapshot),
    /// Durably store a snapshot fetched from the leader, delete the whole log (it now starts
    /// and ends at the snapshot's end offset), and load the state machine from the snapshot:
    /// every entry below its end offset counts as applied.
    InstallSnapshot(Snapshot),
    /// The high watermark moved up: entries below it are committed and may be applied.
    Committed {
        high_watermark: i64,
    },
}

/// Timeouts and limits, Kafka's `controller.quorum.*` settings.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// `controller.quorum.election.timeout.ms` (1 s): how long an unattached voter or a candidate
    /// waits before (re)starting an election, plus a random part up to `election_backoff_max`.
    pub election_timeout: Duration,
    /// `controller.quorum.election.backoff.max.ms` (1 s): the random spread that keeps
    /// candidates from splitting the vote forever.
    pub election_backoff_max: Duration,
    /// `controller.quorum.fetch.timeout.ms` (2 s): a follower that hears nothing from its leader
    /// for this long starts an election; the leader resigns after 1.5 × this without a majority.
    pub fetch_timeout: Duration,
    /// How long a follower waits between fetches that returned nothing (Kafka's leader holds
    /// the fetch instead, a long poll; the effect on latency is the same order).
    pub fetch_backoff: Duration,
    /// `controller.quorum.request.timeout.ms` (2 s): a request with no answer is sent again.
    pub request_timeout: Duration,
    /// The most entries one fetch response carries.
    pub fetch_entries_max: usize,
    /// The most entries the leader holds uncommitted before `propose` refuses (back-pressure).
    pub uncommitted_entries_max: usize,
    /// The most snapshot bytes one FetchSnapshot response carries (Kafka's
    /// `MaxBytes` of FetchSnapshot, bounded by `replica.fetch.response.max.bytes`).
    pub snapshot_chunk_bytes_max: usize,
}

impl Default for RaftConfig {
    fn default() -> RaftConfig {
        RaftConfig {
            election_timeout: Duration::from_ms(1000),
            election_backoff_max: Duration::from_ms(1000),
            fetch_timeout: Duration::from_ms(2000),
            fetch_backoff: Duration::from_ms(50),
            request_timeout: Duration::from_ms(2000),
            fetch_entries_max: 512,
            uncommitted_entries_max: 10_000,
            snapshot_chunk_bytes_max: 1 << 20,
        }
    }
}

/// Why a proposal was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// This node is not the leader; `leader` is the one it knows of, if any (Kafka:
    /// NOT_CONTROLLER).
    NotLeader { leader: Option<NodeId> },
    /// Too many entries are waiting to commit (a majority is unreachable or slow).
    Backlog,
}
