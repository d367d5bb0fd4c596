//! acks=N across a leader change: the new leader's *probe* and its *handover* (issue 10, item
//! 4; docs/replication.md, "acks=N across a leader change").
//!
//! acks=N (leader plus N−1 followers; librdkafka and kafka-python send it, Kafka removed it)
//! is answered once N replicas hold a record. Kafka's controller elects the first live ISR
//! member in assignment order, which may be one of the replicas *without* the record; the
//! holders then truncate to it and the acknowledged record is gone with no unclean election.
//! gregor keeps it: the leader of a partition is, in effect, the live ISR member with the
//! greatest (last epoch, log end offset), compared in leader-epoch order (a later epoch wins,
//! then a longer log), as Raft elects.
//!
//! The controller cannot see log ends, so it elects by Kafka's rule and the elected leader
//! finishes the job. In a new leader epoch it first *probes*: it takes no write (produce is
//! answered LEADER_NOT_AVAILABLE, retriable and definite: nothing appended), holds its high
//! watermark, and answers its followers' fetches with no records and no divergence (no
//! follower truncates to it yet), until every live ISR follower has fetched once in the epoch:
//! Fetch v12 carries the follower's `last_fetched_epoch` and `fetch_offset`, which is exactly
//! its position. The wait is bounded by `replica.lag.time.max.ms`: a follower silent that long
//! would be shrunk out of the ISR anyway, so it is treated as Kafka treats it.
//!
//! If a heard follower is ahead, the leader *hands over*: an AlterPartition that keeps the ISR
//! and names that follower as successor (gregor's tagged field;
//! `cluster::replication::hand_over`), and the controller elects it in a new epoch, a clean
//! election. Otherwise the probe ends and the leader leads. Each handover goes to a strictly
//! greater position, so they cannot loop. A leader that stops leading with nothing appended
//! in its epoch forgets that epoch's empty cache entry (KIP-279 records it at election), so
//! its next fetch names the epoch of a batch it really holds, and a position is never
//! inflated by an epoch with no records.

use super::*;
use crate::broker::epochs::diverging_epoch;
use crate::cluster::{BrokerEpoch, Request as ControllerRequest};
use crate::log::epochs::NO_EPOCH;

/// A position in a partition's history: (epoch of the last batch held, log end offset).
/// Greater is further along: a later epoch, or the same epoch with more records.
pub(in crate::broker) type Position = (i32, i64);

/// The first moments of a leadership (see the module docs).
#[derive(Debug, Clone)]
pub(in crate::broker) struct Probe {
    /// Until when the leader waits: to hear from the live ISR, then (asked) for the handover.
    pub(in crate::broker) until: Instant,
    /// Each follower heard in this epoch, at its latest fetch's position.
    pub(in crate::broker) heard: BTreeMap<NodeId, Position>,
    /// The ISR member the leadership was handed to, once asked, and the partition epoch the
    /// ask was built on (refused, it is asked again only on a newer one).
    pub(in crate::broker) successor: Option<(NodeId, i32)>,
}

/// Where `p` stands: the epoch of its last batch (an epoch that started at the log end holds
/// no batch and does not count) and its log end.
pub(in crate::broker) fn own_position(p: &Partition) -> Position {
    let end = p.log.log_end_offset();
    let epoch = (p.log.epochs().entries().iter().rev())
        .find(|(_, start)| *start < end)
        .map_or(NO_EPOCH, |(e, _)| *e);
    assert!(epoch >= NO_EPOCH && end >= 0);
    (epoch, end)
}

impl Broker {
    /// A leadership starting here in a new epoch: its probe, until `lag` from now.
    pub(super) fn new_probe(&self) -> Probe {
        let lag = Duration::from_ms(self.config.replica_lag_time_max_ms);
        Probe {
            until: self.now + lag,
            heard: BTreeMap::new(),
            successor: None,
        }
    }

    /// Whether `key` is led here and still probing (no write, no records to followers).
    pub(in crate::broker) fn probing(&self, key: &(String, i32)) -> bool {
        (self.replica.leading.get(key)).is_some_and(|l| l.probe.is_some())
    }

    /// A follower's fetch of `part` reaches a probing leader: held, with no records and no
    /// divergence, so the follower neither appends nor truncates until the probe ends.
    pub(in crate::broker) fn probe_holds(&self, part: &FetchPart) -> bool {
        part.replica.is_some() && self.probing(&(part.topic.clone(), part.partition))
    }

