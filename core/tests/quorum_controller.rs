//! The controller process (`QuorumController`): three (or one) voters over a simple in-test
//! network, checking what a broker and an operator would: one active controller, answers only
//! after commit, NOT_CONTROLLER with the leader's id elsewhere, metadata that survives a
//! failover and a restart, fencing after a lapsed session, snapshots that catch up a laggard.

use gregor_core::cluster::broker_lifecycle::{self, BrokerLifecycle, BrokerState};
use gregor_core::cluster::controller::PRODUCER_ID_BLOCK;
use gregor_core::cluster::quorum_controller::{
    Output, METADATA_VERSION_FEATURE, METADATA_VERSION_LEVEL,
};
use gregor_core::cluster::records::Endpoint;
use gregor_core::cluster::{
    BrokerEpoch, BrokerId, ControllerError, Durable, QuorumController, QuorumControllerConfig,
    Registration, Reply, Request, RequestId,
};
use gregor_core::raft::{self, Message, NodeId};
use gregor_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

type Answer = Result<Reply, ControllerError>;

struct Cluster {
    config: QuorumControllerConfig,
    voters: BTreeSet<NodeId>,
    now: Instant,
    nodes: BTreeMap<NodeId, Option<QuorumController>>,
    disks: BTreeMap<NodeId, Durable>,
    /// Messages in flight: (deliver at, sequence, from, to, message).
    wire: Vec<(Instant, u64, NodeId, NodeId, Message)>,
    seq: u64,
    /// Nodes cut off from every other.
    isolated: BTreeSet<NodeId>,
    answers: Vec<(NodeId, RequestId, Answer)>,
    next_request: u64,
    /// Brokers (observers), their disks, and their requests in flight: our id → (broker, theirs).
    brokers: BTreeMap<NodeId, BrokerLifecycle>,
    broker_disks: BTreeMap<NodeId, Durable>,
    broker_asks: BTreeMap<RequestId, (NodeId, RequestId)>,
    /// Answers to brokers, delivered at the next step.
    to_brokers: Vec<(NodeId, RequestId, Answer)>,
}

impl Cluster {
    fn new(n: i32, config: QuorumControllerConfig) -> Cluster {
        let voters: BTreeSet<NodeId> = (1..=n).map(NodeId).collect();
        let mut c = Cluster {
            config,
            voters: voters.clone(),
            now: Instant(1_000),
            nodes: BTreeMap::new(),
            disks: voters.iter().map(|v| (*v, Durable::default())).collect(),
            wire: Vec::new(),
            seq: 0,
            isolated: BTreeSet::new(),
            answers: Vec::new(),
            next_request: 0,
            brokers: BTreeMap::new(),
            broker_disks: BTreeMap::new(),
            broker_asks: BTreeMap::new(),
            to_brokers: Vec::new(),
        };
        for v in voters {
            c.start(v);
        }
        c
    }

    fn start(&mut self, id: NodeId) {
        let d = self.disks[&id].clone();
        let node = QuorumController::restore(
            id,
            self.voters.clone(),
            self.config.clone(),
            id.0 as u64 * 7919,
            self.now,
            d.state,
            d.snapshot,
            d.log,
        );
        self.nodes.insert(id, Some(node));
        self.drain(id);
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.insert(id, None);
    }

    fn node(&self, id: NodeId) -> &QuorumController {
        self.nodes[&id].as_ref().expect("running")
    }

