//! The controller's decisions (core/src/cluster/controller.rs), carried out as Kafka does: each
//! decision's records are proposed to the Raft quorum (here a quorum of one, which commits at
//! once), and the image is what replaying the committed log gives. The tests check what a
//! broker or client would see in that image.

use bytes::Bytes;
use gregor_core::cluster::records::Endpoint;
use gregor_core::cluster::{
    decode, BrokerEpoch, BrokerId, Controller, ControllerError, MetadataImage, MetadataRecord,
    Registration,
};
use gregor_core::prng::Prng;
use gregor_core::raft::{NodeId, Output, QuorumState, RaftConfig, RaftNode, Record};
use gregor_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

const SESSION: Duration = Duration::from_ms(9000);

struct Harness {
    raft: RaftNode,
    controller: Controller,
    image: MetadataImage,
    now: Instant,
    /// The offset below which every committed entry is replayed.
    applied: i64,
}

impl Harness {
    fn new(seed: u64) -> Harness {
        let now = Instant(1_000_000_000);
        let raft = RaftNode::restore(
            NodeId(0),
            BTreeSet::from([NodeId(0)]),
            RaftConfig::default(),
            seed,
            now,
            QuorumState::default(),
            None,
            Vec::new(),
        );
        assert!(raft.is_leader(), "a quorum of one leads at once");
        let mut h = Harness {
            raft,
            controller: Controller::new(SESSION, seed),
            image: MetadataImage::new(),
            now,
            applied: 0,
        };
        h.drain();
        h
    }

    /// Propose `records` in order, then replay whatever committed.
    fn write(&mut self, records: Vec<MetadataRecord>) {
        for r in records {
            self.raft
                .propose(self.now, Bytes::from(r.encode()))
                .expect("the only voter leads");
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.raft.poll_output() {
            let Output::Committed { high_watermark } = out else {
                continue;
            };
            while self.applied < high_watermark {
                let entry = self.raft.log().get(self.applied).expect("committed");
                if let Record::Data(b) = &entry.record {
                    let r = decode(b).expect("the controller's frames decode");
                    self.image
                        .replay(self.applied, &r)
                        .unwrap_or_else(|e| panic!("{r:?}: {e}"));
                }
                self.applied += 1;
            }
        }
    }

    fn register(&mut self, id: i32, incarnation: u8) -> Result<BrokerEpoch, ControllerError> {
        let req = Registration {
            broker_id: BrokerId(id),
            incarnation_id: [incarnation; 16],
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092 + id as u16,
            }],
            rack: None,
            log_dir_new: false,
        };
        let next = self.raft.log().end();
        let (epoch, records) = self
            .controller
            .register(self.now, &self.image, next, &req)?;
        self.write(records);
        Ok(epoch)
    }

    /// A heartbeat from a broker that has replayed everything committed.
    fn heartbeat(&mut self, id: i32) -> Result<bool, ControllerError> {
        let epoch = self.image.broker(BrokerId(id)).unwrap().broker_epoch;
        let offset = self.image.offset();
        let (fenced, records) =
            self.controller
                .heartbeat(self.now, &self.image, BrokerId(id), epoch, offset)?;
        self.write(records);
        Ok(fenced)
    }

    fn tick(&mut self) {
        let records = self.controller.tick(self.now, &self.image);
        self.write(records);
    }

    fn create(&mut self, name: &str, partitions: i32, rf: i32) -> Result<(), ControllerError> {
        let records = self
            .controller
            .create_topic(&self.image, name, partitions, rf)?;
        self.write(records);
        Ok(())
    }

    /// What the cluster promises clients, checked on the replayed image.
    fn check(&self) {
        let fenced = |b: &BrokerId| self.image.broker(*b).is_none_or(|r| r.fenced);
        for (id, b) in self.image.brokers() {
            // The broker epoch is the offset of the broker's RegisterBrokerRecord.
            let entry = self.raft.log().get(b.broker_epoch.0).expect("in the log");
            let Record::Data(bytes) = &entry.record else {
                panic!("a control record at a broker epoch")
            };
            assert!(
                matches!(decode(bytes), Ok(MetadataRecord::RegisterBroker(r)) if r.broker_id == *id),
                "broker {id:?}'s epoch {:?} is its registration's offset",
                b.broker_epoch
            );
        }
        for t in self.image.topics().values() {
            for (p, r) in &t.partitions {
                let where_ = format!("{}-{p}", t.name);
                assert!(
                    r.leader.is_none_or(|l| !fenced(&l)),
                    "{where_}: a fenced leader"
                );
                if r.leader.is_none() {
                    assert!(
                        r.isr.iter().all(fenced),
                        "{where_}: offline with an unfenced ISR member {:?}",
                        r.isr
                    );
                }
                if r.isr.len() > 1 {
                    assert!(
                        !r.isr.iter().any(fenced),
                        "{where_}: fenced in ISR {:?}",
                        r.isr
                    );
                }
            }
        }
    }

    fn leaders(&self) -> BTreeMap<BrokerId, usize> {
        let mut m = BTreeMap::new();
        for t in self.image.topics().values() {
            for r in t.partitions.values() {
                if let Some(l) = r.leader {
                    *m.entry(l).or_default() += 1;
                }
            }
        }
        m
    }
}

