//! The controller's replication decisions, checked on the committed metadata log (issue 10):
//! the checker replays the committed log itself, record by record, and watches every partition.
//!
//! * **one leader per (partition, leader epoch)**: a leader epoch, once given to a broker, is
//!   never given to another (a new leader always gets a new epoch);
//! * **ISR hygiene**: between two of the controller's decisions, no leader is fenced or
//!   unregistered, and no fenced or unregistered broker is in an ISR unless it is the last member
//!   of an offline partition (KIP-841, and KIP-903: a re-registered broker is a new, fenced
//!   incarnation, so a stale broker epoch in an ISR shows as a fenced member). A decision's
//!   records replay one at a time, so this is checked where the next decision starts: before a
//!   record other than a partition change, written in the same quorum epoch as the one before
//!   it (a new leader first repairs whatever its deposed predecessor left half-written);
//! * **clean elections**: a leader change to a broker outside the old ISR and ELR (KIP-966),
//!   or to the member of a lost ISR (its log is gone), is followed by an UncleanElection record
//!   for it (the topic allowed it, and it is on record);
//! * **partition epochs** rise by one at every change (and the leader epoch with every new
//!   leader);
//! * **acknowledged AlterPartitions**: an accepted request named the partition's state as it
//!   was (its leader epoch, its partition epoch), the reply is the state after, and that state is
//!   in the committed log.
//!
//! (leader ∈ ISR ⊆ replicas is the image's own invariant, asserted by every replay.)

use super::Anomaly;
use gregor_core::cluster::records::LeaderChange;
use gregor_core::cluster::replication;
use gregor_core::cluster::{
    decode, BrokerEpoch, BrokerId, MetadataImage, MetadataRecord, PartitionRegistration, TopicId,
};
use gregor_core::raft::{Entry, Record};
use std::collections::BTreeMap;

/// An AlterPartition the controller accepted: what the leader asked and what it was told.
#[derive(Clone, Debug)]
pub struct AckedAlter {
    pub broker: BrokerId,
    pub topic: TopicId,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<(BrokerId, BrokerEpoch)>,
    pub reply_leader: Option<BrokerId>,
    pub reply_leader_epoch: i32,
    pub reply_partition_epoch: i32,
    pub reply_isr: Vec<BrokerId>,
}

#[derive(Default)]
pub struct Replication {
    image: MetadataImage,
    /// The next committed offset to replay.
    next: usize,
    /// (topic, partition, leader epoch) → its leader.
    leaders: BTreeMap<(TopicId, i32, i32), BrokerId>,
    /// (topic, partition, partition epoch) → the state then.
    states: BTreeMap<(TopicId, i32, i32), PartitionRegistration>,
    /// A leader change from outside the ISR, waiting for its UncleanElection record.
    unclean_due: Option<(TopicId, i32, BrokerId)>,
    acked: Vec<AckedAlter>,
    /// Counters for the report: leader changes, ISR changes, unclean elections, checks made.
    pub elections: u64,
    pub isr_changes: u64,
    pub unclean: u64,
    /// Every unclean election on record: (topic, partition), in log order.
    pub unclean_elections: Vec<(TopicId, i32)>,
    pub checks: u64,
    pub anomalies: Vec<Anomaly>,
    broken: bool,
}

impl Replication {
    /// The image replayed so far from the committed log.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Every committed state of `topic`'s partitions, one after each partition record or
    /// partition change, in (partition, partition epoch) order (the reassignment checkers of
    /// the cluster world judge this history).
    pub fn states(&self, topic: TopicId) -> Vec<(i32, &PartitionRegistration)> {
        (self.states.iter())
            .filter(|((t, _, _), _)| *t == topic)
            .map(|((_, p, _), reg)| (*p, reg))
            .collect()
    }

    pub fn new() -> Replication {
        Replication {
            image: MetadataImage::new(),
            ..Replication::default()
        }
    }

    fn anomaly(&mut self, detail: String) {
        self.anomalies.push(Anomaly {
            kind: "replication",
            detail,
        });
    }

