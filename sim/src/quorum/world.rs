//! The quorum world: controllers, brokers, a client, the network between them, the fault
//! schedule, and the event loop that drives them in virtual time. See the module docs of
//! [`crate::quorum`].
//!
//! One loop iteration takes the earliest of: a phase change, a scheduled heal, the next fault, a
//! message arriving, a controller's timer ([`QuorumController::poll_timeout`]), a broker's or the
//! client's next action. Ties go in that order, then by id, so a seed replays exactly; every
//! event is folded into the trace hash.

use super::check::acked_topics::AckedTopics;
use super::check::committed::Committed;
use super::check::image::ImageReplay;
use super::check::liveness::Liveness;
use super::check::one_leader::OneLeader;
use super::check::Anomaly;
use gregor_core::cluster::quorum_controller::Output;
use gregor_core::cluster::records::Endpoint;
use gregor_core::cluster::{
    BrokerEpoch, BrokerId, ControllerError, Durable, QuorumController, QuorumControllerConfig,
    Registration, Reply, Request, RequestId,
};
use gregor_core::prng::Prng;
use gregor_core::raft::{self, Message, NodeId};
use gregor_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Controllers in the quorum (3 or 5; 1 works too).
    pub nodes: usize,
    /// The safety phase (faults on), simulated ms.
    pub safety_ms: u64,
    /// The liveness phase (faults healed), simulated ms: a leader and a new commit must come
    /// within it.
    pub liveness_ms: u64,
    /// Print every event.
    pub trace: bool,
}

impl Options {
    /// The CI length: 60 simulated seconds, 45 with faults and 15 healed.
    pub fn new(seed: u64, nodes: usize) -> Options {
        Options {
            seed,
            nodes,
            safety_ms: 45_000,
            liveness_ms: 15_000,
            trace: false,
        }
    }
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub profile: String,
    pub summary: Vec<String>,
    pub anomalies: Vec<Anomaly>,
    pub trace_hash: u64,
    pub events: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.anomalies.is_empty()
    }
}

/// Something that sends and receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Addr {
    Controller(NodeId),
    Broker(usize),
    Client,
}

#[derive(Clone, Debug)]
enum Payload {
    Raft(Message),
    Request(RequestId, Request),
    /// An answer, with the offset the answering node had committed to when it let it go.
    Response(RequestId, Result<Reply, ControllerError>, i64),
}

/// A directed link's faults.
#[derive(Clone, Copy, Debug, Default)]
struct Link {
    cut: bool,
    clogged_until: Instant,
}

/// A fault that ends later.
#[derive(Clone, Copy, Debug)]
enum Heal {
    Link(Addr, Addr),
    Restart(NodeId),
    RestartBroker(usize),
}

/// The fault kinds, in the order of [`Profile::weights`].
const FAULTS: [&str; 8] = [
    "pair-cut",
    "one-way",
    "clog",
    "isolate",
    "crash",
    "power-loss",
    "clock-jump",
    "broker-crash",
];

/// The per-seed fault profile.
#[derive(Clone, Debug)]
struct Profile {
    /// Mean time between two faults, ms.
    fault_every_ms: u64,
    /// Largest one-way latency, ms (each message draws 1..=this).
    latency_max_ms: u64,
    /// Per-mille of messages lost.
    loss_permille: u64,
    /// Relative weights: cut a pair, one-way cut, clog, isolate a node, crash, power loss,
    /// clock jump, broker crash.
    weights: [u64; 8],
}

impl Profile {
    fn draw(prng: &mut Prng) -> Profile {
        let mut weights = [0; 8];
        for w in &mut weights {
            // Each fault kind is on in about three seeds of four (FoundationDB's BUGGIFY idea).
            *w = if prng.ratio(3, 4) {
                1 + prng.below(4)
            } else {
                0
            };
        }
        Profile {
            fault_every_ms: 300 + prng.below(3_000),
            latency_max_ms: 1 + prng.below(30),
            loss_permille: [0, 0, 5, 20, 50][prng.below(5) as usize],
            weights,
        }
    }

