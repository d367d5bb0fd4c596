//! The quorum world: combined nodes (controller + broker), broker-only nodes, a client, the
//! network between them, the fault schedule, and the event loop that drives them in virtual
//! time. See the module docs of [`crate::quorum`].
//!
//! One loop iteration takes the earliest of: a phase change, a scheduled heal, the next fault, a
//! message arriving, a node's timer ([`Member::poll_timeout`]), a node's broker acting, the
//! client acting. Ties go in that order, then by id, so a seed replays exactly; every event is
//! folded into the trace hash.

use super::check::acked_topics::AckedTopics;
use super::check::committed::Committed;
use super::check::liveness::Liveness;
use super::check::local_requests::LocalRequests;
use super::check::one_leader::OneLeader;
use super::check::registered::Registered;
use super::check::replication::{AckedAlter, Replication};
use super::check::served_images::ServedImages;
use super::check::Anomaly;
use gregor_core::cluster::lifecycle::BrokerState;
use gregor_core::cluster::member::Output;
use gregor_core::cluster::records::Endpoint;
use gregor_core::cluster::{
    BrokerEpoch, BrokerId, ControllerError, Durable, Member, MemberConfig, QuorumControllerConfig,
    Registration, Reply, Request, RequestId, Role,
};
use gregor_core::prng::Prng;
use gregor_core::raft::{self, Message, NodeId};
use gregor_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Controllers in the quorum (3 or 5; 1 works too), each a combined node.
    pub nodes: usize,
    /// The safety phase (faults on), simulated ms.
    pub safety_ms: u64,
    /// The liveness phase (faults healed), simulated ms: a leader, a new commit and every
    /// broker registered and unfenced must come within it.
    pub liveness_ms: u64,
    /// Print every event.
    pub trace: bool,
}

