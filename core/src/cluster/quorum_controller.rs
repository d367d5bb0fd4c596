//! The controller process: one Raft voter, the metadata image it replays, and, while it leads,
//! the active controller deciding on requests (Kafka's `QuorumController` over its
//! `KafkaRaftClient`; KIP-500, KIP-595, KIP-631).
//!
//! A KRaft controller node is three things stacked:
//!
//! 1. **A voter of the metadata quorum** ([`RaftNode`]): it votes, follows, fetches, and may be
//!    elected leader of the `__cluster_metadata` log.
//! 2. **The committed image** ([`MetadataImage`]): every record below the high watermark,
//!    replayed in log order, and nothing else. It changes only by replaying records, live as the
//!    high watermark moves, and after a restart or a snapshot install (from the snapshot, then the
//!    log after it). Every controller, leader or not, keeps one; brokers keep the same image.
//! 3. **The active controller**, only while this node leads the quorum: a [`Controller`] that
//!    turns requests into records, deciding on a *working* image = the committed image plus this
//!    leader's own uncommitted records. Kafka's controller applies its records to its in-memory
//!    state as it writes them, so two requests in flight cannot contradict each other (two
//!    topics of one name, two brokers given one producer-id block). When leadership is lost the
//!    working image is dropped with whatever uncommitted records it held (the next leader may
//!    truncate them) and rebuilt from the committed image the next time this node leads.
//!
//! ## When a request is answered
//! A response leaves only once every record it wrote (and every record before them, since its
//! decision read them) is committed: a quorum has them on disk, so no failover can take them
//! back. A request to a node that is not the active controller is answered at once with
//! NOT_CONTROLLER and the leader it knows; a request whose records were written but not
//! committed when leadership was lost is answered NOT_CONTROLLER too. That answer is not a
//! refusal: the next leader may still commit the records (the client must treat it as "maybe").
//!
//! ## Timers
//! * the quorum's own ([`RaftNode::poll_timeout`]): elections, fetches, check-quorum;
//! * broker sessions (`broker.session.timeout.ms`): [`Controller::tick`] fences a broker that
//!   stopped heartbeating;
//! * `leader.imbalance.check.interval` ([`QuorumControllerConfig::leader_check_interval`]): the
//!   periodic leader check ([`replication::balance`]: preferred leaders back, unclean elections a
//!   topic allows, repairs of a deposed controller's half-written decision), also run once on
//!   becoming active;
//! * `metadata.max.idle.interval.ms` (500 ms): an idle active controller writes a NoOp record, so
//!   the high watermark keeps moving and a broker whose image stops moving knows it is cut off;
//! * snapshots: after every [`QuorumControllerConfig::snapshot_every`] committed offsets the node
//!   writes its image as records ([`MetadataImage::to_records`]) and hands them to
//!   [`RaftNode::take_snapshot`], which drops the log behind them (KIP-630).
//!
//! ## The calling contract
//! [`Output::Raft`] carries the quorum's own outputs unchanged, with their strict in-order
//! durability contract (see [`crate::raft`]); [`Output::Respond`] answers a request. Perform
//! them in order: a response that follows a storage output must wait for it to be durable.

use super::controller::{Controller, ControllerError};
use super::records::{decode, decode_snapshot, encode_snapshot, MetadataRecord};
use super::replication;
use super::MetadataImage;
use crate::raft::{
    self, Entry, Epoch, Message, NodeId, ProposeError, QuorumState, RaftConfig, RaftNode, Record,
    Snapshot,
};
use crate::time::{Duration, Instant};
use bytes::Bytes;
use std::collections::{BTreeSet, VecDeque};

mod decide;
mod durable;
use decide::decide;
pub use durable::Durable;
mod requests;
pub use requests::{Reply, Request, RequestId};

/// The `metadata.version` feature's name, and the level the first leader writes: 19 is Kafka
/// 3.7-IV4, the version whose records gregor's mirror.
pub const METADATA_VERSION_FEATURE: &str = "metadata.version";
pub const METADATA_VERSION_LEVEL: i16 = 19;