    fn describe(&self) -> String {
        let on: Vec<String> = FAULTS
            .iter()
            .zip(self.weights)
            .filter(|(_, w)| *w > 0)
            .map(|(n, w)| format!("{n}x{w}"))
            .collect();
        format!(
            "a fault every ~{} ms; latency 1..{} ms; loss {}‰; faults: {}",
            self.fault_every_ms,
            self.latency_max_ms,
            self.loss_permille,
            on.join(" ")
        )
    }
}

/// One controller machine.
struct Ctrl {
    node: Option<QuorumController>,
    disk: Durable,
    /// This machine's clock is ahead of the world's by this much (it only grows: jumps forward).
    skew: Duration,
    /// A power loss is due: the node stops after performing this many outputs of its next step.
    power_cut: Option<usize>,
    /// The high watermark whose entries the committed checker has seen from this node.
    seen_hw: i64,
    /// The image offset last shown to the image checkers.
    seen_image: i64,
    starts: u64,
}

/// A simulated broker: registers, heartbeats every 2 s (`broker.heartbeat.interval.ms`), asks
/// for producer ids now and then, and finds the active controller by following NOT_CONTROLLER
/// hints. It stands in for the broker's lifecycle manager; it reports as its metadata offset its
/// own registration's offset once it has been told of it (the answer comes after commit, so a
/// real broker replaying the log reaches it too).
struct Broker {
    id: BrokerId,
    incarnation: u64,
    up: bool,
    epoch: Option<BrokerEpoch>,
    fenced: bool,
    target: NodeId,
    in_flight: Option<(RequestId, Instant)>,
    next_at: Instant,
}

/// The admin client: creates topics and deletes some of those it saw created.
struct Client {
    target: NodeId,
    next_topic: u64,
    created: Vec<String>,
    in_flight: Option<(RequestId, Instant, Request)>,
    next_at: Instant,
}

struct Counters {
    messages: u64,
    lost: u64,
    faults: BTreeMap<&'static str, u64>,
    acked_creates: u64,
    acked_deletes: u64,
    registrations: u64,
    unfenced: u64,
    producer_blocks: u64,
    not_controller: u64,
    snapshots_taken: u64,
    snapshots_installed: u64,
}

struct World {
    opts: Options,
    prng: Prng,
    profile: Profile,
    now: Instant,
    config: QuorumControllerConfig,
    voters: BTreeSet<NodeId>,
    ctrls: BTreeMap<NodeId, Ctrl>,
    brokers: Vec<Broker>,
    client: Client,
    /// Messages in flight, by (arrival, sequence).
    flights: BTreeMap<(Instant, u64), (Addr, Addr, Payload)>,
    links: BTreeMap<(Addr, Addr), Link>,
    heals: BTreeMap<(Instant, u64), Heal>,
    seq: u64,
    next_fault_at: Instant,
    heal_at: Instant,
    end_at: Instant,
    healed: bool,
    /// Who asked each request still unanswered.
    askers: BTreeMap<RequestId, Addr>,
    next_request: u64,
    // checkers
    one_leader: OneLeader,
    committed: Committed,
    images: ImageReplay,
    acked: AckedTopics,
    liveness: Option<Liveness>,
    /// Producer-id blocks acknowledged: first id → broker (they must never overlap).
    producer_ids: BTreeMap<i64, BrokerId>,
    anomalies: Vec<Anomaly>,
    counters: Counters,
    trace: u64,
    events: u64,
}

const HEARTBEAT: Duration = Duration::from_ms(2_000);
const REQUEST_TIMEOUT: Duration = Duration::from_ms(3_000);
const BROKERS: usize = 3;

/// Run one seed.
pub fn run(opts: &Options) -> Report {
    assert!(opts.nodes >= 1, "a quorum has a voter");
    let mut w = World::new(opts.clone());
    w.run();
    w.report()
}