#[test]
fn a_broker_registers_fenced_and_is_unfenced_once_it_has_caught_up() {
    let mut h = Harness::new(1);
    let epoch = h.register(1, 1).unwrap();
    assert_eq!(h.image.broker(BrokerId(1)).unwrap().broker_epoch, epoch);
    assert!(h.image.broker(BrokerId(1)).unwrap().fenced);
    // A heartbeat from a broker that has not replayed its own registration keeps it fenced.
    let (fenced, records) = h
        .controller
        .heartbeat(h.now, &h.image, BrokerId(1), epoch, epoch.0 - 1)
        .unwrap();
    assert!(fenced && records.is_empty());
    assert_eq!(h.heartbeat(1), Ok(false));
    assert!(!h.image.broker(BrokerId(1)).unwrap().fenced);
    // A retried registration of the same incarnation changes nothing.
    let before = h.image.clone();
    assert_eq!(h.register(1, 1), Ok(epoch));
    assert_eq!(h.image, before);
    h.check();
}

#[test]
fn another_incarnation_waits_for_the_old_session_to_lapse() {
    let mut h = Harness::new(2);
    let old = h.register(1, 1).unwrap();
    h.heartbeat(1).unwrap();
    let refused = h.register(1, 2).unwrap_err();
    assert_eq!(refused.code(), 101, "DUPLICATE_BROKER_REGISTRATION");
    h.now = h.now + SESSION;
    let new = h.register(1, 2).unwrap();
    assert!(new > old, "a new incarnation, a larger epoch");
    let stale = h
        .controller
        .heartbeat(h.now, &h.image, BrokerId(1), old, h.image.offset())
        .unwrap_err();
    assert_eq!(stale.code(), 77, "STALE_BROKER_EPOCH");
    let unknown = h
        .controller
        .heartbeat(h.now, &h.image, BrokerId(9), old, 0)
        .unwrap_err();
    assert_eq!(unknown.code(), 102, "BROKER_ID_NOT_REGISTERED");
    h.check();
}

/// A fenced registration holds no session (Kafka's `hasValidSession` is false for a fenced
/// broker): its next incarnation registers at once, even under a controller that took over
/// since and started every registration's session afresh (cluster simulator seeds 962 and
/// 1112, where a node back from a controlled shutdown waited out the new controller's session).
#[test]
fn a_fenced_registration_lets_the_next_incarnation_in_at_once_after_a_failover() {
    let mut h = Harness::new(4);
    let old = h.register(1, 1).unwrap();
    assert!(!h.heartbeat(1).unwrap(), "caught up: unfenced");
    h.now = h.now + SESSION;
    h.tick();
    assert!(
        h.image.broker(BrokerId(1)).unwrap().fenced,
        "its session lapsed"
    );
    // A new active controller: sessions are not in the log, every registration gets one.
    h.controller = Controller::new(SESSION, 5);
    h.controller.start_sessions(h.now, &h.image);
    let new = h
        .register(1, 2)
        .expect("a fenced registration is no duplicate");
    assert!(new > old);
    h.check();
}

