//! The controller's replication decisions (core/src/cluster/replication.rs) through a
//! one-voter [`QuorumController`], as a broker would meet them: AlterPartition's checks in
//! Kafka's order and its answers, elections (clean, none, unclean, preferred), controlled
//! shutdown, `min.insync.replicas` and `unclean.leader.election.enable` as topic configs,
//! `default.replication.factor`, and the AlterPartition RPC on the wire.

use bytes::Bytes;
use gregor_core::cluster::quorum_controller::Output;
use gregor_core::cluster::records::{Endpoint, UNCLEAN_ELECTION_KEY};
use gregor_core::cluster::replication::{self, min_insync_replicas};
use gregor_core::cluster::wire::{self, client, Call};
use gregor_core::cluster::{
    decode, BrokerEpoch, BrokerId, ControllerError, Durable, MetadataImage, MetadataRecord,
    PartitionRegistration, QuorumController, QuorumControllerConfig, Registration, Reply, Request,
    RequestId, TopicId,
};
use gregor_core::raft::{self, NodeId, Record};
use gregor_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

struct One {
    qc: QuorumController,
    disk: Durable,
    now: Instant,
    next: u64,
    epochs: BTreeMap<i32, BrokerEpoch>,
}

impl One {
    fn new(config: QuorumControllerConfig) -> One {
        let now = Instant(1_000_000_000);
        let qc = QuorumController::restore(
            NodeId(1),
            BTreeSet::from([NodeId(1)]),
            config,
            7,
            now,
            Default::default(),
            None,
            Vec::new(),
        );
        let mut o = One {
            qc,
            disk: Durable::default(),
            now,
            next: 0,
            epochs: BTreeMap::new(),
        };
        o.drain();
        o.advance(10);
        assert!(o.qc.is_active(), "a quorum of one leads");
        o
    }

    fn drain(&mut self) -> Vec<(RequestId, Result<Reply, ControllerError>)> {
        let mut answers = Vec::new();
        while let Some(o) = self.qc.poll_output() {
            match o {
                Output::Raft(r) => self.disk.perform(&r),
                Output::Respond { id, result } => answers.push((id, result)),
            }
        }
        answers
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now + Duration::from_ms(ms);
        self.qc.tick(self.now);
        self.drain();
    }

    fn ask(&mut self, request: Request) -> Result<Reply, ControllerError> {
        self.next += 1;
        let rid = RequestId(self.next);
        self.qc.request(self.now, rid, request);
        let mut answers = self.drain();
        for _ in 0..10 {
            if let Some(i) = answers.iter().position(|a| a.0 == rid) {
                return answers.swap_remove(i).1;
            }
            self.advance(1);
            answers.extend(self.drain());
        }
        panic!("no answer to {rid:?}");
    }

    fn image(&self) -> &MetadataImage {
        self.qc.image()
    }

    /// Register broker `id` (a new incarnation each time) and heartbeat it unfenced.
    fn join(&mut self, id: i32, incarnation: u8) -> BrokerEpoch {
        self.join_with(id, incarnation, false)
    }

    /// [`One::join`], saying whether the broker's log directory is new (KIP-966).
    fn join_with(&mut self, id: i32, incarnation: u8, log_dir_new: bool) -> BrokerEpoch {
        let broker_epoch = self.register(id, incarnation, log_dir_new);
        self.heartbeat(id, broker_epoch);
        broker_epoch
    }

    /// Register broker `id` without unfencing it.
    fn register(&mut self, id: i32, incarnation: u8, log_dir_new: bool) -> BrokerEpoch {
        let r = self.ask(Request::BrokerRegistration(Registration {
            broker_id: BrokerId(id),
            incarnation_id: [incarnation; 16],
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            rack: None,
            log_dir_new,
        }));
        let Ok(Reply::BrokerRegistration { broker_epoch }) = r else {
            panic!("registered: {r:?}")
        };
        self.epochs.insert(id, broker_epoch);
        broker_epoch
    }

    fn heartbeat(&mut self, id: i32, epoch: BrokerEpoch) {
        let offset = self.image().offset();
        let r = self.ask(Request::BrokerHeartbeat {
            broker_id: BrokerId(id),
            broker_epoch: epoch,
            metadata_offset: offset,
            want_shut_down: false,
        });
        assert!(r.is_ok(), "{r:?}");
    }

    /// Keep every broker but `dead` heartbeating for `ms`.
    fn live_for(&mut self, ms: u64, dead: &[i32]) {
        for _ in 0..ms / 1000 {
            self.advance(1000);
            for (id, e) in self.epochs.clone() {
                if !dead.contains(&id) {
                    self.heartbeat(id, e);
                }
            }
        }
    }