impl World {
    fn new(opts: Options) -> World {
        let mut prng = Prng::new(opts.seed ^ 0x51ab_1e5e_ed00_0001);
        let profile = Profile::draw(&mut prng);
        let voters: BTreeSet<NodeId> = (1..=opts.nodes as i32).map(NodeId).collect();
        let config = QuorumControllerConfig {
            snapshot_every: 64,
            ..QuorumControllerConfig::default()
        };
        let now = Instant(0);
        let ctrls = voters
            .iter()
            .map(|v| {
                let c = Ctrl {
                    node: None,
                    disk: Durable::default(),
                    skew: Duration(0),
                    power_cut: None,
                    seen_hw: 0,
                    seen_image: -1,
                    starts: 0,
                };
                (*v, c)
            })
            .collect();
        let brokers = (0..BROKERS)
            .map(|i| Broker {
                id: BrokerId(100 + i as i32),
                incarnation: 1,
                up: true,
                epoch: None,
                fenced: true,
                target: NodeId(1 + (i % opts.nodes) as i32),
                in_flight: None,
                next_at: now + Duration::from_ms(500 + 100 * i as u64),
            })
            .collect();
        let safety = Duration::from_ms(opts.safety_ms);
        let first_fault = Duration::from_ms(1 + prng.below(profile.fault_every_ms));
        World {
            prng,
            now,
            config,
            voters: voters.clone(),
            ctrls,
            brokers,
            client: Client {
                target: NodeId(1),
                next_topic: 0,
                created: Vec::new(),
                in_flight: None,
                next_at: now + Duration::from_ms(1_000),
            },
            flights: BTreeMap::new(),
            links: BTreeMap::new(),
            heals: BTreeMap::new(),
            seq: 0,
            next_fault_at: now + first_fault,
            heal_at: now + safety,
            end_at: now + safety + Duration::from_ms(opts.liveness_ms),
            healed: false,
            askers: BTreeMap::new(),
            next_request: 0,
            one_leader: OneLeader::default(),
            committed: Committed::default(),
            images: ImageReplay::default(),
            acked: AckedTopics::default(),
            liveness: None,
            producer_ids: BTreeMap::new(),
            anomalies: Vec::new(),
            counters: Counters {
                messages: 0,
                lost: 0,
                faults: BTreeMap::new(),
                acked_creates: 0,
                acked_deletes: 0,
                registrations: 0,
                unfenced: 0,
                producer_blocks: 0,
                not_controller: 0,
                snapshots_taken: 0,
                snapshots_installed: 0,
            },
            trace: 0xcbf2_9ce4_8422_2325,
            events: 0,
            profile,
            opts,
        }
    }

    fn note(&mut self, what: u64, detail: u64) {
        for x in [self.now.0, what, detail] {
            self.trace = (self.trace ^ x).wrapping_mul(0x0100_0000_01b3);
        }
        self.events += 1;
    }

    fn say(&self, f: impl FnOnce() -> String) {
        if self.opts.trace {
            println!("{:>9.3}s {}", self.now.0 as f64 / 1e9, f());
        }
    }

    fn run(&mut self) {
        for v in self.voters.clone() {
            self.start(v);
        }
        loop {
            let msg = self.flights.keys().next().copied();
            let timer = self
                .ctrls
                .iter()
                .filter_map(|(id, c)| {
                    let n = c.node.as_ref()?;
                    let local = n.poll_timeout();
                    Some((Instant(local.0.saturating_sub(c.skew.0)).max(self.now), *id))
                })
                .min();
            let broker = self
                .brokers
                .iter()
                .enumerate()
                .filter(|(_, b)| b.up)
                .map(|(i, b)| (b.next_at, i))
                .min();
            let heal = self.heals.keys().next().copied();
            let fault = (!self.healed).then_some(self.next_fault_at);
            let phase = (!self.healed).then_some(self.heal_at);
            let candidates = [
                phase,
                heal.map(|h| h.0),
                fault,
                msg.map(|m| m.0),
                timer.map(|t| t.0),
                broker.map(|b| b.0),
                Some(self.client.next_at),
            ];
            let next = candidates
                .iter()
                .flatten()
                .min()
                .copied()
                .expect("a client");
            if next > self.end_at {
                break;
            }
            assert!(next >= self.now, "virtual time never goes back");
            self.now = next;
            if phase == Some(next) {
                self.heal_all();
            } else if let Some(key) = heal.filter(|h| h.0 == next) {
                let h = self.heals.remove(&key).expect("first heal");
                self.heal(h);
            } else if fault == Some(next) {
                self.fault();
                let gap = 1 + self.prng.below(2 * self.profile.fault_every_ms);
                self.next_fault_at = self.now + Duration::from_ms(gap);
            } else if let Some(key) = msg.filter(|m| m.0 == next) {
                let (from, to, payload) = self.flights.remove(&key).expect("first flight");
                self.deliver(from, to, payload);
            } else if let Some((_, id)) = timer.filter(|t| t.0 == next) {
                self.note(1, id.0 as u64);
                let local = self.local(id);
                self.ctrls
                    .get_mut(&id)
                    .unwrap()
                    .node
                    .as_mut()
                    .unwrap()
                    .tick(local);
                self.drain(id);
            } else if let Some((_, i)) = broker.filter(|b| b.0 == next) {
                self.broker_act(i);
            } else {
                self.client_act();
            }
        }
        self.now = self.end_at;
    }