    /// A write to `name`-`index` while it probes: refused, nothing appended (the client
    /// retries; the leader may yet hand the partition to a follower ahead of it).
    pub(in crate::broker) fn probe_refusal(
        &self,
        name: &str,
        index: i32,
    ) -> Result<(), ClientError> {
        if !self.probing(&(name.to_string(), index)) {
            return Ok(());
        }
        Err(ClientError::new(
            ErrorCode::LEADER_NOT_AVAILABLE,
            format!(
                "{name}-{index}: the new leader is learning its followers' log ends \
                 (acks=N across a leader change); retry"
            ),
        ))
    }

    /// Follower `replica` fetched `key` in the leader's epoch from `position`: note it, and see
    /// whether the probe is done. Returns whether `key` is probing (the fetch counts for
    /// nothing else then).
    pub(in crate::broker) fn probe_heard(
        &mut self,
        key: &(String, i32),
        replica: NodeId,
        current_leader_epoch: i32,
        position: Position,
    ) -> bool {
        let Some(led) = self.replica.leading.get_mut(key) else {
            return false;
        };
        let epoch = led.epoch;
        let Some(probe) = led.probe.as_mut() else {
            return false;
        };
        // A reassignment (KIP-455) changes the replicas within one leader epoch: a broker this
        // leader's image does not name a replica (added by a move the image has not shown
        // yet, or moved away and not yet told) fetches in the same epoch, and counts for
        // nothing; one moved away since it was heard is forgotten (simulator,
        // `--cluster 3 --replication` seed 42 asserted here).
        let heard = current_leader_epoch == epoch && led.followers.contains_key(&replica);
        if heard {
            probe.heard.insert(replica, position);
        }
        probe.heard.retain(|b, _| led.followers.contains_key(b));
        assert!(probe.heard.len() <= led.followers.len());
        if heard {
            self.advance_probe(key);
        }
        true
    }