    fn drain(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.as_mut()) else {
            return;
        };
        while let Some(o) = node.poll_output() {
            match o {
                Output::Raft(r) => {
                    self.disks.get_mut(&id).unwrap().perform(&r);
                    if let raft::Output::Send { to, message } = r {
                        self.seq += 1;
                        let at = self.now + Duration::from_ms(3);
                        self.wire.push((at, self.seq, id, to, message));
                    }
                }
                Output::Respond { id: rid, result } => match self.broker_asks.remove(&rid) {
                    Some((b, theirs)) => self.to_brokers.push((b, theirs, result)),
                    None => self.answers.push((id, rid, result)),
                },
            }
        }
    }

    /// Start (or restart, as a new incarnation) broker `id` from its disk.
    fn start_broker(&mut self, id: NodeId, incarnation: u8) {
        let d = self.broker_disks.entry(id).or_default().clone();
        let Request::BrokerRegistration(reg) = registration(id.0, incarnation) else {
            unreachable!()
        };
        let b = BrokerLifecycle::restore(
            id,
            reg,
            self.voters.clone(),
            broker_lifecycle::BrokerLifecycleConfig::default(),
            id.0 as u64,
            self.now,
            d.state,
            d.snapshot,
            d.log,
        );
        self.brokers.insert(id, b);
        self.drain_broker(id);
    }

    fn drain_broker(&mut self, id: NodeId) {
        let Some(b) = self.brokers.get_mut(&id) else {
            return;
        };
        let mut outs = Vec::new();
        while let Some(o) = b.poll_output() {
            outs.push(o);
        }
        for o in outs {
            match o {
                broker_lifecycle::Output::Raft(r) => {
                    self.broker_disks.get_mut(&id).unwrap().perform(&r);
                    if let raft::Output::Send { to, message } = r {
                        self.seq += 1;
                        let at = self.now + Duration::from_ms(3);
                        self.wire.push((at, self.seq, id, to, message));
                    }
                }
                broker_lifecycle::Output::Request {
                    to,
                    id: theirs,
                    request,
                } => {
                    self.next_request += 1;
                    let ours = RequestId(self.next_request);
                    self.broker_asks.insert(ours, (id, theirs));
                    let now = self.now;
                    match self.nodes.get_mut(&to).and_then(|n| n.as_mut()) {
                        Some(n) if !self.isolated.contains(&to) => {
                            n.request(now, ours, request);
                            self.drain(to);
                        }
                        _ => {} // lost: the broker times out
                    }
                }
            }
        }
    }

    fn request(&mut self, to: NodeId, request: Request) -> RequestId {
        self.next_request += 1;
        let rid = RequestId(self.next_request);
        let now = self.now;
        self.nodes
            .get_mut(&to)
            .unwrap()
            .as_mut()
            .unwrap()
            .request(now, rid, request);
        self.drain(to);
        rid
    }

    fn answer(&self, rid: RequestId) -> Option<&Answer> {
        self.answers.iter().find(|a| a.1 == rid).map(|a| &a.2)
    }

    /// Run the cluster until `until`, one event at a time.
    fn run_for(&mut self, ms: u64) {
        let until = self.now + Duration::from_ms(ms);
        loop {
            let msg = self.wire.iter().map(|w| (w.0, w.1)).min();
            for (b, rid, result) in std::mem::take(&mut self.to_brokers) {
                let now = self.now;
                self.brokers.get_mut(&b).unwrap().response(now, rid, result);
                self.drain_broker(b);
            }
            let timer = self
                .nodes
                .iter()
                .filter_map(|(id, n)| n.as_ref().map(|n| (n.poll_timeout(), *id)))
                .chain(self.brokers.iter().map(|(id, b)| (b.poll_timeout(), *id)))
                .min();
            let next = msg.map(|m| m.0).into_iter().chain(timer.map(|t| t.0)).min();
            let Some(next) = next.filter(|t| *t <= until) else {
                break;
            };
            self.now = self.now.max(next);
            let now = self.now;
            if msg.is_some_and(|m| m.0 == next) {
                let i = self
                    .wire
                    .iter()
                    .position(|w| (w.0, w.1) == msg.unwrap())
                    .unwrap();
                let (_, _, from, to, message) = self.wire.remove(i);
                let cut = self.isolated.contains(&from) || self.isolated.contains(&to);
                if let (false, Some(b)) = (cut, self.brokers.get_mut(&to)) {
                    b.handle(now, from, message);
                    self.drain_broker(to);
                } else if let (false, Some(Some(n))) = (cut, self.nodes.get_mut(&to)) {
                    n.handle(now, from, message);
                    self.drain(to);
                }
            } else {
                let id = timer.unwrap().1;
                if let Some(b) = self.brokers.get_mut(&id) {
                    b.tick(now);
                    self.drain_broker(id);
                } else {
                    self.nodes.get_mut(&id).unwrap().as_mut().unwrap().tick(now);
                    self.drain(id);
                }
            }
        }
        self.now = until;
    }

    fn active(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.as_ref().is_some_and(|n| n.is_active()))
            .map(|(id, _)| *id)
            .collect()
    }

    fn the_active(&self) -> NodeId {
        let a = self.active();
        assert_eq!(a.len(), 1, "one active controller, got {a:?}");
        a[0]
    }
}