    /// The controller machine's own clock.
    fn local(&self, id: NodeId) -> Instant {
        self.now + self.ctrls[&id].skew
    }

    fn start(&mut self, id: NodeId) {
        let local = self.local(id);
        let c = self.ctrls.get_mut(&id).unwrap();
        assert!(c.node.is_none());
        c.starts += 1;
        let seed = self.opts.seed ^ (id.0 as u64) << 32 ^ c.starts << 48;
        let d = c.disk.clone();
        c.seen_hw = d.start();
        c.seen_image = -1;
        let node = QuorumController::restore(
            id,
            self.voters.clone(),
            self.config.clone(),
            seed,
            local,
            d.state,
            d.snapshot,
            d.log,
        );
        c.node = Some(node);
        self.note(2, id.0 as u64);
        self.say(|| format!("controller {} starts", id.0));
        self.drain(id);
    }

    fn crash(&mut self, id: NodeId) {
        let c = self.ctrls.get_mut(&id).unwrap();
        if c.node.take().is_some() {
            let at = self.now + Duration::from_ms(1_000 + self.prng.below(9_000));
            self.schedule(at, Heal::Restart(id));
        }
    }

    fn schedule(&mut self, at: Instant, h: Heal) {
        self.seq += 1;
        self.heals.insert((at, self.seq), h);
    }

    /// Perform a controller's outputs in order, watching what they show; a due power loss stops
    /// it partway.
    fn drain(&mut self, id: NodeId) {
        let c = self.ctrls.get_mut(&id).unwrap();
        let Some(node) = c.node.as_mut() else { return };
        let mut outs = Vec::new();
        while let Some(o) = node.poll_output() {
            outs.push(o);
        }
        let applied = node.applied();
        let cut = c.power_cut.take();
        for (i, o) in outs.into_iter().enumerate() {
            if cut == Some(i) {
                // The power goes out: what was performed is on disk, nothing after it is.
                self.say(|| format!("controller {} loses power after {i} outputs", id.0));
                self.crash(id);
                return;
            }
            match o {
                Output::Raft(r) => self.perform(id, r),
                Output::Respond { id: rid, result } => {
                    if let Some(asker) = self.askers.remove(&rid) {
                        self.send(
                            Addr::Controller(id),
                            asker,
                            Payload::Response(rid, result, applied),
                        );
                    }
                }
            }
        }
        self.observe(id);
    }

    fn perform(&mut self, id: NodeId, r: raft::Output) {
        let c = self.ctrls.get_mut(&id).unwrap();
        match &r {
            raft::Output::Committed { high_watermark } => {
                // Every entry it now counts committed is on its disk (appends come first).
                for offset in c.seen_hw.max(c.disk.start())..*high_watermark {
                    let entry = &c.disk.log[(offset - c.disk.start()) as usize];
                    self.committed.entry_committed(id, offset, entry);
                }
                c.seen_hw = c.seen_hw.max(*high_watermark);
            }
            raft::Output::SaveSnapshot(s) => {
                self.counters.snapshots_taken += 1;
                self.committed.snapshot_seen(id, s.id);
            }
            raft::Output::InstallSnapshot(s) => {
                self.counters.snapshots_installed += 1;
                self.committed.snapshot_seen(id, s.id);
                c.seen_hw = c.seen_hw.max(s.id.end_offset);
            }
            _ => {}
        }
        let c = self.ctrls.get_mut(&id).unwrap();
        c.disk.perform(&r);
        if let raft::Output::Send { to, message } = r {
            self.send(
                Addr::Controller(id),
                Addr::Controller(to),
                Payload::Raft(message),
            );
        }
    }