    /// Time moved: every probe past its deadline decides.
    pub(super) fn probes_on_time(&mut self) {
        let now = self.now;
        let due: Vec<(String, i32)> = (self.replica.leading.iter())
            .filter(|(_, l)| l.probe.as_ref().is_some_and(|p| p.until <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.advance_probe(&key);
            let still_due = (self.replica.leading.get(&key))
                .and_then(|l| l.probe.as_ref())
                .is_some_and(|p| p.until <= now);
            if still_due {
                // Nothing to decide with (the partition went offline, or the image lacks it):
                // the wait is over all the same.
                self.probe_done(&key);
            }
            let p = self
                .replica
                .leading
                .get(&key)
                .and_then(|l| l.probe.as_ref());
            assert!(p.is_none_or(|p| p.until > now), "a due probe decides");
        }
    }

    /// Every probe looks again (the image changed: the ISR, who is live).
    pub(in crate::broker) fn probes_advance(&mut self) {
        let keys: Vec<(String, i32)> = (self.replica.leading.iter())
            .filter(|(_, l)| l.probe.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.advance_probe(&key);
        }
    }

    /// The probe of `key` decides, if it can: wait (a live ISR follower not yet heard, or the
    /// handover's answer not in), hand over to the heard ISR member furthest ahead of this
    /// leader, or lead. Past its deadline it never waits: a handover still not done by then
    /// is given up (the successor's extra records will be cut, as Kafka would cut them).
    fn advance_probe(&mut self, key: &(String, i32)) {
        let now = self.now;
        let me = NodeId(self.config.broker_id.0);
        let (Some(led), Some(image), Some(p)) = (
            self.replica.leading.get(key),
            self.kraft.image.clone(),
            self.partition(&key.0, key.1)
                .filter(|p| p.offline.is_none()),
        ) else {
            return;
        };
        let Some(probe) = led.probe.clone() else {
            return;
        };
        let Some(reg) = image
            .topic_id(&key.0)
            .and_then(|id| image.partition(id, key.1))
        else {
            return;
        };
        let expired = probe.until <= now;
        let own = own_position(p);
        if let Some((to, asked_on)) = probe.successor {
            if !expired && (led.alter.is_some() || asked_on == reg.partition_epoch) {
                // Asked: the image moves the leadership, or the answer comes; refused, a
                // newer image (or the deadline) decides again.
                return;
            }
            if expired {
                let what = format!(
                    "{}-{}: the handover to broker {} did not happen in time; leading, and its \
                     records past {own:?} will be cut",
                    key.0, key.1, to.0
                );
                self.log(LogLevel::Error, what);
                return self.probe_done(key);
            }
        }
        let live: Vec<NodeId> = (reg.isr.iter().copied())
            .filter(|b| *b != me && crate::cluster::replication::eligible(&image, *b))
            .collect();
        if !expired && !live.iter().all(|b| probe.heard.contains_key(b)) {
            return;
        }
        let ahead = (probe.heard.iter())
            .filter(|(b, pos)| live.contains(b) && **pos > own)
            .max_by_key(|(b, pos)| (**pos, std::cmp::Reverse(**b)));
        let Some((to, pos)) = ahead.map(|(b, pos)| (*b, *pos)) else {
            return self.probe_done(key);
        };
        assert!(pos > own && reg.isr.contains(&to) && to != me);
        let what = format!(
            "{}-{}: ISR member {} is ahead of this new leader ({pos:?} > {own:?}): handing \
             the leadership to it so records it holds are kept",
            key.0, key.1, to.0
        );
        self.log(LogLevel::Info, what);
        let epoch_of = |b: NodeId| image.broker(b).map_or(BrokerEpoch(-1), |r| r.broker_epoch);
        let request = ControllerRequest::AlterPartition {
            broker_id: me,
            broker_epoch: epoch_of(me),
            topic_id: image.topic_id(&key.0).expect("looked up above"),
            partition: key.1,
            leader_epoch: reg.leader_epoch,
            partition_epoch: reg.partition_epoch,
            new_isr: reg.isr.iter().map(|b| (*b, epoch_of(*b))).collect(),
            successor: Some(to),
        };
        let (partition_epoch, isr) = (reg.partition_epoch, reg.isr.clone());
        let id = self.ask_alter_partition(request, key.clone());
        let lag = Duration::from_ms(self.config.replica_lag_time_max_ms);
        let led = self.replica.leading.get_mut(key).expect("looked up above");
        led.alter = Some(AlterOut {
            id,
            partition_epoch,
            isr,
            answered: false,
        });
        let probe = led.probe.as_mut().expect("probing");
        probe.successor = Some((to, partition_epoch));
        probe.until = now + lag;
    }

    /// The probe of `key` is over with no one ahead: lead. Followers heard at a position this
    /// log agrees with count as fetched there (so the high watermark can move on at once).
    fn probe_done(&mut self, key: &(String, i32)) {
        let led = self.replica.leading.get_mut(key).expect("led");
        let probe = led.probe.take().expect("probing");
        let epoch = led.epoch;
        let what = format!(
            "{}-{}: leading in epoch {epoch}: heard {} follower(s), none ahead",
            key.0,
            key.1,
            probe.heard.len()
        );
        self.log(LogLevel::Info, what);
        for (b, (last_epoch, offset)) in probe.heard {
            let agrees = self.partition(&key.0, key.1).is_some_and(|p| {
                (p.log.log_start_offset()..=p.log.log_end_offset()).contains(&offset)
                    && diverging_epoch(p, last_epoch, offset) == Ok(None)
            });
            if agrees {
                self.follower_fetched(key, b, offset);
            }
        }
        self.touched.insert(key.clone());
        assert!(!self.probing(key));
    }

    /// `key`, led here in `epoch`, is no longer: if nothing was appended in that epoch, its
    /// cache entry (recorded at election, KIP-279) is forgotten (see the module docs).
    pub(super) fn leadership_ended(&mut self, key: &(String, i32), epoch: i32) {
        let Some(p) = self
            .topics
            .get_mut(&key.0)
            .and_then(|t| t.partitions.get_mut(usize::try_from(key.1).ok()?))
            .filter(|p| p.offline.is_none())
        else {
            return;
        };
        let end = p.log.log_end_offset();
        if p.log.epochs().latest() == Some((epoch, end)) && p.log.forget_epochs_from(end) {
            assert!(p.log.epochs().latest_epoch() < epoch);
            let what = format!(
                "{}-{}: leader epoch {epoch} ended with nothing appended; forgot it",
                key.0, key.1
            );
            self.log(LogLevel::Info, what);
        }
    }
}