fn registration(id: i32, incarnation: u8) -> Request {
    Request::BrokerRegistration(Registration {
        broker_id: BrokerId(id),
        incarnation_id: [incarnation; 16],
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + id as u16,
        }],
        rack: None,
        log_dir_new: false,
    })
}

fn fast() -> QuorumControllerConfig {
    QuorumControllerConfig {
        snapshot_every: 16,
        ..QuorumControllerConfig::default()
    }
}

/// Register broker `id` with the active controller and heartbeat it unfenced; its epoch.
fn join(c: &mut Cluster, id: i32) -> BrokerEpoch {
    let active = c.the_active();
    let r = c.request(active, registration(id, 1));
    c.run_for(100);
    let Some(Ok(Reply::BrokerRegistration { broker_epoch })) = c.answer(r).cloned() else {
        panic!("registered: {:?}", c.answer(r));
    };
    let hb = c.request(
        active,
        Request::BrokerHeartbeat {
            broker_id: BrokerId(id),
            broker_epoch,
            metadata_offset: broker_epoch.0,
            want_shut_down: false,
        },
    );
    c.run_for(100);
    assert_eq!(
        c.answer(hb),
        Some(&Ok(Reply::BrokerHeartbeat {
            fenced: false,
            should_shut_down: false
        }))
    );
    broker_epoch
}

#[test]
fn three_controllers_elect_one_and_answer_only_after_commit() {
    let mut c = Cluster::new(3, fast());
    c.run_for(5_000);
    let active = c.the_active();
    for id in c.voters.clone() {
        let image = c.node(id).image();
        assert_eq!(
            image.feature(METADATA_VERSION_FEATURE),
            Some(METADATA_VERSION_LEVEL),
            "the first leader wrote metadata.version and every node replayed it"
        );
    }
    // A follower refuses and names the active controller.
    let follower = *c.voters.iter().find(|v| **v != active).unwrap();
    let r = c.request(follower, registration(1, 1));
    assert_eq!(
        c.answer(r),
        Some(&Err(ControllerError::NotController {
            leader: Some(active.0)
        }))
    );
    // The active controller answers a registration only once its record has committed.
    let r = c.request(active, registration(1, 1));
    assert_eq!(c.answer(r), None, "not before a majority has the record");
    c.run_for(50);
    let Some(Ok(Reply::BrokerRegistration { broker_epoch })) = c.answer(r).cloned() else {
        panic!("answered after commit: {:?}", c.answer(r));
    };
    assert!(c
        .node(active)
        .image()
        .broker(BrokerId(1))
        .is_some_and(|b| b.fenced));
    assert!(
        c.node(active).applied() > broker_epoch.0,
        "the answer came after commit"
    );
    // Not unfenced until the broker has replayed its own registration.
    let hb = |offset| Request::BrokerHeartbeat {
        broker_id: BrokerId(1),
        broker_epoch,
        metadata_offset: offset,
        want_shut_down: false,
    };
    let early = c.request(active, hb(broker_epoch.0 - 1));
    c.run_for(50);
    assert_eq!(
        c.answer(early),
        Some(&Ok(Reply::BrokerHeartbeat {
            fenced: true,
            should_shut_down: false
        }))
    );
    let caught_up = c.request(active, hb(broker_epoch.0));
    c.run_for(50);
    assert_eq!(
        c.answer(caught_up),
        Some(&Ok(Reply::BrokerHeartbeat {
            fenced: false,
            should_shut_down: false
        }))
    );
    join(&mut c, 2);
    let create = c.request(
        active,
        Request::CreateTopic {
            name: "orders".into(),
            partitions: 4,
            replication_factor: 2,
            configs: Default::default(),
        },
    );
    let dup = c.request(
        active,
        Request::CreateTopic {
            name: "orders".into(),
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
        },
    );
    let bad = c.request(
        active,
        Request::CreateTopic {
            name: "no/slash".into(),
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
        },
    );
    c.run_for(200);
    let Some(Ok(Reply::CreateTopic { topic_id })) = c.answer(create).cloned() else {
        panic!("created: {:?}", c.answer(create));
    };
    assert_eq!(
        c.answer(dup),
        Some(&Err(ControllerError::TopicAlreadyExists("orders".into()))),
        "decided on the working image, which has the first create"
    );
    assert!(matches!(
        c.answer(bad),
        Some(Err(ControllerError::InvalidTopic(_)))
    ));
    for id in c.voters.clone() {
        let image = c.node(id).image();
        assert_eq!(image.topic_id("orders"), Some(topic_id), "node {id:?}");
        assert_eq!(image.topics()[&topic_id].partitions.len(), 4);
    }
    let del = c.request(
        active,
        Request::DeleteTopic {
            name: "orders".into(),
        },
    );
    c.run_for(200);
    assert_eq!(c.answer(del), Some(&Ok(Reply::DeleteTopic)));
    assert!(c
        .voters
        .iter()
        .all(|v| c.node(*v).image().topic_id("orders").is_none()));
}