    /// After a controller's step: who leads, and its image if it moved.
    fn observe(&mut self, id: NodeId) {
        let c = &self.ctrls[&id];
        let Some(node) = c.node.as_ref() else { return };
        let leading = node.raft().is_leader().then(|| node.raft().epoch());
        let hw = node.raft().high_watermark();
        let moved = node.image().offset() != c.seen_image;
        if let Some(epoch) = leading {
            self.one_leader.leader_seen(epoch, id);
            if let Some(l) = &mut self.liveness {
                l.leader_seen(self.now);
            }
        }
        if let Some(l) = &mut self.liveness {
            l.high_watermark_seen(self.now, hw);
        }
        if moved {
            let image = node.image();
            self.images.image_seen(id, image, self.committed.log());
            self.acked.image_seen(id, image);
            let offset = image.offset();
            self.ctrls.get_mut(&id).unwrap().seen_image = offset;
        }
    }

    fn send(&mut self, from: Addr, to: Addr, payload: Payload) {
        self.counters.messages += 1;
        let link = self.links.get(&(from, to)).copied().unwrap_or_default();
        let lossy = !self.healed && self.prng.ratio(self.profile.loss_permille, 1000);
        if link.cut || lossy {
            self.counters.lost += 1;
            return;
        }
        let latency = Duration::from_ms(1 + self.prng.below(self.profile.latency_max_ms));
        let at = (self.now + latency).max(link.clogged_until);
        self.seq += 1;
        self.flights.insert((at, self.seq), (from, to, payload));
    }

    fn deliver(&mut self, from: Addr, to: Addr, payload: Payload) {
        self.note(3, self.seq);
        match (to, payload) {
            (Addr::Controller(id), Payload::Raft(m)) => {
                let Addr::Controller(src) = from else {
                    unreachable!("raft messages come from controllers")
                };
                let local = self.local(id);
                let Some(n) = self.ctrls.get_mut(&id).unwrap().node.as_mut() else {
                    return;
                };
                n.handle(local, src, m);
                self.drain(id);
            }
            (Addr::Controller(id), Payload::Request(rid, req)) => {
                let local = self.local(id);
                if self.ctrls[&id].node.is_none() {
                    return;
                }
                self.askers.insert(rid, from);
                let n = self.ctrls.get_mut(&id).unwrap().node.as_mut().unwrap();
                n.request(local, rid, req);
                self.drain(id);
            }
            (Addr::Broker(i), Payload::Response(rid, result, _)) => {
                self.broker_answer(i, rid, result)
            }
            (Addr::Client, Payload::Response(rid, result, committed)) => {
                self.client_answer(rid, result, committed)
            }
            (to, p) => unreachable!("{p:?} to {to:?}"),
        }
    }

    fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// The controller to ask after a NOT_CONTROLLER or a timeout.
    fn next_target(&mut self, hint: Option<i32>, current: NodeId) -> NodeId {
        match hint {
            Some(l) if self.voters.contains(&NodeId(l)) => NodeId(l),
            _ => {
                let all: Vec<NodeId> = self.voters.iter().copied().collect();
                let i = all.iter().position(|v| *v == current).unwrap_or(0);
                all[(i + 1) % all.len()]
            }
        }
    }