/// The controller's settings, Kafka's names.
#[derive(Clone, Debug)]
pub struct QuorumControllerConfig {
    pub raft: RaftConfig,
    /// `broker.session.timeout.ms` (9 s).
    pub session_timeout: Duration,
    /// `metadata.max.idle.interval.ms` (500 ms): the most time an active controller lets pass
    /// without writing a record.
    pub max_idle_interval: Duration,
    /// Committed offsets between two snapshots (Kafka counts bytes,
    /// `metadata.log.max.record.bytes.between.snapshots`; offsets are simpler and as good here).
    pub snapshot_every: i64,
    /// `default.replication.factor` (1): what a CreateTopics asking for -1 replicas gets.
    pub default_replication_factor: i32,
    /// `auto.leader.rebalance.enable` (true): the periodic check hands each partition back to
    /// its preferred (first) replica when that one is a live ISR member.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds` (300 s): how often the active controller runs
    /// [`replication::balance`](super::replication::balance) (preferred leaders, unclean
    /// elections the topic config allows, and repairs). It also runs once on becoming active.
    pub leader_check_interval: Duration,
    /// SCRAM users the first leader of an empty log writes beside `metadata.version` (Kafka's
    /// `kafka-storage format --add-scram`; gregor's TOML `[users]`): written once, at the
    /// cluster's first start, so a later deletion through the API stays deleted.
    pub bootstrap_scram: Vec<(String, crate::scram::ScramCredential)>,
}

impl Default for QuorumControllerConfig {
    fn default() -> QuorumControllerConfig {
        QuorumControllerConfig {
            raft: RaftConfig::default(),
            session_timeout: Duration::from_ms(9000),
            max_idle_interval: Duration::from_ms(500),
            snapshot_every: 1000,
            default_replication_factor: 1,
            auto_leader_rebalance: true,
            leader_check_interval: Duration::from_ms(300_000),
            bootstrap_scram: Vec::new(),
        }
    }
}

/// What the node asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The quorum's own output, unchanged (storage or a message to a peer).
    Raft(raft::Output),
    /// Answer request `id`.
    Respond {
        id: RequestId,
        result: Result<Reply, ControllerError>,
    },
}

/// The active controller's state: it exists only while this node leads the quorum.
#[derive(Debug)]
struct Active {
    /// The quorum epoch it leads; a later leadership of this node is a new `Active`.
    epoch: Epoch,
    /// The committed image plus every entry of this leader's log above the high watermark.
    working: MetadataImage,
    controller: Controller,
    /// When this leader last wrote a record (for the idle NoOp).
    last_write: Instant,
    /// When the periodic leader check ([`replication::balance`]) next runs.
    next_balance: Instant,
    /// Answers waiting for commit: released once the high watermark passes `.0`.
    pending: VecDeque<(i64, RequestId, Result<Reply, ControllerError>)>,
}

/// A controller node. See the module docs.
#[derive(Debug)]
pub struct QuorumController {
    config: QuorumControllerConfig,
    seed: u64,
    now: Instant,
    raft: RaftNode,
    /// Every committed entry replayed: its offset is `applied - 1`.
    image: MetadataImage,
    /// The next log offset to replay into `image`; equals the high watermark between calls.
    applied: i64,
    /// Where this node's latest snapshot ends (0 without one).
    snapshot_end: i64,
    active: Option<Active>,
    outputs: VecDeque<Output>,
}