    /// Replay what the committed log gained since the last call.
    pub fn follow(&mut self, log: &[Entry]) {
        while self.next < log.len() && !self.broken {
            let offset = self.next as i64;
            let entry = &log[self.next];
            self.next += 1;
            let Record::Data(bytes) = &entry.record else {
                self.image.skip(offset);
                continue;
            };
            let Ok(record) = decode(bytes) else {
                // The image checkers report undecodable entries; nothing to replay here.
                self.broken = true;
                continue;
            };
            let in_decision = matches!(
                record,
                MetadataRecord::PartitionChange(_)
                    | MetadataRecord::UncleanElection { .. }
                    | MetadataRecord::ElrChange { .. }
                    | MetadataRecord::Partition(_)
                    | MetadataRecord::Config { .. }
            );
            let prev = (offset > 0).then(|| &log[offset as usize - 1]);
            let same_leader =
                prev.is_some_and(|p| p.epoch == entry.epoch && matches!(p.record, Record::Data(_)));
            if !in_decision && same_leader {
                self.checks += 1;
                if let Err(e) = replication::check(&self.image) {
                    self.anomaly(format!("before offset {offset}: {e}"));
                }
            }
            if let Some((t, p, b)) = self.unclean_due.take() {
                let recorded = matches!(&record, MetadataRecord::UncleanElection { topic_id, partition, leader, .. }
                    if *topic_id == t && *partition == p && *leader == b);
                if !recorded {
                    self.anomaly(format!(
                        "offset {offset}: broker {} was elected leader of {t:?}-{p} from outside the ISR with no UncleanElection record",
                        b.0
                    ));
                } else {
                    self.unclean += 1;
                    self.unclean_elections.push((t, p));
                }
            }
            let before = match &record {
                MetadataRecord::PartitionChange(c) => {
                    self.image.partition(c.topic_id, c.partition).cloned()
                }
                _ => None,
            };
            if let Err(e) = self.image.replay(offset, &record) {
                self.anomaly(format!("offset {offset}: {record:?} does not replay: {e}"));
                self.broken = true;
                continue;
            }
            match &record {
                MetadataRecord::Partition(p) => {
                    let now = self
                        .image
                        .partition(p.topic_id, p.partition)
                        .expect("replayed")
                        .clone();
                    self.led(p.topic_id, p.partition, &now, offset);
                    self.states
                        .insert((p.topic_id, p.partition, now.partition_epoch), now);
                }
                MetadataRecord::PartitionChange(c) => {
                    let old = before.expect("a change of a partition that exists");
                    let now = self
                        .image
                        .partition(c.topic_id, c.partition)
                        .expect("replayed")
                        .clone();
                    if now.partition_epoch != old.partition_epoch + 1 {
                        self.anomaly(format!(
                            "offset {offset}: partition epoch {} after {}",
                            now.partition_epoch, old.partition_epoch
                        ));
                    }
                    if now.isr != old.isr {
                        self.isr_changes += 1;
                    }
                    if let LeaderChange::To(b) = c.leader {
                        self.elections += 1;
                        // KIP-966: an eligible leader replica is a clean choice; the last
                        // member of a lost ISR is not.
                        let clean = (old.isr.contains(&b) && !old.isr_lost) || old.elr.contains(&b);
                        if !clean {
                            self.unclean_due = Some((c.topic_id, c.partition, b));
                        }
                    }
                    self.led(c.topic_id, c.partition, &now, offset);
                    self.states
                        .insert((c.topic_id, c.partition, now.partition_epoch), now);
                }
                _ => {}
            }
        }
    }

    /// `p` is led by its leader in its leader epoch: the only one ever to lead that epoch.
    fn led(&mut self, topic: TopicId, partition: i32, p: &PartitionRegistration, offset: i64) {
        let Some(l) = p.leader else { return };
        let first = *self
            .leaders
            .entry((topic, partition, p.leader_epoch))
            .or_insert(l);
        if first != l {
            self.anomaly(format!(
                "offset {offset}: {topic:?}-{partition} leader epoch {} led by {} and by {}",
                p.leader_epoch, first.0, l.0
            ));
        }
    }

    /// The controller accepted an AlterPartition (checked at [`Replication::finish`], once the
    /// committed log holds what it wrote).
    pub fn alter_acked(&mut self, a: AckedAlter) {
        self.acked.push(a);
    }

    /// How many accepted AlterPartitions were seen.
    pub fn acked(&self) -> usize {
        self.acked.len()
    }