    fn broker_act(&mut self, i: usize) {
        self.note(4, i as u64);
        let now = self.now;
        let b = &mut self.brokers[i];
        b.next_at = now + HEARTBEAT;
        if let Some((_, sent)) = b.in_flight {
            if now < sent + REQUEST_TIMEOUT {
                return;
            }
            let current = b.target;
            let next = self.next_target(None, current);
            let b = &mut self.brokers[i];
            b.in_flight = None;
            b.target = next;
        }
        let b = &self.brokers[i];
        let request = match b.epoch {
            None => Request::BrokerRegistration(Registration {
                broker_id: b.id,
                incarnation_id: [b.incarnation as u8; 16],
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092 + i as u16,
                }],
                rack: None,
            }),
            Some(epoch) if !b.fenced && self.prng.ratio(1, 8) => Request::AllocateProducerIds {
                broker_id: b.id,
                broker_epoch: epoch,
            },
            Some(epoch) => Request::BrokerHeartbeat {
                broker_id: b.id,
                broker_epoch: epoch,
                metadata_offset: epoch.0,
            },
        };
        let rid = self.new_request();
        let b = &mut self.brokers[i];
        b.in_flight = Some((rid, now));
        let target = b.target;
        self.send(
            Addr::Broker(i),
            Addr::Controller(target),
            Payload::Request(rid, request),
        );
    }

    fn broker_answer(&mut self, i: usize, rid: RequestId, result: Result<Reply, ControllerError>) {
        let b = &self.brokers[i];
        if !b.up || b.in_flight.map(|f| f.0) != Some(rid) {
            return; // an answer to an earlier incarnation or a request given up on
        }
        self.brokers[i].in_flight = None;
        match result {
            Ok(Reply::BrokerRegistration { broker_epoch }) => {
                self.counters.registrations += 1;
                let b = &mut self.brokers[i];
                b.epoch = Some(broker_epoch);
                b.fenced = true;
                b.next_at = self.now; // heartbeat at once to get unfenced
            }
            Ok(Reply::BrokerHeartbeat { fenced }) => {
                let b = &mut self.brokers[i];
                if b.fenced && !fenced {
                    self.counters.unfenced += 1;
                }
                b.fenced = fenced;
            }
            Ok(Reply::AllocateProducerIds { first, count }) => {
                self.counters.producer_blocks += 1;
                let broker = self.brokers[i].id;
                let before = self.producer_ids.range(..first + count).next_back();
                if let Some((start, owner)) = before.filter(|(s, _)| **s + count > first) {
                    self.anomalies.push(Anomaly {
                        kind: "producer_ids",
                        detail: format!(
                            "block {first}+{count} to broker {} overlaps block {start} of broker {}",
                            broker.0, owner.0
                        ),
                    });
                }
                self.producer_ids.insert(first, broker);
            }
            Err(ControllerError::NotController { leader }) => {
                self.counters.not_controller += 1;
                let current = self.brokers[i].target;
                self.brokers[i].target = self.next_target(leader, current);
                self.brokers[i].next_at = self.now + Duration::from_ms(50);
            }
            Err(
                ControllerError::StaleBrokerEpoch(_) | ControllerError::BrokerIdNotRegistered(_),
            ) => {
                self.brokers[i].epoch = None;
            }
            Err(_) => {}
            Ok(other) => unreachable!("a broker asked for no {other:?}"),
        }
    }

    fn client_act(&mut self) {
        self.note(5, 0);
        let now = self.now;
        self.client.next_at = now + Duration::from_ms(500 + self.prng.below(1_000));
        if let Some((_, sent, _)) = &self.client.in_flight {
            if now < *sent + REQUEST_TIMEOUT {
                return;
            }
            self.client.in_flight = None;
            let current = self.client.target;
            self.client.target = self.next_target(None, current);
        }
        let request = if !self.client.created.is_empty() && self.prng.ratio(1, 4) {
            let k = self.prng.below(self.client.created.len() as u64) as usize;
            let name = self.client.created.swap_remove(k);
            self.acked.delete_invoked(&name, now);
            Request::DeleteTopic { name }
        } else {
            self.client.next_topic += 1;
            Request::CreateTopic {
                name: format!("t{}", self.client.next_topic),
                partitions: 1 + self.prng.below(4) as i32,
                replication_factor: 1 + self.prng.below(2) as i32,
                configs: Default::default(),
            }
        };
        let rid = self.new_request();
        self.client.in_flight = Some((rid, now, request.clone()));
        let target = self.client.target;
        self.send(
            Addr::Client,
            Addr::Controller(target),
            Payload::Request(rid, request),
        );
    }

    fn client_answer(
        &mut self,
        rid: RequestId,
        result: Result<Reply, ControllerError>,
        committed: i64,
    ) {
        let Some((id, _, request)) = self.client.in_flight.take() else {
            return;
        };
        if id != rid {
            self.client.in_flight = Some((id, self.now, request));
            return;
        }
        match (&request, result) {
            (Request::CreateTopic { name, .. }, Ok(Reply::CreateTopic { topic_id })) => {
                self.counters.acked_creates += 1;
                self.acked.create_acked(name, topic_id, committed);
                self.client.created.push(name.clone());
            }
            (Request::DeleteTopic { .. }, Ok(Reply::DeleteTopic)) => {
                self.counters.acked_deletes += 1;
            }
            (_, Err(ControllerError::NotController { leader })) => {
                self.counters.not_controller += 1;
                let current = self.client.target;
                self.client.target = self.next_target(leader, current);
                self.client.next_at = self.now + Duration::from_ms(50);
            }
            (_, Err(_)) => {}
            (r, Ok(a)) => unreachable!("{a:?} answers {r:?}"),
        }
    }

    fn addrs(&self) -> Vec<Addr> {
        let mut out: Vec<Addr> = self.voters.iter().map(|v| Addr::Controller(*v)).collect();
        out.extend((0..self.brokers.len()).map(Addr::Broker));
        out.push(Addr::Client);
        out
    }

    fn pick_controller(&mut self) -> NodeId {
        let all: Vec<NodeId> = self.voters.iter().copied().collect();
        all[self.prng.below(all.len() as u64) as usize]
    }

    fn fault(&mut self) {
        let total: u64 = self.profile.weights.iter().sum();
        if total == 0 {
            return;
        }
        let mut x = self.prng.below(total);
        let mut kind = 0;
        while x >= self.profile.weights[kind] {
            x -= self.profile.weights[kind];
            kind += 1;
        }
        let name = FAULTS[kind];
        *self.counters.faults.entry(name).or_default() += 1;
        self.note(6, kind as u64);
        let lasts = Duration::from_ms(500 + self.prng.below(8_000));
        let addrs = self.addrs();
        match kind {
            0..=2 => {
                // A link touching at least one controller.
                let a = Addr::Controller(self.pick_controller());
                let mut b = addrs[self.prng.below(addrs.len() as u64) as usize];
                if b == a {
                    b = Addr::Client;
                }
                let both = kind == 0 || (kind == 2 && self.prng.ratio(1, 2));
                let pairs = if both {
                    vec![(a, b), (b, a)]
                } else {
                    vec![(a, b)]
                };
                for (x, y) in pairs {
                    let l = self.links.entry((x, y)).or_default();
                    if kind == 2 {
                        l.clogged_until = l.clogged_until.max(self.now + lasts);
                    } else {
                        l.cut = true;
                        self.schedule(self.now + lasts, Heal::Link(x, y));
                    }
                }
                self.say(|| format!("{name} {a:?} {b:?} for {} ms", lasts.as_ms()));
            }
            3 => {
                let a = Addr::Controller(self.pick_controller());
                for b in addrs.into_iter().filter(|b| *b != a) {
                    for (x, y) in [(a, b), (b, a)] {
                        self.links.entry((x, y)).or_default().cut = true;
                        self.schedule(self.now + lasts, Heal::Link(x, y));
                    }
                }
                self.say(|| format!("isolate {a:?} for {} ms", lasts.as_ms()));
            }
            4 => {
                let id = self.pick_controller();
                self.say(|| format!("crash controller {}", id.0));
                self.crash(id);
            }
            5 => {
                let id = self.pick_controller();
                let after = self.prng.below(4) as usize;
                self.say(|| {
                    format!(
                        "power loss due on controller {} after {after} outputs",
                        id.0
                    )
                });
                self.ctrls.get_mut(&id).unwrap().power_cut = Some(after);
            }
            6 => {
                let id = self.pick_controller();
                let jump = Duration::from_ms(500 + self.prng.below(15_000));
                self.say(|| format!("clock of controller {} jumps {} ms", id.0, jump.as_ms()));
                let c = self.ctrls.get_mut(&id).unwrap();
                c.skew = Duration(c.skew.0 + jump.0);
            }
            _ => {
                let i = self.prng.below(self.brokers.len() as u64) as usize;
                if self.brokers[i].up {
                    self.say(|| format!("crash broker {i}"));
                    self.brokers[i].up = false;
                    let at = self.now + Duration::from_ms(1_000 + self.prng.below(12_000));
                    self.schedule(at, Heal::RestartBroker(i));
                }
            }
        }
    }

    fn heal(&mut self, h: Heal) {
        self.note(7, 0);
        match h {
            Heal::Link(a, b) => {
                if let Some(l) = self.links.get_mut(&(a, b)) {
                    l.cut = false;
                }
            }
            Heal::Restart(id) => {
                if self.ctrls[&id].node.is_none() {
                    self.start(id);
                }
            }
            Heal::RestartBroker(i) => {
                let now = self.now;
                let b = &mut self.brokers[i];
                if !b.up {
                    b.up = true;
                    b.incarnation += 1;
                    b.epoch = None;
                    b.fenced = true;
                    b.in_flight = None;
                    b.next_at = now;
                }
            }
        }
    }

    /// The liveness phase starts: every link heals, every node and broker comes up, no more
    /// faults or losses.
    fn heal_all(&mut self) {
        self.note(8, 0);
        self.say(|| "heal everything: liveness phase".into());
        self.healed = true;
        self.links.clear();
        let pending: Vec<Heal> = std::mem::take(&mut self.heals).into_values().collect();
        for h in pending {
            if !matches!(h, Heal::Link(..)) {
                self.heal(h);
            }
        }
        for id in self.voters.clone() {
            self.ctrls.get_mut(&id).unwrap().power_cut = None;
            if self.ctrls[&id].node.is_none() {
                self.start(id);
            }
        }
        let hw = self.committed.log().len() as i64;
        let bound = Duration::from_ms(self.opts.liveness_ms);
        self.liveness = Some(Liveness::new(self.now, bound, hw));
    }

    fn report(mut self) -> Report {
        self.committed.finish();
        let mut anomalies = std::mem::take(&mut self.anomalies);
        anomalies.extend(std::mem::take(&mut self.one_leader.anomalies));
        anomalies.extend(std::mem::take(&mut self.committed.anomalies));
        anomalies.extend(std::mem::take(&mut self.images.anomalies));
        anomalies.extend(std::mem::take(&mut self.acked.anomalies));
        if let Some(l) = &self.liveness {
            anomalies.extend(l.finish());
        }
        let c = &self.counters;
        let recovered = self
            .liveness
            .as_ref()
            .and_then(|l| l.recovered_at())
            .map(|t| (t.0 - self.heal_at.0) / 1_000_000);
        let summary = vec![
            format!(
                "{} controllers, {} brokers; {} epochs had a leader; committed log {} entries; {} snapshots taken, {} installed",
                self.opts.nodes,
                self.brokers.len(),
                self.one_leader.epochs_led(),
                self.committed.log().len(),
                c.snapshots_taken,
                c.snapshots_installed
            ),
            format!(
                "client: {} creates and {} deletes acknowledged; brokers: {} registrations, {} unfencings, {} producer-id blocks; {} NOT_CONTROLLER answers",
                c.acked_creates, c.acked_deletes, c.registrations, c.unfenced, c.producer_blocks, c.not_controller
            ),
            format!(
                "network: {} messages, {} lost; faults: {:?}; images compared: {}",
                c.messages, c.lost, c.faults, self.images.compared
            ),
            format!("after the heal, a leader and a new commit in {recovered:?} ms"),
        ];
        Report {
            seed: self.opts.seed,
            profile: self.profile.describe(),
            summary,
            anomalies,
            trace_hash: self.trace,
            events: self.events,
        }
    }
}
