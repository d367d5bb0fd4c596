//! The cluster world: N combined nodes, each a metadata quorum [`Member`] and a real
//! [`Broker`] in KRaft mode with its own simulated disks, the workload's gregor-client clients,
//! the network between all of them, the fault schedule, and the event loop that drives it all in
//! virtual time. See the module docs of [`crate::cluster`].
//!
//! A node is wired as `gregor serve` wires its two halves (net/src/quorum/driver.rs and
//! net/src/runtime.rs): every committed image the member hands out goes to the broker as
//! [`Input::Metadata`], every [`Output::Controller`] of the broker goes to the member as a
//! broker request, and the member's answer comes back as [`Input::ControllerReply`]. The
//! member's storage outputs are performed in order on its [`Durable`] metadata disk (each one is
//! fsynced before the next, as the real driver does); the broker's go to its [`SimDisk`] through
//! [`crate::node::Node`], with the same write and fsync timing and the same crash model as the
//! single-broker world.

use super::acked_n;
use super::check::{self as ccheck, Appended, Observations, Refused, Served};
use super::durability;
use super::offsets::{self as coffsets, Committer, InFlight, Offsets};
use super::producer_state;
use super::replicated::{self, LeaderAppend, Replicated, Truncation};
use crate::check;
use crate::clients::{Us, MS, TOPIC};
use crate::history::{Event, History, Ms, Outcome, Part, Value};
use crate::network::{Endpoint, Network};
use crate::node::{describe, Node, EPOCH_NS};
use crate::profile::Profile as DiskProfile;
use crate::quorum::check::committed::Committed;
use crate::quorum::check::one_leader::OneLeader;
use crate::quorum::check::replication::Replication;
use crate::quorum::check::served_images::ServedImages;
use bytes::Bytes;
use gregor_client::{
    Acks, AdminOp, AdminResult, Client, Config as ClientConfig, Delivery, Input as CInput,
    NewTopic, NodeId as CNode, OffsetReset, Output as COutput, ProducerRecord, RecordId, SeekTo,
};
use gregor_core::cluster::member::Output as MOutput;
use gregor_core::cluster::records::Endpoint as RegEndpoint;
use gregor_core::cluster::{
    BrokerId, ControllerError, Durable, Member, MemberConfig, MetadataImage,
    QuorumControllerConfig, Registration, Reply, Request as CtlRequest, RequestId, Role,
};
use gregor_core::files::SEGMENT_HEADER_BYTES;
use gregor_core::io::{Input, Output, Request, StorageRequest};
use gregor_core::prng::Prng;
use gregor_core::raft::{self, Message, NodeId};
use gregor_core::wire;
use gregor_core::{Config, ConnId, Durability, Instant};
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod mover;
mod replica;
mod secure;
mod stop;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Combined nodes (1, 3 or 5).
    pub nodes: usize,
    /// The safety phase (faults on), simulated ms.
    pub safety_ms: u64,
    /// The liveness phase (faults healed), simulated ms. After it the producers stop, their
    /// last records settle, and an auditor reads every partition from the start.
    pub liveness_ms: u64,
    pub trace: bool,
    /// Replicated topics (issue 10): the workload's topic is created by an admin client with a
    /// replication factor drawn from 1..=min(nodes, 5) and a `min.insync.replicas` drawn up to
    /// it, and producers use acks 0, 1, N (2 or 3) and all. Off: the topic is auto-created with
    /// one replica.
    pub replication: bool,
    /// The brokers' durability policy (group commit by default); None: drawn per seed
    /// ([`durability::draw`]: `none` in about one replicated seed of three).
    pub durability: Option<Durability>,
    /// The ACL workload (issue 14): brokers with an authorizer, clients logging in with SASL,
    /// ACLs changing during the run, and the `acl-*` checkers ([`secure`]).
    pub acls: bool,
    /// The reassignment workload (issue 10 item 6, with --replication): an operator client moves
    /// partitions while faults are active, judged by `reassign-complete` and `reassign-safe`
    /// ([`reassign`](super::reassign)). Off by default until the lost moves it finds around a
    /// controller failover (seeds 78, 544 of 3 nodes, 62 of 5) are fixed.
    pub reassign: bool,
}

impl Options {
    /// The default length: 60 simulated seconds, 35 with faults and 25 healed (a broker that
    /// restarted near the heal may register only once its previous incarnation's session
    /// lapsed: `broker.session.timeout.ms`, 9 s).
    pub fn new(seed: u64, nodes: usize) -> Options {
        Options {
            seed,
            nodes,
            safety_ms: 35_000,
            liveness_ms: 25_000,
            trace: false,
            replication: false,
            durability: Some(Durability::GroupCommit),
            acls: false,
            reassign: false,
        }
    }
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub profile: String,
    pub summary: Vec<String>,
    /// Every checker's findings, as `name: detail`.
    pub anomalies: Vec<String>,
    pub trace_hash: u64,
    pub events: u64,
    pub history: History,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.anomalies.is_empty()
    }
}

/// The fault kinds, in the order of [`Profile::weights`]. The last four are drawn only for
/// the replicated workload (so the other seeds replay as before): a slow node (its data disk
/// takes 50–500 ms longer per operation for a while, so it falls behind as a follower and may
/// leave the ISR), a node restarted with an empty data disk (KIP-903: it must come back as a
/// new, empty replica and never be elected with its old broker epoch), a power loss of every
/// node at once, and a crash of the active controller (a failover while leaders' ISR changes
/// are in flight: their AlterPartition requests must be retried against the new controller).
const FAULTS: [&str; 12] = [
    "pair-cut",
    "one-way",
    "clog",
    "isolate",
    "crash",
    "power-loss",
    "clock-jump",
    "client-cut",
    "slow-node",
    "empty-disk",
    "power-loss-all",
    "controller-crash",
];

/// The per-seed fault profile.
#[derive(Clone, Debug)]
struct Profile {
    fault_every_ms: u64,
    /// Per-mille of node-to-node messages lost.
    loss_permille: u64,
    weights: [u64; 12],
    /// Workload: partitions of the topic, producers (acks, idempotent), readers.
    partitions: i32,
    producers: Vec<(Acks, bool)>,
    readers: usize,
    produce_gap_ms: u64,
    /// The replicated workload: replication factor and `min.insync.replicas`.
    replicas: i16,
    min_insync: i16,
}

impl Profile {
    fn draw(prng: &mut Prng, nodes: usize, replication: bool) -> Profile {
        let mut weights = [0; 12];
        let drawn = if replication { 12 } else { 8 };
        for w in &mut weights[..drawn] {
            // Each fault kind is on in about three seeds of four (FoundationDB's BUGGIFY idea).
            *w = if prng.ratio(3, 4) {
                1 + prng.below(4)
            } else {
                0
            };
        }
        let producers: Vec<(Acks, bool)> = (0..1 + prng.below(3))
            .map(|_| match prng.below(if replication { 4 } else { 3 }) {
                0 => (Acks::All, true),
                1 => (Acks::All, false),
                2 => (Acks::Leader, false),
                _ => (Acks::None, false),
            })
            .collect();
        let (replicas, min_insync) = if replication {
            let rf = 1 + prng.below(nodes.min(5) as u64) as i16;
            (rf, 1 + prng.below(rf as u64) as i16)
        } else {
            (1, 1)
        };
        // acks=N (issue 10, item 4): some plain producers wait for N replicas instead, drawn
        // from a copy of the generator so every other choice of a seed stays as it was.
        let mut side = prng.clone();
        let producers = (producers.into_iter())
            .map(|(acks, idempotent)| match side.below(3) {
                0 if replication && !idempotent && replicas >= 2 => {
                    let n = 2 + side.below(2) as i16;
                    (Acks::Replicas(n.min(replicas) as u8), false)
                }
                _ => (acks, idempotent),
            })
            .collect();
        Profile {
            fault_every_ms: 500 + prng.below(4_000),
            loss_permille: [0, 0, 5, 20][prng.below(4) as usize],
            weights,
            partitions: 1 + prng.below(6) as i32,
            producers,
            readers: 1 + prng.below(2) as usize,
            produce_gap_ms: 5 + prng.below(60),
            replicas,
            min_insync,
        }
    }

    fn describe(&self) -> String {
        let on: Vec<String> = FAULTS
            .iter()
            .zip(self.weights)
            .filter(|(_, w)| *w > 0)
            .map(|(n, w)| format!("{n}x{w}"))
            .collect();
        let producers: Vec<String> = self
            .producers
            .iter()
            .map(|(a, i)| format!("acks={}{}", a.wire(), if *i { " idempotent" } else { "" }))
            .collect();
        format!(
            "a fault every ~{} ms; loss {}‰ between nodes; faults: {}\nworkload: {} partitions, replication factor {}, min.insync.replicas {}; producers [{}] a record every ~{} ms; {} readers",
            self.fault_every_ms,
            self.loss_permille,
            on.join(" "),
            self.partitions,
            self.replicas,
            self.min_insync,
            producers.join(", "),
            self.produce_gap_ms,
            self.readers
        )
    }
}

/// A message between two nodes' metadata sides.
#[derive(Clone, Debug)]
enum Peer {
    Raft(Message),
    Request(RequestId, CtlRequest),
    Response(RequestId, Result<Reply, ControllerError>),
}

#[derive(Debug)]
enum Ev {
    HealAll,
    Fault,
    Restart(usize),
    HealLink(Endpoint, Endpoint),
    Peer {
        from: usize,
        to: usize,
        msg: Peer,
    },
    Disk {
        node: usize,
        incarnation: u64,
        op: gregor_core::OpId,
        request: StorageRequest,
    },
    BrokerTimer {
        node: usize,
        incarnation: u64,
    },
    MemberTimer {
        node: usize,
        incarnation: u64,
    },
    /// A client's connection attempt completes (or is refused when the process is gone).
    Connected(u64),
    /// A connection attempt that got no answer (or an RST) fails at the client.
    ConnectFailed(usize, CNode),
    ToBroker(u64, Box<Request>),
    ToClient(u64, Bytes),
    /// The client's end of a connection learns it is gone.
    Reset(u64),
    /// The broker's end of a connection learns the client closed it.
    Closed(u64),
    ClientTimer(usize),
    Produce(usize),
    /// Replica fetch (connection, correlation id) is due to have been answered.
    ReplicaTimeout(u64, i32),
    /// The creator client asks for the workload's topic (again).
    CreateTopic(usize),
    /// The committer's turn to commit or read back an offset.
    Commit(usize),
    /// The mover's turn to move a partition ([`mover`]).
    Reassign,
    /// The controlled-shutdown fault is due ([`stop`]).
    ControlledShutdown,
    /// Node `node`'s controlled shutdown has taken too long: it stops anyway.
    StopTimeout {
        node: usize,
        incarnation: u64,
    },
    /// A prober's turn ([`secure`]).
    Probe(usize),
    /// The ACL operator's turn ([`secure`]).
    AclChange,
    /// An input for node `node`'s broker, if the process that caused it still runs.
    BrokerInput {
        node: usize,
        incarnation: u64,
        input: Box<Input>,
    },
}