#[test]
fn partitions_spread_leaders_and_replicas_evenly() {
    for seed in 0..50 {
        let mut h = Harness::new(seed);
        for b in 1..=3 {
            h.register(b, 1).unwrap();
            h.heartbeat(b).unwrap();
        }
        h.create("six", 6, 3).unwrap();
        let leaders = h.leaders();
        assert_eq!(
            leaders.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2],
            "seed {seed}: 6 partitions on 3 brokers, 2 leaders each"
        );
        h.create("pairs", 3, 2).unwrap();
        let t = h.image.topic_id("pairs").unwrap();
        let mut copies = BTreeMap::<BrokerId, usize>::new();
        for r in h.image.topics()[&t].partitions.values() {
            assert_eq!(r.replicas.len(), 2);
            assert_eq!(
                r.isr, r.replicas,
                "a new partition's ISR is all its replicas"
            );
            assert_eq!(r.leader, Some(r.replicas[0]), "the preferred leader leads");
            for b in &r.replicas {
                *copies.entry(*b).or_default() += 1;
            }
        }
        assert!(copies.values().all(|c| *c == 2), "seed {seed}: {copies:?}");
        let e = h.create("too-many", 1, 4).unwrap_err();
        assert_eq!(e.code(), 38, "INVALID_REPLICATION_FACTOR");
        assert_eq!(h.create("six", 1, 1).unwrap_err().code(), 36);
        assert_eq!(h.create("none", 0, 1).unwrap_err().code(), 37);
        h.check();
    }
}

#[test]
fn a_fenced_leader_is_replaced_from_the_isr_and_a_lone_replica_goes_offline_until_it_returns() {
    let mut h = Harness::new(3);
    for b in 1..=3 {
        h.register(b, 1).unwrap();
        h.heartbeat(b).unwrap();
    }
    h.create("replicated", 3, 3).unwrap();
    h.create("single", 3, 1).unwrap();
    let before = h.image.clone();
    // Broker 1 goes quiet; the others heartbeat through the session timeout.
    for _ in 0..10 {
        h.now = h.now + Duration::from_ms(1000);
        h.heartbeat(2).unwrap();
        h.heartbeat(3).unwrap();
        h.tick();
    }
    assert!(h.image.broker(BrokerId(1)).unwrap().fenced);
    h.check();
    let (rep, single) = (
        h.image.topic_id("replicated").unwrap(),
        h.image.topic_id("single").unwrap(),
    );
    for p in 0..3 {
        let (old, new) = (
            before.partition(rep, p).unwrap(),
            h.image.partition(rep, p).unwrap(),
        );
        assert!(!new.isr.contains(&BrokerId(1)), "broker 1 left the ISR");
        if old.leader == Some(BrokerId(1)) {
            let expected = old.replicas.iter().find(|b| **b != BrokerId(1)).copied();
            assert_eq!(new.leader, expected, "the next replica in assignment order");
            assert_eq!(new.leader_epoch, old.leader_epoch + 1);
        } else {
            assert_eq!(new.leader, old.leader);
            assert_eq!(
                new.leader_epoch, old.leader_epoch,
                "an ISR change keeps the epoch"
            );
        }
        assert!(new.partition_epoch > old.partition_epoch);
    }
    let on_1: Vec<i32> = (0..3)
        .filter(|p| before.partition(single, *p).unwrap().leader == Some(BrokerId(1)))
        .collect();
    assert_eq!(
        on_1.len(),
        1,
        "one single-replica partition was on broker 1"
    );
    let offline = h.image.partition(single, on_1[0]).unwrap().clone();
    assert_eq!((offline.leader, &offline.isr), (None, &vec![BrokerId(1)]));
    // Broker 1 returns (the same incarnation), catches up, and leads its partition again.
    assert_eq!(h.heartbeat(1), Ok(false));
    let back = h.image.partition(single, on_1[0]).unwrap();
    assert_eq!(back.leader, Some(BrokerId(1)));
    assert_eq!(back.leader_epoch, offline.leader_epoch + 1);
    h.check();
}