#[test]
fn a_failover_keeps_committed_metadata_and_never_reuses_producer_ids() {
    let mut c = Cluster::new(3, fast());
    c.run_for(5_000);
    let first = c.the_active();
    let epoch = join(&mut c, 1);
    let alloc = Request::AllocateProducerIds {
        broker_id: BrokerId(1),
        broker_epoch: epoch,
    };
    let a = c.request(first, alloc.clone());
    let t = c.request(
        first,
        Request::CreateTopic {
            name: "t".into(),
            partitions: 2,
            replication_factor: 1,
            configs: Default::default(),
        },
    );
    c.run_for(100);
    assert_eq!(
        c.answer(a),
        Some(&Ok(Reply::AllocateProducerIds {
            first: 0,
            count: PRODUCER_ID_BLOCK
        }))
    );
    assert!(matches!(c.answer(t), Some(Ok(Reply::CreateTopic { .. }))));
    c.crash(first);
    c.run_for(10_000);
    let second = c.the_active();
    assert_ne!(second, first);
    let again = c.request(
        second,
        Request::CreateTopic {
            name: "t".into(),
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
        },
    );
    // The broker kept heartbeating to nobody: the new controller started its session afresh,
    // so it is not fenced at once; heartbeat it again.
    let hb = c.request(
        second,
        Request::BrokerHeartbeat {
            broker_id: BrokerId(1),
            broker_epoch: epoch,
            metadata_offset: epoch.0,
            want_shut_down: false,
        },
    );
    let b = c.request(second, alloc);
    c.run_for(100);
    assert_eq!(
        c.answer(again),
        Some(&Err(ControllerError::TopicAlreadyExists("t".into())))
    );
    assert!(matches!(
        c.answer(hb),
        Some(Ok(Reply::BrokerHeartbeat { .. }))
    ));
    assert_eq!(
        c.answer(b),
        Some(&Ok(Reply::AllocateProducerIds {
            first: PRODUCER_ID_BLOCK,
            count: PRODUCER_ID_BLOCK
        })),
        "the next block, never the first again"
    );
    // The old active controller restarts from its disk and replays to the same image. (Its
    // election, in a later epoch, may depose the leader first: without PreVote, KIP-996, a
    // returning voter disrupts; its shorter log keeps it from winning.)
    c.start(first);
    c.run_for(10_000);
    let third = c.the_active();
    assert_ne!(
        third, first,
        "a voter missing committed entries is not elected"
    );
    assert_eq!(c.node(first).image(), c.node(third).image());
}