/// A partition's leader and leader epoch, as an image names them.
type Term = (Option<i32>, i32);

/// A produce or fetch a broker read: when, the leader of each partition its image named then,
/// and a produce's values per partition.
struct Asked {
    received: Ms,
    leaders: BTreeMap<Part, Option<i32>>,
    values: Vec<(Part, Vec<Value>)>,
}

/// One machine: the broker process with its data disk (and clock), and the metadata side.
struct Machine {
    node: Node,
    member: Option<Member>,
    meta: Durable,
    /// A power loss is due: the machine stops after performing this many of the member's outputs.
    power_cut: Option<usize>,
    member_timer: Option<Us>,
    /// The high watermark whose entries the committed checker has seen from this node.
    seen_hw: i64,
    /// Process lives so far.
    starts: u64,
    /// The last image handed to the running broker.
    image: Option<Arc<MetadataImage>>,
    /// A slow disk: until this instant every data-disk operation waits this much longer.
    slow: (Us, Us),
    /// The data directory is new (a first start or a replaced disk) and no registration has
    /// told the controller yet: the marker a broker keeps in its data directory (Kafka's
    /// `meta.properties`), written only once a registration saying "new" is answered. Without
    /// it a broker that crashed before registering would next find its (re-created)
    /// directory not empty and hide the loss (found by seed 39).
    dir_unreported: bool,
    /// Asked to stop cleanly; it stops anyway at this instant ([`stop`]).
    stop_by: Option<Us>,
}

enum Role2 {
    Producer {
        index: usize,
        acks: Acks,
        idempotent: bool,
        /// Sent and not yet reported: record id → (partition, value).
        waiting: BTreeMap<RecordId, (Part, Value)>,
    },
    Reader {
        index: usize,
    },
    Auditor {
        records: BTreeMap<Part, Vec<(i64, Value)>>,
        stopped: bool,
    },
    /// Creates the replicated workload's topic, then the workload starts.
    Creator,
    /// Commits and reads back a group's offsets while coordinators crash ([`coffsets`]).
    Committer(Committer),
    /// Reassigns the workload's partitions while faults are active ([`mover`]).
    Mover,
    /// Tries what the ACLs allow or deny ([`secure`]).
    Prober,
}

struct Cl {
    client: Client,
    role: Role2,
    timer: Option<Us>,
}

struct World {
    opts: Options,
    prng: Prng,
    profile: Profile,
    disk_profile: DiskProfile,
    now: Us,
    /// Boxed: an event is large, and the map moves its values around as it grows.
    queue: BTreeMap<(Us, u64), Box<Ev>>,
    seq: u64,
    machines: Vec<Machine>,
    voters: BTreeSet<NodeId>,
    member_config: MemberConfig,
    net: Network,
    clients: Vec<Cl>,
    /// Connections: id → (client, the client's name for the node); and back.
    conn_of: BTreeMap<(usize, CNode), u64>,
    conn_owner: BTreeMap<u64, (usize, CNode)>,
    healed: bool,
    end_at: Us,
    stopping: bool,
    next_value: Value,
    history: History,
    /// Every value: (producer, partition, timestamp) and how many produce requests carried it.
    sent: BTreeMap<Value, (usize, Part, i64, u32)>,
    /// Produce and fetch requests read by a broker and not answered, by (conn, correlation id).
    asked: BTreeMap<(u64, i32), Asked>,
    /// Per (node, partition): the highest high watermark its running broker exposed.
    hw: BTreeMap<(usize, Part), i64>,
    obs: Observations,
    /// What the replication checkers judge, and the replay of the committed metadata log that
    /// checks the controller's ISR decisions (fenced members, stale broker epochs, unclean
    /// elections on record).
    repl: Replicated,
    replication: Replication,
    /// The committer's commits and fetches, and the leader of its `__consumer_offsets`
    /// partition by leader epoch, as images named it (the coordinator moves).
    offsets: Offsets,
    offsets_leaders: BTreeMap<i32, Option<i32>>,
    /// Per (node, partition): the (leader, leader epoch) its image named when its high
    /// watermark was last judged.
    hw_term: BTreeMap<(usize, Part), Option<Term>>,
    /// Per (node, partition): the log end its running broker last had (a drop is a truncation).
    ends: BTreeMap<(usize, Part), i64>,
    /// Whether the broker being pumped is handling a client's request (its appends are a
    /// leader's).
    serving: bool,
    one_leader: OneLeader,
    committed: Committed,
    images: ServedImages,
    failures: Vec<String>,
    counters: BTreeMap<&'static str, u64>,
    /// Replica connections and fetches in flight.
    replicas: replica::Replicas,
    trace: u64,
    events: u64,
    /// The controlled-shutdown fault's own randomness and cadence.
    stops: stop::Stops,
    /// `producer-state`: each truncation's producer state against the log's.
    producer_checks: producer_state::Checks,
    /// The mover's randomness and cadence, and the reassignments it saw.
    movers: mover::Movers,
    /// The ACL workload, with `--acls`.
    secure: Option<secure::Secure>,
}

/// How long a connection attempt that gets no answer takes to fail.
const CONNECT_TIMEOUT: Us = 3_000 * MS;
/// How long after the liveness phase the producers' last records may take to settle, and then
/// the auditor to read everything.
const DRAIN: Us = 40_000 * MS;

fn port_of(index: usize) -> u16 {
    9001 + index as u16
}

fn value_of(b: &Option<Bytes>) -> Option<Value> {
    let b = b.as_ref()?;
    Some(u64::from_be_bytes(b.as_ref().try_into().ok()?))
}

/// Every record value in `data` (whole record batches).
fn values_in(data: &Bytes) -> Vec<Value> {
    let mut b = data.clone();
    let Ok(sets) = RecordBatchDecoder::decode_all(&mut b) else {
        return Vec::new();
    };
    sets.iter()
        .flat_map(|s| s.records.iter().filter_map(|r| value_of(&r.value)))
        .collect()
}

/// The leader epochs (`partitionLeaderEpoch`) stamped on the record batches in `data`.
fn leader_epochs_in(data: &Bytes) -> BTreeSet<i32> {
    let mut b = data.clone();
    let Ok(sets) = RecordBatchDecoder::decode_all(&mut b) else {
        return BTreeSet::new();
    };
    sets.iter()
        .flat_map(|s| s.records.iter().map(|r| r.partition_leader_epoch))
        .collect()
}

/// Run one seed.
pub fn run(opts: &Options) -> Report {
    assert!(opts.nodes >= 1, "a cluster has a node");
    let mut w = World::new(opts.clone());
    w.run();
    w.finish()
}

impl World {
    fn new(opts: Options) -> World {
        let mut prng = Prng::new(opts.seed ^ 0xc105_7e20_0000_0001);
        let profile = Profile::draw(&mut prng, opts.nodes, opts.replication);
        let mut disk_profile = DiskProfile::draw(&mut Prng::new(opts.seed ^ 0xd15c));
        // Group commit, or (replicated seeds only) none: the checkers judge by the policy
        // drawn ([`durability`]). Interval policies are not drawn here.
        disk_profile.durability =
            (opts.durability).unwrap_or_else(|| durability::draw(opts.seed, opts.replication));
        disk_profile.fsync_fail_per_mille = 0;
        let voters: BTreeSet<NodeId> = (1..=opts.nodes as i32).map(NodeId).collect();
        let member_config = MemberConfig {
            controller: QuorumControllerConfig {
                snapshot_every: 64,
                ..QuorumControllerConfig::default()
            },
            ..MemberConfig::default()
        };
        let machines = (0..opts.nodes)
            .map(|_| Machine {
                node: Node::new(prng.below(201) as i64 - 100),
                member: None,
                meta: Durable::default(),
                power_cut: None,
                member_timer: None,
                seen_hw: 0,
                starts: 0,
                image: None,
                slow: (0, 0),
                dir_unreported: true,
                stop_by: None,
            })
            .collect();
        let net = Network::new((0, 1 + prng.below(15)));
        let heal_at = opts.safety_ms * MS;
        let end_at = heal_at + opts.liveness_ms * MS;
        let mut w = World {
            prng,
            profile,
            disk_profile,
            now: 0,
            queue: BTreeMap::new(),
            seq: 0,
            machines,
            voters,
            member_config,
            net,
            clients: Vec::new(),
            conn_of: BTreeMap::new(),
            conn_owner: BTreeMap::new(),
            healed: false,

            end_at,
            stopping: false,
            next_value: 1,
            history: History::new(true),
            sent: BTreeMap::new(),
            asked: BTreeMap::new(),
            hw: BTreeMap::new(),
            obs: Observations::default(),
            repl: Replicated::default(),
            offsets: Offsets::default(),
            offsets_leaders: BTreeMap::new(),
            replication: Replication::new(),
            ends: BTreeMap::new(),
            hw_term: BTreeMap::new(),
            serving: false,
            one_leader: OneLeader::default(),
            committed: Committed::default(),
            images: ServedImages::default(),
            failures: Vec::new(),
            counters: BTreeMap::new(),
            replicas: replica::Replicas::default(),
            trace: 0xcbf2_9ce4_8422_2325,
            events: 0,
            stops: stop::Stops::draw(opts.seed, opts.replication),
            producer_checks: producer_state::Checks::default(),
            movers: mover::Movers::draw(opts.seed, opts.nodes, opts.replication && opts.reassign),
            secure: opts.acls.then(|| secure::Secure::new(opts.seed)),
            opts,
        };
        let first = 1 + w.prng.below(w.profile.fault_every_ms);
        w.schedule(first * MS, Ev::Fault);
        w.schedule(heal_at, Ev::HealAll);
        w.schedule_stops();
        w
    }

    fn schedule(&mut self, at: Us, ev: Ev) {
        self.seq += 1;
        self.queue
            .insert((at.max(self.now), self.seq), Box::new(ev));
    }

    fn note(&mut self, what: u64, detail: u64) {
        for x in [self.now, what, detail] {
            self.trace = (self.trace ^ x).wrapping_mul(0x0100_0000_01b3);
        }
        self.events += 1;
    }

    fn say(&self, f: impl FnOnce() -> String) {
        if self.opts.trace {
            println!("{:>10.3}ms {}", self.now as f64 / 1000.0, f());
        }
    }

    fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    fn ms(&self) -> Ms {
        self.now / MS
    }