impl Options {
    /// The CI length: 70 simulated seconds, 45 with faults and 25 healed. The healed phase is
    /// that long because a broker restarted near the heal may register only once its previous
    /// incarnation's session lapses (`broker.session.timeout.ms`, 9 s, counted afresh by a
    /// controller elected after the heal): DUPLICATE_BROKER_REGISTRATION until then.
    pub fn new(seed: u64, nodes: usize) -> Options {
        Options {
            seed,
            nodes,
            safety_ms: 45_000,
            liveness_ms: 25_000,
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
    Node(NodeId),
    Client,
}

#[derive(Clone, Debug)]
enum Payload {
    Raft(Message),
    /// A broker's request to a controller, and its answer.
    Request(RequestId, Request),
    Response(RequestId, Result<Reply, ControllerError>),
    /// The admin client's request to a broker, and its answer.
    ClientRequest(RequestId, Request),
    ClientResponse(RequestId, Result<Reply, ControllerError>),
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

/// Why the node's broker asked its metadata side something.
#[derive(Clone, Debug)]
enum Origin {
    /// The admin client's request `.0`, forwarded (Kafka's KIP-590 forwarding).
    Client(RequestId),
    /// The broker's own producer-id block.
    ProducerIds,
    /// The broker, leading a partition, asks to change its ISR (this request).
    Alter(Request),
}

/// One machine: a combined node (controllers) or a broker-only node, with its disk, its clock
/// and a stand-in for the broker above the metadata side (it forwards the client's requests and
/// asks for producer-id blocks now and then).
struct Node {
    role: Role,
    member: Option<Member>,
    disk: Durable,
    /// This machine's clock is ahead of the world's by this much (it only grows: jumps forward).
    skew: Duration,
    /// A power loss is due: the node stops after performing this many outputs of its next step.
    power_cut: Option<usize>,
    /// The high watermark whose entries the committed checker has seen from this node.
    seen_hw: i64,
    /// Process lives so far (the current one's number).
    starts: u64,
    /// The broker's requests to its metadata side still waiting, by its id for them.
    asks: BTreeMap<RequestId, Origin>,
    next_ask: u64,
    /// When the broker next considers asking for producer ids.
    next_act: Instant,
    /// The broker's state as last seen (to count registrations and unfencings).
    last_state: Option<BrokerState>,
}

/// The admin client: creates topics and deletes some of those it saw created, through any
/// broker (which forwards to the active controller).
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
    local_answers: u64,
    snapshots_taken: u64,
    snapshots_installed: u64,
}

struct World {
    opts: Options,
    prng: Prng,
    profile: Profile,
    now: Instant,
    config: MemberConfig,
    voters: BTreeSet<NodeId>,
    nodes: BTreeMap<NodeId, Node>,
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
    next_request: u64,
    // checkers
    one_leader: OneLeader,
    committed: Committed,
    images: ServedImages,
    acked: AckedTopics,
    liveness: Option<Liveness>,
    registered: Registered,
    local: LocalRequests,
    replication: Replication,
    /// AlterPartition answers by error code (0: accepted).
    alters: BTreeMap<i16, u64>,
    /// Producer-id blocks acknowledged: first id → broker (they must never overlap).
    producer_ids: BTreeMap<i64, BrokerId>,
    anomalies: Vec<Anomaly>,
    counters: Counters,
    trace: u64,
    events: u64,
}

/// The broker-only nodes' ids: 100, 101, ...
const BROKERS: usize = 3;
const FIRST_BROKER: i32 = 100;
/// The admin client's request timeout (it asks the next broker after it).
const CLIENT_TIMEOUT: Duration = Duration::from_ms(5_000);

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
        let config = MemberConfig {
            controller: QuorumControllerConfig {
                snapshot_every: 64,
                // The periodic leader check (preferred leaders, unclean elections, repairs)
                // often enough to happen many times a run (Kafka's default is 300 s).
                leader_check_interval: Duration::from_ms(5_000),
                ..QuorumControllerConfig::default()
            },
            ..MemberConfig::default()
        };
        let now = Instant(0);
        let brokers = (0..BROKERS as i32).map(|i| NodeId(FIRST_BROKER + i));
        let nodes = voters
            .iter()
            .copied()
            .map(|v| (v, Role::Combined))
            .chain(brokers.map(|b| (b, Role::Broker)))
            .map(|(id, role)| {
                let n = Node {
                    role,
                    member: None,
                    disk: Durable::default(),
                    skew: Duration(0),
                    power_cut: None,
                    seen_hw: 0,
                    starts: 0,
                    asks: BTreeMap::new(),
                    next_ask: 0,
                    next_act: now,
                    last_state: None,
                };
                (id, n)
            })
            .collect();
        let safety = Duration::from_ms(opts.safety_ms);
        let first_fault = Duration::from_ms(1 + prng.below(profile.fault_every_ms));
        let deadline = config.broker_request_deadline;
        World {
            prng,
            now,
            config,
            voters: voters.clone(),
            nodes,
            client: Client {
                target: NodeId(FIRST_BROKER),
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
            next_request: 0,
            one_leader: OneLeader::default(),
            committed: Committed::default(),
            images: ServedImages::default(),
            acked: AckedTopics::default(),
            liveness: None,
            registered: Registered::default(),
            local: LocalRequests::new(deadline),
            replication: Replication::new(),
            alters: BTreeMap::new(),
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
                local_answers: 0,
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
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.start(id);
        }
        loop {
            let msg = self.flights.keys().next().copied();
            let timer = self
                .nodes
                .iter()
                .filter_map(|(id, n)| {
                    let m = n.member.as_ref()?;
                    let local = m.poll_timeout();
                    Some((Instant(local.0.saturating_sub(n.skew.0)).max(self.now), *id))
                })
                .min();
            let act = self
                .nodes
                .iter()
                .filter(|(_, n)| n.member.is_some())
                .map(|(id, n)| (n.next_act, *id))
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
                act.map(|a| a.0),
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
                self.member(id).expect("up").tick(local);
                self.drain(id);
            } else if let Some((_, id)) = act.filter(|a| a.0 == next) {
                self.broker_act(id);
            } else {
                self.client_act();
            }
        }
        self.now = self.end_at;
    }