#[test]
fn a_lapsed_session_fences_the_broker_and_moves_its_leaders() {
    let mut c = Cluster::new(3, fast());
    c.run_for(5_000);
    let active = c.the_active();
    let e1 = join(&mut c, 1);
    join(&mut c, 2);
    let t = c.request(
        active,
        Request::CreateTopic {
            name: "t".into(),
            partitions: 4,
            replication_factor: 2,
            configs: Default::default(),
        },
    );
    c.run_for(100);
    assert!(matches!(c.answer(t), Some(Ok(_))));
    // Broker 2 goes quiet; broker 1 keeps heartbeating every 2 s.
    for _ in 0..6 {
        let _ = c.request(
            active,
            Request::BrokerHeartbeat {
                broker_id: BrokerId(1),
                broker_epoch: e1,
                metadata_offset: e1.0,
                want_shut_down: false,
            },
        );
        c.run_for(2_000);
    }
    let image = c.node(active).image();
    assert!(
        image.broker(BrokerId(2)).unwrap().fenced,
        "fenced after its session lapsed"
    );
    assert!(!image.broker(BrokerId(1)).unwrap().fenced);
    let t = image.topic_id("t").unwrap();
    for p in image.topics()[&t].partitions.values() {
        assert_eq!(
            p.leader,
            Some(BrokerId(1)),
            "every leader moved to the live broker"
        );
    }
}

#[test]
fn a_laggard_catches_up_from_a_snapshot_and_a_restart_replays_to_the_same_image() {
    let mut c = Cluster::new(3, fast());
    c.run_for(5_000);
    let active = c.the_active();
    join(&mut c, 1);
    let laggard = *c.voters.iter().find(|v| **v != active).unwrap();
    c.isolated.insert(laggard);
    for i in 0..5 {
        let _ = c.request(
            c.the_active(),
            Request::CreateTopic {
                name: format!("t{i}"),
                partitions: 3,
                replication_factor: 1,
                configs: Default::default(),
            },
        );
        c.run_for(1_000);
    }
    // Idle NoOps and the topics filled several snapshot intervals meanwhile.
    let leader = c.the_active();
    assert!(
        c.disks[&leader].snapshot.is_some(),
        "the leader took a snapshot"
    );
    assert!(c.node(laggard).applied() < c.disks[&leader].start());
    c.isolated.clear();
    c.run_for(5_000);
    let want = c.node(c.the_active()).image().clone();
    assert_eq!(c.node(laggard).image().topics(), want.topics(), "caught up");
    assert!(
        c.disks[&laggard].snapshot.is_some(),
        "by installing the leader's snapshot"
    );
    // Every node restarts from its disk; the images come back the same.
    for id in c.voters.clone() {
        c.crash(id);
        c.start(id);
    }
    c.run_for(8_000);
    let active = c.the_active();
    for id in c.voters.clone() {
        assert_eq!(c.node(id).image().topics(), want.topics(), "node {id:?}");
        assert_eq!(c.node(id).image().offset(), c.node(id).applied() - 1);
    }
    assert!(c.voters.contains(&active));
}

#[test]
fn a_single_controller_leads_alone_and_commits_at_once() {
    let mut c = Cluster::new(1, fast());
    let only = NodeId(1);
    assert!(c.node(only).is_active(), "a quorum of one leads at start");
    let r = c.request(only, registration(1, 1));
    assert!(matches!(
        c.answer(r),
        Some(Ok(Reply::BrokerRegistration { .. }))
    ));
    c.run_for(2_000);
    assert!(c.node(only).image().broker(BrokerId(1)).is_some());
}

#[test]
fn a_snapshot_frame_round_trips_and_refuses_cut_or_corrupt_bytes() {
    use gregor_core::cluster::records::{decode_snapshot, encode_snapshot, MetadataRecord};
    use gregor_core::cluster::{DecodeError, MetadataImage, ReplayError};
    let mut image = MetadataImage::new();
    let records = [
        MetadataRecord::FeatureLevel {
            name: METADATA_VERSION_FEATURE.into(),
            level: METADATA_VERSION_LEVEL,
        },
        MetadataRecord::ProducerIds {
            broker_id: BrokerId(1),
            broker_epoch: BrokerEpoch(0),
            next_producer_id: PRODUCER_ID_BLOCK,
        },
    ];
    for (i, r) in records.iter().enumerate() {
        image.replay(i as i64, r).unwrap();
    }
    image.skip(2);
    assert_eq!(image.next_producer_id(), PRODUCER_ID_BLOCK);
    // A block that does not move forward is refused.
    let stale = MetadataRecord::ProducerIds {
        broker_id: BrokerId(2),
        broker_epoch: BrokerEpoch(0),
        next_producer_id: PRODUCER_ID_BLOCK,
    };
    assert_eq!(
        image.clone().replay(3, &stale),
        Err(ReplayError::ProducerIdsNotAfter(PRODUCER_ID_BLOCK))
    );
    let bytes = encode_snapshot(&image.to_records());
    let back = MetadataImage::load_snapshot(3, &decode_snapshot(&bytes).unwrap()).unwrap();
    assert_eq!(back, image);
    assert!(matches!(
        decode_snapshot(&bytes[..bytes.len() - 1]),
        Err(DecodeError::BadLength(_))
    ));
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        decode_snapshot(&flipped),
        Err(DecodeError::Checksum { .. })
    ));
}