    /// The clients' clock (they run on healthy machines).
    fn client_now(&self) -> Instant {
        Instant((EPOCH_NS as u64) + self.now * 1_000)
    }

    fn latency(&mut self) -> Us {
        self.net.latency(&mut self.prng)
    }

    // ------------------------------------------------------------------ the run

    fn run(&mut self) {
        for i in 0..self.machines.len() {
            self.start(i);
        }
        if self.opts.replication {
            let config = self.client_config("creator".into());
            self.add_client(config, Role2::Creator);
            self.create_topic(self.clients.len() - 1);
        } else {
            self.add_clients();
        }
        self.start_acl_workload();
        while let Some((&(at, seq), _)) = self.queue.iter().next() {
            let limit = if self.stopping {
                self.end_at + DRAIN
            } else {
                self.end_at
            };
            if at > limit {
                if self.stopping {
                    break;
                }
                self.now = self.end_at;
                self.stop_producing();
                continue;
            }
            let ev = self.queue.remove(&(at, seq)).expect("first");
            assert!(at >= self.now, "virtual time never goes back");
            self.now = at;
            self.dispatch(*ev);
            if !self.stopping && self.now >= self.end_at {
                self.stop_producing();
            }
            if self.stopping && self.drained() {
                break;
            }
        }
    }

    fn add_clients(&mut self) {
        let producers = self.profile.producers.clone();
        for (index, (acks, idempotent)) in producers.into_iter().enumerate() {
            let config = ClientConfig {
                acks,
                enable_idempotence: idempotent,
                // Without idempotence, order within a partition needs one request in flight.
                in_flight_requests_per_connection_max: if idempotent { 5 } else { 1 },
                linger_ms: self.prng.below(5),
                ..self.client_config(format!("producer-{index}"))
            };
            self.add_client(
                config,
                Role2::Producer {
                    index,
                    acks,
                    idempotent,
                    waiting: BTreeMap::new(),
                },
            );
            let c = self.clients.len() - 1;
            let at = self.now + (100 + self.prng.below(1_000)) * MS;
            self.schedule(at, Ev::Produce(c));
        }
        for index in 0..self.profile.readers {
            let config = self.client_config(format!("reader-{index}"));
            self.add_client(config, Role2::Reader { index: 100 + index });
        }
        if self.opts.replication {
            let config = self.client_config("committer".into());
            self.add_client(config, Role2::Committer(Committer::default()));
            let c = self.clients.len() - 1;
            self.schedule(self.now + 500 * MS, Ev::Commit(c));
            self.add_mover();
        }
    }

    /// The committer's turn ([`coffsets`]): with nothing in flight, commit the next offset or
    /// read the committed one back, in turn; then come back a little later. It stops with the
    /// producers.
    fn commit_step(&mut self, c: usize) {
        if self.stopping {
            return;
        }
        let gap = 100 + self.prng.below(300);
        self.schedule(self.now + gap * MS, Ev::Commit(c));
        let t = self.ms();
        let Role2::Committer(k) = &mut self.clients[c].role else {
            unreachable!("only the committer commits")
        };
        if k.in_flight.is_some() {
            return;
        }
        let tp = (TOPIC.to_string(), coffsets::PART);
        let group = coffsets::GROUP.to_string();
        k.sent += 1;
        let op = if k.sent % 2 == 1 {
            k.next += 1;
            k.in_flight = Some(InFlight::Commit(self.offsets.commits.len()));
            self.offsets.commits.push(coffsets::Commit {
                group: group.clone(),
                part: coffsets::PART,
                offset: k.next,
                sent: t,
                acked: None,
            });
            AdminOp::CommitGroupOffsets {
                group,
                offsets: vec![(tp, k.next)],
            }
        } else {
            k.in_flight = Some(InFlight::Fetch(t));
            AdminOp::ListGroupOffsets {
                group,
                partitions: Some(vec![tp]),
            }
        };
        let now = self.client_now();
        self.clients[c].client.admin(now, op);
        self.after_client(c);
    }

    /// The committer's operation came back: an acknowledged commit becomes a floor for later
    /// fetches, an answered fetch is judged against them.
    fn commit_answer(&mut self, c: usize, result: Result<AdminResult, gregor_client::ClientError>) {
        let t = self.ms();
        let Role2::Committer(k) = &mut self.clients[c].role else {
            unreachable!("only the committer commits")
        };
        let tp = (TOPIC.to_string(), coffsets::PART);
        match (k.in_flight.take(), result) {
            (Some(InFlight::Commit(i)), Ok(AdminResult::CommitGroupOffsets(per))) => {
                if per.get(&tp).is_some_and(|r| r.is_ok()) {
                    self.offsets.commits[i].acked = Some(t);
                    self.count("offset commits acknowledged");
                } else {
                    self.count("offset commits refused");
                    self.say(|| format!("committer: commit refused: {per:?}"));
                }
            }
            (Some(InFlight::Fetch(sent)), Ok(AdminResult::GroupOffsets(map))) => {
                self.offsets.fetches.push(coffsets::Fetch {
                    group: coffsets::GROUP.into(),
                    part: coffsets::PART,
                    offset: map.get(&tp).copied(),
                    sent,
                    answered: t,
                });
            }
            (_, other) => {
                self.count("offset operations failed");
                self.say(|| format!("committer: {other:?}"));
            }
        }
    }

    /// A node's image named a leader of the committer's `__consumer_offsets` partition.
    fn note_offsets_leader(&mut self, image: &MetadataImage) {
        let Some(id) = image.topic_id(gregor_core::group::OFFSETS_TOPIC) else {
            return;
        };
        let n = image.topics()[&id].partitions.len() as i32;
        let p = gregor_core::group::partition_for(coffsets::GROUP, n).0;
        if let Some(reg) = image.partition(id, p) {
            self.offsets_leaders
                .entry(reg.leader_epoch)
                .or_insert(reg.leader.map(|b| b.0));
        }
    }

    /// Ask for the workload's topic with the drawn replication factor and
    /// `min.insync.replicas` (CreateTopics, forwarded to the active controller).
    fn create_topic(&mut self, c: usize) {
        let topic = NewTopic {
            name: TOPIC.into(),
            partitions: self.profile.partitions,
            replication_factor: self.profile.replicas,
            configs: vec![(
                "min.insync.replicas".into(),
                self.profile.min_insync.to_string(),
            )],
        };
        let now = self.client_now();
        self.clients[c].client.admin(
            now,
            AdminOp::CreateTopics {
                topics: vec![topic],
                validate_only: false,
            },
        );
        self.after_client(c);
    }

    /// The creator's CreateTopics came back: the workload starts, or the creator asks again
    /// (the brokers may not all have registered yet: INVALID_REPLICATION_FACTOR).
    fn topic_created(&mut self, c: usize, result: Result<AdminResult, gregor_client::ClientError>) {
        let made = match &result {
            // TOPIC_ALREADY_EXISTS (36): an earlier attempt created it and its answer was lost.
            Ok(AdminResult::CreateTopics(per)) => per.get(TOPIC).is_some_and(|r| {
                matches!(
                    r,
                    Ok(_) | Err(gregor_client::ClientError::Broker { code: 36, .. })
                )
            }),
            _ => false,
        };
        self.say(|| format!("creating {TOPIC}: {result:?}"));
        if made {
            if !self
                .clients
                .iter()
                .any(|c| matches!(c.role, Role2::Producer { .. }))
            {
                self.add_clients();
            }
        } else {
            self.count("topic creation retries");
            if self.stopping {
                return;
            }
            self.schedule(self.now + 500 * MS, Ev::CreateTopic(c));
        }
    }

    fn client_config(&mut self, client_id: String) -> ClientConfig {
        let sasl = self.secure.as_mut().map(|s| s.login(&client_id));
        ClientConfig {
            sasl,
            bootstrap: (0..self.machines.len())
                .map(|i| ("127.0.0.1".to_string(), port_of(i)))
                .collect(),
            client_id,
            seed: self.prng.next_u64(),
            request_timeout_ms: 5_000,
            delivery_timeout_ms: 20_000,
            metadata_max_age_ms: 10_000,
            auto_offset_reset: OffsetReset::Earliest,
            ..ClientConfig::default()
        }
    }

    fn add_client(&mut self, config: ClientConfig, role: Role2) {
        let mut client = Client::new(config, self.client_now()).expect("a valid client config");
        if matches!(role, Role2::Reader { .. } | Role2::Auditor { .. }) {
            client.assign_topic(self.client_now(), TOPIC, Some(SeekTo::Beginning));
        }
        self.clients.push(Cl {
            client,
            role,
            timer: None,
        });
        let c = self.clients.len() - 1;
        self.after_client(c);
    }

    /// The liveness phase is over: the producers stop; once their last records are reported,
    /// the auditor reads every partition from the start.
    fn stop_producing(&mut self) {
        self.stopping = true;
        self.say(|| "liveness phase over: producers stop".into());
    }

    fn producers_done(&self) -> bool {
        self.clients.iter().all(|c| match &c.role {
            Role2::Producer { waiting, .. } => waiting.is_empty(),
            _ => true,
        })
    }

