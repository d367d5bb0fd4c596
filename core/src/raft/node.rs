//! One member of the quorum: its role, its timers, and what it does with each message.
//!
//! Roles (KIP-595's states, with Kafka's names):
//! ```text
//!              election timeout                majority of votes
//!  Unattached ─────────────────▶ Candidate ─────────────────────▶ Leader
//!   ▲  │ BeginQuorumEpoch /          │ timeout: next epoch            │ no majority fetched
//!   │  │ fetch answered              ▼                                │ for 1.5 × fetch timeout
//!   │  └──────────────────────▶ Follower ◀── (any role, on a higher   ▼
//!   │                              │          epoch with a leader)  Resigned
//!   └──── fetch timeout (voter: ───┘                                  │ election timeout
//!          Candidate directly)                                        ▼ Candidate
//! ```
//! A message with a higher epoch than the node's moves it to that epoch first (as Unattached,
//! or as Follower when the leader is named), whatever its role: epochs only go up.
//! Observers (nodes outside the voter set: Kafka's brokers) follow and fetch but never vote or
//! stand; an observer that does not know the leader asks the voters in turn.

use super::{
    Entry, Epoch, Message, NodeId, Output, ProposeError, QuorumState, RaftConfig, RaftLog, Record,
    Snapshot, SnapshotId,
};
use crate::prng::Prng;
use crate::time::Instant;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A node's role in its current epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// No leader known for this epoch (the node may have voted). A voter stands for election at
    /// `election_at`; an observer asks a voter who leads.
    Unattached {
        election_at: Instant,
    },
    /// Following `leader`: fetching from it. `heard_at` is the last time the leader answered.
    Follower {
        leader: NodeId,
        heard_at: Instant,
        next_fetch_at: Instant,
    },
    Candidate {
        granted: BTreeSet<NodeId>,
        election_at: Instant,
    },
    Leader(LeaderState),
    /// A leader that lost its majority (check-quorum) or was asked to stop: it leads no more in
    /// this epoch and waits for another to be elected (or stands again at `election_at`).
    Resigned {
        election_at: Instant,
    },
}

/// What the leader knows of each replica that fetches from it (raft-rs calls it `Progress`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The replica's log agrees with the leader's below this offset (its last valid fetch).
    pub matched: i64,
    pub last_fetch: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderState {
    /// The offset of this epoch's `LeaderChange` record: the high watermark may only move once
    /// it is past it.
    pub epoch_start: i64,
    pub replicas: BTreeMap<NodeId, Progress>,
    /// When check-quorum next looks at who fetched lately.
    pub check_quorum_at: Instant,
}

/// One quorum member (a voter) or one observer. See the module docs and the calling contract in
/// [`crate::raft`].
#[derive(Debug)]
pub struct RaftNode {
    pub(super) id: NodeId,
    pub(super) voters: BTreeSet<NodeId>,
    pub(super) config: RaftConfig,
    pub(super) prng: Prng,
    pub(super) now: Instant,
    pub(super) state: QuorumState,
    pub(super) role: Role,
    pub(super) log: RaftLog,
    /// The latest snapshot; it ends where the log starts (KIP-630).
    pub(super) snapshot: Option<Snapshot>,
    /// A leader's snapshot being downloaded: its id and the bytes received so far.
    pub(super) pending_snapshot: Option<(SnapshotId, Vec<u8>)>,
    pub(super) high_watermark: i64,
    /// The fetch in flight (its id and when it was sent), if any.
    pub(super) fetch_in_flight: Option<(u64, Instant)>,
    pub(super) next_fetch_id: u64,
    /// Which voter an observer that knows no leader asks next.
    pub(super) probe: usize,
    pub(super) outputs: VecDeque<Output>,
}