    fn create(
        &mut self,
        name: &str,
        partitions: i32,
        rf: i32,
        configs: &[(&str, &str)],
    ) -> TopicId {
        let r = self.ask(Request::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        let Ok(Reply::CreateTopic { topic_id }) = r else {
            panic!("created: {r:?}")
        };
        topic_id
    }

    fn part(&self, t: TopicId, p: i32) -> PartitionRegistration {
        self.image().partition(t, p).expect("exists").clone()
    }

    /// AlterPartition from the current leader with the current epochs.
    fn alter(&mut self, t: TopicId, p: i32, isr: &[i32]) -> Result<Reply, ControllerError> {
        let part = self.part(t, p);
        let leader = part.leader.expect("led");
        self.alter_as(leader.0, t, p, part.leader_epoch, part.partition_epoch, isr)
    }

    fn alter_as(
        &mut self,
        asker: i32,
        t: TopicId,
        p: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
    ) -> Result<Reply, ControllerError> {
        let epochs = self.epochs.clone();
        self.ask(Request::AlterPartition {
            broker_id: BrokerId(asker),
            broker_epoch: epochs[&asker],
            topic_id: t,
            partition: p,
            leader_epoch,
            partition_epoch,
            new_isr: isr.iter().map(|b| (BrokerId(*b), epochs[b])).collect(),
            successor: None,
        })
    }

    /// Every committed record, in order.
    fn records(&self) -> Vec<MetadataRecord> {
        self.disk
            .log
            .iter()
            .filter_map(|e| match &e.record {
                Record::Data(b) => Some(decode(b).expect("decodes")),
                _ => None,
            })
            .collect()
    }
}

fn config() -> QuorumControllerConfig {
    QuorumControllerConfig {
        leader_check_interval: Duration::from_ms(5_000),
        ..QuorumControllerConfig::default()
    }
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

/// A cluster of brokers 1..=n and one topic of one partition over all of them.
fn cluster(n: i32, configs: &[(&str, &str)]) -> (One, TopicId) {
    let mut o = One::new(config());
    for id in 1..=n {
        o.join(id, 1);
    }
    let t = o.create("t", 1, n, configs);
    (o, t)
}

#[test]
fn alter_partition_shrinks_and_expands_raising_the_partition_epoch_only() {
    let (mut o, t) = cluster(3, &[]);
    let before = o.part(t, 0);
    let leader = before.leader.unwrap().0;
    let rest: Vec<i32> = ids(&before.replicas)
        .into_iter()
        .filter(|b| *b != leader)
        .collect();
    let shrunk = o.alter(t, 0, &[leader, rest[0]]).expect("shrink");
    assert_eq!(
        shrunk,
        Reply::AlterPartition {
            leader: Some(BrokerId(leader)),
            leader_epoch: before.leader_epoch,
            partition_epoch: before.partition_epoch + 1,
            isr: vec![BrokerId(leader), BrokerId(rest[0])],
        }
    );
    let after = o.part(t, 0);
    assert_eq!(ids(&after.isr), vec![leader, rest[0]], "the image has it");
    assert_eq!(
        after.leader_epoch, before.leader_epoch,
        "no leader epoch bump"
    );
    // Back to all three; then the leader alone (below min.insync.replicas is allowed, as Kafka).
    o.alter(t, 0, &[leader, rest[0], rest[1]]).expect("expand");
    let alone = o.alter(t, 0, &[leader]).expect("to the leader alone");
    let Reply::AlterPartition {
        partition_epoch, ..
    } = alone
    else {
        unreachable!()
    };
    assert_eq!(partition_epoch, before.partition_epoch + 3);
    // The same ISR again writes nothing and answers the state as it is.
    let end = o.image().offset();
    let same = o.alter(t, 0, &[leader]).expect("unchanged");
    assert_eq!(same, alone);
    o.advance(1);
    assert!(
        o.records()
            .iter()
            .filter(|r| matches!(r, MetadataRecord::PartitionChange(_)))
            .count()
            == 3
    );
    assert!(o.image().offset() >= end);
}

#[test]
fn alter_partition_refuses_in_kafkas_order_with_kafkas_codes() {
    let (mut o, t) = cluster(3, &[]);
    let p = o.part(t, 0);
    let leader = p.leader.unwrap().0;
    let follower = ids(&p.replicas).into_iter().find(|b| *b != leader).unwrap();
    let all = ids(&p.replicas);
    let (le, pe) = (p.leader_epoch, p.partition_epoch);
    let code = |r: Result<Reply, ControllerError>| r.expect_err("refused").code();

    // A stale broker epoch (an older incarnation) comes first, whatever else is wrong.
    let stale = o.ask(Request::AlterPartition {
        broker_id: BrokerId(leader),
        broker_epoch: BrokerEpoch(o.epochs[&leader].0 - 1),
        topic_id: t,
        partition: 0,
        leader_epoch: le - 1,
        partition_epoch: pe,
        new_isr: vec![],
        successor: None,
    });
    assert_eq!(code(stale), 77, "STALE_BROKER_EPOCH");
    assert_eq!(
        code(o.alter_as(leader, TopicId([9; 16]), 0, le, pe, &all)),
        100
    );
    assert_eq!(code(o.alter_as(leader, t, 5, le, pe, &all)), 3);
    // Epochs ahead of the controller's: it is the stale one.
    assert_eq!(code(o.alter_as(leader, t, 0, le + 1, pe, &all)), 41);
    assert_eq!(code(o.alter_as(leader, t, 0, le, pe + 1, &all)), 41);
    // A follower asking, with current epochs: not the leader.
    assert_eq!(code(o.alter_as(follower, t, 0, le, pe, &all)), 6);
    // Move the partition epoch on, then ask on the old one.
    o.alter(t, 0, &[leader, follower]).unwrap();
    assert_eq!(
        code(o.alter_as(leader, t, 0, le, pe, &all)),
        108,
        "INVALID_UPDATE_VERSION"
    );
    let pe = pe + 1;
    // An ISR without the leader, with a repeat, or outside the replicas.
    assert_eq!(code(o.alter_as(leader, t, 0, le, pe, &[follower])), 42);
    assert_eq!(
        code(o.alter_as(leader, t, 0, le, pe, &[leader, leader])),
        42
    );
    o.join(9, 1);
    assert_eq!(code(o.alter_as(leader, t, 0, le, pe, &[leader, 9])), 42);
    // Nothing refused was written.
    assert_eq!(ids(&o.part(t, 0).isr), vec![leader, follower]);
    assert_eq!(o.part(t, 0).partition_epoch, pe);
}

#[test]
fn a_fenced_or_reincarnated_broker_is_ineligible_to_join_the_isr_kip_841_903() {
    let (mut o, t) = cluster(3, &[]);
    let p = o.part(t, 0);
    let leader = p.leader.unwrap().0;
    let others: Vec<i32> = ids(&p.replicas)
        .into_iter()
        .filter(|b| *b != leader)
        .collect();
    let (x, y) = (others[0], others[1]);
    // x's session lapses: fenced, out of the ISR.
    o.live_for(12_000, &[x]);
    assert!(o.image().broker(BrokerId(x)).unwrap().fenced);
    assert!(!o.part(t, 0).isr.contains(&BrokerId(x)));
    let e = o.alter(t, 0, &[leader, y, x]).expect_err("fenced x");
    assert_eq!(e.code(), 107, "INELIGIBLE_REPLICA: {e:?}");
    // x restarts with an empty disk: a new incarnation, a new epoch. The leader's stale view
    // (the old epoch) must not put it back (KIP-903's scenario).
    let old = o.epochs[&x];
    let new = o.join(x, 2);
    assert!(new > old);
    let p = o.part(t, 0);
    let stale = o.ask(Request::AlterPartition {
        broker_id: BrokerId(leader),
        broker_epoch: o.epochs[&leader],
        topic_id: t,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: vec![(BrokerId(leader), o.epochs[&leader]), (BrokerId(x), old)],
        successor: None,
    });
    assert_eq!(stale.expect_err("stale epoch").code(), 107);
    // With its current epoch it may join.
    o.alter(t, 0, &[leader, y, x]).expect("x caught up again");
    assert_eq!(o.part(t, 0).isr.len(), 3);
    // A broker in controlled shutdown may not join either.
    o.alter(t, 0, &[leader, y]).unwrap();
    let recs = {
        let img = o.image().clone();
        let mut c = gregor_core::cluster::Controller::new(Duration::from_ms(9000), 1);
        c.controlled_shutdown(&img, BrokerId(x), o.epochs[&x])
            .unwrap()
    };
    assert!(matches!(
        recs[0],
        MetadataRecord::BrokerRegistrationChange {
            in_controlled_shutdown: Some(true),
            ..
        }
    ));
}

#[test]
fn a_fenced_leader_is_replaced_by_the_first_live_isr_member_and_the_lone_last_member_stays() {
    let (mut o, t) = cluster(3, &[]);
    let p = o.part(t, 0);
    let order = ids(&p.replicas);
    let (a, b, c) = (order[0], order[1], order[2]);
    assert_eq!(
        p.leader,
        Some(BrokerId(a)),
        "the preferred replica leads at first"
    );
    o.live_for(12_000, &[a]);
    let p1 = o.part(t, 0);
    assert_eq!(
        p1.leader,
        Some(BrokerId(b)),
        "the next ISR member in assignment order"
    );
    assert_eq!(p1.leader_epoch, p.leader_epoch + 1);
    assert_eq!(ids(&p1.isr), vec![b, c]);
    // Shrink to b alone, then b dies: offline, with b kept as the last ISR member.
    o.alter(t, 0, &[b]).unwrap();
    o.live_for(12_000, &[a, b]);
    let p2 = o.part(t, 0);
    assert_eq!(
        p2.leader, None,
        "no live ISR member: offline, c is not in sync"
    );
    assert_eq!(ids(&p2.isr), vec![b], "the last member stays");
    assert!(o.image().unclean_elections().is_empty());
    assert!(replication::check(o.image()).is_ok());
    // The periodic check does not elect c either (unclean is off by default).
    o.live_for(6_000, &[a, b]);
    assert_eq!(o.part(t, 0).leader, None);
    // b returns (same incarnation, heartbeats again): it leads again.
    let eb = o.epochs[&b];
    o.heartbeat(b, eb);
    let p3 = o.part(t, 0);
    assert_eq!(p3.leader, Some(BrokerId(b)));
    assert_eq!(p3.leader_epoch, p2.leader_epoch + 1);
}

#[test]
fn unclean_election_happens_only_when_the_topic_allows_it_and_is_recorded() {
    let (mut o, t) = cluster(3, &[("unclean.leader.election.enable", "true")]);
    let p = o.part(t, 0);
    let order = ids(&p.replicas);
    let (a, b, c) = (order[0], order[1], order[2]);
    o.alter(t, 0, &[a]).unwrap();
    // a, the only ISR member, dies: b is live but out of sync; the topic allows unclean.
    o.live_for(12_000, &[a]);
    let p1 = o.part(t, 0);
    assert_eq!(p1.leader, Some(BrokerId(b)), "the first live replica");
    assert_eq!(ids(&p1.isr), vec![b], "alone in the ISR");
    let recorded = &o.image().unclean_elections()[&(t, 0)];
    assert_eq!(recorded, &vec![(BrokerId(b), p1.leader_epoch)]);
    let rec = o
        .records()
        .into_iter()
        .find(|r| matches!(r, MetadataRecord::UncleanElection { .. }))
        .expect("a record");
    assert_eq!(rec.api_key(), UNCLEAN_ELECTION_KEY);
    // It survives a snapshot.
    let snap =
        MetadataImage::load_snapshot(o.image().offset() + 1, &o.image().to_records()).unwrap();
    assert_eq!(snap.unclean_elections(), o.image().unclean_elections());
    let _ = c;
}

#[test]
fn unclean_election_waits_for_the_config_and_the_periodic_check() {
    let (mut o, t) = cluster(2, &[]);
    let p = o.part(t, 0);
    let (a, b) = (p.replicas[0].0, p.replicas[1].0);
    o.alter(t, 0, &[a]).unwrap();
    o.live_for(12_000, &[a]);
    assert_eq!(o.part(t, 0).leader, None, "clean only: offline");
    // The operator allows unclean elections on the topic (a ConfigRecord, as an
    // IncrementalAlterConfigs would write; that request also elects at once, see
    // `a_lone_replica_back_with_an_empty_log_...`); the next periodic check elects b too, as it
    // does on an image a new controller finds the config in.
    let config = MetadataRecord::Config {
        resource_type: gregor_core::cluster::records::CONFIG_RESOURCE_TOPIC,
        resource_name: "t".into(),
        name: "unclean.leader.election.enable".into(),
        value: Some("true".into()),
    };
    let mut img = o.image().clone();
    img.replay(img.offset() + 1, &config).unwrap();
    let rs = replication::balance(&img, true);
    assert!(rs
        .iter()
        .any(|r| matches!(r, MetadataRecord::UncleanElection { leader, .. } if leader.0 == b)));
    let rs_clean = replication::balance(o.image(), true);
    assert!(
        rs_clean.is_empty(),
        "nothing to do without the config: {rs_clean:?}"
    );
}

#[test]
fn the_preferred_replica_takes_leadership_back_once_in_sync_again() {
    let (mut o, t) = cluster(3, &[]);
    let p = o.part(t, 0);
    let order = ids(&p.replicas);
    let (a, b, c) = (order[0], order[1], order[2]);
    o.live_for(12_000, &[a]);
    assert_eq!(o.part(t, 0).leader, Some(BrokerId(b)));
    // a comes back (new incarnation), and b adds it to the ISR once caught up.
    o.join(a, 2);
    assert_eq!(o.part(t, 0).leader, Some(BrokerId(b)), "not yet in sync");
    o.alter(t, 0, &[b, c, a]).unwrap();
    let before = o.part(t, 0);
    o.live_for(6_000, &[]);
    let after = o.part(t, 0);
    assert_eq!(
        after.leader,
        Some(BrokerId(a)),
        "back to the preferred replica"
    );
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(after.isr, before.isr);
    // Off when auto.leader.rebalance.enable is false.
    assert!(replication::balance(o.image(), false).is_empty());
}

#[test]
fn a_broker_in_controlled_shutdown_hands_its_leaderships_over_first() {
    let (o, t) = cluster(3, &[]);
    let p = o.part(t, 0);
    let a = p.leader.unwrap();
    let mut c = gregor_core::cluster::Controller::new(Duration::from_ms(9000), 1);
    let mut img = o.image().clone();
    let recs = c.controlled_shutdown(&img, a, o.epochs[&a.0]).unwrap();
    for r in &recs {
        img.replay(img.offset() + 1, r).unwrap();
    }
    let q = img.partition(t, 0).unwrap();
    assert_ne!(q.leader, Some(a), "leadership moved before it stops");
    assert!(!q.isr.contains(&a));
    assert!(replication::check(&img).is_ok());
    // The lone ISR member shutting down leaves its partition offline, as Kafka's does.
    let (mut o, t) = cluster(2, &[]);
    let p = o.part(t, 0);
    let (a, b) = (
        p.leader.unwrap(),
        p.replicas
            .iter()
            .copied()
            .find(|x| Some(*x) != p.leader)
            .unwrap(),
    );
    o.alter(t, 0, &[a.0]).unwrap();
    let mut img = o.image().clone();
    let recs = c.controlled_shutdown(&img, a, o.epochs[&a.0]).unwrap();
    let mut gone = img.clone();
    for r in &recs {
        gone.replay(gone.offset() + 1, r).unwrap();
    }
    assert_eq!(
        gone.partition(t, 0).unwrap().leader,
        None,
        "no one else to lead"
    );
    assert_eq!(
        gone.partition(t, 0).unwrap().isr,
        vec![a],
        "the last member stays"
    );
    // A leader's AlterPartition that reaches the controller while the leader is marked
    // shutting down (its leaderships not yet moved) and adds a live member elects that one:
    // the change is written and the asker hears NEW_LEADER_ELECTED.
    img.replay(img.offset() + 1, &recs[0]).unwrap();
    let q = img.partition(t, 0).unwrap().clone();
    assert_eq!(q.leader, Some(a));
    let altered = replication::alter_partition(
        &img,
        &replication::AlterPartition {
            broker_id: a,
            broker_epoch: o.epochs[&a.0],
            topic_id: t,
            partition: 0,
            leader_epoch: q.leader_epoch,
            partition_epoch: q.partition_epoch,
            new_isr: vec![(a, o.epochs[&a.0]), (b, o.epochs[&b.0])],
            successor: None,
        },
    );
    assert_eq!(altered.result, Err(ControllerError::NewLeaderElected(a)));
    assert_eq!(altered.records.len(), 1, "the change is written");
}

#[test]
fn min_insync_replicas_and_unclean_configs_are_validated_kept_and_capped_at_the_replication_factor()
{
    let mut o = One::new(config());
    for id in 1..=3 {
        o.join(id, 1);
    }
    let t = o.create("m", 2, 2, &[("min.insync.replicas", "5")]);
    assert_eq!(o.image().topic_config(t, "min.insync.replicas"), Some("5"));
    assert_eq!(
        min_insync_replicas(o.image(), t, 0, 1),
        Some(2),
        "capped at the RF"
    );
    let u = o.create("u", 1, 3, &[]);
    assert_eq!(
        min_insync_replicas(o.image(), u, 0, 2),
        Some(2),
        "the broker default"
    );
    for (k, v) in [
        ("min.insync.replicas", "0"),
        ("min.insync.replicas", "two"),
        ("unclean.leader.election.enable", "yes"),
    ] {
        let r = o.ask(Request::CreateTopic {
            name: "bad".into(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::from([(k.to_string(), v.to_string())]),
        });
        assert_eq!(r.expect_err("invalid").code(), 40, "{k}={v}");
    }
    assert!(o.image().topic_id("bad").is_none());
}

#[test]
fn default_replication_factor_is_used_when_create_topics_says_minus_one() {
    let mut o = One::new(QuorumControllerConfig {
        default_replication_factor: 3,
        ..config()
    });
    for id in 1..=3 {
        o.join(id, 1);
    }
    let t = o.create("d", 2, -1, &[]);
    assert!(o.image().topics()[&t]
        .partitions
        .values()
        .all(|p| p.replicas.len() == 3 && p.isr.len() == 3));
    let mut o = One::new(config());
    o.join(1, 1);
    let t = o.create("d", 1, -1, &[]);
    assert_eq!(o.part(t, 0).replicas.len(), 1, "Kafka's default of 1");
}

#[test]
fn alter_partition_travels_the_wire_both_ways_at_v2_and_v3() {
    let (mut o, t) = cluster(3, &[]);
    let p = o.part(t, 0);
    let leader = p.leader.unwrap();
    let isr: Vec<(BrokerId, BrokerEpoch)> =
        p.isr.iter().take(2).map(|b| (*b, o.epochs[&b.0])).collect();
    let request = Request::AlterPartition {
        broker_id: leader,
        broker_epoch: o.epochs[&leader.0],
        topic_id: t,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: isr.clone(),
        successor: None,
    };
    for version in [2, 3] {
        let frame = client::encode_request_at(5, "b", &request, version).unwrap();
        let decoded = wire::decode_request(frame.slice(4..)).unwrap();
        let Call::Controller(items) = &decoded.call else {
            panic!()
        };
        let Ok(Request::AlterPartition { new_isr, .. }) = &items[0].request else {
            panic!()
        };
        if version == 3 {
            assert_eq!(
                items[0].request.as_ref().unwrap(),
                &request,
                "v3 carries the epochs"
            );
        } else {
            assert!(new_isr.iter().all(|(_, e)| e.0 == -1), "v2 has no epochs");
        }
        let reply = Reply::AlterPartition {
            leader: Some(leader),
            leader_epoch: 4,
            partition_epoch: 9,
            isr: isr.iter().map(|x| x.0).collect(),
        };
        for answer in [
            Ok(reply.clone()),
            Err(ControllerError::InvalidUpdateVersion {
                asked: 1,
                current: 2,
            }
            .into()),
            Err(ControllerError::StaleBrokerEpoch(leader).into()),
        ] {
            let bytes = wire::encode_response(&decoded, std::slice::from_ref(&answer)).unwrap();
            let back = client::decode_response_at(bytes.slice(4..), &request, version).unwrap();
            match (&answer, back) {
                (Ok(r), Ok(b)) => assert_eq!(*r, b),
                (Err(e), Err(b)) => assert_eq!(e.code, b.code),
                (a, b) => panic!("{a:?} came back as {b:?}"),
            }
        }
    }
    // Through the controller: the v3 frame's request is decided like a local one.
    let r = o.ask(request);
    assert!(matches!(r, Ok(Reply::AlterPartition { .. })), "{r:?}");
    // A garbage frame is an error, not a panic.
    assert!(wire::decode_request(Bytes::from_static(&[0, 56, 0, 3, 0, 0, 0, 1, 9])).is_err());
    let _ = raft::Output::Committed { high_watermark: 0 };
}

// ---- topic configs through the controller (KIP-339 over KIP-500) ------------------------

use gregor_core::cluster::topic_configs::ConfigChanges;

fn set(k: &str, v: &str) -> (String, Option<String>) {
    (k.to_string(), Some(v.to_string()))
}

#[test]
fn alter_configs_are_written_as_config_records_and_answered_once_committed() {
    let (mut o, t) = cluster(3, &[("retention.ms", "5000")]);
    let r = o.ask(Request::AlterConfigs {
        name: "t".into(),
        changes: vec![
            set("min.insync.replicas", "2"),
            set("unclean.leader.election.enable", "true"),
            ("retention.ms".into(), None),
        ],
    });
    assert_eq!(r, Ok(Reply::AlterConfigs));
    // The answer left once the records were committed: the committed image has them.
    let image = o.image();
    assert_eq!(image.topic_config(t, "min.insync.replicas"), Some("2"));
    assert_eq!(min_insync_replicas(image, t, 0, 1), Some(2));
    assert!(replication::unclean_allowed(image, t));
    assert_eq!(image.topic_config(t, "retention.ms"), None, "deleted");
    // A change to what is already set writes nothing and still answers.
    let end = o.qc.raft().log().end();
    let r = o.ask(Request::AlterConfigs {
        name: "t".into(),
        changes: vec![set("min.insync.replicas", "2")],
    });
    assert_eq!(r, Ok(Reply::AlterConfigs));
    assert_eq!(o.qc.raft().log().end(), end, "no record for no change");
}

#[test]
fn alter_configs_refusals_carry_kafkas_codes_and_write_nothing() {
    let (mut o, _) = cluster(1, &[]);
    let end = o.qc.raft().log().end();
    let cases: Vec<(&str, ConfigChanges, i16)> = vec![
        ("nope", vec![set("retention.ms", "1")], 3),
        ("t", vec![set("no.such.key", "1")], 40),
        ("t", vec![set("min.insync.replicas", "0")], 40),
        (
            "t",
            vec![set("unclean.leader.election.enable", "maybe")],
            40,
        ),
        (
            "t",
            vec![set("retention.ms", "1"), ("retention.ms".into(), None)],
            42,
        ),
    ];
    for (name, changes, code) in cases {
        let r = o.ask(Request::AlterConfigs {
            name: name.into(),
            changes: changes.clone(),
        });
        assert_eq!(r.map_err(|e| e.code()), Err(code), "{name} {changes:?}");
    }
    assert_eq!(o.qc.raft().log().end(), end, "a refusal writes nothing");
}

#[test]
fn alter_configs_travel_the_wire_as_incremental_alter_configs() {
    let (mut o, t) = cluster(1, &[]);
    let request = Request::AlterConfigs {
        name: "t".into(),
        changes: vec![set("retention.ms", "1000"), ("segment.ms".into(), None)],
    };
    // A broker's forwarded request, as a remote controller's listener decodes it.
    let frame = client::encode_request(5, "broker-2", &request).unwrap();
    let decoded = wire::decode_request(frame.slice(4..)).unwrap();
    let Call::Controller(items) = &decoded.call else {
        panic!()
    };
    assert_eq!(items[0].request.as_ref(), Ok(&request));
    let answer = o.ask(items[0].request.clone().unwrap());
    assert_eq!(o.image().topic_config(t, "retention.ms"), Some("1000"));
    let refused = o.ask(Request::AlterConfigs {
        name: "gone".into(),
        changes: vec![set("retention.ms", "1")],
    });
    for a in [answer, refused] {
        let a = a.map_err(Into::into);
        let bytes = wire::encode_response(&decoded, std::slice::from_ref(&a)).unwrap();
        let back = client::decode_response(bytes.slice(4..), &request).unwrap();
        assert_eq!(back, a, "the error code and message survive");
    }
    // Another resource type, or validate_only, never reaches the controller.
    use gregor_core::kafka_protocol::messages::incremental_alter_configs_request as iac;
    use gregor_core::kafka_protocol::messages::{
        ApiKey, IncrementalAlterConfigsRequest, RequestHeader,
    };
    use gregor_core::kafka_protocol::protocol::{Encodable, StrBytes};
    let body = IncrementalAlterConfigsRequest::default().with_resources(vec![
        iac::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1")),
    ]);
    let mut buf = bytes::BytesMut::new();
    let key = ApiKey::IncrementalAlterConfigs;
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(1)
        .encode(&mut buf, key.request_header_version(1))
        .unwrap();
    body.encode(&mut buf, 1).unwrap();
    let decoded = wire::decode_request(buf.freeze()).unwrap();
    let Call::Controller(items) = &decoded.call else {
        panic!()
    };
    assert_eq!(items[0].request.as_ref().unwrap_err().code, 42);
}

#[test]
fn a_forwarded_replication_factor_of_minus_one_takes_the_controllers_default() {
    let mut o = One::new(QuorumControllerConfig {
        default_replication_factor: 3,
        ..config()
    });
    for id in 1..=3 {
        o.join(id, 1);
    }
    let request = Request::CreateTopic {
        name: "d".into(),
        partitions: 1,
        replication_factor: -1,
        configs: BTreeMap::new(),
    };
    let frame = client::encode_request(1, "broker-1", &request).unwrap();
    let decoded = wire::decode_request(frame.slice(4..)).unwrap();
    let Call::Controller(items) = &decoded.call else {
        panic!()
    };
    let Ok(Reply::CreateTopic { topic_id }) = o.ask(items[0].request.clone().unwrap()) else {
        panic!("created")
    };
    assert_eq!(o.part(topic_id, 0).replicas.len(), 3);
}

/// KIP-966: a replica that leaves the ISR while it is below `min.insync.replicas` (the high
/// watermark frozen) keeps every committed record: it enters the ELR and may lead when no ISR
/// member is live, a clean election. One that leaves while the ISR is at least that large does
/// not (the high watermark moves on without it), and the ELR empties once the ISR is back.
#[test]
fn an_isr_below_min_insync_keeps_its_leavers_as_eligible_leaders_kip_966() {
    let (mut o, t) = cluster(3, &[("min.insync.replicas", "2")]);
    let p = o.part(t, 0);
    let (a, b, c) = (p.replicas[0].0, p.replicas[1].0, p.replicas[2].0);
    assert!(
        p.elr.is_empty() && !p.isr_lost,
        "a new partition has no ELR"
    );
    o.alter(t, 0, &[a, b]).unwrap();
    assert!(
        o.part(t, 0).elr.is_empty(),
        "ISR {{a, b}} still meets min 2: c falls behind"
    );
    o.alter(t, 0, &[a]).unwrap();
    let p1 = o.part(t, 0);
    assert_eq!(ids(&p1.elr), vec![b], "b left below min 2: eligible");
    // a dies: b (ELR, live) leads alone; a, which left below min 2 too, is eligible now.
    o.live_for(12_000, &[a]);
    let p2 = o.part(t, 0);
    assert_eq!(p2.leader, Some(BrokerId(b)), "the ELR member is elected");
    assert_eq!(ids(&p2.isr), vec![b]);
    assert_eq!(ids(&p2.elr), vec![a]);
    assert_eq!(p2.leader_epoch, p1.leader_epoch + 1);
    assert!(o.image().unclean_elections().is_empty(), "a clean election");
    assert!(replication::check(o.image()).is_ok());
    // c was never eligible: with b dead too the partition is offline, not led by c.
    o.live_for(12_000, &[a, b]);
    assert_eq!(
        o.part(t, 0).leader,
        None,
        "c is neither in the ISR nor the ELR"
    );
    // a returns: it is eligible, so it leads; then c catches up and the ISR meets min 2
    // again, which empties the ELR.
    let ea = o.epochs[&a];
    o.heartbeat(a, ea);
    let p3 = o.part(t, 0);
    assert_eq!(p3.leader, Some(BrokerId(a)));
    assert_eq!((ids(&p3.isr), ids(&p3.elr)), (vec![a], vec![b]));
    o.alter(t, 0, &[a, c]).unwrap();
    let p4 = o.part(t, 0);
    assert!(p4.elr.is_empty(), "ISR back at min 2: the ELR empties");
    assert!(
        o.records().iter().any(|r| r.api_key() == 10_002),
        "ElrChange records"
    );
    // A snapshot keeps the ELR: the image it rebuilds is the same.
    let img = o.image();
    let again = MetadataImage::load_snapshot(img.offset(), &img.to_records()).unwrap();
    assert_eq!(again.partition(t, 0), img.partition(t, 0));
}

/// The simulator's seed 8 (3 nodes, replicated), as the controller met it: x restarted and its
/// re-registration took it out of the ISR (KIP-903), leaving y alone; y then came back with an
/// empty data disk and, as the ISR's last member, was elected and lost acks=all records. With
/// KIP-966, x left below `min.insync.replicas` and is eligible; y's registration says its log
/// directory is new, so it leaves the ISR's election (kept only as the last known member) and x
/// leads. While x is away the partition waits offline rather than elect the empty y.
#[test]
fn seed_8_a_broker_back_with_an_empty_disk_is_never_elected_clean() {
    let (mut o, t) = cluster(3, &[("min.insync.replicas", "2")]);
    let p = o.part(t, 0);
    let (y, x, z) = (p.replicas[0].0, p.replicas[1].0, p.replicas[2].0);
    o.alter(t, 0, &[y, x]).unwrap();
    // x crashes and restarts with its log: fenced, it leaves the ISR below min 2.
    o.live_for(12_000, &[x]);
    o.join(x, 2);
    let p1 = o.part(t, 0);
    assert_eq!((ids(&p1.isr), ids(&p1.elr)), (vec![y], vec![x]));
    assert_eq!(p1.leader, Some(BrokerId(y)));
    // x is down again, then y, which restarts with an empty data disk.
    o.live_for(12_000, &[x]);
    assert_eq!(o.part(t, 0).leader, Some(BrokerId(y)));
    o.live_for(12_000, &[x, y]);
    assert_eq!(o.part(t, 0).leader, None, "y's session lapsed, x is down");
    o.join_with(y, 2, true);
    let p2 = o.part(t, 0);
    assert_eq!(p2.leader, None, "y is live but holds nothing: not elected");
    assert!(p2.isr_lost, "y stays only as the last known ISR member");
    assert_eq!((ids(&p2.isr), ids(&p2.elr)), (vec![y], vec![x]));
    o.live_for(12_000, &[x]);
    assert_eq!(
        o.part(t, 0).leader,
        None,
        "the periodic check does not elect y either"
    );
    assert!(replication::check(o.image()).is_ok());
    // x returns: it holds every committed record, so it leads; y and z may catch up from it.
    let ex = o.epochs[&x];
    o.heartbeat(x, ex);
    let p3 = o.part(t, 0);
    assert_eq!(p3.leader, Some(BrokerId(x)));
    assert_eq!(ids(&p3.isr), vec![x]);
    assert!(
        p3.elr.is_empty() && !p3.isr_lost,
        "y's lost copy is eligible nowhere"
    );
    assert!(o.image().unclean_elections().is_empty());
    let _ = z;
}

/// A broker whose log directory is new leaves the ELRs too, and a lost ISR's member may lead
/// only through an unclean election, on record, when the topic allows it.
#[test]
fn a_lost_log_leaves_the_elr_and_only_an_unclean_election_may_pick_it() {
    let (mut o, t) = cluster(2, &[("min.insync.replicas", "2")]);
    let p = o.part(t, 0);
    let (a, b) = (p.replicas[0].0, p.replicas[1].0);
    o.alter(t, 0, &[a]).unwrap();
    assert_eq!(ids(&o.part(t, 0).elr), vec![b]);
    // b comes back with an empty disk: no longer eligible.
    o.live_for(12_000, &[b]);
    assert_eq!(ids(&o.part(t, 0).elr), vec![b], "fenced, b stays eligible");
    o.join_with(b, 2, true);
    assert!(o.part(t, 0).elr.is_empty(), "b's log is gone");
    assert_eq!(o.part(t, 0).leader, Some(BrokerId(a)), "a still leads");
    // a comes back with an empty disk too while b is live: nobody holds the records.
    o.live_for(12_000, &[a]);
    o.join_with(a, 2, true);
    let p1 = o.part(t, 0);
    assert_eq!(p1.leader, None);
    assert!(p1.isr_lost && p1.elr.is_empty());
    // The operator allows unclean elections: the periodic check elects the first live
    // replica, a (the lost ISR's member counts only as unclean), and records it.
    let config = MetadataRecord::Config {
        resource_type: gregor_core::cluster::records::CONFIG_RESOURCE_TOPIC,
        resource_name: "t".into(),
        name: "unclean.leader.election.enable".into(),
        value: Some("true".into()),
    };
    let mut img = o.image().clone();
    img.replay(img.offset() + 1, &config).unwrap();
    let rs = replication::balance(&img, false);
    assert!(
        rs.iter()
            .any(|r| matches!(r, MetadataRecord::UncleanElection { leader, .. } if leader.0 == a)),
        "{rs:?}"
    );
    assert!(
        replication::balance(o.image(), false).is_empty(),
        "nothing without the config"
    );
}

// ---- acks=N across a leader change: gregor's handover --------------------------------------

/// A new leader that found an ISR member ahead of it (a greater (last epoch, log end)) names
/// it as successor in an AlterPartition that keeps the ISR: the controller elects it in a new
/// leader epoch (clean: it is in the ISR), and refuses anything else a handover could be.
#[test]
fn a_leader_hands_over_to_an_isr_member_and_to_nothing_else() {
    let (mut o, t) = cluster(3, &[]);
    let p = o.part(t, 0);
    let leader = p.leader.unwrap().0;
    let others: Vec<i32> = ids(&p.replicas)
        .into_iter()
        .filter(|b| *b != leader)
        .collect();
    let all = ids(&p.isr);
    let hand = |o: &mut One, to: i32, isr: &[i32]| {
        let q = o.part(t, 0);
        let epochs = o.epochs.clone();
        o.ask(Request::AlterPartition {
            broker_id: BrokerId(leader),
            broker_epoch: epochs[&leader],
            topic_id: t,
            partition: 0,
            leader_epoch: q.leader_epoch,
            partition_epoch: q.partition_epoch,
            new_isr: isr.iter().map(|b| (BrokerId(*b), epochs[b])).collect(),
            successor: Some(BrokerId(to)),
        })
    };
    let code = |r: Result<Reply, ControllerError>| r.expect_err("refused").code();
    // To itself, or with the ISR changed on the way: INVALID_REQUEST, nothing written.
    assert_eq!(code(hand(&mut o, leader, &all)), 42);
    assert_eq!(code(hand(&mut o, others[0], &[leader, others[0]])), 42);
    // To a replica outside the ISR: INVALID_REQUEST too (it may lack committed records).
    o.alter(t, 0, &[leader, others[0]]).expect("shrink");
    assert_eq!(code(hand(&mut o, others[1], &[leader, others[0]])), 42);
    assert_eq!(o.part(t, 0).leader, Some(BrokerId(leader)), "unchanged");
    o.alter(t, 0, &all).expect("expand back");
    let before = o.part(t, 0);
    // To a live ISR member: it leads in the next leader epoch, the ISR as it was; the asker
    // hears NEW_LEADER_ELECTED.
    let r = hand(&mut o, others[1], &all);
    assert_eq!(r, Err(ControllerError::NewLeaderElected(BrokerId(leader))));
    let after = o.part(t, 0);
    assert_eq!(after.leader, Some(BrokerId(others[1])));
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(ids(&after.isr), all, "the ISR is kept");
    // The old leader's view is stale now: a second handover is fenced.
    let stale = o.ask(Request::AlterPartition {
        broker_id: BrokerId(leader),
        broker_epoch: o.epochs[&leader],
        topic_id: t,
        partition: 0,
        leader_epoch: before.leader_epoch,
        partition_epoch: before.partition_epoch,
        new_isr: all.iter().map(|b| (BrokerId(*b), o.epochs[b])).collect(),
        successor: Some(BrokerId(others[0])),
    });
    assert_eq!(code(stale), 74, "FENCED_LEADER_EPOCH");
}

// ---- a wiped data directory: offline, said why, and the way out --------------------------

/// The one-node `gregor serve` whose data directory was deleted (its metadata log kept): the
/// broker registers saying its log directory is new, and its partitions, whose only in-sync
/// replica it was, stay offline rather than serve an empty log as if nothing were lost,
/// whether it stopped with a controlled shutdown (leader already none) or was killed (its
/// session lapses first). The reason an operator reads names the broker and the way out;
/// turning `unclean.leader.election.enable` on elects it at once, on record.
#[test]
fn a_lone_replica_back_with_an_empty_log_stays_offline_until_unclean_is_allowed() {
    for controlled in [true, false] {
        let (mut o, t) = cluster(1, &[]);
        assert_eq!(o.part(t, 0).leader, Some(BrokerId(1)));
        if controlled {
            // KIP-631: heartbeats with WantShutDown until the controller fences it.
            for _ in 0..5 {
                let r = o.ask(Request::BrokerHeartbeat {
                    broker_id: BrokerId(1),
                    broker_epoch: o.epochs[&1],
                    metadata_offset: o.image().offset(),
                    want_shut_down: true,
                });
                assert!(r.is_ok(), "{r:?}");
                o.advance(100);
            }
            assert!(o.image().broker(BrokerId(1)).unwrap().fenced);
        } else {
            o.live_for(12_000, &[1]);
        }
        let p0 = o.part(t, 0);
        assert_eq!((p0.leader, ids(&p0.isr)), (None, vec![1]), "{controlled}");
        assert!(!p0.isr_lost && replication::lost_isr_reason(&p0, false).is_none());
        o.join_with(1, 2, true);
        let p1 = o.part(t, 0);
        assert_eq!(
            p1.leader, None,
            "live, but its log is empty: not elected clean"
        );
        assert!(p1.isr_lost && ids(&p1.isr) == vec![1], "{p1:?}");
        let why = replication::lost_isr_reason(&p1, false).expect("a reason");
        assert!(
            why.contains("broker 1") && why.contains("unclean.leader.election.enable=true"),
            "{why}"
        );
        o.live_for(6_000, &[]);
        assert_eq!(
            o.part(t, 0).leader,
            None,
            "the periodic check keeps it offline"
        );
        // The way out: the answer to the config change comes once the election is committed.
        let r = o.ask(Request::AlterConfigs {
            name: "t".into(),
            changes: vec![set("unclean.leader.election.enable", "true")],
        });
        assert_eq!(r, Ok(Reply::AlterConfigs));
        let p2 = o.part(t, 0);
        assert_eq!(p2.leader, Some(BrokerId(1)), "elected with the change");
        assert!(!p2.isr_lost && replication::lost_isr_reason(&p2, true).is_none());
        assert_eq!(
            o.image().unclean_elections()[&(t, 0)],
            vec![(BrokerId(1), p2.leader_epoch)],
            "on record as unclean"
        );
        assert!(replication::check(o.image()).is_ok());
    }
}

/// Turning `unclean.leader.election.enable` on elects only where a replica is live, and
/// leaves led partitions and other topics alone; turning it off, or setting it again,
/// elects nothing.
#[test]
fn enabling_unclean_elections_elects_only_offline_partitions_with_a_live_replica() {
    let (mut o, t) = cluster(2, &[]);
    let u = o.create("u", 1, 2, &[]);
    let p = o.part(t, 0);
    let (a, b) = (p.replicas[0].0, p.replicas[1].0);
    o.alter(t, 0, &[a]).unwrap();
    o.live_for(12_000, &[a]);
    assert_eq!(o.part(t, 0).leader, None, "a, the only ISR member, is gone");
    assert!(o.part(u, 0).leader.is_some(), "u's ISR holds b too");
    let alter = |image: &MetadataImage, v: &str| {
        let change = [set("unclean.leader.election.enable", v)];
        gregor_core::cluster::topic_configs::alter(image, "t", &change).expect("legal")
    };
    assert_eq!(alter(o.image(), "false").len(), 1, "the config only");
    let on = alter(o.image(), "true");
    assert!(
        on.iter()
            .any(|r| matches!(r, MetadataRecord::UncleanElection { leader, .. } if leader.0 == b)),
        "{on:?}"
    );
    assert!(on.iter().all(|r| match r {
        MetadataRecord::PartitionChange(c) => c.topic_id == t,
        MetadataRecord::UncleanElection { topic_id, .. } => *topic_id == t,
        _ => true,
    }));
    // Nobody live: the config is written and the partition waits.
    o.live_for(12_000, &[a, b]);
    assert_eq!(o.part(t, 0).leader, None);
    assert_eq!(
        alter(o.image(), "true").len(),
        1,
        "no live replica: the config only"
    );
}