    fn drained(&mut self) -> bool {
        if !self.producers_done() {
            return false;
        }
        let auditor = self
            .clients
            .iter()
            .position(|c| matches!(c.role, Role2::Auditor { .. }));
        match auditor {
            None => {
                self.say(|| "producers settled: the auditor reads everything".into());
                let config = self.client_config("auditor".into());
                self.add_client(
                    config,
                    Role2::Auditor {
                        records: BTreeMap::new(),
                        stopped: false,
                    },
                );
                false
            }
            Some(a) => {
                let c = &self.clients[a].client;
                let read =
                    c.caught_up() && c.assignment().len() == self.profile.partitions as usize;
                // Then the mover lists the moves in progress until none is left.
                read && self.mover_settled()
            }
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::HealAll => self.heal_all(),
            Ev::Fault => {
                if !self.healed {
                    self.fault();
                    let gap = 1 + self.prng.below(2 * self.profile.fault_every_ms);
                    self.schedule(self.now + gap * MS, Ev::Fault);
                }
            }
            Ev::Restart(i) => {
                self.note(2, i as u64);
                if self.machines[i].member.is_none() {
                    self.start(i);
                }
            }
            Ev::ControlledShutdown => self.controlled_shutdown_due(),
            Ev::StopTimeout { node, incarnation } => self.stop_timed_out(node, incarnation),
            Ev::HealLink(a, b) => {
                self.note(3, 0);
                self.net.heal(a, b);
            }
            Ev::Peer { from, to, msg } => {
                self.note(4, (from * 8 + to) as u64);
                let local = self.machines[to].node.clock(self.now);
                let src = NodeId(from as i32 + 1);
                let Some(m) = self.machines[to].member.as_mut() else {
                    return;
                };
                match msg {
                    Peer::Raft(msg) => m.handle(local, src, msg),
                    Peer::Request(rid, req) => m.controller_request(local, src, rid, req),
                    Peer::Response(rid, result) => m.controller_reply(local, rid, result),
                }
                self.pump(to, Vec::new());
            }
            Ev::BrokerInput {
                node,
                incarnation,
                input,
            } => {
                let n = &self.machines[node].node;
                if incarnation != n.incarnation || n.broker.is_none() {
                    return; // the process that asked is gone
                }
                if let Input::ReplicaFetched { id, result, .. } = input.as_ref() {
                    self.replica_answered(node, incarnation, *id, result.is_ok());
                }
                self.pump(node, vec![*input]);
            }
            Ev::Disk {
                node,
                incarnation,
                op,
                request,
            } => {
                let n = &mut self.machines[node].node;
                if incarnation != n.incarnation || n.broker.is_none() {
                    return; // the process that asked is gone; the write never happened
                }
                let result = n.disk.exec(&request, &mut self.prng);
                let max = n
                    .broker
                    .as_ref()
                    .map_or(0, |b| b.config().producers_per_partition_max);
                (self.producer_checks).written(node, incarnation, op, &n.disk, TOPIC, max);
                self.note(5, op.0);
                self.say(|| {
                    format!(
                        "node {node} disk: {} -> {:?}",
                        describe(&request),
                        result.is_ok()
                    )
                });
                let now = self.machines[node].node.clock(self.now);
                self.pump(node, vec![Input::StorageDone { now, op, result }]);
            }
            Ev::BrokerTimer { node, incarnation } => {
                let n = &mut self.machines[node].node;
                if incarnation != n.incarnation || n.timer != Some(self.now) {
                    return;
                }
                n.timer = None;
                let now = n.clock(self.now);
                self.note(6, node as u64);
                self.pump(node, vec![Input::Tick { now }]);
            }
            Ev::MemberTimer { node, incarnation } => {
                let m = &mut self.machines[node];
                if incarnation != m.node.incarnation || m.member_timer != Some(self.now) {
                    return;
                }
                m.member_timer = None;
                let local = m.node.clock(self.now);
                if let Some(member) = m.member.as_mut() {
                    member.tick(local);
                }
                self.note(7, node as u64);
                self.pump(node, Vec::new());
            }
            Ev::Connected(conn) => {
                self.note(8, conn);
                let Some(&(c, cn)) = self.conn_owner.get(&conn) else {
                    return;
                };
                let broken = self.net.conns.get(&conn).is_none_or(|k| k.broken);
                let now = self.client_now();
                let input = if broken {
                    self.forget_conn(conn);
                    CInput::Disconnected {
                        now,
                        node: cn,
                        reason: "connection refused".into(),
                    }
                } else {
                    CInput::Connected { now, node: cn }
                };
                self.client_input(c, input);
            }
            Ev::ConnectFailed(c, cn) => {
                self.note(9, c as u64);
                let now = self.client_now();
                self.client_input(
                    c,
                    CInput::Disconnected {
                        now,
                        node: cn,
                        reason: "connect failed".into(),
                    },
                );
            }
            Ev::ToBroker(conn, request) => self.deliver_to_broker(conn, *request),
            Ev::ToClient(conn, frame) if replica::Replicas::is_replica_conn(conn) => {
                self.note(10, conn);
                self.replica_response(conn, frame);
            }
            Ev::ToClient(conn, frame) => {
                self.note(10, conn);
                let Some(&(c, cn)) = self.conn_owner.get(&conn) else {
                    return;
                };
                let now = self.client_now();
                self.client_input(
                    c,
                    CInput::Frame {
                        now,
                        node: cn,
                        frame,
                    },
                );
            }
            Ev::Reset(conn) if replica::Replicas::is_replica_conn(conn) => {
                self.note(11, conn);
                self.replica_close(conn, "connection reset");
                self.broker_conn_closed(conn);
            }
            Ev::Reset(conn) => {
                self.note(11, conn);
                if let Some((c, cn)) = self.forget_conn(conn) {
                    let now = self.client_now();
                    self.client_input(
                        c,
                        CInput::Disconnected {
                            now,
                            node: cn,
                            reason: "connection reset".into(),
                        },
                    );
                }
                self.broker_conn_closed(conn);
            }
            Ev::Closed(conn) => {
                self.note(12, conn);
                self.broker_conn_closed(conn);
            }
            Ev::ClientTimer(c) => {
                if self.clients[c].timer != Some(self.now) {
                    return;
                }
                self.clients[c].timer = None;
                self.note(13, c as u64);
                self.count("client ticks");
                let now = self.client_now();
                self.client_input(c, CInput::Tick { now });
            }
            Ev::Produce(c) => self.produce(c),
            Ev::ReplicaTimeout(conn, correlation) => self.replica_timeout(conn, correlation),
            Ev::CreateTopic(c) => self.create_topic(c),
            Ev::Commit(c) => self.commit_step(c),
            Ev::Reassign => self.reassign_due(),
            Ev::Probe(c) => self.probe(c),
            Ev::AclChange => self.acl_change(),
        }
    }

    // ------------------------------------------------------------------ the nodes