/// Random cluster lives: brokers join, restart as new incarnations, go quiet and come back,
/// topics come and go; after every decision the replayed image keeps the controller's promises
/// (`Harness::check`). Planting a bug proves the check can fail: with `leave_partitions`
/// leaving a fenced broker in multi-member ISRs, it fails "fenced in ISR"; with an unfenced
/// broker not elected for the offline partitions whose ISR holds it, it fails "offline with an
/// unfenced ISR member" (both within the first seeds).
#[test]
fn random_cluster_lives_keep_the_controllers_promises() {
    for seed in 0..200 {
        let mut h = Harness::new(seed);
        let mut prng = Prng::new(seed);
        let mut alive: BTreeSet<i32> = BTreeSet::new();
        let mut incarnation: BTreeMap<i32, u8> = BTreeMap::new();
        let mut topics = 0;
        for _ in 0..300 {
            let b = 1 + prng.below(5) as i32;
            match prng.below(10) {
                0 => {
                    let inc = incarnation.entry(b).or_insert(0);
                    *inc += 1;
                    let inc = *inc;
                    if h.register(b, inc).is_ok() {
                        alive.insert(b);
                    }
                }
                1 => {
                    alive.remove(&b);
                }
                2 => {
                    topics += 1;
                    let rf = 1 + prng.below(3) as i32;
                    let _ = h.create(&format!("t{topics}"), 1 + prng.below(6) as i32, rf);
                }
                3 => {
                    let name = format!("t{}", 1 + prng.below(topics.max(1) as u64));
                    if let Ok(records) = h.controller.delete_topic(&h.image, &name) {
                        h.write(records);
                    }
                }
                _ => {
                    h.now = h.now + Duration::from_ms(prng.below(3000));
                    for b in alive.clone() {
                        if h.image.broker(BrokerId(b)).is_some() {
                            h.heartbeat(b).unwrap();
                        }
                    }
                    h.tick();
                }
            }
            h.check();
        }
        assert!(
            h.image.offset() > 20,
            "seed {seed}: the cluster did something"
        );
    }
}

