//! Replication at the broker (issue 10): Kafka's `ReplicaManager` in the sans-IO core.
//!
//! In a KRaft cluster every partition has replicas on several brokers; the metadata image
//! names one of them leader. This module keeps, per partition, what this broker's role there
//! needs, and follows the image as it changes:
//!
//! * **Leading** ([`Led`], `leader.rs`): each follower's progress (its log end, when it last
//!   caught up), reset at every new leadership; the ISR change out to the controller, if any.
//!   The leader's high watermark is the lowest end over the maximal ISR
//!   ([`crate::replication::leader_high_watermark`]); acks=all waits for it, acks=N for N
//!   replicas' ends.
//! * **Probing** ([`probe::Probe`], `probe.rs`): in a new epoch the leader first learns each
//!   live ISR follower's position and hands the leadership to one ahead of it, so a record
//!   acknowledged with acks=N is not cut (gregor's rule; Kafka has none).
//! * **Following** ([`Followed`], `follower.rs`): which broker leads and in which epoch, and the
//!   high watermark the leader last reported. One [`Output::ReplicaFetch`] at a time goes to
//!   each leader, carrying every partition it leads that this broker follows and whose data is
//!   settled; the answer's batches are appended unchanged.
//!
//! `docs/replication.md` walks a record from the leader to its followers.

use super::*;
use crate::cluster::{BrokerId as NodeId, RequestId};
use crate::io::ReplicaFetchId;
use crate::replication::ReplicaProgress;

mod follower;
mod leader;
mod probe;
mod truncation;

/// A partition this broker leads, in one leader epoch.
#[derive(Debug)]
pub(super) struct Led {
    pub(super) epoch: i32,
    /// The offset the epoch started at here (KIP-279): a follower joins the ISR only once it
    /// has reached it, and ListOffsets latest waits for the high watermark to pass it.
    pub(super) epoch_start: i64,
    /// Every other replica's progress in this leadership.
    pub(super) followers: BTreeMap<NodeId, ReplicaProgress>,
    /// The AlterPartition out to the controller, if any (one at a time per partition).
    pub(super) alter: Option<AlterOut>,
    /// Until the leader has heard every live ISR follower in this epoch: its probe (no write,
    /// no records served, maybe a handover; `probe.rs`).
    pub(super) probe: Option<probe::Probe>,
}

/// An ISR change asked of the controller.
#[derive(Debug, Clone)]
pub(super) struct AlterOut {
    pub(super) id: RequestId,
    /// The partition epoch it was built on: a newer image ends the wait.
    pub(super) partition_epoch: i32,
    pub(super) isr: Vec<NodeId>,
    /// Refused with FENCED_LEADER_EPOCH or INVALID_UPDATE_VERSION, or accepted: nothing more
    /// is asked until an image newer than `partition_epoch` arrives.
    pub(super) answered: bool,
}

/// A partition this broker follows.
#[derive(Debug)]
pub(super) struct Followed {
    pub(super) leader: NodeId,
    pub(super) epoch: i32,
    /// The high watermark the leader last reported (this replica's own is the lower of it and
    /// what it has itself acknowledged).
    pub(super) leader_hw: i64,
    /// After an error answer for this partition: no fetch of it before this instant.
    pub(super) retry_at: Option<Instant>,
}

/// A replica fetch out: to whom, and per partition the leader epoch and fetch offset it was
/// sent with (an answer for a partition that moved on since is dropped).
#[derive(Debug)]
pub(super) struct FetchOut {
    pub(super) to: NodeId,
    pub(super) parts: BTreeMap<(String, i32), (i32, i64)>,
}

/// The broker's replication state (empty in standalone mode).
#[derive(Debug, Default)]
pub(super) struct ReplicaState {
    pub(super) leading: BTreeMap<(String, i32), Led>,
    pub(super) following: BTreeMap<(String, i32), Followed>,
    pub(super) out: BTreeMap<ReplicaFetchId, FetchOut>,
    /// Leaders whose last fetch failed: no fetch to them before the instant.
    pub(super) backoff: BTreeMap<NodeId, Instant>,
    pub(super) next_fetch_id: u64,
    /// When the leader next looks for ISR changes (`replica.lag.time.max.ms / 2`).
    pub(super) next_isr_check: Option<Instant>,
    /// Followed partitions whose truncation waits for a scan of their log (not fetched
    /// meanwhile), and the next scan's id.
    pub(super) truncating: BTreeMap<(String, i32), truncation::Truncation>,
    pub(super) next_truncation_job: u64,
}