#[test]
fn brokers_register_replay_as_observers_get_unfenced_and_follow_a_failover() {
    let mut c = Cluster::new(3, fast());
    let (b1, b2) = (NodeId(101), NodeId(102));
    c.start_broker(b1, 1);
    c.start_broker(b2, 1);
    c.run_for(8_000);
    let active = c.the_active();
    for b in [b1, b2] {
        let BrokerState::Unfenced { epoch } = c.brokers[&b].state() else {
            panic!("broker {b:?} unfenced: {:?}", c.brokers[&b].state());
        };
        let reg = c
            .node(active)
            .image()
            .broker(BrokerId(b.0))
            .cloned()
            .unwrap();
        assert_eq!((reg.broker_epoch, reg.fenced), (epoch, false));
        // The broker's image is the committed log, replayed as an observer: it has its own
        // registration and never runs ahead of the controller's.
        let image = c.brokers[&b].image();
        assert!(image.offset() >= epoch.0);
        assert!(image.offset() <= c.node(active).image().offset());
        assert!(!c.brokers[&b].raft().is_leader());
    }
    let t = c.request(
        active,
        Request::CreateTopic {
            name: "seen".into(),
            partitions: 2,
            replication_factor: 2,
            configs: Default::default(),
        },
    );
    c.run_for(1_000);
    let Some(Ok(Reply::CreateTopic { topic_id })) = c.answer(t).cloned() else {
        panic!("created: {:?}", c.answer(t));
    };
    assert_eq!(c.brokers[&b1].image().topic_id("seen"), Some(topic_id));
    // The active controller dies: brokers find the next one by NOT_CONTROLLER hints and
    // timeouts, keep their sessions, and keep replaying.
    c.crash(active);
    c.run_for(15_000);
    let next = c.the_active();
    assert_ne!(next, active);
    for b in [b1, b2] {
        assert!(
            matches!(c.brokers[&b].state(), BrokerState::Unfenced { .. }),
            "{b:?}"
        );
        assert!(!c.node(next).image().broker(BrokerId(b.0)).unwrap().fenced);
    }
    // A broker that restarts as a new incarnation registers again, with a larger epoch.
    let BrokerState::Unfenced { epoch: old } = c.brokers[&b2].state() else {
        unreachable!()
    };
    c.brokers.remove(&b2);
    c.run_for(12_000); // the old incarnation's session lapses first
    c.start_broker(b2, 2);
    c.run_for(6_000);
    let BrokerState::Unfenced { epoch: new } = c.brokers[&b2].state() else {
        panic!("re-registered: {:?}", c.brokers[&b2].state());
    };
    assert!(new > old, "a new incarnation, a new broker epoch");
}