impl QuorumController {
    /// A controller starting from what its quorum outputs made durable: the quorum state, the
    /// latest snapshot, and the log entries after it (all empty on a first start). The image is
    /// the snapshot's; the entries after it are replayed as the high watermark reaches them.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: NodeId,
        voters: BTreeSet<NodeId>,
        config: QuorumControllerConfig,
        seed: u64,
        now: Instant,
        state: QuorumState,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    ) -> QuorumController {
        assert!(voters.contains(&id), "a controller is a voter");
        assert!(config.snapshot_every > 0);
        assert!(config.max_idle_interval.0 > 0 && config.session_timeout.0 > 0);
        let (image, applied) = match &snapshot {
            Some(s) => (load(s), s.id.end_offset),
            None => (MetadataImage::new(), 0),
        };
        let raft = RaftNode::restore(
            id,
            voters,
            config.raft.clone(),
            seed,
            now,
            state,
            snapshot,
            entries,
        );
        // (A quorum of one elects itself inside `restore` and may have committed more already:
        // its outputs are drained below.)
        assert!(
            raft.high_watermark() >= applied,
            "a restart commits up to its snapshot"
        );
        let mut node = QuorumController {
            config,
            seed,
            now,
            raft,
            image,
            applied,
            snapshot_end: applied,
            active: None,
            outputs: VecDeque::new(),
        };
        node.pump();
        node
    }

    pub fn id(&self) -> NodeId {
        self.raft.id()
    }
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }
    /// The committed image: every record below the high watermark replayed.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }
    /// The active controller's working image (committed + its own uncommitted records).
    pub fn working_image(&self) -> Option<&MetadataImage> {
        self.active.as_ref().map(|a| &a.working)
    }
    /// The next offset to replay: every entry below it is in [`QuorumController::image`].
    pub fn applied(&self) -> i64 {
        self.applied
    }
    /// Whether this node is the active controller.
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next instant [`QuorumController::tick`] has work to do.
    pub fn poll_timeout(&self) -> Instant {
        let raft = self.raft.poll_timeout();
        match &self.active {
            None => raft,
            Some(a) => {
                let idle = a.last_write + self.config.max_idle_interval;
                let fence = a.controller.next_deadline(&a.working).unwrap_or(idle);
                raft.min(idle).min(fence).min(a.next_balance)
            }
        }
    }

    /// A message from another quorum member.
    pub fn handle(&mut self, now: Instant, from: NodeId, message: Message) {
        self.advance_clock(now);
        self.raft.handle(now, from, message);
        self.pump();
    }

    /// The process is stopping cleanly: the quorum leader resigns ([`RaftNode::resign`]) and
    /// this node is no longer the active controller. Returns whether it resigned.
    pub fn resign(&mut self, now: Instant) -> bool {
        self.advance_clock(now);
        let led = self.raft.resign(now);
        self.pump();
        led
    }

    /// Time passed: the quorum's deadlines, then, when active, fencing and the idle NoOp.
    pub fn tick(&mut self, now: Instant) {
        self.advance_clock(now);
        self.raft.tick(now);
        self.pump();
        let idle = self.config.max_idle_interval;
        let (preferred, every) = (
            self.config.auto_leader_rebalance,
            self.config.leader_check_interval,
        );
        if let Some(a) = &mut self.active {
            let fence = a.controller.tick(now, &a.working);
            let mut records = fence;
            // The periodic check waits for a tick without fencing (it reads the image those
            // records leave, next time).
            if records.is_empty() && now >= a.next_balance {
                records = replication::balance(&a.working, preferred);
                let mut staged = a.working.clone();
                staged.stage(&records);
                records.extend(super::reassign::complete_all(&staged));
                a.next_balance = now + every;
            }
            if records.is_empty() && now >= a.last_write + idle {
                records.push(MetadataRecord::NoOp);
            }
            if !records.is_empty() && self.room_for(records.len()) {
                self.write(records);
            } else if !records.is_empty() {
                // No room: a majority is not keeping up. Fencing is decided again next tick
                // (the sessions are still lapsed); the NoOp is pointless until it catches up.
                self.active.as_mut().expect("active").last_write = now;
            }
        }
        self.pump();
    }

    /// A request from a broker (or forwarded by one). Its answer comes as an
    /// [`Output::Respond`] once its records are committed, or at once when it writes none
    /// and nothing before it waits, or when this node is not the active controller.
    pub fn request(&mut self, now: Instant, id: RequestId, request: Request) {
        self.advance_clock(now);
        let Some(a) = &mut self.active else {
            let leader = self.raft.leader().map(|n| n.0);
            self.outputs.push_back(Output::Respond {
                id,
                result: Err(ControllerError::NotController { leader }),
            });
            return;
        };
        if request == Request::DescribeQuorum {
            let status = crate::cluster::wire::quorum_status(&self.raft, now);
            self.outputs.push_back(Output::Respond {
                id,
                result: Ok(Reply::DescribeQuorum(status)),
            });
            return;
        }
        let next_offset = self.raft.log().end();
        let mut request = request;
        if let Request::CreateTopic {
            replication_factor, ..
        } = &mut request
        {
            if *replication_factor == -1 {
                *replication_factor = self.config.default_replication_factor;
            }
        }
        let (result, records) = decide(&mut a.controller, now, &a.working, next_offset, &request);
        let result = if !self.room_for(records.len()) {
            Err(ControllerError::RequestTimedOut)
        } else {
            self.write(records);
            result
        };
        // The decision read everything in the log so far: answer once all of it commits.
        let wait_for = self.raft.log().end() - 1;
        let a = self.active.as_mut().expect("still active");
        assert!(a.pending.back().is_none_or(|p| p.0 <= wait_for));
        a.pending.push_back((wait_for, id, result));
        self.release();
        self.pump();
    }

    /// gregor's migration of a standalone broker's topics ([`super::import`]): as the active
    /// controller, write the records that import `local` for broker `broker`. Returns the
    /// offset of the last record written (or of the log's end, when there was nothing to write):
    /// the import is committed once the high watermark passes it. Refused when this node is not
    /// the active controller or the records would not fit the uncommitted-entries bound.
    pub fn import(
        &mut self,
        now: Instant,
        broker: super::BrokerId,
        local: &super::import::LocalTopics,
    ) -> Result<i64, ControllerError> {
        self.advance_clock(now);
        let Some(a) = &self.active else {
            let leader = self.raft.leader().map(|n| n.0);
            return Err(ControllerError::NotController { leader });
        };
        let records = super::import::records(&a.working, broker, local)?;
        if !self.room_for(records.len()) {
            return Err(ControllerError::RequestTimedOut);
        }
        self.write(records);
        self.pump();
        Ok(self.raft.log().end() - 1)
    }

    /// As the active controller, forget broker `broker`'s session (see
    /// [`Controller::end_session`]); nothing when not active.
    pub fn end_session(&mut self, broker: super::BrokerId) {
        if let Some(a) = &mut self.active {
            a.controller.end_session(broker);
        }
    }

    // ----- inside -----

    fn advance_clock(&mut self, now: Instant) {
        assert!(now >= self.now, "time never goes back for a node");
        self.now = now;
    }

    /// Whether `n` more records fit under the quorum's uncommitted-entries bound.
    fn room_for(&self, n: usize) -> bool {
        let waiting = (self.raft.log().end() - self.raft.high_watermark()) as usize;
        waiting + n <= self.config.raft.uncommitted_entries_max
    }

    /// Append records as the active controller and apply each to the working image.
    fn write(&mut self, records: Vec<MetadataRecord>) {
        assert!(self.room_for(records.len()), "room was checked");
        for r in records {
            let offset = match self.raft.propose(self.now, Bytes::from(r.encode())) {
                Ok(offset) => offset,
                Err(ProposeError::NotLeader { .. } | ProposeError::Backlog) => {
                    unreachable!("the active controller leads and checked for room")
                }
            };
            let a = self
                .active
                .as_mut()
                .expect("only the active controller writes");
            a.working
                .replay(offset, &r)
                .unwrap_or_else(|e| panic!("the controller's own record at {offset}: {e}"));
            a.last_write = self.now;
        }
    }

    /// Drain the quorum's outputs, applying what they mean here, until it has no more; keep the
    /// active controller in step with the quorum's leadership; take a snapshot when due.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(o) = self.raft.poll_output() {
                busy = true;
                self.absorb(&o);
                self.outputs.push_back(Output::Raft(o));
                self.release();
            }
            busy |= self.follow_leadership();
            if self.applied - self.snapshot_end >= self.config.snapshot_every
                && self.applied > self.raft.log().start()
            {
                let data = encode_snapshot(&self.image.to_records());
                let id = self.raft.take_snapshot(self.applied, Bytes::from(data));
                assert_eq!(id.end_offset, self.applied);
                busy = true;
            }
            if !busy {
                break;
            }
        }
        self.invariants();
    }

    /// What one quorum output means for the image.
    fn absorb(&mut self, o: &raft::Output) {
        follow_commits(&mut self.image, &mut self.applied, self.raft.log(), o);
        match o {
            raft::Output::InstallSnapshot(s) => {
                assert!(
                    !self.raft.is_leader(),
                    "only a follower installs a snapshot"
                );
                self.snapshot_end = s.id.end_offset;
            }
            raft::Output::SaveSnapshot(s) => {
                assert_eq!(
                    s.id.end_offset, self.applied,
                    "this node's snapshot, just taken"
                );
                self.snapshot_end = s.id.end_offset;
            }
            raft::Output::Truncate { end_offset } => {
                assert!(
                    *end_offset >= self.applied,
                    "committed entries are never truncated"
                );
                assert!(!self.raft.is_leader(), "a leader never truncates its log");
            }
            raft::Output::Committed { .. }
            | raft::Output::SaveQuorumState(_)
            | raft::Output::Append { .. }
            | raft::Output::Send { .. } => {}
        }
    }

    /// Release every answer whose records are now committed.
    fn release(&mut self) {
        let Some(a) = &mut self.active else { return };
        while a.pending.front().is_some_and(|p| p.0 < self.applied) {
            let (_, id, result) = a.pending.pop_front().expect("front");
            self.outputs.push_back(Output::Respond { id, result });
        }
    }

    /// Start or stop being the active controller as the quorum's leadership changes; whether
    /// anything changed.
    fn follow_leadership(&mut self) -> bool {
        let leading = self.raft.is_leader().then(|| self.raft.epoch());
        if self.active.as_ref().map(|a| a.epoch) == leading {
            return false;
        }
        if let Some(old) = self.active.take() {
            // Leadership lost: what was written but not committed may or may not survive.
            let leader = self.raft.leader().map(|n| n.0);
            for (_, id, _) in old.pending {
                self.outputs.push_back(Output::Respond {
                    id,
                    result: Err(ControllerError::NotController { leader }),
                });
            }
        }
        let Some(epoch) = leading else { return true };
        // The working image: the committed one plus every entry above the high watermark.
        // They will all commit under this leader (a leader never truncates its own log), so
        // deciding on anything less would be deciding on stale state (KAFKA-17333).
        let mut working = self.image.clone();
        for offset in self.applied..self.raft.log().end() {
            let entry = self
                .raft
                .log()
                .get(offset)
                .expect("above the high watermark");
            replay(&mut working, offset, entry);
        }
        // Each leadership's PRNG (topic ids, placement) is seeded through a mixing step: a seed
        // that is this node's seed xor a multiple of the PRNG's own increment makes two epochs'
        // streams the same stream shifted by a few draws when the seed's bits line up, and a
        // later controller would hand out a deleted topic's id again (KIP-516 ids must never
        // be reused). The quorum simulator's replication checker found it.
        let mix = |x: u64| crate::prng::Prng::new(x).next_u64();
        let mixed = mix(mix(self.seed) ^ mix(0x6570_6f63_6800_0000 ^ epoch.0 as u64));
        let mut controller = Controller::new(self.config.session_timeout, mixed);
        controller.start_sessions(self.now, &working);
        self.active = Some(Active {
            epoch,
            working,
            controller,
            last_write: self.now,
            next_balance: self.now + self.config.leader_check_interval,
            pending: VecDeque::new(),
        });
        let has_version = self
            .active
            .as_ref()
            .is_some_and(|a| a.working.feature(METADATA_VERSION_FEATURE).is_some());
        if !has_version {
            // The first leader of an empty log: every metadata log starts with the version.
            let mut first = vec![MetadataRecord::FeatureLevel {
                name: METADATA_VERSION_FEATURE.to_string(),
                level: METADATA_VERSION_LEVEL,
            }];
            let users = self.config.bootstrap_scram.iter();
            first.extend(users.map(|(u, c)| super::scram::record_of(u, c)));
            if !self.room_for(first.len()) {
                first.truncate(1); // more users than the backlog holds: add them with the API
            }
            self.write(first);
        }
        // The first leader check comes at once: a deposed controller may have left a decision
        // half-written (its batch's later records never committed), and this repairs it before
        // any other decision reads the image.
        let a = self.active.as_ref().expect("just made active");
        let repair = replication::balance(&a.working, self.config.auto_leader_rebalance);
        if self.room_for(repair.len()) {
            self.write(repair);
        } else {
            self.active.as_mut().expect("active").next_balance = self.now;
        }
        true
    }

    /// Checked after every step.
    fn invariants(&self) {
        assert_eq!(
            self.image.offset(),
            self.applied - 1,
            "the image is the committed prefix"
        );
        assert_eq!(
            self.applied,
            self.raft.high_watermark(),
            "every committed entry replayed"
        );
        assert_eq!(
            self.snapshot_end,
            self.raft.log().start(),
            "the log starts at the snapshot"
        );
        assert_eq!(
            self.raft.latest_snapshot().map_or(0, |s| s.id.end_offset),
            self.snapshot_end
        );
        match &self.active {
            Some(a) => {
                assert!(self.raft.is_leader() && a.epoch == self.raft.epoch());
                assert_eq!(
                    a.working.offset(),
                    self.raft.log().end() - 1,
                    "the working image has every entry of the leader's log"
                );
                assert!(a.working.offset() >= self.image.offset());
                assert!(
                    a.pending.iter().all(|p| p.0 >= self.applied),
                    "released on commit"
                );
                assert!(a
                    .pending
                    .iter()
                    .zip(a.pending.iter().skip(1))
                    .all(|(x, y)| x.0 <= y.0));
                assert!(a.last_write <= self.now);
            }
            None => assert!(!self.raft.is_leader(), "a leader is the active controller"),
        }
    }
}