#[test]
fn create_partitions_adds_partitions_with_leaders_spread_and_never_shrinks() {
    for seed in 0..30 {
        let mut h = Harness::new(seed);
        for b in 1..=3 {
            h.register(b, 1).unwrap();
            h.heartbeat(b).unwrap();
        }
        h.create("grow", 3, 2).unwrap();
        let t = h.image.topic_id("grow").unwrap();
        let before = h.image.topics()[&t].partitions.clone();
        let records = h.controller.create_partitions(&h.image, "grow", 9).unwrap();
        h.write(records);
        let parts = &h.image.topics()[&t].partitions;
        assert_eq!(parts.len(), 9, "seed {seed}");
        // The old partitions are untouched; the six new ones lead 2 per broker, 2 replicas each.
        assert!(before.iter().all(|(p, r)| parts[p] == *r));
        let mut leads = BTreeMap::<BrokerId, usize>::new();
        for (p, r) in parts.range(3..) {
            assert_eq!(r.replicas.len(), 2, "{p}: the topic's replication factor");
            assert_eq!(r.leader, Some(r.replicas[0]));
            assert_eq!((r.leader_epoch, r.partition_epoch), (0, 0));
            *leads.entry(r.leader.unwrap()).or_default() += 1;
        }
        assert_eq!(leads.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        let err = |h: &mut Harness, name: &str, n| {
            h.controller
                .create_partitions(&h.image, name, n)
                .unwrap_err()
        };
        assert_eq!(
            err(&mut h, "grow", 9).code(),
            37,
            "INVALID_PARTITIONS: same count"
        );
        assert_eq!(
            err(&mut h, "grow", 2).code(),
            37,
            "INVALID_PARTITIONS: fewer"
        );
        assert_eq!(
            err(&mut h, "nope", 4),
            ControllerError::UnknownTopic("nope".into())
        );
        assert_eq!(err(&mut h, "nope", 4).code(), 3);
        h.check();
    }
}

#[test]
fn topic_configs_are_replayed_snapshotted_deleted_with_the_topic_and_checked_by_name() {
    let mut h = Harness::new(7);
    h.register(1, 1).unwrap();
    h.heartbeat(1).unwrap();
    let configs = BTreeMap::from([
        ("retention.ms".to_string(), "60000".to_string()),
        ("segment.bytes".to_string(), "1048576".to_string()),
    ]);
    let records = h
        .controller
        .create_topic_with_configs(&h.image, "cfg", 2, 1, &configs)
        .unwrap();
    assert_eq!(
        records.len(),
        1 + 2 + 2,
        "topic, partitions, configs in one batch"
    );
    assert!(records[3..].iter().all(|r| matches!(
        r,
        MetadataRecord::Config {
            resource_type: 2,
            ..
        }
    ) && r.api_key() == 4));
    h.write(records);
    let t = h.image.topic_id("cfg").unwrap();
    assert_eq!(h.image.topics()[&t].configs, configs, "replayed");
    // A snapshot of the image holds them; loading it gives the same image.
    let snap = h.image.to_records();
    let loaded = MetadataImage::load_snapshot(h.image.offset() + 1, &snap).unwrap();
    assert_eq!(loaded, h.image, "snapshotted");
    // A ConfigRecord with no value takes the key back to the default.
    h.write(vec![MetadataRecord::Config {
        resource_type: 2,
        resource_name: "cfg".into(),
        name: "segment.bytes".into(),
        value: None,
    }]);
    assert_eq!(
        h.image.topics()[&t].configs.keys().collect::<Vec<_>>(),
        vec!["retention.ms"]
    );
    // An unknown key is refused and nothing is written.
    let bad = BTreeMap::from([("retention.msx".to_string(), "1".to_string())]);
    let e = h
        .controller
        .create_topic_with_configs(&h.image, "other", 1, 1, &bad)
        .unwrap_err();
    assert_eq!(e.code(), 40, "INVALID_CONFIG");
    assert!(e.message().contains("retention.msx"));
    assert!(h.image.topic_id("other").is_none());
    // Deleting the topic drops its configs; a re-created topic of the name starts without.
    let records = h.controller.delete_topic(&h.image, "cfg").unwrap();
    h.write(records);
    h.create("cfg", 1, 1).unwrap();
    let t2 = h.image.topic_id("cfg").unwrap();
    assert_ne!(t, t2);
    assert!(h.image.topics()[&t2].configs.is_empty());
    // Replay refuses a config for a missing topic or another resource type, image unchanged.
    let before = h.image.clone();
    let at = h.image.offset() + 1;
    let orphan = MetadataRecord::Config {
        resource_type: 2,
        resource_name: "gone".into(),
        name: "retention.ms".into(),
        value: Some("1".into()),
    };
    assert!(h.image.replay(at, &orphan).is_err());
    let broker_cfg = MetadataRecord::Config {
        resource_type: 4,
        resource_name: "1".into(),
        name: "x".into(),
        value: None,
    };
    assert!(h.image.replay(at, &broker_cfg).is_err());
    assert_eq!(h.image, before);
    h.check();
}

/// Controlled shutdown (KIP-631, a BrokerHeartbeat with `WantShutDown`): the first such
/// heartbeat moves every leadership of the broker to another in-sync replica and takes it out
/// of every ISR it shares, and says "not yet"; the next fences it and says "stop now". Its next
/// incarnation may register at once (its session ended with the shutdown).
#[test]
fn a_controlled_shutdown_moves_leaders_first_then_fences_and_lets_the_next_incarnation_in() {
    let mut h = Harness::new(7);
    for b in 1..=3 {
        h.register(b, 1).unwrap();
        h.heartbeat(b).unwrap();
    }
    h.create("orders", 6, 3).unwrap();
    h.create("solo", 3, 1).unwrap();
    let led_by_1 = h.leaders().get(&BrokerId(1)).copied().unwrap_or(0);
    assert!(led_by_1 >= 2, "broker 1 leads some of orders: {led_by_1}");
    let epoch = h.image.broker(BrokerId(1)).unwrap().broker_epoch;

    let (fenced, stop, records) = h
        .controller
        .shutdown_heartbeat(h.now, &h.image, BrokerId(1), epoch)
        .unwrap();
    assert!(!fenced && !stop, "leaders move before the broker may stop");
    h.write(records);
    let reg = h.image.broker(BrokerId(1)).unwrap();
    assert!(reg.in_controlled_shutdown && !reg.fenced);
    let orders = h.image.topic_id("orders").unwrap();
    for (p, r) in &h.image.topics()[&orders].partitions {
        assert_ne!(r.leader, Some(BrokerId(1)), "orders-{p} still led by 1");
        assert!(r.leader.is_some(), "orders-{p} has a new leader");
        assert!(!r.isr.contains(&BrokerId(1)), "orders-{p}: 1 left the ISR");
    }
    // A partition only it holds has no one else to go to: offline until it returns (its ISR
    // keeps it, so it is elected again then, with nothing lost).
    let solo = h.image.topic_id("solo").unwrap();
    let only_1: Vec<i32> = h.image.topics()[&solo]
        .partitions
        .iter()
        .filter(|(_, r)| r.replicas == vec![BrokerId(1)])
        .map(|(p, _)| *p)
        .collect();
    for p in &only_1 {
        let r = &h.image.topics()[&solo].partitions[p];
        assert_eq!((r.leader, r.isr.clone()), (None, vec![BrokerId(1)]));
    }
    // It may not rejoin an ISR while shutting down; its plain heartbeats keep it unfenced.
    assert_eq!(h.heartbeat(1), Ok(false));

    let (fenced, stop, records) = h
        .controller
        .shutdown_heartbeat(h.now, &h.image, BrokerId(1), epoch)
        .unwrap();
    assert!(fenced && stop, "now it may stop");
    h.write(records);
    assert!(h.image.broker(BrokerId(1)).unwrap().fenced);
    assert_eq!(h.leaders().get(&BrokerId(1)), None, "it leads nothing");
    h.check();
    // A fenced broker asking again may stop at once; a stale epoch is refused.
    let again = h
        .controller
        .shutdown_heartbeat(h.now, &h.image, BrokerId(1), epoch)
        .unwrap();
    assert_eq!(again, (true, true, Vec::new()));
    assert_eq!(
        h.controller
            .shutdown_heartbeat(h.now, &h.image, BrokerId(1), BrokerEpoch(epoch.0 - 1)),
        Err(ControllerError::StaleBrokerEpoch(BrokerId(1)))
    );
    // Restarted at once: no DUPLICATE_BROKER_REGISTRATION wait for the old session.
    h.now = h.now + Duration::from_ms(100);
    let new_epoch = h.register(1, 2).unwrap();
    assert!(new_epoch.0 > epoch.0);
    assert_eq!(h.heartbeat(1), Ok(false));
    let reg = h.image.broker(BrokerId(1)).unwrap();
    assert!(!reg.fenced && !reg.in_controlled_shutdown);
    assert!(
        only_1
            .iter()
            .all(|p| h.image.topics()[&solo].partitions[p].leader == Some(BrokerId(1))),
        "it leads its lone partitions again"
    );
    h.check();
}

/// ElectLeaders (KIP-460), the controller's decisions: a preferred election moves leadership
/// back to the first replica when it is a live ISR member, and says why not otherwise; an
/// unclean election gives a leaderless partition a live replica from outside the ISR (the loss
/// recorded), and refuses when it has a leader or no replica is live.
#[test]
fn elect_leaders_preferred_and_unclean_decisions() {
    use gregor_core::cluster::elect_leaders::{elect_leader, ElectionType};
    use gregor_core::cluster::records::PartitionChange;
    use gregor_core::cluster::LeaderChange;
    let mut h = Harness::new(11);
    for b in 1..=3 {
        h.register(b, 1).unwrap();
        h.heartbeat(b).unwrap();
    }
    h.create("orders", 1, 3).unwrap();
    let id = h.image.topic_id("orders").unwrap();
    let p0 = |h: &Harness| h.image.topics()[&id].partitions[&0].clone();
    let preferred = p0(&h).replicas[0];
    let code = |r: Result<Vec<MetadataRecord>, ControllerError>| r.unwrap_err().code();
    // Led by the preferred replica already: ELECTION_NOT_NEEDED (84).
    assert_eq!(
        code(elect_leader(&h.image, "orders", 0, ElectionType::Preferred)),
        84
    );
    assert_eq!(
        code(elect_leader(&h.image, "orders", 0, ElectionType::Unclean)),
        84
    );
    assert_eq!(
        elect_leader(&h.image, "orders", 7, ElectionType::Preferred),
        Err(ControllerError::UnknownTopicOrPartition(7))
    );
    assert_eq!(
        code(elect_leader(&h.image, "nope", 0, ElectionType::Preferred)),
        3
    );
    // Leadership moved to the second replica (as after a restart of the first).
    let second = p0(&h).replicas[1];
    h.write(vec![MetadataRecord::PartitionChange(PartitionChange {
        topic_id: id,
        partition: 0,
        isr: None,
        leader: LeaderChange::To(second),
        replicas: None,
    })]);
    assert_eq!(p0(&h).leader, Some(second));
    let epoch = p0(&h).leader_epoch;
    let records = elect_leader(&h.image, "orders", 0, ElectionType::Preferred).unwrap();
    h.write(records);
    assert_eq!(
        p0(&h).leader,
        Some(preferred),
        "back to the preferred replica"
    );
    assert!(p0(&h).leader_epoch > epoch, "a new leader epoch");
    assert_eq!(p0(&h).isr.len(), 3, "a preferred election is clean");
    // The preferred replica out of the ISR: PREFERRED_LEADER_NOT_AVAILABLE (80).
    let without: Vec<BrokerId> = p0(&h).isr.into_iter().filter(|b| *b != preferred).collect();
    h.write(vec![MetadataRecord::PartitionChange(PartitionChange {
        topic_id: id,
        partition: 0,
        isr: Some(without.clone()),
        leader: LeaderChange::To(without[0]),
        replicas: None,
    })]);
    assert_eq!(
        code(elect_leader(&h.image, "orders", 0, ElectionType::Preferred)),
        80
    );
    // Only `without[0]` in the ISR, and it is fenced: the partition is offline.
    h.write(vec![MetadataRecord::PartitionChange(PartitionChange {
        topic_id: id,
        partition: 0,
        isr: Some(vec![without[0]]),
        leader: LeaderChange::Unchanged,
        replicas: None,
    })]);
    let lone = without[0];
    let epoch = h.image.broker(lone).unwrap().broker_epoch;
    let mut fence = vec![MetadataRecord::BrokerRegistrationChange {
        broker_id: lone,
        broker_epoch: epoch,
        fenced: Some(true),
        in_controlled_shutdown: None,
    }];
    fence.extend(gregor_core::cluster::replication::leave(&h.image, lone));
    h.write(fence);
    assert_eq!(p0(&h).leader, None, "offline");
    assert_eq!(
        code(elect_leader(&h.image, "orders", 0, ElectionType::Preferred)),
        80
    );
    // Unclean: a live replica outside the ISR leads, alone in the ISR, the loss on record.
    let records = elect_leader(&h.image, "orders", 0, ElectionType::Unclean).unwrap();
    assert!(records
        .iter()
        .any(|r| matches!(r, MetadataRecord::UncleanElection { .. })));
    h.write(records);
    let p = p0(&h);
    let leader = p.leader.expect("elected");
    assert!(leader != lone && p.isr == vec![leader], "{p:?}");
    h.check();
    // A one-replica topic whose broker is fenced: no replica is live (83).
    h.create("solo", 1, 1).unwrap();
    let sid = h.image.topic_id("solo").unwrap();
    let only = h.image.topics()[&sid].partitions[&0].replicas[0];
    let e = h.image.broker(only).unwrap().broker_epoch;
    let mut fence = vec![MetadataRecord::BrokerRegistrationChange {
        broker_id: only,
        broker_epoch: e,
        fenced: Some(true),
        in_controlled_shutdown: None,
    }];
    fence.extend(gregor_core::cluster::replication::leave(&h.image, only));
    h.write(fence);
    assert_eq!(
        code(elect_leader(&h.image, "solo", 0, ElectionType::Unclean)),
        83
    );
}