impl RaftNode {
    /// A node starting from what it persisted: its quorum state, its latest snapshot, and its log
    /// entries from the snapshot's end on (all empty on a first start). `seed` drives the
    /// randomized election timeouts.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: NodeId,
        voters: BTreeSet<NodeId>,
        config: RaftConfig,
        seed: u64,
        now: Instant,
        state: QuorumState,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    ) -> RaftNode {
        assert!(!voters.is_empty(), "a quorum has voters");
        assert!(config.fetch_entries_max > 0 && config.uncommitted_entries_max > 0);
        assert!(config.snapshot_chunk_bytes_max > 0);
        let log = match &snapshot {
            Some(s) => RaftLog::restore(s.id.end_offset, s.id.epoch, entries),
            None => RaftLog::from_entries(entries),
        };
        // A snapshot holds only committed entries, so its end is committed: the high watermark
        // starts there (and at 0 without one) until the leader says more.
        let high_watermark = log.start();
        let mut node = RaftNode {
            id,
            voters,
            config,
            prng: Prng::new(seed),
            now,
            state,
            role: Role::Unattached { election_at: now },
            log,
            snapshot,
            pending_snapshot: None,
            high_watermark,
            fetch_in_flight: None,
            next_fetch_id: 0,
            probe: 0,
            outputs: VecDeque::new(),
        };
        assert!(
            node.log.last_epoch() <= node.state.epoch,
            "no entry from a future epoch"
        );
        // A restarted node does not know whether its old leadership still holds (another may
        // have been elected meanwhile), so it never resumes as leader: as Kafka does, it
        // starts unattached in its persisted epoch, or following the leader it had recorded.
        node.role = match node.state.leader {
            Some(l) if l != node.id => node.follower(l),
            _ => Role::Unattached {
                election_at: node.election_deadline(),
            },
        };
        if node.voters.len() == 1 && node.is_voter() {
            // A quorum of one: no one to wait for. (This is `gregor serve` alone.)
            node.become_candidate();
        }
        node.invariants();
        node
    }

    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn epoch(&self) -> Epoch {
        self.state.epoch
    }
    pub fn role(&self) -> &Role {
        &self.role
    }
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    /// The latest snapshot this node holds (its own or one installed from the leader).
    pub fn latest_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }
    /// The leader of the current epoch, as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(_) => Some(self.id),
            Role::Follower { leader, .. } => Some(*leader),
            _ => None,
        }
    }
    /// The quorum's voters (`controller.quorum.voters`).
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }
    pub(super) fn is_voter(&self) -> bool {
        self.voters.contains(&self.id)
    }
    pub(super) fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next instant [`RaftNode::tick`] has work to do.
    pub fn poll_timeout(&self) -> Instant {
        let resend = self
            .fetch_in_flight
            .map(|(_, sent)| sent + self.config.request_timeout);
        let t = match &self.role {
            Role::Unattached { election_at } | Role::Resigned { election_at } => *election_at,
            Role::Candidate { election_at, .. } => *election_at,
            Role::Follower {
                heard_at,
                next_fetch_at,
                ..
            } => {
                let fetch = if self.fetch_in_flight.is_some() {
                    resend.unwrap()
                } else {
                    *next_fetch_at
                };
                fetch.min(*heard_at + self.config.fetch_timeout)
            }
            Role::Leader(l) => l.check_quorum_at,
        };
        match (&self.role, resend) {
            (Role::Unattached { .. }, Some(r)) if !self.is_voter() => t.min(r),
            _ => t,
        }
    }

    /// Time passed: act on whatever deadline has come.
    pub fn tick(&mut self, now: Instant) {
        self.advance_clock(now);
        match self.role.clone() {
            Role::Unattached { election_at } | Role::Resigned { election_at } => {
                if now >= election_at {
                    if self.is_voter() {
                        self.become_candidate();
                    } else {
                        self.probe_for_leader();
                    }
                }
            }
            Role::Candidate { election_at, .. } => {
                if now >= election_at {
                    // A split vote or lost messages: try again in the next epoch.
                    self.become_candidate();
                }
            }
            Role::Follower {
                leader,
                heard_at,
                next_fetch_at,
            } => {
                if now >= heard_at + self.config.fetch_timeout {
                    // The leader has gone quiet: KIP-595 has a voter stand at once.
                    self.stop_fetching();
                    if self.is_voter() {
                        self.become_candidate();
                    } else {
                        self.role = Role::Unattached { election_at: now };
                        self.probe_for_leader();
                    }
                } else if let Some((_, sent)) = self.fetch_in_flight {
                    if now >= sent + self.config.request_timeout {
                        self.send_fetch(leader);
                    }
                } else if now >= next_fetch_at {
                    self.send_fetch(leader);
                }
            }
            Role::Leader(l) => {
                if now >= l.check_quorum_at {
                    self.check_quorum();
                }
            }
        }
        self.invariants();
    }

    /// The node is stopping cleanly (SIGTERM): a leader resigns (KIP-595's graceful shutdown,
    /// Kafka's `KafkaRaftClient.shutdown`), sending EndQuorumEpoch to the other voters so they
    /// elect a successor at once instead of noticing the silence a fetch timeout later (and
    /// clients find no active controller for that long). Another role leads nothing and has
    /// nothing to hand over, nor has the only voter of a quorum of one (it would only elect
    /// itself again). Returns whether the node resigned. The caller keeps the node running
    /// until the EndQuorumEpoch messages are out, then stops.
    pub fn resign(&mut self, now: Instant) -> bool {
        self.advance_clock(now);
        let resigned = self.is_leader() && !self.other_voters().is_empty();
        if resigned {
            self.step_down();
        }
        self.invariants();
        resigned
    }

    /// Append a record as leader. Returns its offset; it is committed once the high watermark
    /// passes it ([`Output::Committed`]).
    pub fn propose(&mut self, now: Instant, data: Bytes) -> Result<i64, ProposeError> {
        self.advance_clock(now);
        if !self.is_leader() {
            return Err(ProposeError::NotLeader {
                leader: self.leader(),
            });
        }
        if (self.log.end() - self.high_watermark) as usize >= self.config.uncommitted_entries_max {
            return Err(ProposeError::Backlog);
        }
        let offset = self.append_as_leader(Record::Data(data));
        self.invariants();
        Ok(offset)
    }

    /// A message from another node.
    pub fn handle(&mut self, now: Instant, from: NodeId, message: Message) {
        self.advance_clock(now);
        let epoch = message_epoch(&message);
        if epoch > self.state.epoch {
            // Epochs only go up; a message from a later epoch ends this node's role in its own.
            // A BeginQuorumEpoch or an answered fetch names the new leader; anything else leaves
            // the node unattached in the new epoch (not yet having voted in it).
            let leader = match &message {
                Message::BeginQuorumEpoch { .. } => Some(from),
                Message::FetchResponse { leader, .. }
                | Message::FetchSnapshotResponse { leader, .. } => *leader,
                _ => None,
            };
            self.enter_epoch(epoch, leader);
        }
        match message {
            Message::Vote {
                epoch,
                last_epoch,
                end_offset,
            } => self.on_vote(from, epoch, last_epoch, end_offset),
            Message::VoteResponse { epoch, granted } => self.on_vote_response(from, epoch, granted),
            Message::BeginQuorumEpoch { epoch } => {
                if epoch == self.state.epoch && self.leader().is_none() {
                    self.follow(from);
                }
            }
            Message::EndQuorumEpoch { epoch, successors } => {
                self.on_end_quorum_epoch(from, epoch, &successors)
            }
            Message::Fetch {
                epoch,
                fetch_id,
                fetch_offset,
                last_fetched_epoch,
            } => self.on_fetch(from, epoch, fetch_id, fetch_offset, last_fetched_epoch),
            Message::FetchResponse {
                epoch,
                fetch_id,
                leader,
                result,
                high_watermark,
            } => self.on_fetch_response(from, epoch, fetch_id, leader, result, high_watermark),
            Message::FetchSnapshot {
                epoch,
                fetch_id,
                snapshot_id,
                position,
            } => self.on_fetch_snapshot(from, epoch, fetch_id, snapshot_id, position),
            Message::FetchSnapshotResponse {
                epoch,
                fetch_id,
                leader,
                result,
            } => self.on_fetch_snapshot_response(from, epoch, fetch_id, leader, result),
        }
        self.invariants();
    }

    // ----- plumbing -----

    pub(super) fn advance_clock(&mut self, now: Instant) {
        assert!(now >= self.now, "time never goes back for a node");
        self.now = now;
    }

    pub(super) fn other_voters(&self) -> Vec<NodeId> {
        self.voters
            .iter()
            .copied()
            .filter(|v| *v != self.id)
            .collect()
    }

    pub(super) fn send(&mut self, to: NodeId, message: Message) {
        assert_ne!(to, self.id, "a node does not message itself");
        self.outputs.push_back(Output::Send { to, message });
    }

    pub(super) fn save(&mut self, state: QuorumState) {
        assert!(state.epoch >= self.state.epoch, "the epoch never goes down");
        if state.epoch == self.state.epoch {
            // Within an epoch a vote, once cast, never changes, nor does a known leader.
            assert!(self.state.voted_for.is_none() || self.state.voted_for == state.voted_for);
            assert!(self.state.leader.is_none() || self.state.leader == state.leader);
        }
        self.state = state.clone();
        self.outputs.push_back(Output::SaveQuorumState(state));
    }

    /// Checked after every step.
    pub(super) fn invariants(&self) {
        assert!(
            self.high_watermark <= self.log.end(),
            "committed entries are in the log"
        );
        assert!(
            self.log.start() <= self.high_watermark,
            "a snapshot holds only committed entries"
        );
        assert!(self.log.last_epoch() <= self.state.epoch);
        match &self.snapshot {
            Some(s) => {
                assert_eq!(
                    s.id.end_offset,
                    self.log.start(),
                    "the log starts at the snapshot"
                );
                assert_eq!(s.id.epoch, self.log.epoch_before(self.log.start()));
            }
            None => assert_eq!(self.log.start(), 0, "only a snapshot moves the log start"),
        }
        if let Some((id, bytes)) = &self.pending_snapshot {
            assert!(
                matches!(self.role, Role::Follower { .. }),
                "only a follower downloads"
            );
            assert!(id.end_offset > self.log.start() && id.epoch <= self.state.epoch);
            assert!(
                !bytes.is_empty() || self.fetch_in_flight.is_some(),
                "a download asks on"
            );
        }
        match &self.role {
            Role::Leader(l) => {
                assert!(self.is_voter());
                assert_eq!(self.state.leader, Some(self.id));
                assert_eq!(self.state.voted_for, Some(self.id));
                assert!(
                    l.epoch_start < self.log.end(),
                    "the LeaderChange record is written"
                );
                // (Unless a snapshot has since covered it.)
                assert!(
                    l.epoch_start < self.log.start()
                        || self.log.get(l.epoch_start).map(|e| e.epoch) == Some(self.state.epoch)
                );
                assert!(l.replicas.values().all(|p| p.matched <= self.log.end()));
            }
            Role::Candidate { granted, .. } => {
                assert!(self.is_voter());
                assert_eq!(self.state.voted_for, Some(self.id));
                assert!(granted.contains(&self.id) && granted.is_subset(&self.voters));
                assert!(granted.len() < self.majority(), "a winning candidate leads");
            }
            Role::Follower { leader, .. } => {
                assert_eq!(self.state.leader, Some(*leader));
                assert_ne!(*leader, self.id);
            }
            Role::Unattached { .. } | Role::Resigned { .. } => {}
        }
    }
}

fn message_epoch(m: &Message) -> Epoch {
    match m {
        Message::Vote { epoch, .. }
        | Message::VoteResponse { epoch, .. }
        | Message::BeginQuorumEpoch { epoch }
        | Message::EndQuorumEpoch { epoch, .. }
        | Message::Fetch { epoch, .. }
        | Message::FetchResponse { epoch, .. }
        | Message::FetchSnapshot { epoch, .. }
        | Message::FetchSnapshotResponse { epoch, .. } => *epoch,
    }
}