#[test]
fn create_partitions_is_answered_by_the_active_controller_only() {
    let mut c = Cluster::new(3, fast());
    c.run_for(5_000);
    let active = c.the_active();
    join(&mut c, 1);
    join(&mut c, 2);
    let create = Request::CreateTopic {
        name: "grow".into(),
        partitions: 2,
        replication_factor: 1,
        configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
    };
    let r = c.request(active, create);
    c.run_for(200);
    assert!(matches!(c.answer(r), Some(Ok(Reply::CreateTopic { .. }))));
    let grow = |count| Request::CreatePartitions {
        name: "grow".into(),
        count,
    };
    let other = *c.voters.iter().find(|v| **v != active).unwrap();
    let refused = c.request(other, grow(4));
    let ok = c.request(active, grow(4));
    let shrink = c.request(active, grow(3));
    c.run_for(200);
    assert_eq!(
        c.answer(refused),
        Some(&Err(ControllerError::NotController {
            leader: Some(active.0)
        }))
    );
    assert_eq!(c.answer(ok), Some(&Ok(Reply::CreatePartitions)));
    assert_eq!(
        c.answer(shrink),
        Some(&Err(ControllerError::InvalidPartitions(3)))
    );
    for id in c.voters.clone() {
        let image = c.node(id).image();
        let t = &image.topics()[&image.topic_id("grow").unwrap()];
        assert_eq!(t.partitions.len(), 4, "node {id:?}");
        assert_eq!(t.configs["retention.ms"], "1000", "node {id:?}");
    }
}

/// SIGTERM on a broker (KIP-631's controlled shutdown, through the broker's lifecycle and the
/// active controller): within a few round trips its leaderships moved to other in-sync
/// replicas, it left the ISRs and was fenced, and it may stop, long before a session timeout
/// (9 s) would have done the same for a crashed broker. A broker not yet registered may stop
/// at once.
#[test]
fn a_broker_in_controlled_shutdown_hands_its_leaderships_over_before_it_may_stop() {
    use gregor_core::cluster::lifecycle::Shutdown;
    let mut c = Cluster::new(3, fast());
    let bs = [NodeId(101), NodeId(102), NodeId(103)];
    for b in bs {
        c.start_broker(b, 1);
    }
    c.run_for(8_000);
    let active = c.the_active();
    let t = c.request(
        active,
        Request::CreateTopic {
            name: "orders".into(),
            partitions: 6,
            replication_factor: 3,
            configs: Default::default(),
        },
    );
    c.run_for(1_000);
    assert!(matches!(c.answer(t), Some(Ok(Reply::CreateTopic { .. }))));
    let led = |c: &Cluster, b: NodeId| {
        let image = c.node(c.the_active()).image();
        let id = image.topic_id("orders").unwrap();
        image.topics()[&id]
            .partitions
            .values()
            .filter(|p| p.leader == Some(BrokerId(b.0)))
            .count()
    };
    assert!(led(&c, bs[0]) > 0, "broker 101 leads some partitions");
    assert_eq!(c.brokers[&bs[0]].shutdown(), Shutdown::NotAsked);

    let now = c.now;
    c.brokers
        .get_mut(&bs[0])
        .unwrap()
        .begin_controlled_shutdown(now);
    c.drain_broker(bs[0]);
    assert_eq!(c.brokers[&bs[0]].shutdown(), Shutdown::Pending);
    // Two heartbeats, each answered once its records commit: well under a second here.
    c.run_for(500);
    assert_eq!(c.brokers[&bs[0]].shutdown(), Shutdown::Allowed);
    assert_eq!(led(&c, bs[0]), 0, "its leaderships moved");
    let image = c.node(c.the_active()).image().clone();
    let reg = image.broker(BrokerId(101)).unwrap();
    assert!(reg.fenced && reg.in_controlled_shutdown);
    let id = image.topic_id("orders").unwrap();
    for (p, r) in &image.topics()[&id].partitions {
        assert!(r.leader.is_some(), "orders-{p} led");
        assert!(!r.isr.contains(&BrokerId(101)), "orders-{p}: {:?}", r.isr);
        assert_eq!(r.isr.len(), 2, "orders-{p}: the other two stay in sync");
    }
    // The broker asks nothing more; the others stay unfenced.
    assert_eq!(
        c.brokers[&bs[0]].poll_timeout(),
        c.brokers[&bs[0]].raft().poll_timeout()
    );
    for b in &bs[1..] {
        assert!(matches!(c.brokers[b].state(), BrokerState::Unfenced { .. }));
    }

    // A broker that never registered (no controller reachable yet) may stop at once.
    c.start_broker(NodeId(104), 1);
    let now = c.now;
    let b = c.brokers.get_mut(&NodeId(104)).unwrap();
    assert_eq!(b.state(), BrokerState::Starting);
    b.begin_controlled_shutdown(now);
    assert_eq!(b.shutdown(), Shutdown::Allowed);
}