    /// The machine's own clock.
    fn local(&self, id: NodeId) -> Instant {
        self.now + self.nodes[&id].skew
    }

    fn member(&mut self, id: NodeId) -> Option<&mut Member> {
        self.nodes.get_mut(&id).and_then(|n| n.member.as_mut())
    }

    fn start(&mut self, id: NodeId) {
        let local = self.local(id);
        let voters = self.voters.clone();
        let config = self.config.clone();
        let n = self.nodes.get_mut(&id).unwrap();
        assert!(n.member.is_none());
        n.starts += 1;
        let seed = self.opts.seed ^ (id.0 as u64) << 32 ^ n.starts << 48;
        let d = n.disk.clone();
        n.seen_hw = d.start();
        n.asks.clear();
        n.last_state = None;
        n.next_act = self.now + Duration::from_ms(2_000);
        let registration = Registration {
            broker_id: BrokerId(id.0),
            // A new incarnation at every process start (Kafka draws a random UUID).
            incarnation_id: [(n.starts % 256) as u8; 16],
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + id.0 as u16,
            }],
            rack: None,
            log_dir_new: false,
        };
        let member = Member::restore(
            n.role,
            id,
            voters,
            Some(registration),
            config,
            seed,
            local,
            d.state,
            d.snapshot,
            d.log,
        );
        n.member = Some(member);
        self.note(2, id.0 as u64);
        self.say(|| format!("node {} starts", id.0));
        self.drain(id);
    }

    fn crash(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        if n.member.take().is_some() {
            let life = n.starts;
            n.asks.clear();
            self.local.life_ended(id, life);
            let at = self.now + Duration::from_ms(1_000 + self.prng.below(9_000));
            self.schedule(at, Heal::Restart(id));
        }
    }

    fn schedule(&mut self, at: Instant, h: Heal) {
        self.seq += 1;
        self.heals.insert((at, self.seq), h);
    }

    /// Perform a node's outputs in order, watching what they show; a due power loss stops it
    /// partway.
    fn drain(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        let Some(member) = n.member.as_mut() else {
            return;
        };
        let mut outs = Vec::new();
        while let Some(o) = member.poll_output() {
            outs.push(o);
        }
        let life = n.starts;
        let cut = n.power_cut.take();
        for (i, o) in outs.into_iter().enumerate() {
            if cut == Some(i) {
                // The power goes out: what was performed is on disk, nothing after it is.
                self.say(|| format!("node {} loses power after {i} outputs", id.0));
                self.crash(id);
                return;
            }
            match o {
                Output::Raft(r) => self.perform(id, r),
                Output::Image(image) => {
                    self.images
                        .image_handed(id, life, &image, self.committed.log());
                    self.acked.image_seen(id, &image);
                }
                Output::ControllerReply { id: rid, result } => {
                    self.local.reply(id, life, rid, &result);
                    self.counters.local_answers += 1;
                    self.broker_answer(id, rid, result);
                }
                Output::Respond {
                    to,
                    id: rid,
                    result,
                } => {
                    if matches!(result, Err(ControllerError::NotController { .. })) {
                        self.counters.not_controller += 1;
                    }
                    self.send(
                        Addr::Node(id),
                        Addr::Node(to),
                        Payload::Response(rid, result),
                    );
                }
                Output::Request {
                    to,
                    id: rid,
                    request,
                } => {
                    self.send(
                        Addr::Node(id),
                        Addr::Node(to),
                        Payload::Request(rid, request),
                    );
                }
            }
        }
        self.observe(id);
        self.replication.follow(self.committed.log());
    }

    fn perform(&mut self, id: NodeId, r: raft::Output) {
        let n = self.nodes.get_mut(&id).unwrap();
        match &r {
            raft::Output::Committed { high_watermark } => {
                // Every entry it now counts committed is on its disk (appends come first).
                for offset in n.seen_hw.max(n.disk.start())..*high_watermark {
                    let entry = &n.disk.log[(offset - n.disk.start()) as usize];
                    self.committed.entry_committed(id, offset, entry);
                }
                n.seen_hw = n.seen_hw.max(*high_watermark);
            }
            raft::Output::SaveSnapshot(s) => {
                self.counters.snapshots_taken += 1;
                self.committed.snapshot_seen(id, s.id);
            }
            raft::Output::InstallSnapshot(s) => {
                self.counters.snapshots_installed += 1;
                self.committed.snapshot_seen(id, s.id);
                n.seen_hw = n.seen_hw.max(s.id.end_offset);
            }
            _ => {}
        }
        let n = self.nodes.get_mut(&id).unwrap();
        n.disk.perform(&r);
        if let raft::Output::Send { to, message } = r {
            self.send(Addr::Node(id), Addr::Node(to), Payload::Raft(message));
        }
    }

    /// After a node's step: who leads, how far it committed, where its broker stands.
    fn observe(&mut self, id: NodeId) {
        let n = &self.nodes[&id];
        let Some(m) = n.member.as_ref() else { return };
        let leading = m.raft().is_leader().then(|| m.raft().epoch());
        let hw = m.raft().high_watermark();
        let state = m.broker_state().expect("every node here runs a broker");
        let before = n.last_state;
        if let Some(epoch) = leading {
            self.one_leader.leader_seen(epoch, id);
            if let Some(l) = &mut self.liveness {
                l.leader_seen(self.now);
            }
        }
        if let Some(l) = &mut self.liveness {
            l.high_watermark_seen(self.now, hw);
            self.registered.seen(id, state, m.image());
        }
        match (before, state) {
            (Some(BrokerState::Starting) | None, BrokerState::Fenced { .. }) => {
                self.counters.registrations += 1
            }
            (b, BrokerState::Unfenced { .. })
                if !matches!(b, Some(BrokerState::Unfenced { .. })) =>
            {
                self.counters.unfenced += 1
            }
            _ => {}
        }
        if before != Some(state) {
            self.say(|| format!("node {}'s broker: {state:?}", id.0));
        }
        self.nodes.get_mut(&id).unwrap().last_state = Some(state);
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
        match (from, to, payload) {
            (_, Addr::Client, Payload::ClientResponse(rid, result)) => {
                self.client_answer(rid, result)
            }
            (Addr::Client, Addr::Node(id), Payload::ClientRequest(rid, req)) => {
                if self.nodes[&id].member.is_some() {
                    self.ask(id, Origin::Client(rid), req);
                }
            }
            (Addr::Node(src), Addr::Node(id), payload) => {
                let local = self.local(id);
                let Some(m) = self.member(id) else { return };
                match payload {
                    Payload::Raft(msg) => m.handle(local, src, msg),
                    Payload::Request(rid, req) => m.controller_request(local, src, rid, req),
                    Payload::Response(rid, result) => m.controller_reply(local, rid, result),
                    p => unreachable!("{p:?} between nodes"),
                }
                self.drain(id);
            }
            (from, to, p) => unreachable!("{p:?} from {from:?} to {to:?}"),
        }
    }

    /// The node's broker asks its metadata side.
    fn ask(&mut self, id: NodeId, origin: Origin, request: Request) {
        let local = self.local(id);
        let now = self.now;
        let n = self.nodes.get_mut(&id).unwrap();
        n.next_ask += 1;
        let rid = RequestId(n.next_ask);
        n.asks.insert(rid, origin);
        let life = n.starts;
        self.local.asked(id, life, rid, &request, now);
        self.member(id)
            .expect("up")
            .broker_request(local, rid, request);
        self.drain(id);
    }

    /// A node's broker now and then wants a producer-id block (once unfenced, one at a time).
    fn broker_act(&mut self, id: NodeId) {
        self.note(4, id.0 as u64);
        let n = self.nodes.get_mut(&id).unwrap();
        n.next_act = self.now + Duration::from_ms(2_000);
        let waiting = n.asks.values().any(|o| matches!(o, Origin::ProducerIds));
        let state = n.member.as_ref().and_then(|m| m.broker_state());
        if let (false, Some(BrokerState::Unfenced { epoch })) = (waiting, state) {
            if self.prng.ratio(1, 4) {
                let request = Request::AllocateProducerIds {
                    broker_id: BrokerId(id.0),
                    broker_epoch: epoch,
                };
                self.ask(id, Origin::ProducerIds, request);
            }
        }
        let n = &self.nodes[&id];
        let altering = n.asks.values().any(|o| matches!(o, Origin::Alter(_)));
        if let (false, Some(BrokerState::Unfenced { epoch })) = (altering, state) {
            if self.prng.ratio(2, 3) {
                if let Some(request) = self.alter_request(id, epoch) {
                    self.ask(id, Origin::Alter(request.clone()), request);
                }
            }
        }
    }

    /// An AlterPartition as the leader of one of the partitions node `id` leads in its image
    /// would send it: drop a follower from the ISR (it lags) or add a replica that is not in it
    /// (it caught up), with the epochs of its image, or now and then stale ones (an old leader
    /// or partition epoch, an old broker epoch for the one it adds), as a delayed or repeated
    /// request would carry.
    fn alter_request(&mut self, id: NodeId, epoch: BrokerEpoch) -> Option<Request> {
        let me = BrokerId(id.0);
        let image = self.nodes[&id].member.as_ref()?.image().clone();
        let led: Vec<_> = image
            .topics()
            .iter()
            .flat_map(|(t, ti)| ti.partitions.iter().map(move |(p, r)| (*t, *p, r)))
            .filter(|(_, _, r)| r.leader == Some(me) && r.replicas.len() > 1)
            .collect();
        if led.is_empty() {
            return None;
        }
        let (topic_id, partition, r) = led[self.prng.below(led.len() as u64) as usize];
        let epoch_of = |b: BrokerId| image.broker(b).map_or(BrokerEpoch(-1), |x| x.broker_epoch);
        let mut isr: Vec<(BrokerId, BrokerEpoch)> =
            r.isr.iter().map(|b| (*b, epoch_of(*b))).collect();
        let outside: Vec<BrokerId> = r
            .replicas
            .iter()
            .copied()
            .filter(|b| !r.isr.contains(b) && image.broker(*b).is_some_and(|x| !x.fenced))
            .collect();
        let followers: Vec<BrokerId> = r.isr.iter().copied().filter(|b| *b != me).collect();
        if !outside.is_empty() && (followers.is_empty() || self.prng.ratio(1, 2)) {
            let b = outside[self.prng.below(outside.len() as u64) as usize];
            isr.push((b, epoch_of(b)));
        } else if !followers.is_empty() {
            let b = followers[self.prng.below(followers.len() as u64) as usize];
            isr.retain(|(x, _)| *x != b);
        } else {
            return None;
        }
        let (mut leader_epoch, mut partition_epoch) = (r.leader_epoch, r.partition_epoch);
        if self.prng.ratio(1, 4) {
            match self.prng.below(3) {
                0 => leader_epoch -= 1,
                1 => partition_epoch -= 1,
                _ => {
                    if let Some(last) = isr.last_mut() {
                        last.1 = BrokerEpoch(last.1 .0 - 1);
                    }
                }
            }
        }
        Some(Request::AlterPartition {
            broker_id: me,
            broker_epoch: epoch,
            topic_id,
            partition,
            leader_epoch,
            partition_epoch,
            new_isr: isr,
            successor: None,
        })
    }

    /// The node handed its broker the answer to `rid`.
    fn broker_answer(
        &mut self,
        id: NodeId,
        rid: RequestId,
        result: Result<Reply, ControllerError>,
    ) {
        let Some(origin) = self.nodes.get_mut(&id).unwrap().asks.remove(&rid) else {
            return; // the local_requests checker has said what is wrong
        };
        match origin {
            Origin::Client(crid) => {
                self.send(
                    Addr::Node(id),
                    Addr::Client,
                    Payload::ClientResponse(crid, result),
                );
            }
            Origin::ProducerIds => match result {
                Ok(Reply::AllocateProducerIds { first, count }) => {
                    self.counters.producer_blocks += 1;
                    let broker = BrokerId(id.0);
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
                Ok(other) => unreachable!("local_requests would have caught {other:?}"),
                Err(_) => {}
            },
            Origin::Alter(request) => {
                let code = result.as_ref().err().map_or(0, |e| e.code());
                *self.alters.entry(code).or_default() += 1;
                let Request::AlterPartition {
                    broker_id,
                    topic_id,
                    partition,
                    leader_epoch,
                    partition_epoch,
                    new_isr,
                    ..
                } = request
                else {
                    unreachable!("an Alter origin holds its AlterPartition")
                };
                if let Ok(Reply::AlterPartition {
                    leader,
                    leader_epoch: le,
                    partition_epoch: pe,
                    isr,
                }) = result
                {
                    self.replication.alter_acked(AckedAlter {
                        broker: broker_id,
                        topic: topic_id,
                        partition,
                        leader_epoch,
                        partition_epoch,
                        new_isr,
                        reply_leader: leader,
                        reply_leader_epoch: le,
                        reply_partition_epoch: pe,
                        reply_isr: isr,
                    });
                }
            }
        }
    }

    fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// The node the client asks after a timeout.
    fn next_target(&self, current: NodeId) -> NodeId {
        let all: Vec<NodeId> = self.nodes.keys().copied().collect();
        let i = all.iter().position(|v| *v == current).unwrap_or(0);
        all[(i + 1) % all.len()]
    }

    fn client_act(&mut self) {
        self.note(5, 0);
        let now = self.now;
        self.client.next_at = now + Duration::from_ms(500 + self.prng.below(1_000));
        if let Some((_, sent, _)) = &self.client.in_flight {
            if now < *sent + CLIENT_TIMEOUT {
                return;
            }
            self.client.in_flight = None;
            self.client.target = self.next_target(self.client.target);
        }
        let request = if !self.client.created.is_empty() && self.prng.ratio(1, 4) {
            let k = self.prng.below(self.client.created.len() as u64) as usize;
            let name = self.client.created.swap_remove(k);
            self.acked.delete_invoked(&name, now);
            Request::DeleteTopic { name }
        } else {
            self.client.next_topic += 1;
            // Replication factors 1 to 5 (more than the unfenced brokers is refused); one topic
            // in four allows unclean leader elections.
            let mut configs = std::collections::BTreeMap::new();
            if self.prng.ratio(1, 4) {
                configs.insert("unclean.leader.election.enable".into(), "true".into());
            }
            Request::CreateTopic {
                name: format!("t{}", self.client.next_topic),
                partitions: 1 + self.prng.below(4) as i32,
                replication_factor: 1 + self.prng.below(5) as i32,
                configs,
            }
        };
        let rid = self.new_request();
        self.client.in_flight = Some((rid, now, request.clone()));
        let target = self.client.target;
        self.send(
            Addr::Client,
            Addr::Node(target),
            Payload::ClientRequest(rid, request),
        );
    }

    fn client_answer(&mut self, rid: RequestId, result: Result<Reply, ControllerError>) {
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
                // The topic's records were committed before the controller answered, so they
                // are in the committed log as far as the checker knows it now.
                let committed = self.committed.log().len() as i64;
                self.acked.create_acked(name, topic_id, committed);
                self.client.created.push(name.clone());
            }
            (Request::DeleteTopic { .. }, Ok(Reply::DeleteTopic)) => {
                self.counters.acked_deletes += 1;
            }
            (_, Err(_)) => {}
            (r, Ok(a)) => unreachable!("{a:?} answers {r:?}"),
        }
    }

    fn addrs(&self) -> Vec<Addr> {
        let mut out: Vec<Addr> = self.nodes.keys().map(|id| Addr::Node(*id)).collect();
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
                let a = Addr::Node(self.pick_controller());
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
                let a = Addr::Node(self.pick_controller());
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
                self.nodes.get_mut(&id).unwrap().power_cut = Some(after);
            }
            6 => {
                let id = self.pick_controller();
                let jump = Duration::from_ms(500 + self.prng.below(15_000));
                self.say(|| format!("clock of controller {} jumps {} ms", id.0, jump.as_ms()));
                let n = self.nodes.get_mut(&id).unwrap();
                n.skew = Duration(n.skew.0 + jump.0);
            }
            _ => {
                let id = NodeId(FIRST_BROKER + self.prng.below(BROKERS as u64) as i32);
                self.say(|| format!("crash broker {}", id.0));
                self.crash(id);
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
                if self.nodes[&id].member.is_none() {
                    self.start(id);
                }
            }
        }
    }

    /// The liveness phase starts: every link heals, every node comes up, no more faults or
    /// losses.
    fn heal_all(&mut self) {
        self.note(8, 0);
        self.say(|| "heal everything: liveness phase".into());
        self.healed = true;
        self.links.clear();
        self.heals.clear();
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.nodes.get_mut(&id).unwrap().power_cut = None;
            if self.nodes[&id].member.is_none() {
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
        anomalies.extend(std::mem::take(&mut self.local.anomalies));
        self.replication.follow(self.committed.log());
        let acked_alters = self.replication.acked();
        self.replication.finish();
        anomalies.extend(std::mem::take(&mut self.replication.anomalies));
        anomalies.extend(self.local.finish(self.end_at));
        if let Some(l) = &self.liveness {
            anomalies.extend(l.finish());
            let all: Vec<NodeId> = self.nodes.keys().copied().collect();
            anomalies.extend(self.registered.finish(&all));
        }
        let c = &self.counters;
        let recovered = self
            .liveness
            .as_ref()
            .and_then(|l| l.recovered_at())
            .map(|t| (t.0 - self.heal_at.0) / 1_000_000);
        let summary = vec![
            format!(
                "{} combined nodes, {} broker-only nodes; {} epochs had a leader; committed log {} entries; {} snapshots taken, {} installed",
                self.opts.nodes,
                BROKERS,
                self.one_leader.epochs_led(),
                self.committed.log().len(),
                c.snapshots_taken,
                c.snapshots_installed
            ),
            format!(
                "client: {} creates and {} deletes acknowledged; brokers: {} registrations, {} unfencings, {} producer-id blocks; {} local requests answered; {} NOT_CONTROLLER answers",
                c.acked_creates, c.acked_deletes, c.registrations, c.unfenced, c.producer_blocks, c.local_answers, c.not_controller
            ),
            format!(
                "network: {} messages, {} lost; faults: {:?}; images compared: {}",
                c.messages, c.lost, c.faults, self.images.compared()
            ),
            format!("after the heal, a leader and a new commit in {recovered:?} ms"),
            format!(
                "replication: {acked_alters} alters-accepted, {} elections, {} isr-changes, {} unclean-elections, {} isr-checks; AlterPartition answers by error code {:?}",
                self.replication.elections,
                self.replication.isr_changes,
                self.replication.unclean,
                self.replication.checks,
                self.alters
            ),
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