impl ReplicaState {
    /// The earliest instant replication wants a tick at.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let retries = self.following.values().filter_map(|f| f.retry_at);
        let backoffs = self.backoff.values().copied();
        let probes = (self.leading.values()).filter_map(|l| l.probe.as_ref().map(|p| p.until));
        (retries.chain(backoffs).chain(probes))
            .chain(self.next_isr_check)
            .min()
    }

    pub(super) fn invariants(&self) {
        // At most one fetch out per leader, and each partition in at most one fetch.
        let mut leaders = BTreeSet::new();
        let mut parts = BTreeSet::new();
        for (id, f) in &self.out {
            assert!(
                id.0 < self.next_fetch_id,
                "fetch ids are handed out in order"
            );
            assert!(
                leaders.insert(f.to),
                "two replica fetches out to {:?}",
                f.to
            );
            for key in f.parts.keys() {
                assert!(parts.insert(key.clone()), "{key:?} is in two fetches");
            }
        }
        for key in self.leading.keys() {
            assert!(
                !self.following.contains_key(key),
                "{key:?} led and followed"
            );
        }
        // A partition whose log is being scanned for a cut is in no fetch.
        assert!(self.truncating.keys().all(|k| !parts.contains(k)));
        for (key, led) in &self.leading {
            assert!(led.epoch >= 0 && led.epoch_start >= 0, "{key:?}");
        }
    }
}

impl Broker {
    /// Follow the image's roles (called at the end of `on_metadata`): a partition led here in a
    /// new epoch starts with every follower's progress unknown; one followed under a new leader
    /// or epoch forgets the fetch it was in; one no longer held here is forgotten.
    pub(super) fn replica_follow_image(&mut self) {
        let Some(image) = self.kraft.image.clone() else {
            return;
        };
        let me = NodeId(self.config.broker_id.0);
        let now = self.now;
        // A previous run's roles are not this run's (see `Config::incarnation_id`): until this
        // process is registered it leads and follows nothing, and its partitions hold.
        let ours = self.registered_here(&image);
        let mut leading = BTreeMap::new();
        let mut following = BTreeMap::new();
        for t in image.topics().values() {
            for (i, reg) in &t.partitions {
                if !reg.replicas.contains(&me) || !ours {
                    continue;
                }
                let key = (t.name.clone(), *i);
                let Some(p) = self.partition(&t.name, *i).filter(|p| p.offline.is_none()) else {
                    continue;
                };
                let (hw, epoch_start) = (p.high_watermark, p.log.log_end_offset());
                let epoch_start = p
                    .log
                    .epochs()
                    .latest()
                    .filter(|(e, _)| *e == reg.leader_epoch)
                    .map_or(epoch_start, |(_, start)| start);
                match reg.leader {
                    Some(l) if l == me => {
                        let mut led = match self.replica.leading.remove(&key) {
                            Some(led) if led.epoch == reg.leader_epoch => led,
                            _ => Led {
                                epoch: reg.leader_epoch,
                                epoch_start,
                                followers: BTreeMap::new(),
                                alter: None,
                                probe: Some(self.new_probe()),
                            },
                        };
                        led.followers.retain(|b, _| reg.replicas.contains(b));
                        for b in reg.replicas.iter().filter(|b| **b != me) {
                            led.followers
                                .entry(*b)
                                .or_insert_with(|| ReplicaProgress::new(now, reg.isr.contains(b)));
                        }
                        if led
                            .alter
                            .as_ref()
                            .is_some_and(|a| reg.partition_epoch > a.partition_epoch)
                        {
                            led.alter = None;
                        }
                        leading.insert(key, led);
                    }
                    Some(l) => {
                        let kept = self
                            .replica
                            .following
                            .remove(&key)
                            .filter(|f| f.leader == l && f.epoch == reg.leader_epoch);
                        let followed = kept.unwrap_or(Followed {
                            leader: l,
                            epoch: reg.leader_epoch,
                            leader_hw: hw,
                            retry_at: None,
                        });
                        following.insert(key, followed);
                    }
                    None => {}
                }
            }
        }
        // A partition in a fetch out whose leader or epoch changed leaves it: its answer will
        // not be applied, and it may join a fetch to the new leader at once.
        for f in self.replica.out.values_mut() {
            f.parts.retain(|key, (epoch, _)| {
                following
                    .get(key)
                    .is_some_and(|x| x.leader == f.to && x.epoch == *epoch)
            });
        }
        let ended: Vec<((String, i32), i32)> = (self.replica.leading.iter())
            .filter(|(k, l)| leading.get(*k).is_none_or(|n: &Led| n.epoch != l.epoch))
            .map(|(k, l)| (k.clone(), l.epoch))
            .collect();
        for (key, epoch) in &ended {
            self.leadership_ended(key, *epoch);
        }
        let moved: Vec<(String, i32)> = (self.replica.leading.keys())
            .chain(self.replica.following.keys())
            .chain(leading.keys())
            .cloned()
            .collect();
        self.replica.leading = leading;
        self.replica.following = following;
        self.touched.extend(moved);
        let replicated = self
            .replica
            .leading
            .values()
            .any(|l| !l.followers.is_empty());
        self.replica.next_isr_check = match self.replica.next_isr_check {
            Some(at) if replicated => Some(at),
            None if replicated => Some(now + self.isr_check_interval()),
            _ => None,
        };
        self.probes_advance();
        self.replica.invariants();
    }