    fn start(&mut self, i: usize) {
        let id = i as i32 + 1;
        // A new incarnation at every process start (Kafka draws a random UUID); the broker
        // takes the image's roles only once this one is registered.
        let incarnation_id = [((self.machines[i].starts + 1) % 256) as u8; 16];
        let config = Config {
            broker_id: gregor_core::ids::BrokerId(id),
            seed: self.prng.next_u64(),
            advertised_host: "127.0.0.1".into(),
            advertised_port: port_of(i) as i32,
            // The replicated workload's topic is created with its replication factor, never
            // auto-created with one replica by a client's Metadata request.
            auto_create_topics: !self.opts.replication,
            default_partitions: self.profile.partitions,
            durability: self.disk_profile.durability,
            segment_bytes_max: self.disk_profile.segment_bytes,
            batch_bytes_max: 1024,
            offsets_topic_partitions: 3,
            kraft: true,
            incarnation_id: Some(incarnation_id),
            authorizer: self.secure.as_ref().map(|s| s.authorizer()),
            ..Config::default()
        };
        let now = self.now;
        let m = &mut self.machines[i];
        m.starts += 1;
        // KIP-966: the broker tells the controller whether its data directory was empty.
        let log_dir_new = m.node.disk.files.is_empty() || m.dir_unreported;
        // Under `none` a power loss may take what this broker exposed (durability.rs).
        let cut_allowed = m.node.power_off && self.disk_profile.durability == Durability::None;
        let found = m.node.start(config, now);
        let local = m.node.clock(now);
        m.seen_hw = m.meta.start();
        m.image = None;
        m.member_timer = None;
        let registration = Registration {
            broker_id: BrokerId(id),
            incarnation_id,
            endpoints: vec![RegEndpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: port_of(i),
            }],
            rack: None,
            log_dir_new,
        };
        let d = m.meta.clone();
        let member = Member::restore(
            Role::Combined,
            NodeId(id),
            self.voters.clone(),
            Some(registration),
            self.member_config.clone(),
            self.opts.seed ^ (id as u64) << 32 ^ m.starts << 48,
            local,
            d.state,
            d.snapshot,
            d.log,
        );
        m.member = Some(member);
        for (p, end, hw) in &found {
            let prev = self.hw.get(&(i, *p)).copied().unwrap_or(0);
            if *end < prev && !cut_allowed {
                // Group commit exposes only synced records, and a process crash keeps the
                // page cache: nothing exposed may be cut.
                self.failures.push(format!(
                    "t={}ms: node {} restarted with partition {p} ending at {end}, below its high watermark {prev}",
                    now / MS,
                    i + 1
                ));
            }
            self.hw.insert((i, *p), *hw);
            // What a restart lost is judged just above, not as a truncation.
            self.ends.insert((i, *p), *end);
        }
        let ends = found.iter().map(|(p, end, _)| (*p, *end));
        self.repl.power_losses.started(id, ends);
        let m = &self.machines[i];
        if m.starts > 1 {
            self.history.events.push(Event::Restart {
                t: now / MS,
                log_ends: found.iter().map(|(p, end, _)| (*p, *end)).collect(),
            });
        }
        self.note(14, i as u64);
        self.say(|| format!("node {id} starts"));
        let outs = self.machines[i].node.outputs();
        self.carry_out(i, outs);
        self.pump(i, Vec::new());
    }

    fn crash(&mut self, i: usize, power_loss: bool) {
        let m = &mut self.machines[i];
        if m.member.is_none() {
            return;
        }
        m.member = None;
        m.power_cut = None;
        m.member_timer = None;
        m.image = None;
        m.stop_by = None;
        let (lost, notes) = m.node.stop(power_loss, &mut self.prng, &self.disk_profile);
        self.count(if power_loss {
            "power losses"
        } else {
            "crashes"
        });
        self.history.events.push(Event::Crash {
            t: self.ms(),
            power_loss: lost,
        });
        if lost {
            self.repl.power_losses.lost(i as i32 + 1, self.ms());
        }
        self.say(|| {
            format!(
                "node {} {}",
                i + 1,
                if power_loss { "loses power" } else { "crashes" }
            )
        });
        // What the power loss did to the disk (torn writes, flipped bits): the first thing to
        // look for when a recovered log holds something no one wrote (seed 477's epoch).
        for note in &notes {
            self.say(|| format!("node {} disk: {note}", i + 1));
        }
        let conns: Vec<u64> = self
            .net
            .conns
            .iter()
            .filter(|(_, c)| !c.broken && c.node == i)
            .map(|(id, _)| *id)
            .collect();
        for conn in conns {
            self.net.conns.get_mut(&conn).expect("listed").broken = true;
            // A crashed process's kernel resets its connections; a dead machine says nothing.
            if !power_loss {
                let at = self.now + self.latency();
                self.schedule(at, Ev::Reset(conn));
            }
        }
        self.replica_follower_gone(i);
        let at = self.now + (1_000 + self.prng.below(9_000)) * MS;
        self.schedule(at, Ev::Restart(i));
    }

    /// Hand the broker `inputs`, then carry the member's and the broker's outputs back and
    /// forth until neither has anything left, as the real process's two tasks do; then stop
    /// the node if its controlled shutdown is allowed.
    fn pump(&mut self, i: usize, inputs: Vec<Input>) {
        self.pump_outputs(i, inputs);
        self.stop_if_allowed(i);
    }

    fn pump_outputs(&mut self, i: usize, mut inputs: Vec<Input>) {
        loop {
            for input in std::mem::take(&mut inputs) {
                if let Input::Metadata { image, .. } = &input {
                    self.machines[i].image = Some(image.clone());
                    if let Some(s) = self.secure.as_mut() {
                        s.image_handed(image);
                    }
                    if self.opts.replication {
                        self.note_offsets_leader(image);
                    }
                }
                self.serving = matches!(input, Input::Request { .. });
                let outs = self.machines[i].node.handle(input);
                if let Some(outs) = outs {
                    self.carry_out(i, outs);
                }
                self.serving = false;
            }
            let m = &mut self.machines[i];
            let Some(member) = m.member.as_mut() else {
                return;
            };
            let mut outs = Vec::new();
            while let Some(o) = member.poll_output() {
                outs.push(o);
            }
            if !matches!(
                member.broker_state(),
                None | Some(gregor_core::cluster::lifecycle::BrokerState::Starting)
            ) {
                m.dir_unreported = false;
            }
            if outs.is_empty() {
                break;
            }
            let cut = m.power_cut.take();
            let now = m.node.clock(self.now);
            for (k, o) in outs.into_iter().enumerate() {
                if cut == Some(k) {
                    self.crash(i, true);
                    return;
                }
                match o {
                    MOutput::Raft(r) => self.perform(i, r),
                    MOutput::Image(image) => {
                        let life = self.machines[i].starts;
                        self.images.image_handed(
                            NodeId(i as i32 + 1),
                            life,
                            &image,
                            self.committed.log(),
                        );
                        inputs.push(Input::Metadata { now, image });
                    }
                    MOutput::ControllerReply { id, result } => {
                        inputs.push(Input::ControllerReply { now, id, result })
                    }
                    MOutput::Respond { to, id, result } => {
                        self.peer_send(i, to, Peer::Response(id, result))
                    }
                    MOutput::Request { to, id, request } => {
                        self.peer_send(i, to, Peer::Request(id, request))
                    }
                }
            }
            if inputs.is_empty() {
                break;
            }
        }
        self.observe(i);
        self.follow_committed();
        self.set_timers(i);
    }

    /// Replay what the committed metadata log gained (the controller's replication decisions),
    /// and note every new unclean election of the workload's topic.
    fn follow_committed(&mut self) {
        let before = self.replication.unclean_elections.len();
        let topic = self
            .machines
            .iter()
            .find_map(|m| m.image.as_ref().and_then(|im| im.topic_id(TOPIC)));
        let isrs = |r: &Replication| -> BTreeMap<Part, Vec<i32>> {
            let image = r.image();
            let parts = topic.and_then(|t| image.topics().get(&t));
            (parts.iter().flat_map(|t| t.partitions.iter()))
                .map(|(p, reg)| (*p, reg.isr.iter().map(|b| b.0).collect()))
                .collect()
        };
        let isr_before = isrs(&self.replication);
        self.replication.follow(self.committed.log());
        // Who the committed log put in or took out of an ISR (`acked-n-lost`: who counts as
        // a holder, and its excuse).
        let t = self.now / MS;
        for (part, now_isr) in isrs(&self.replication) {
            let was = isr_before.get(&part).cloned().unwrap_or_default();
            let left = (was.iter().copied()).filter(|b| !now_isr.contains(b));
            let joined = (now_isr.iter().copied()).filter(|b| !was.contains(b));
            let changes = (left.map(|b| (b, false))).chain(joined.map(|b| (b, true)));
            for (node, joined) in changes.collect::<Vec<_>>() {
                let c = acked_n::IsrChange {
                    part,
                    node,
                    t,
                    joined,
                };
                self.repl.isr_changes.push(c);
            }
        }
        for k in before..self.replication.unclean_elections.len() {
            let (t, p) = self.replication.unclean_elections[k];
            if Some(t) == topic {
                self.repl.unclean.push((p, self.now / MS));
            }
        }
    }

    fn perform(&mut self, i: usize, r: raft::Output) {
        let id = NodeId(i as i32 + 1);
        let m = &mut self.machines[i];
        match &r {
            raft::Output::Committed { high_watermark } => {
                for offset in m.seen_hw.max(m.meta.start())..*high_watermark {
                    let entry = &m.meta.log[(offset - m.meta.start()) as usize];
                    self.committed.entry_committed(id, offset, entry);
                }
                m.seen_hw = m.seen_hw.max(*high_watermark);
            }
            raft::Output::SaveSnapshot(s) => self.committed.snapshot_seen(id, s.id),
            raft::Output::InstallSnapshot(s) => {
                self.committed.snapshot_seen(id, s.id);
                m.seen_hw = m.seen_hw.max(s.id.end_offset);
            }
            _ => {}
        }
        self.machines[i].meta.perform(&r);
        if let raft::Output::Send { to, message } = r {
            self.peer_send(i, to, Peer::Raft(message));
        }
    }

    fn peer_send(&mut self, from: usize, to: NodeId, msg: Peer) {
        let to = (to.0 - 1) as usize;
        let link = self.net.link(Endpoint::Node(from), Endpoint::Node(to));
        let lossy = !self.healed && self.prng.ratio(self.profile.loss_permille, 1000);
        if link.cut || lossy || to >= self.machines.len() {
            self.count("node messages lost");
            return;
        }
        let at = (self.now + self.latency()).max(link.clogged_until);
        self.schedule(at, Ev::Peer { from, to, msg });
    }

    fn observe(&mut self, i: usize) {
        if let Some(m) = &self.machines[i].member {
            if m.raft().is_leader() {
                self.one_leader
                    .leader_seen(m.raft().epoch(), NodeId(i as i32 + 1));
            }
        }
    }

    fn set_timers(&mut self, i: usize) {
        let now = self.now;
        let m = &mut self.machines[i];
        let inc = m.node.incarnation;
        if let Some(member) = &m.member {
            let at = m.node.true_time_of(member.poll_timeout(), now).max(now + 1);
            if m.member_timer.is_none_or(|t| at < t || t < now) {
                m.member_timer = Some(at);
                self.schedule(
                    at,
                    Ev::MemberTimer {
                        node: i,
                        incarnation: inc,
                    },
                );
            }
        }
        let m = &mut self.machines[i];
        if let Some(deadline) = m.node.broker.as_ref().and_then(|b| b.poll_timeout()) {
            let at = m.node.true_time_of(deadline, now).max(now + 1);
            if m.node.timer.is_none_or(|t| at < t || t < now) {
                m.node.timer = Some(at);
                self.schedule(
                    at,
                    Ev::BrokerTimer {
                        node: i,
                        incarnation: inc,
                    },
                );
            }
        }
    }

    /// Carry out the broker's outputs in order. A controller request goes to the member, whose
    /// outputs [`World::pump`] collects next.
    fn carry_out(&mut self, i: usize, outputs: Vec<Output>) {
        for out in outputs {
            match out {
                Output::Response {
                    conn,
                    correlation_id,
                    api_version,
                    body,
                } => {
                    self.watch_response(i, conn.0, correlation_id, &body);
                    self.acl_answered(i, conn.0, correlation_id, &body);
                    let frame = wire::encode_response(correlation_id, api_version, &body)
                        .expect("the broker's responses encode");
                    let lat = self.latency();
                    if let Some(at) = self.net.send_from_node(conn.0, self.now, lat) {
                        self.schedule(at, Ev::ToClient(conn.0, frame.slice(4..)));
                    }
                }
                Output::Close { conn, .. } => {
                    if let Some(c) = self.net.conns.get_mut(&conn.0) {
                        if !c.broken {
                            c.broken = true;
                            let at = self.now + self.latency();
                            self.schedule(at, Ev::Reset(conn.0));
                        }
                    }
                }
                Output::Storage { op, request } => {
                    if let StorageRequest::DeletePartition { dir } = &request {
                        // Moved away (KIP-455): the copy goes for good, so the log end and
                        // high watermark it had are no measure of the one a later move
                        // creates here from nothing.
                        if dir.topic == TOPIC {
                            self.forget_copy(i, dir.partition);
                        }
                    }
                    if let StorageRequest::Append { file, data, .. } = &request {
                        if file.dir.topic == TOPIC {
                            let values = values_in(data);
                            if self.serving {
                                for epoch in leader_epochs_in(data) {
                                    self.repl.leader_appends.push(LeaderAppend {
                                        node: i as i32 + 1,
                                        part: file.dir.partition,
                                        epoch,
                                        t: self.now / MS,
                                    });
                                }
                            }
                            self.obs.appended.push(Appended {
                                node: i as i32 + 1,
                                part: file.dir.partition,
                                values,
                                t: self.now / MS,
                                as_leader: self.serving,
                            });
                        }
                    }
                    if !matches!(request, StorageRequest::Sync { .. }) {
                        let inc = self.machines[i].node.incarnation;
                        self.producer_checks.issued(i, inc, op);
                    }
                    let (until, extra) = self.machines[i].slow;
                    let n = &mut self.machines[i].node;
                    if self.now < until {
                        // Each operation waits `extra` longer (not the queue: a backlog that
                        // compounded would outlast the slow spell by minutes).
                        n.disk_busy_until = n.disk_busy_until.max(self.now + extra);
                    }
                    let at =
                        n.disk_completion(&request, self.now, &mut self.prng, &self.disk_profile);
                    let incarnation = n.incarnation;
                    self.schedule(
                        at,
                        Ev::Disk {
                            node: i,
                            incarnation,
                            op,
                            request,
                        },
                    );
                }
                Output::Log { level, message } => {
                    self.say(|| format!("node {} log {level:?}: {message}", i + 1));
                }
                Output::Controller { id, request } => {
                    let local = self.machines[i].node.clock(self.now);
                    if let Some(m) = self.machines[i].member.as_mut() {
                        m.broker_request(local, id, request);
                    }
                }
                Output::ReplicaFetch {
                    to,
                    id,
                    api_version,
                    request,
                } => self.replica_fetch(i, to, id, api_version, request),
            }
        }
        self.check_hw(i);
    }

    /// Per-step invariant: a partition's high watermark never goes back on its broker (a
    /// placeholder of a partition hosted elsewhere, or one not yet recovered, is offline and
    /// exempt).
    fn check_hw(&mut self, i: usize) {
        let Some(t) = self.machines[i]
            .node
            .broker
            .as_ref()
            .and_then(|b| b.topics().get(TOPIC))
        else {
            return;
        };
        let mut bad = Vec::new();
        let mut cut = Vec::new();
        for (p, part) in t.partitions.iter().enumerate() {
            if part.offline.is_some() {
                continue;
            }
            let end = self.ends.entry((i, p as Part)).or_insert(part.written_end);
            if part.written_end < *end {
                // Judged against the high watermark this broker itself last exposed: the
                // records below it were committed *in this log*. A higher one exposed by
                // another broker may cover other records at the same offsets (a new leader's
                // epoch written over this log's uncommitted tail), which the cut rightly drops.
                let own = self.hw.get(&(i, p as Part)).copied().unwrap_or(0);
                cut.push((p as Part, part.written_end, own));
                let (inc, end) = (self.machines[i].node.incarnation, part.log.log_end_offset());
                let at = self.now / MS;
                (self.producer_checks).truncated(i, inc, p as Part, end, &part.producers, at);
            }
            *end = part.written_end;
            // With replicas a high watermark may go back across a leader change (a new leader
            // learns the old one's only once a record of its own epoch commits; a follower's is
            // the leader's): it must not within one (leader, leader epoch).
            let term = self.machines[i].image.as_ref().and_then(|im| {
                let r = im.partition(im.topic_id(TOPIC)?, p as Part)?;
                Some((r.leader.map(|b| b.0), r.leader_epoch))
            });
            let judged = !self.opts.replication
                || term.is_some_and(|(l, _)| l == Some(i as i32 + 1))
                    && self.hw_term.insert((i, p as Part), term) == Some(term);
            let prev = self.hw.entry((i, p as Part)).or_insert(0);
            if judged && part.high_watermark < *prev {
                bad.push((p, *prev, part.high_watermark));
            }
            *prev = if judged {
                (*prev).max(part.high_watermark)
            } else {
                part.high_watermark
            };
        }
        for (part, end, exposed) in cut {
            self.repl.truncations.push(Truncation {
                node: i as i32 + 1,
                part,
                end,
                exposed,
                t: self.now / MS,
            });
        }
        for (p, prev, now_hw) in bad {
            self.failures.push(format!(
                "t={}ms: node {} partition {p} high watermark went back from {prev} to {now_hw}",
                self.now / MS,
                i + 1
            ));
        }
        if self.opts.replication {
            self.check_hw_bound(i);
        }
    }

    /// hw-above-isr and hw-above-durable ([`super::hw_bound`]) on every partition node `i`
    /// leads: judged against the log ends of the ISR members alive in the run its image
    /// registered.
    fn check_hw_bound(&mut self, i: usize) {
        let (Some(b), Some(image)) = (
            self.machines[i].node.broker.as_ref(),
            self.machines[i].image.as_ref(),
        ) else {
            return;
        };
        let (Some(t), Some(id)) = (b.topics().get(TOPIC), image.topic_id(TOPIC)) else {
            return;
        };
        let me = i as i32 + 1;
        let mut found = Vec::new();
        for (p, part) in t.partitions.iter().enumerate() {
            let reg = image.partition(id, p as Part);
            let Some(reg) = reg.filter(|r| r.leader.map(|l| l.0) == Some(me)) else {
                continue;
            };
            if part.offline.is_some() {
                continue;
            }
            let isr_ends = (reg.isr.iter().map(|m| m.0).filter(|m| *m != me))
                .filter_map(|m| {
                    let other = &self.machines[usize::try_from(m - 1).ok()?];
                    let run = [(other.starts % 256) as u8; 16];
                    let registered = image
                        .broker(gregor_core::cluster::BrokerId(m))
                        .is_some_and(|r| r.incarnation_id == run);
                    let q = other.node.broker.as_ref()?.topics().get(TOPIC)?;
                    let q = q.partitions.get(p).filter(|q| q.offline.is_none())?;
                    registered.then(|| (m, q.log.log_end_offset()))
                })
                .collect();
            let sample = super::hw_bound::HwSample {
                node: me,
                part: p as Part,
                hw: part.high_watermark,
                durable_end: Some(part.durable_end)
                    .filter(|_| self.disk_profile.durability == Durability::GroupCommit),
                isr_ends,
                t: self.now / MS,
            };
            found.extend(super::hw_bound::check(&sample));
        }
        for (name, detail) in found {
            self.failures.push(format!("{name}: {detail}"));
        }
    }

    fn leader_in_image(&self, i: usize, part: Part) -> Option<i32> {
        let image = self.machines[i].image.as_ref()?;
        let id = image.topic_id(TOPIC)?;
        image.partition(id, part)?.leader.map(|b| b.0)
    }

    /// The cluster checkers' view of a response: what was served (judged against the image
    /// the broker had when it read the request), what was refused.
    fn watch_response(&mut self, i: usize, conn: u64, corr: i32, body: &ResponseKind) {
        let node = i as i32 + 1;
        let t = self.now / MS;
        let Some(asked) = self.asked.remove(&(conn, corr)) else {
            return;
        };
        let mut answers: Vec<(Part, i16, i16)> = Vec::new();
        match body {
            ResponseKind::Produce(r) => {
                for topic in r.responses.iter().filter(|t| t.name.as_str() == TOPIC) {
                    for p in &topic.partition_responses {
                        answers.push((p.index, 0, p.error_code));
                    }
                }
            }
            ResponseKind::Fetch(r) => {
                let id = self.machines[i]
                    .image
                    .as_ref()
                    .and_then(|im| im.topic_id(TOPIC));
                for topic in &r.responses {
                    let ours = topic.topic.as_str() == TOPIC
                        || id.is_some_and(|id| id.0 == *topic.topic_id.as_bytes());
                    if ours {
                        for p in &topic.partitions {
                            answers.push((p.partition_index, 1, p.error_code));
                        }
                    }
                }
            }
            _ => {}
        }
        for (part, api, code) in answers {
            if code == 0 {
                let leader = asked.leaders.get(&part).copied().flatten();
                self.obs.served.push(Served {
                    node,
                    part,
                    api,
                    leader,
                    t,
                });
            } else if api == 0
                && ccheck::DEFINITE.contains(&code)
                // NOT_LEADER_OR_FOLLOWER also answers a produce that was appended and then
                // waited in purgatory while the broker lost leadership (Kafka's DelayedProduce;
                // with one replica: its broker was fenced): its records may well be in the
                // log. Indefinite.
                && code != 6
            {
                self.count("produces refused (definite)");
                for (_, values) in asked.values.iter().filter(|(q, _)| *q == part) {
                    self.obs.refused.push(Refused {
                        node,
                        part,
                        values: values.clone(),
                        code,
                        received: asked.received,
                        t,
                    });
                }
            }
        }
    }

    fn deliver_to_broker(&mut self, conn: u64, request: Request) {
        self.note(15, conn);
        let Some(c) = self.net.conns.get(&conn) else {
            return;
        };
        let i = c.node;
        let n = &self.machines[i].node;
        if c.broken || c.incarnation != n.incarnation || n.broker.is_none() {
            return;
        }
        if !self.acl_deliver(i, conn, &request) {
            return; // answered by its SASL session
        }
        let mut values: Vec<(Part, Vec<Value>)> = Vec::new();
        let mut parts: Vec<Part> = Vec::new();
        match &request.body {
            RequestKind::Produce(p) => {
                for t in p.topic_data.iter().filter(|t| t.name.as_str() == TOPIC) {
                    for d in &t.partition_data {
                        parts.push(d.index);
                        values.push((
                            d.index,
                            d.records.as_ref().map(values_in).unwrap_or_default(),
                        ));
                    }
                }
            }
            RequestKind::Fetch(f) => {
                let id = self.machines[i]
                    .image
                    .as_ref()
                    .and_then(|im| im.topic_id(TOPIC));
                for t in &f.topics {
                    let ours = t.topic.as_str() == TOPIC
                        || id.is_some_and(|id| id.0 == *t.topic_id.as_bytes());
                    if ours {
                        parts.extend(t.partitions.iter().map(|p| p.partition));
                    }
                }
            }
            _ => {}
        }
        if !parts.is_empty() {
            let leaders = parts
                .iter()
                .map(|p| (*p, self.leader_in_image(i, *p)))
                .collect();
            self.asked.insert(
                (conn, request.header.correlation_id),
                Asked {
                    received: self.now / MS,
                    leaders,
                    values,
                },
            );
        }
        let n = &self.machines[i].node;
        let now = n.clock(self.now);
        self.pump(
            i,
            vec![Input::Request {
                now,
                conn: ConnId(conn),
                request,
            }],
        );
    }

    fn broker_conn_closed(&mut self, conn: u64) {
        let Some(c) = self.net.conns.get(&conn) else {
            return;
        };
        let i = c.node;
        let n = &self.machines[i].node;
        if c.incarnation == n.incarnation && n.broker.is_some() {
            let now = n.clock(self.now);
            self.pump(
                i,
                vec![Input::ConnClosed {
                    now,
                    conn: ConnId(conn),
                }],
            );
        }
        self.net.conns.remove(&conn);
        self.acl_conn_gone(conn);
    }

    // ------------------------------------------------------------------ the clients

    fn forget_conn(&mut self, conn: u64) -> Option<(usize, CNode)> {
        let owner = self.conn_owner.remove(&conn)?;
        self.conn_of.remove(&owner);
        Some(owner)
    }

    fn client_input(&mut self, c: usize, input: CInput) {
        self.clients[c].client.handle(input);
        self.after_client(c);
    }

    /// Carry out what client `c` wants done, and set its timer.
    fn after_client(&mut self, c: usize) {
        while let Some(o) = self.clients[c].client.poll_output() {
            match o {
                COutput::Connect { node, port, .. } => self.connect(c, node, port),
                COutput::Send { node, frame } => self.client_send(c, node, frame),
                COutput::Close { node, .. } => {
                    if let Some(conn) = self.conn_of.get(&(c, node)).copied() {
                        self.forget_conn(conn);
                        if let Some(k) = self.net.conns.get_mut(&conn) {
                            k.broken = true;
                        }
                        let at = self.now + self.latency();
                        self.schedule(at, Ev::Closed(conn));
                    }
                }
                COutput::Delivered(d) => self.delivered(c, d),
                COutput::Records(f) => self.records(c, f),
                // A prober may be refused reading (TOPIC_AUTHORIZATION_FAILED): that is what
                // it is there for; it seeks again on a later turn.
                COutput::ConsumeError { .. } if matches!(self.clients[c].role, Role2::Prober) => {}
                COutput::ConsumeError {
                    topic,
                    partition,
                    error,
                } => {
                    self.failures.push(format!(
                        "t={}ms: client {c} cannot read {topic}/{partition}: {error}",
                        self.ms()
                    ));
                    if let Role2::Auditor { stopped, .. } = &mut self.clients[c].role {
                        *stopped = true;
                    }
                }
                COutput::Log { message } => self.say(|| format!("client {c}: {message}")),
                COutput::Admin { id, result } => match self.clients[c].role {
                    Role2::Committer(_) => self.commit_answer(c, result),
                    Role2::Mover => self.mover_answer(id, result),
                    Role2::Prober => self.count(if result.is_ok() {
                        "prober admin operations answered"
                    } else {
                        "prober admin operations failed"
                    }),
                    _ => self.topic_created(c, result),
                },
                COutput::GroupError { .. } => {}
            }
        }
        let at = self.clients[c]
            .client
            .poll_timeout()
            .map(|t| (t.0.saturating_sub(EPOCH_NS as u64) / 1_000).max(self.now + 1));
        if let Some(at) = at {
            let cl = &mut self.clients[c];
            if cl.timer.is_none_or(|t| at < t || t < self.now) {
                cl.timer = Some(at);
                self.schedule(at, Ev::ClientTimer(c));
            }
        }
    }

    fn connect(&mut self, c: usize, cn: CNode, port: u16) {
        let i = (port - 9001) as usize;
        let (from, to) = (Endpoint::Client(c), Endpoint::Node(i));
        let m = &self.machines[i];
        if !self.net.can_connect(from, to) || (m.member.is_none() && m.node.power_off) {
            // The SYN is lost: the attempt hangs until the connect timeout.
            self.schedule(self.now + CONNECT_TIMEOUT, Ev::ConnectFailed(c, cn));
            return;
        }
        if m.member.is_none() {
            // A machine that is up with no process listening answers RST.
            let at = self.now + 2 * self.latency();
            self.schedule(at, Ev::ConnectFailed(c, cn));
            return;
        }
        let incarnation = m.node.incarnation;
        let conn = self.net.open(from, i, incarnation);
        self.conn_of.insert((c, cn), conn);
        self.conn_owner.insert(conn, (c, cn));
        let at = self.now + 2 * self.latency();
        self.schedule(at, Ev::Connected(conn));
    }

    fn client_send(&mut self, c: usize, cn: CNode, frame: Bytes) {
        let request =
            wire::decode_request(frame.slice(4..)).expect("gregor-client's requests decode");
        if let (RequestKind::Produce(p), Role2::Producer { .. }) =
            (&request.body, &self.clients[c].role)
        {
            for t in &p.topic_data {
                for d in &t.partition_data {
                    let values = d.records.as_ref().map(values_in).unwrap_or_default();
                    self.attempted(&values);
                }
            }
        }
        let Some(&conn) = self.conn_of.get(&(c, cn)) else {
            return;
        };
        let lat = self.latency();
        if let Some(at) = self.net.send_to_node(conn, self.now, lat) {
            self.schedule(at, Ev::ToBroker(conn, Box::new(request)));
        }
    }

    /// A produce request carries `values`: a second carrying is a retry, which the history
    /// records (a plain producer's retry may duplicate; an idempotent one's may not).
    fn attempted(&mut self, values: &[Value]) {
        let mut retried: BTreeMap<(usize, Part, u32), Vec<(Value, i64)>> = BTreeMap::new();
        for v in values {
            if let Some((producer, part, ts, n)) = self.sent.get_mut(v) {
                *n += 1;
                if *n > 1 {
                    retried
                        .entry((*producer, *part, *n - 1))
                        .or_default()
                        .push((*v, *ts));
                }
            }
        }
        for ((producer, part, attempt), vs) in retried {
            let (acks, idempotent) = self.producer_kind(producer);
            self.history.events.push(Event::Send {
                t: self.ms(),
                producer,
                part,
                values: vs.iter().map(|x| x.0).collect(),
                acks,
                idempotent,
                attempt,
                timestamps_ms: vs.iter().map(|x| x.1).collect(),
            });
        }
    }

    fn producer_kind(&self, producer: usize) -> (i16, bool) {
        self.clients
            .iter()
            .find_map(|c| match &c.role {
                Role2::Producer {
                    index,
                    acks,
                    idempotent,
                    ..
                } if *index == producer => Some((acks.wire(), *idempotent)),
                _ => None,
            })
            .expect("a producer")
    }

    fn produce(&mut self, c: usize) {
        if self.stopping {
            return;
        }
        self.note(16, c as u64);
        let gap = 1 + self.prng.below(2 * self.profile.produce_gap_ms);
        self.schedule(self.now + gap * MS, Ev::Produce(c));
        let Role2::Producer {
            index,
            acks,
            idempotent,
            waiting,
        } = &self.clients[c].role
        else {
            unreachable!("only producers produce")
        };
        if waiting.len() >= 50 {
            return; // back-pressure: the application waits for its buffer to drain
        }
        let (index, acks, idempotent) = (*index, acks.wire(), *idempotent);
        let part = self.prng.below(self.profile.partitions as u64) as Part;
        let value = self.next_value;
        self.next_value += 1;
        let ts = EPOCH_NS / 1_000_000 + self.ms() as i64;
        self.sent.insert(value, (index, part, ts, 0));
        self.history.events.push(Event::Send {
            t: self.ms(),
            producer: index,
            part,
            values: vec![value],
            acks,
            idempotent,
            attempt: 0,
            timestamps_ms: vec![ts],
        });
        let now = self.client_now();
        let id = self.clients[c].client.send(
            now,
            ProducerRecord {
                topic: TOPIC.into(),
                partition: Some(part),
                value: Some(Bytes::copy_from_slice(&value.to_be_bytes())),
                timestamp_ms: Some(ts),
                ..ProducerRecord::default()
            },
        );
        if let Role2::Producer { waiting, .. } = &mut self.clients[c].role {
            waiting.insert(id, (part, value));
        }
        self.after_client(c);
    }

    fn delivered(&mut self, c: usize, d: Delivery) {
        let t = self.ms();
        let Role2::Producer { index, waiting, .. } = &mut self.clients[c].role else {
            return;
        };
        let Some((part, value)) = waiting.remove(&d.id) else {
            return;
        };
        let outcome = match &d.result {
            Ok(offset) => Outcome::Ok {
                base_offset: *offset,
            },
            // Even a broker's refusal may follow an earlier attempt that was written (the client
            // retries after timeouts): the world cannot tell, so every failure is "unknown".
            Err(_) => Outcome::Unknown,
        };
        let acked = matches!(outcome, Outcome::Ok { .. });
        self.history.events.push(Event::SendDone {
            t,
            producer: *index,
            part,
            values: vec![value],
            outcome,
        });
        self.count(if acked {
            "records acknowledged"
        } else {
            "records failed"
        });
        if acked && self.healed {
            self.count("records acknowledged after the heal");
        }
    }

    fn records(&mut self, c: usize, f: gregor_client::Fetched) {
        if f.topic != TOPIC {
            return;
        }
        let t = self.ms();
        let records: Vec<(i64, Value)> = f
            .records
            .iter()
            .map(|r| (r.offset, value_of(&r.value).unwrap_or(0)))
            .collect();
        match &mut self.clients[c].role {
            Role2::Reader { index } => {
                if !records.is_empty() {
                    self.history.events.push(Event::Poll {
                        t,
                        reader: *index,
                        session: 0,
                        part: f.partition,
                        records,
                    });
                }
            }
            Role2::Auditor { records: all, .. } => {
                all.entry(f.partition).or_default().extend(records);
            }
            Role2::Producer { .. }
            | Role2::Creator
            | Role2::Committer(_)
            | Role2::Mover
            | Role2::Prober => {}
        }
    }

    // ------------------------------------------------------------------ faults

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
        self.count(name);
        self.note(17, kind as u64);
        let lasts = (500 + self.prng.below(8_000)) * MS;
        let n = self.machines.len();
        let a = self.prng.below(n as u64) as usize;
        match kind {
            0..=2 => {
                // Between two nodes, or a node and a client.
                let others = n - 1 + self.clients.len();
                if others == 0 {
                    return;
                }
                let k = self.prng.below(others as u64) as usize;
                let b = if k < n - 1 {
                    Endpoint::Node(if k >= a { k + 1 } else { k })
                } else {
                    Endpoint::Client(k - (n - 1))
                };
                let a = Endpoint::Node(a);
                // Every cut here has a known end, so a connection kept across it only waits
                // (TCP retransmits; see network.rs).
                let until = self.now + lasts;
                match kind {
                    0 => {
                        self.net.cut_until(a, b, until);
                        self.net.cut_until(b, a, until);
                    }
                    1 => self.net.cut_until(a, b, until),
                    _ => self.net.clog(a, b, until),
                }
                if kind < 2 {
                    self.schedule(self.now + lasts, Ev::HealLink(a, b));
                }
                self.say(|| format!("{name} {a:?} {b:?} for {} ms", lasts / MS));
            }
            3 => {
                let me = Endpoint::Node(a);
                let all: Vec<Endpoint> = (0..n)
                    .filter(|j| *j != a)
                    .map(Endpoint::Node)
                    .chain((0..self.clients.len()).map(Endpoint::Client))
                    .collect();
                for b in all {
                    self.net.cut_until(me, b, self.now + lasts);
                    self.net.cut_until(b, me, self.now + lasts);
                    self.schedule(self.now + lasts, Ev::HealLink(me, b));
                }
                self.say(|| format!("isolate node {} for {} ms", a + 1, lasts / MS));
            }
            4 => self.crash(a, false),
            5 => {
                if self.prng.ratio(1, 2) {
                    self.crash(a, true);
                } else {
                    // Partway through the member's next step.
                    self.machines[a].power_cut = Some(self.prng.below(4) as usize);
                }
            }
            6 => {
                let jump = 500 + self.prng.below(15_000);
                self.machines[a].node.clock_offset_ns += jump as i64 * 1_000_000;
                self.say(|| format!("clock of node {} jumps {jump} ms", a + 1));
                // Timers armed on the old reading fire late; re-arm them.
                self.machines[a].member_timer = None;
                self.machines[a].node.timer = None;
                self.set_timers(a);
            }
            7 => {
                let c = self.prng.below(self.clients.len() as u64) as usize;
                let (x, y) = (Endpoint::Client(c), Endpoint::Node(a));
                self.net.cut_until(x, y, self.now + lasts);
                self.net.cut_until(y, x, self.now + lasts);
                self.schedule(self.now + lasts, Ev::HealLink(x, y));
            }
            8 => {
                let extra = (50 + self.prng.below(450)) * MS;
                self.machines[a].slow = (self.now + lasts, extra);
                self.say(|| {
                    format!(
                        "node {} disk slow by {} ms for {} ms",
                        a + 1,
                        extra / MS,
                        lasts / MS
                    )
                });
            }
            9 => {
                // KIP-903: the data disk is replaced; the metadata disk survives. Only where the
                // promise covers it: acks=all records live on min.insync.replicas ≥ 2 replicas,
                // and only one disk is lost per seed.
                if self.profile.min_insync < 2 || self.counters.contains_key("empty disks") {
                    return;
                }
                self.crash(a, true);
                self.machines[a].node.disk.files.clear();
                self.machines[a].dir_unreported = true;
                self.hw.retain(|(j, _), _| *j != a);
                self.ends.retain(|(j, _), _| *j != a);
                self.count("empty disks");
                self.say(|| format!("node {} restarts with an empty data disk", a + 1));
            }
            10 => {
                for j in 0..n {
                    self.crash(j, true);
                }
                self.say(|| "every node loses power".into());
            }
            _ => {
                let active = (0..n).find(|j| {
                    self.machines[*j]
                        .member
                        .as_ref()
                        .is_some_and(|m| m.raft().is_leader())
                });
                if let Some(j) = active {
                    self.say(|| format!("the active controller, node {}, crashes", j + 1));
                    self.crash(j, false);
                }
            }
        }
    }

    fn heal_all(&mut self) {
        self.note(18, 0);
        self.say(|| "heal everything: liveness phase".into());
        self.healed = true;
        self.net.heal_all();
        for i in 0..self.machines.len() {
            self.machines[i].power_cut = None;
            if self.machines[i].member.is_none() {
                self.start(i);
            }
        }
    }

    // ------------------------------------------------------------------ the verdict

    /// Every record a reader fetched: (partition, offset, value); but those the durability
    /// policy let power losses take after the read (`self.repl.lost`).
    fn polled(&self) -> Vec<(Part, i64, Value)> {
        let mut out: BTreeSet<(Part, i64, Value)> = BTreeSet::new();
        for e in &self.history.events {
            if let Event::Poll {
                t, part, records, ..
            } = e
            {
                let kept = (records.iter())
                    .filter(|(o, _)| !durability::excused(&self.repl.lost, *part, *o, *t));
                out.extend(kept.map(|(o, v)| (*part, *o, *v)));
            }
        }
        out.into_iter().collect()
    }

    /// The log of every partition on every running broker the final metadata names in its ISR,
    /// read from the broker's data disk (the page cache: what it would serve): (node, partition,
    /// offset → value, first offset).
    fn isr_logs(&self) -> Vec<(i32, Part, BTreeMap<i64, Value>, i64)> {
        let Some(image) = self
            .machines
            .iter()
            .filter_map(|m| m.image.as_ref())
            .max_by_key(|im| im.offset())
        else {
            return Vec::new();
        };
        let Some(id) = image.topic_id(TOPIC) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in 0..self.profile.partitions {
            let Some(reg) = image.partition(id, part) else {
                continue;
            };
            for b in &reg.isr {
                let i = (b.0 - 1) as usize;
                let Some(m) = self.machines.get(i).filter(|m| m.node.broker.is_some()) else {
                    continue;
                };
                let dir = format!("{TOPIC}-{part}/");
                let mut log = BTreeMap::new();
                // The log starts at its first segment's base offset (its file's name).
                let mut start = None;
                for (name, f) in m.node.disk.files.range(dir.clone()..) {
                    if !name.starts_with(&dir) {
                        break;
                    }
                    if !name.ends_with(".log") {
                        continue;
                    }
                    let base = name[dir.len()..name.len() - 4].parse::<i64>().unwrap_or(0);
                    start.get_or_insert(base);
                    let skip = (SEGMENT_HEADER_BYTES as usize).min(f.written.len());
                    let mut b = Bytes::copy_from_slice(&f.written[skip..]);
                    // A torn tail past the last whole batch is not part of the log.
                    while let Ok(set) = RecordBatchDecoder::decode(&mut b) {
                        for r in &set.records {
                            log.insert(r.offset, value_of(&r.value).unwrap_or(0));
                        }
                    }
                }
                out.push((b.0, part, log, start.unwrap_or(0)));
            }
        }
        out
    }

    /// The history the single-broker checkers judge. With replication, a record acknowledged
    /// with acks=1 or 0 may be lost when leadership moves (the leader acknowledged it alone), so
    /// its acknowledgement counts as unknown there; `acked-lost` counts those losses instead.
    /// Under durability `none`, the power losses they excuse are the partition cuts the policy
    /// allowed ([`durability::judged`]).
    fn judged_history(&self) -> History {
        let mut h = self.history.clone();
        if !self.opts.replication {
            return h;
        }
        if self.disk_profile.durability == Durability::None {
            h = durability::judged(h, &self.repl.lost);
        }
        let weak: BTreeSet<usize> = self
            .clients
            .iter()
            .filter_map(|c| match &c.role {
                Role2::Producer { index, acks, .. } if *acks != Acks::All => Some(*index),
                _ => None,
            })
            .collect();
        for e in &mut h.events {
            if let Event::SendDone {
                producer, outcome, ..
            } = e
            {
                if weak.contains(producer) {
                    *outcome = Outcome::Unknown;
                }
            }
        }
        h
    }

    fn finish(mut self) -> Report {
        let auditor = self
            .clients
            .iter()
            .position(|c| matches!(c.role, Role2::Auditor { .. }));
        let started = self
            .clients
            .iter()
            .any(|c| matches!(c.role, Role2::Producer { .. }));
        if !started {
            self.failures.push(format!(
                "liveness: the workload's topic was never created ({} attempts; run with --trace to see why)",
                self.counters.get("topic creation retries").copied().unwrap_or(0) + 1
            ));
        }
        match auditor {
            None => self.failures.push(format!(
                "liveness: the producers' records were not all reported {} s after the liveness phase",
                DRAIN / 1_000_000
            )),
            Some(a) => {
                let c = &self.clients[a];
                let done = c.client.caught_up()
                    && c.client.assignment().len() == self.profile.partitions as usize;
                if !done {
                    self.failures.push(
                        "liveness: the auditor could not read every partition to its end".into(),
                    );
                }
                if let Role2::Auditor { records, stopped } = &c.role {
                    if *stopped {
                        self.failures
                            .push("liveness: the auditor hit a partition it cannot read".into());
                    }
                    if done {
                        for p in 0..self.profile.partitions {
                            self.history.events.push(Event::Final {
                                part: p,
                                log_start: 0,
                                records: records.get(&p).cloned().unwrap_or_default(),
                            });
                        }
                    }
                }
            }
        }
        if !self
            .counters
            .contains_key("records acknowledged after the heal")
        {
            self.failures
                .push("liveness: no record was acknowledged after the heal".into());
        }
        self.follow_committed();
        let none = self.disk_profile.durability == Durability::None;
        if none {
            let (r, losses) = (&self.repl, &self.repl.power_losses.losses);
            let appended = &self.obs.appended;
            self.repl.lost = durability::lost(&self.history, &r.isr_changes, losses, appended);
        }
        self.replication.finish();
        let unanswered = self.replica_unanswered();
        self.failures.extend(unanswered);
        self.committed.finish();
        let mut anomalies: Vec<String> = Vec::new();
        if self.failures.is_empty() {
            // The history checkers need the auditor's final read.
            for a in check::check(&self.judged_history()) {
                anomalies.push(format!("{}: {}", a.kind.name(), a.detail));
            }
        }
        let reassign = self.reassign_check();
        for (k, d) in ccheck::check(&self.obs)
            .into_iter()
            .chain(replicated::check(&self.repl))
            .chain(coffsets::check(&self.offsets))
            .chain(self.producer_checks.anomalies.iter().cloned())
            .chain(reassign)
        {
            anomalies.push(format!("{k}: {d}"));
        }
        let (isr, losses) = (&self.repl.isr_changes, &self.repl.power_losses.losses);
        let appended = &self.obs.appended;
        let gone = |p, o, v, t| durability::gone(isr, losses, appended, (p, o, v), t);
        let (lost, acks) = replicated::acked_lost(&self.history, |p, o, v, t| {
            none && gone(p, o, v, t).is_some()
        });
        let (r, u) = (&self.repl.isr_changes, &self.repl.unclean);
        let (lost_n, acks_n) = acked_n::acked_n_lost(&self.history, &self.obs.appended, r, u);
        if self.failures.is_empty() {
            let exposed = replicated::hw_exposed(&self.polled(), &self.isr_logs());
            for (k, d) in lost.into_iter().chain(exposed).chain(lost_n) {
                anomalies.push(format!("{k}: {d}"));
            }
        }
        for a in self
            .one_leader
            .anomalies
            .iter()
            .chain(&self.committed.anomalies)
            .chain(&self.images.anomalies)
            .chain(&self.replication.anomalies)
        {
            anomalies.push(format!("{}: {}", a.kind, a.detail));
        }
        let acl = self.acl_verdict();
        if let Some((found, _)) = &acl {
            anomalies.extend(found.iter().cloned());
        }
        anomalies.extend(self.failures.iter().map(|f| format!("failure: {f}")));
        let mut summary = vec![
            format!(
                "{} combined nodes; {} epochs had a leader; committed metadata log {} entries; images compared {}",
                self.opts.nodes,
                self.one_leader.epochs_led(),
                self.committed.log().len(),
                self.images.compared()
            ),
            format!(
                "history: {} events; cluster observations: {} refused, {} appended, {} served",
                self.history.events.len(),
                self.obs.refused.len(),
                self.obs.appended.len(),
                self.obs.served.len()
            ),
            format!(
                "replication: {} leader appends, {} truncations ({} producer states compared with the log, {} not comparable), {} unclean elections, {} ISR checks; durability {}: {} power losses, {} partition cuts allowed; acknowledged acks=all {} (lost {}, {} allowed), acks=1/0 {} (lost {}, allowed), acks=N {} (lost {}, {} allowed; {} past the auditor's read)",
                self.repl.leader_appends.len(),
                self.repl.truncations.len(),
                self.producer_checks.checked,
                self.producer_checks.skipped,
                self.replication.unclean,
                self.replication.checks,
                if none { "none" } else { "group commit" },
                self.repl.power_losses.losses.len(),
                self.repl.lost.len(),
                acks.all,
                acks.all_lost,
                acks.all_excused,
                acks.weak,
                acks.weak_lost,
                acks_n.acked,
                acks_n.lost,
                acks_n.excused,
                acks_n.beyond
            ),
            format!(
                "offsets: {} commits acknowledged, {} fetches judged, {} coordinator moves",
                self.offsets.counts().0,
                self.offsets.counts().1,
                coffsets::moves(&self.offsets_leaders)
            ),
            format!("counters: {:?}", self.counters),
            format!("simulated until {} ms", self.now / MS),
        ];
        summary.extend(self.movers.summary());
        summary.extend(acl.map(|(_, line)| line));
        Report {
            seed: self.opts.seed,
            profile: format!(
                "{}{}{}{}\ndurability {:?}",
                self.profile.describe(),
                self.stops.describe(),
                self.movers.describe(),
                self.secure
                    .as_ref()
                    .map(|s| s.describe())
                    .unwrap_or_default(),
                self.disk_profile.durability
            ),
            summary,
            anomalies,
            trace_hash: self.trace,
            events: self.events,
            history: self.history,
        }
    }
}