    /// Check every accepted AlterPartition against the committed log.
    pub fn finish(&mut self) {
        for a in std::mem::take(&mut self.acked) {
            let isr: Vec<BrokerId> = a.new_isr.iter().map(|(b, _)| *b).collect();
            let what = format!("AlterPartition {a:?}");
            if a.reply_leader != Some(a.broker) || a.reply_leader_epoch != a.leader_epoch {
                self.anomaly(format!(
                    "{what}: accepted but answered another leader or epoch"
                ));
            }
            if a.reply_isr != isr {
                self.anomaly(format!("{what}: accepted with another ISR"));
            }
            let bumped = a.reply_partition_epoch == a.partition_epoch + 1;
            let unchanged = a.reply_partition_epoch == a.partition_epoch;
            if !bumped && !unchanged {
                self.anomaly(format!(
                    "{what}: accepted on partition epoch {} but answered {}",
                    a.partition_epoch, a.reply_partition_epoch
                ));
                continue;
            }
            match self
                .states
                .get(&(a.topic, a.partition, a.reply_partition_epoch))
            {
                Some(s) if s.isr == a.reply_isr && s.leader == a.reply_leader => {}
                Some(s) => self.anomaly(format!(
                    "{what}: the committed state at that partition epoch is {s:?}"
                )),
                // A topic deleted before the run's last commit reached it is fine only if it
                // was never committed at all; a state the controller answered must be there.
                None if self.next > 0 => {
                    self.anomaly(format!("{what}: the committed log never had that state"))
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::cluster::records::{PartitionChange, PartitionRecord, RegisterBroker};
    use gregor_core::raft::Epoch;

    fn e(epoch: i32, r: &MetadataRecord) -> Entry {
        Entry {
            epoch: Epoch(epoch),
            record: Record::Data(r.encode().into()),
        }
    }

    fn broker(id: i32, epoch: i64, fenced: bool) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: BrokerId(id),
            incarnation_id: [id as u8; 16],
            broker_epoch: BrokerEpoch(epoch),
            endpoints: vec![],
            rack: None,
            fenced,
            in_controlled_shutdown: false,
        })
    }

    const T: TopicId = TopicId([1; 16]);

    /// Brokers 1 and 2 (unfenced) and a topic of one partition led by 1, ISR [1, 2].
    fn start() -> Vec<Entry> {
        let b = |id| BrokerId(id);
        vec![
            e(1, &broker(1, 0, false)),
            e(1, &broker(2, 1, false)),
            e(1, &broker(3, 2, false)),
            e(
                1,
                &MetadataRecord::Topic {
                    name: "t".into(),
                    topic_id: T,
                },
            ),
            e(
                1,
                &MetadataRecord::Partition(PartitionRecord {
                    topic_id: T,
                    partition: 0,
                    replicas: vec![b(1), b(2), b(3)],
                    isr: vec![b(1), b(2)],
                    leader: Some(b(1)),
                    leader_epoch: 0,
                    partition_epoch: 0,
                }),
            ),
        ]
    }

    fn change(isr: Option<Vec<i32>>, leader: LeaderChange) -> MetadataRecord {
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id: T,
            partition: 0,
            isr: isr.map(|v| v.into_iter().map(BrokerId).collect()),
            leader,
            replicas: None,
        })
    }

    fn run(log: &[Entry]) -> Replication {
        let mut c = Replication::new();
        c.follow(log);
        c
    }

    #[test]
    fn a_fenced_broker_left_in_an_isr_is_caught_at_the_next_decision() {
        let fence = MetadataRecord::BrokerRegistrationChange {
            broker_id: BrokerId(2),
            broker_epoch: BrokerEpoch(1),
            fenced: Some(true),
            in_controlled_shutdown: None,
        };
        let mut good = start();
        good.push(e(1, &fence));
        good.push(e(1, &change(Some(vec![1]), LeaderChange::Unchanged)));
        good.push(e(1, &MetadataRecord::NoOp));
        let c = run(&good);
        assert!(c.anomalies.is_empty(), "{:?}", c.anomalies);
        assert!(c.checks >= 2);
        let mut bad = start();
        bad.push(e(1, &fence));
        bad.push(e(1, &MetadataRecord::NoOp));
        let c = run(&bad);
        assert_eq!(c.anomalies.len(), 1, "{:?}", c.anomalies);
        assert!(c.anomalies[0].detail.contains("broker 2"));
        // A new quorum epoch (a deposed leader's cut batch) is repaired before it is checked.
        let mut cut = start();
        cut.push(e(1, &fence));
        cut.push(Entry {
            epoch: Epoch(2),
            record: Record::LeaderChange {
                leader: gregor_core::raft::NodeId(1),
            },
        });
        cut.push(e(2, &change(Some(vec![1]), LeaderChange::Unchanged)));
        cut.push(e(2, &MetadataRecord::NoOp));
        assert!(run(&cut).anomalies.is_empty());
    }

    #[test]
    fn an_election_from_outside_the_isr_needs_its_unclean_record() {
        let mut bad = start();
        bad.push(e(1, &change(Some(vec![3]), LeaderChange::To(BrokerId(3)))));
        bad.push(e(1, &MetadataRecord::NoOp));
        let c = run(&bad);
        assert_eq!(c.anomalies.len(), 1, "{:?}", c.anomalies);
        assert!(c.anomalies[0].detail.contains("outside the ISR"));
        let mut good = start();
        good.push(e(1, &change(Some(vec![3]), LeaderChange::To(BrokerId(3)))));
        good.push(e(
            1,
            &MetadataRecord::UncleanElection {
                topic_id: T,
                partition: 0,
                leader: BrokerId(3),
                leader_epoch: 1,
            },
        ));
        let c = run(&good);
        assert!(c.anomalies.is_empty(), "{:?}", c.anomalies);
        assert_eq!(c.unclean, 1);
        // A clean one needs none.
        let mut clean = start();
        clean.push(e(1, &change(None, LeaderChange::To(BrokerId(2)))));
        clean.push(e(1, &MetadataRecord::NoOp));
        assert!(run(&clean).anomalies.is_empty());
    }

    #[test]
    fn an_accepted_alter_on_a_stale_partition_epoch_is_caught() {
        let mut log = start();
        log.push(e(1, &change(Some(vec![1]), LeaderChange::Unchanged)));
        let mut c = run(&log);
        let ok = AckedAlter {
            broker: BrokerId(1),
            topic: T,
            partition: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: vec![(BrokerId(1), BrokerEpoch(0))],
            reply_leader: Some(BrokerId(1)),
            reply_leader_epoch: 0,
            reply_partition_epoch: 1,
            reply_isr: vec![BrokerId(1)],
        };
        c.alter_acked(ok.clone());
        c.finish();
        assert!(c.anomalies.is_empty(), "{:?}", c.anomalies);
        // Accepted though it named partition epoch 0 when the state was already at 1 (a second
        // change built on the same state), answered with an epoch the log never had.
        let mut c = run(&log);
        c.alter_acked(AckedAlter {
            partition_epoch: 1,
            reply_partition_epoch: 2,
            ..ok.clone()
        });
        c.finish();
        assert_eq!(c.anomalies.len(), 1, "{:?}", c.anomalies);
        // Answered with an ISR the committed log does not have at that epoch.
        let mut c = run(&log);
        c.alter_acked(AckedAlter {
            new_isr: vec![(BrokerId(1), BrokerEpoch(0)), (BrokerId(3), BrokerEpoch(2))],
            reply_isr: vec![BrokerId(1), BrokerId(3)],
            ..ok
        });
        c.finish();
        assert_eq!(c.anomalies.len(), 1, "{:?}", c.anomalies);
    }

    #[test]
    fn two_leaders_in_one_leader_epoch_are_caught() {
        // A replay with a leader change that did not bump the leader epoch cannot be built
        // through the image (it asserts), so plant it in the checker's map directly.
        let mut c = run(&start());
        let p = c.image.partition(T, 0).unwrap().clone();
        let mut other = p.clone();
        other.leader = Some(BrokerId(2));
        c.led(T, 0, &p, 9);
        assert!(c.anomalies.is_empty());
        c.led(T, 0, &other, 10);
        assert_eq!(c.anomalies.len(), 1, "{:?}", c.anomalies);
        assert!(c.anomalies[0].detail.contains("leader epoch 0"));
    }
}