/// Replay one log entry into an image: a metadata record, or a control record that only moves
/// the image's offset. A committed record that does not decode or fit is a corrupt log or a
/// controller bug; like Kafka's metadata loader (whose fault handler stops a controller), the
/// node cannot go on from there. (Public so a checker can replay a log exactly as a node does.)
pub fn replay(image: &mut MetadataImage, offset: i64, entry: &Entry) {
    match &entry.record {
        Record::LeaderChange { .. } => image.skip(offset),
        Record::Data(bytes) => {
            let record = decode(bytes)
                .unwrap_or_else(|e| panic!("metadata log entry {offset} does not decode: {e}"));
            image
                .replay(offset, &record)
                .unwrap_or_else(|e| panic!("metadata log entry {offset}: {e}"));
        }
    }
    assert_eq!(image.offset(), offset);
}

/// What a quorum output means for a node's committed image, controller or broker alike: a
/// higher high watermark replays the entries below it (they are in the log: appends come
/// first), an installed snapshot replaces the image. Everything else leaves it alone.
pub(super) fn follow_commits(
    image: &mut MetadataImage,
    applied: &mut i64,
    log: &raft::RaftLog,
    o: &raft::Output,
) {
    match o {
        raft::Output::Committed { high_watermark } => {
            let hw = *high_watermark;
            assert!(hw >= *applied, "the high watermark only goes up");
            for offset in *applied..hw {
                let entry = log
                    .get(offset)
                    .unwrap_or_else(|| panic!("committed entry {offset} is in the log"));
                replay(image, offset, entry);
            }
            *applied = hw;
        }
        raft::Output::InstallSnapshot(s) => {
            assert!(s.id.end_offset > *applied, "an install moves forward");
            *image = load(s);
            *applied = s.id.end_offset;
        }
        _ => {}
    }
    assert_eq!(
        image.offset(),
        *applied - 1,
        "the image is the committed prefix"
    );
}

/// The image a snapshot holds.
pub(super) fn load(s: &Snapshot) -> MetadataImage {
    let records = decode_snapshot(&s.data)
        .unwrap_or_else(|e| panic!("snapshot {:?} does not decode: {e}", s.id));
    let image = MetadataImage::load_snapshot(s.id.end_offset, &records)
        .unwrap_or_else(|e| panic!("snapshot {:?}: {e}", s.id));
    assert_eq!(image.offset(), s.id.end_offset - 1);
    image
}