/// Partition reassignment (KIP-455) through the quorum: the start is answered once committed,
/// the leader's AlterPartition that brings the added replicas into the ISR completes it (and
/// hears NEW_LEADER_ELECTED, for its broker was removed), and a reassignment in progress
/// survives the active controller's crash: the next one cancels it.
#[test]
fn a_reassignment_completes_on_the_isr_change_and_survives_a_controller_failover() {
    let mut c = Cluster::new(3, fast());
    c.run_for(5_000);
    let active = c.the_active();
    let epochs: Vec<BrokerEpoch> = (1..=3).map(|b| join(&mut c, b)).collect();
    let t = c.request(
        active,
        Request::CreateTopic {
            name: "t".into(),
            partitions: 2,
            replication_factor: 1,
            configs: Default::default(),
        },
    );
    c.run_for(100);
    assert!(matches!(c.answer(t), Some(Ok(_))));
    let id = c.node(active).image().topic_id("t").unwrap();
    let part = |c: &Cluster, n: NodeId, i: i32| c.node(n).image().partition(id, i).unwrap().clone();
    let from = part(&c, active, 0).replicas[0];
    let target: Vec<BrokerId> = (1..=3).map(BrokerId).filter(|b| *b != from).collect();
    let r = c.request(
        active,
        Request::AlterReassignment {
            topic: "t".into(),
            partition: 0,
            target: Some(target.clone()),
        },
    );
    c.run_for(100);
    assert_eq!(c.answer(r), Some(&Ok(Reply::AlterReassignment)));
    let p = part(&c, active, 0);
    assert_eq!(p.adding, target);
    assert_eq!(p.removing, vec![from]);
    assert_eq!(
        p.leader,
        Some(from),
        "the old replica leads until the move completes"
    );
    // The leader adds both new replicas to the ISR: the move completes in the same decision.
    let mut new_isr = vec![(from, epochs[from.0 as usize - 1])];
    new_isr.extend(target.iter().map(|b| (*b, epochs[b.0 as usize - 1])));
    let ap = c.request(
        active,
        Request::AlterPartition {
            broker_id: from,
            broker_epoch: epochs[from.0 as usize - 1],
            topic_id: id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr,
            successor: None,
        },
    );
    c.run_for(100);
    assert_eq!(
        c.answer(ap),
        Some(&Err(ControllerError::NewLeaderElected(from)))
    );
    let p = part(&c, active, 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone()),
        (target.clone(), target.clone())
    );
    assert!(p.leader.is_some_and(|l| target.contains(&l)) && p.adding.is_empty());
    // A second move, of partition 1, left in progress; the active controller crashes.
    let from1 = part(&c, active, 1).replicas[0];
    let to1 = BrokerId(from1.0 % 3 + 1);
    let r = c.request(
        active,
        Request::AlterReassignment {
            topic: "t".into(),
            partition: 1,
            target: Some(vec![to1]),
        },
    );
    c.run_for(100);
    assert_eq!(c.answer(r), Some(&Ok(Reply::AlterReassignment)));
    c.crash(active);
    c.run_for(5_000);
    let next = c.the_active();
    assert_ne!(next, active);
    assert_eq!(
        part(&c, next, 1).adding,
        vec![to1],
        "the move is in the metadata log"
    );
    let cancel = c.request(
        next,
        Request::AlterReassignment {
            topic: "t".into(),
            partition: 1,
            target: None,
        },
    );
    c.run_for(100);
    assert_eq!(c.answer(cancel), Some(&Ok(Reply::AlterReassignment)));
    let p = part(&c, next, 1);
    assert_eq!(
        (p.replicas.clone(), p.adding.clone()),
        (vec![from1], vec![])
    );
    // A cancel of nothing: NO_REASSIGNMENT_IN_PROGRESS.
    let again = c.request(
        next,
        Request::AlterReassignment {
            topic: "t".into(),
            partition: 1,
            target: None,
        },
    );
    c.run_for(100);
    assert_eq!(
        c.answer(again).map(|a| a.as_ref().map_err(|e| e.code())),
        Some(Err(85))
    );
}