    /// Replication's invariants against the partitions (the full check): a follower's high
    /// watermark within its log, a leader's within what it has acknowledged itself, and roles
    /// that agree with the image.
    pub(super) fn replica_invariants(&self) {
        self.replica.invariants();
        let durability = self.config.durability;
        let me = NodeId(self.config.broker_id.0);
        let image = self.kraft.image.as_deref();
        for (key, f) in &self.replica.following {
            assert!(f.leader != me, "{key:?}: following itself");
            if let Some(p) = self
                .partition(&key.0, key.1)
                .filter(|p| p.offline.is_none())
            {
                assert!(p.high_watermark <= p.log.log_end_offset(), "{key:?}");
            }
        }
        for (key, led) in &self.replica.leading {
            assert!(
                !led.followers.contains_key(&me),
                "{key:?}: the leader follows itself"
            );
            let leader = image
                .and_then(|i| i.partition(i.topic_id(&key.0)?, key.1))
                .and_then(|r| r.leader);
            assert_eq!(leader, Some(me), "{key:?}: led here as the image says");
            if let Some(p) = self
                .partition(&key.0, key.1)
                .filter(|p| p.offline.is_none())
            {
                let own = p.ack_end(durability).max(p.log.log_start_offset());
                assert!(
                    p.high_watermark <= own,
                    "{key:?}: HW past the leader's own end"
                );
            }
        }
    }

    fn isr_check_interval(&self) -> Duration {
        Duration::from_ms(self.config.replica_lag_time_max_ms / 2)
    }

    /// Time-driven replication work, before the step's ends are looked at: backoffs that ran
    /// out, and the periodic ISR check.
    pub(super) fn replica_on_time(&mut self) {
        let now = self.now;
        self.replica.backoff.retain(|_, until| *until > now);
        for f in self.replica.following.values_mut() {
            if f.retry_at.is_some_and(|at| at <= now) {
                f.retry_at = None;
            }
        }
        if self.replica.next_isr_check.is_some_and(|at| at <= now) {
            self.replica.next_isr_check = Some(now + self.isr_check_interval());
            self.check_isr_all();
        }
        self.probes_on_time();
        assert!(self.replica.next_deadline().is_none_or(|at| at > now));
    }
}
