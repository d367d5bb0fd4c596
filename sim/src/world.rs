//! The simulated world: virtual time and the event queue, the nodes ([`crate::node`]), the
//! network between them and the clients ([`crate::network`]), the fault injector
//! ([`crate::faults`]), the run's two phases and the verdict.
//!
//! Everything happens as an [`Ev`] popped from one priority queue ordered by (time, sequence
//! number): the sequence number breaks ties in the order events were scheduled, so a run is a
//! pure function of its seed. Every popped event is folded into the trace hash.

use crate::check::{self, Anomaly};
use crate::clients::{Client, Compaction, Env, Out, Role, Us, MS, TOPIC};
use crate::faults::{self, Fault, Heal};
use crate::history::{CommitMode, Event, History};
use crate::network::{Endpoint, Network};
use crate::node::{describe, Node};
use crate::profile::Profile;
use gregor_core::assignor::Strategy;
use gregor_core::io::{ConnId, Input, OpId, Output, Request, StorageRequest};
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::StrBytes;
use gregor_core::prng::Prng;
use gregor_core::Config;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// How a run is set up.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// The safety phase: faults on.
    pub safety_ms: u64,
    /// The liveness phase: faults healed; everything acknowledged must become readable.
    pub liveness_ms: u64,
    /// Print every event as it happens.
    pub trace: bool,
    /// Plant a bug in the simulated world, to prove the checkers catch it (tests only).
    pub plant: Option<Plant>,
}

/// Bugs the tests plant on purpose: if the simulator cannot see these, it cannot see anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    /// The disk acknowledges fsync without making anything durable (a lying disk cache).
    LyingFsync,
}

impl Options {
    pub fn new(seed: u64) -> Options {
        Options {
            seed,
            safety_ms: 60_000,
            liveness_ms: 40_000,
            trace: false,
            plant: None,
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
    /// Failures outside the history checkers: per-step invariants, liveness.
    pub failures: Vec<String>,
    pub trace_hash: u64,
    pub events: u64,
    pub simulated_ms: u64,
    /// The recorded history, for `--history` and for tests.
    pub history: History,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.anomalies.is_empty() && self.failures.is_empty()
    }
}

enum Ev {
    /// A request reaches the broker.
    ToBroker {
        conn: u64,
        request: Request,
    },
    /// A node's broker may read the requests held while it was busy writing.
    Unhold {
        node: usize,
    },
    /// A response reaches a client.
    ToClient {
        conn: u64,
        corr: i32,
        body: ResponseKind,
    },
    /// A client learns its connection was reset.
    Reset {
        conn: u64,
    },
    /// The broker learns a connection is gone.
    Closed {
        conn: u64,
        incarnation: u64,
    },
    /// A storage operation completes.
    Disk {
        node: usize,
        incarnation: u64,
        op: OpId,
        request: StorageRequest,
    },
    BrokerTimer {
        node: usize,
        incarnation: u64,
    },
    ClientTimer {
        client: usize,
    },
    Fault(Fault),
    Heal(Heal),
    Restart {
        node: usize,
    },
    /// A broker halted on a storage failure; its supervisor kills and restarts it (in either
    /// phase: this is recovery, not a new fault).
    SupervisorRestart {
        node: usize,
    },
    MemberRestart {
        client: usize,
    },
    Liveness,
    GiveUp,
    AuditorStart,
}

struct Scheduled {
    at: Us,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// FNV-1a over 64-bit words: small, stable across platforms and Rust versions.
struct Trace {
    hash: u64,
    print: bool,
}
impl Trace {
    fn word(&mut self, w: u64) {
        for b in w.to_le_bytes() {
            self.hash ^= b as u64;
            self.hash = self.hash.wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// Most queued disk writes (in simulated time) before the broker stops reading requests.
///
/// The real runtime writes inline: its broker task is inside `write()` while a slow disk works,
/// so requests wait in the sockets, the sockets fill, and producers are held back (the way
/// Kafka's request handlers hold them back). Without this, acks=0 producers could queue
/// minutes of writes ahead of everyone's fsync, which no real gregor does (found by seed 515).
const WRITE_BACKLOG_MAX: Us = 50 * MS;

/// Requests a connection holds unread by the broker before the client's sends block (the TCP
/// send and receive buffers are full).
const SOCKET_REQUESTS_MAX: usize = 16;

/// How long a client waits for a connection to be set up before it gives up on it and on the
/// requests queued behind it (the Java client's `socket.connection.setup.timeout.ms`, 10 s by
/// default). A request's own timeout usually ends a hanging attempt first; this ends it for a
/// client with nothing awaiting an answer (an acks=0 producer).
const CONNECT_TIMEOUT: Us = 10_000 * MS;

pub struct World {
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    now: Us,
    prng: Prng,
    profile: Profile,
    config: Config,
    /// The broker machines (one today).
    nodes: Vec<Node>,
    net: Network,
    clients: Vec<Client>,
    env: Env,
    trace: Trace,
    events: u64,
    end: Us,
    liveness: bool,
    failures: Vec<String>,
    stats: BTreeMap<&'static str, u64>,
    admin_conn: Option<u64>,
    topic_ready: bool,
}

impl World {
    pub fn new(opts: &Options) -> World {
        let mut prng = Prng::new(opts.seed);
        let mut profile = Profile::draw(&mut prng);
        profile.draw_retention(opts.seed);
        profile.draw_topic_format(opts.seed);
        profile.compaction = Compaction::draw(opts.seed);
        let (retention_ms, retention_bytes) = profile.retention.unwrap_or((
            Config::default().retention_ms,
            Config::default().retention_bytes,
        ));
        let config = Config {
            retention_ms,
            retention_bytes,
            seed: prng.next_u64(),
            durability: profile.durability,
            segment_bytes_max: profile.segment_bytes,
            default_partitions: profile.partitions,
            compression_type: profile.compression,
            index_interval_bytes: profile.index_interval_bytes,
            group_initial_rebalance_delay_ms: 300,
            offsets_log_bytes_max: 32 * 1024,
            batch_bytes_max: 1024,
            // Every invariant after every step: the simulator is where they earn their keep.
            full_check_every_steps: 1,
            log_cleaner_backoff_ms: profile
                .compaction
                .as_ref()
                .map_or(Config::default().log_cleaner_backoff_ms, |c| {
                    c.cleaner_backoff_ms
                }),
            ..Config::default()
        };
        let mut env = Env {
            now: 0,
            prng: Prng::new(prng.next_u64()),
            history: History::new(profile.acks_survive_power_loss()),
            next_value: 0,
            liveness: false,
            producers_give_up: false,
            partitions: profile.partitions,
            outbox: Vec::new(),
            socket_full: BTreeSet::new(),
        };
        env.history.compacted = profile.compaction.as_ref().map(Compaction::history);
        let mut clients = Vec::new();
        for _ in 0..profile.producers {
            let id = clients.len();
            clients.push(Client::producer(id, &mut env.prng, profile.produce_gap_ms));
        }
        // A reader with a small top-level fetch limit, over every partition (KIP-74). Drawn
        // from its own PRNG so that the rest of the seed is unchanged.
        let mut kip74 = Prng::new(opts.seed ^ 0x6b69_7037_3400_0000);
        let fetch_max_bytes = kip74.ratio(2, 3).then(|| 80 + kip74.below(600) as i32);
        for r in 0..profile.readers {
            let parts = (0..profile.partitions)
                .filter(|p| *p as usize % profile.readers == r)
                .collect();
            let id = clients.len();
            clients.push(Client::reader(id, parts, false));
        }
        if let Some(max_bytes) = fetch_max_bytes {
            let id = clients.len();
            let mut c = Client::reader(id, (0..profile.partitions).collect(), false);
            c.set_fetch_max_bytes(max_bytes);
            // In half of these seeds it resets with auto.offset.reset=latest: it skips to the
            // high watermark (the other readers still read every partition from the start).
            if kip74.ratio(1, 2) {
                c.set_reset_latest();
            }
            clients.push(c);
        }
        for (g, &(members, after)) in profile.groups.iter().enumerate() {
            let mode = if after {
                CommitMode::AfterProcessing
            } else {
                CommitMode::BeforeProcessing
            };
            env.history.groups.push(mode);
            // Half the groups are cooperative (KIP-429): every member uses cooperative-sticky.
            // In the others each member draws its assignor, so some groups mix assignors and
            // are refused (INCONSISTENT_GROUP_PROTOCOL). Drawn from a PRNG of its own so the
            // rest of the seed is unchanged.
            let cooperative = Prng::new(opts.seed ^ 0x636f_6f70_0000_0000 ^ g as u64).ratio(1, 2);
            for _ in 0..members {
                let id = clients.len();
                let mut c = Client::member(id, g, mode, &mut env.prng);
                if cooperative {
                    c.set_strategy(Strategy::Sticky);
                }
                clients.push(c);
            }
        }
        if let Some(c) = &profile.compaction {
            let id = clients.len();
            clients.push(Client::keyed(id, c));
        }
        let auditor = clients.len();
        clients.push(Client::reader(
            auditor,
            (0..profile.partitions).collect(),
            true,
        ));
        let end = (opts.safety_ms + opts.liveness_ms) * MS;
        let mut w = World {
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            prng,
            nodes: vec![Node::new(profile.clock_drift_ppm)],
            net: Network::new(profile.net_latency_ms),
            profile,
            config,
            clients,
            env,
            trace: Trace {
                hash: 0xcbf2_9ce4_8422_2325,
                print: opts.trace,
            },
            events: 0,
            end,
            liveness: false,
            failures: Vec::new(),
            stats: BTreeMap::new(),
            admin_conn: None,
            topic_ready: false,
        };
        for n in &mut w.nodes {
            n.disk.faults.fsync_fail_per_mille = w.profile.fsync_fail_per_mille;
            n.disk.faults.lying_fsync = opts.plant == Some(Plant::LyingFsync);
        }
        w.schedule(opts.safety_ms * MS, Ev::Liveness);
        w.schedule(
            (opts.safety_ms + opts.liveness_ms / 2) * MS,
            Ev::AuditorStart,
        );
        w
    }

    fn schedule(&mut self, at: Us, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        }));
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    fn note(&mut self, tag: u64, a: u64, b: u64, line: impl FnOnce() -> String) {
        self.trace.word(self.now);
        self.trace.word(tag);
        self.trace.word(a);
        self.trace.word(b);
        if self.trace.print {
            println!("{:>10.3}ms {}", self.now as f64 / 1000.0, line());
        }
    }

    fn latency(&mut self) -> Us {
        self.net.latency(&mut self.prng)
    }

    /// The node a fault strikes: with one node no draw is made (so a one-node run's trace does
    /// not depend on how many nodes a run could have).
    fn pick_node(&mut self) -> usize {
        match self.nodes.len() {
            1 => 0,
            n => self.prng.below(n as u64) as usize,
        }
    }

    // ------------------------------------------------------------------ the run

    pub fn run(mut self, opts: &Options) -> Report {
        for n in 0..self.nodes.len() {
            self.start_broker(n);
        }
        self.setup_topic();
        for i in 0..self.clients.len() {
            let at = 100 * MS + self.prng.below(200) * MS;
            self.clients[i].timer_at = Some(at);
            self.schedule(at, Ev::ClientTimer { client: i });
        }
        for (fault, rate) in self.fault_rates() {
            if let Some(r) = rate {
                let at = 1_000 * MS + self.prng.below(2 * r) * MS;
                self.schedule(at, Ev::Fault(fault));
            }
        }
        while let Some(Reverse(s)) = self.queue.pop() {
            // The auditor reads the whole final log, one segment per fetch as Kafka reads, so a
            // long log of small segments can outlast the run (seed 734: 45k records in 2.5 KB
            // segments, never trimmed because crashes came faster than the retention check).
            // It may go on for one more liveness window, with faults healed, before it is judged.
            if s.at > self.end
                && (self.auditor_finished() || s.at > self.end + opts.liveness_ms * MS)
            {
                break;
            }
            self.now = s.at;
            self.env.now = s.at;
            self.events += 1;
            self.dispatch(s.ev);
            self.flush_clients();
        }
        self.finish(opts)
    }

    /// The auditor, and the compacted topic's reader if there is one, have read to the end.
    fn auditor_finished(&self) -> bool {
        self.clients.iter().all(Client::final_read_done)
    }

    fn fault_rates(&self) -> Vec<(Fault, Option<u64>)> {
        faults::rates(&self.profile)
    }

    /// Create the topic before the workload starts (as an operator would), driving the world
    /// until the broker has answered.
    fn setup_topic(&mut self) {
        let conn = self.open_conn(Endpoint::Admin, 0);
        self.admin_conn = Some(conn);
        let t = create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(self.profile.partitions)
            .with_replication_factor(1);
        let compacted = self.profile.compaction.as_ref().map(Compaction::topic);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::CreateTopics as i16)
            .with_request_api_version(5)
            .with_correlation_id(1);
        let topics = std::iter::once(t).chain(compacted).collect();
        let body = RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(topics));
        self.broker_input(
            0,
            Input::Request {
                now: self.nodes[0].clock(self.now),
                conn: ConnId(conn),
                request: Request { header, body },
            },
        );
        while !self.topic_ready {
            let Some(Reverse(s)) = self.queue.pop() else {
                panic!("setup: the broker never answered CreateTopics")
            };
            self.now = s.at;
            self.env.now = s.at;
            self.events += 1;
            self.dispatch(s.ev);
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::ToBroker { conn, request } => {
                let node = self.net.conns.get(&conn).map_or(0, |c| c.node);
                let n = &mut self.nodes[node];
                if n.broker.is_some()
                    && (!n.held.is_empty() || n.disk_busy_until > self.now + WRITE_BACKLOG_MAX)
                {
                    // Held in the socket while the broker is busy writing (see
                    // WRITE_BACKLOG_MAX), behind anything held before it.
                    n.held.push_back((conn, request));
                    self.schedule_unhold(node);
                    return;
                }
                self.deliver(conn, request);
            }
            Ev::Unhold { node } => {
                if self.nodes[node].unhold_at != Some(self.now) {
                    return;
                }
                self.nodes[node].unhold_at = None;
                while self.nodes[node].disk_busy_until <= self.now + WRITE_BACKLOG_MAX {
                    let Some((conn, request)) = self.nodes[node].held.pop_front() else {
                        break;
                    };
                    self.deliver(conn, request);
                }
                self.schedule_unhold(node);
            }
            Ev::ToClient { conn, corr, body } => {
                self.note(2, conn, corr as u64, || {
                    format!("broker -> conn {conn}: corr {corr}")
                });
                let Some(c) = self.net.conns.get(&conn) else {
                    return;
                };
                if c.broken {
                    return;
                }
                let Some(client) = c.client() else {
                    if let ResponseKind::CreateTopics(r) = body {
                        self.topic_ready = true;
                        for t in r.topics.iter().filter(|t| t.error_code != 0) {
                            self.failures.push(format!(
                                "setup: CreateTopics refused topic {}: error {} ({:?})",
                                t.name.0, t.error_code, t.error_message
                            ));
                        }
                    }
                    return;
                };
                let until = self.clients[client].stalled_until;
                if until > self.now {
                    self.schedule(until, Ev::ToClient { conn, corr, body });
                    return;
                }
                let cl = &mut self.clients[client];
                if cl.conn == Some(conn) && !cl.down {
                    cl.on_response(&mut self.env, corr, body);
                    self.after_client(client);
                }
            }
            Ev::Reset { conn } => {
                self.note(3, conn, 0, || format!("conn {conn}: reset seen by client"));
                let Some(client) = self.net.conns.get(&conn).and_then(|c| c.client()) else {
                    return;
                };
                if self.defer_if_stalled(client, Ev::Reset { conn }) {
                    return;
                }
                let cl = &mut self.clients[client];
                if cl.conn == Some(conn) && !cl.down {
                    cl.on_conn_lost(&mut self.env);
                    self.after_client(client);
                }
            }
            Ev::Closed { conn, incarnation } => {
                self.note(4, conn, incarnation, || {
                    format!("conn {conn}: closed seen by broker")
                });
                let node = self.net.conns.get(&conn).map_or(0, |c| c.node);
                let n = &self.nodes[node];
                if incarnation == n.incarnation && n.broker.is_some() {
                    let now = n.clock(self.now);
                    self.broker_input(
                        node,
                        Input::ConnClosed {
                            now,
                            conn: ConnId(conn),
                        },
                    );
                }
            }
            Ev::Disk {
                node,
                incarnation,
                op,
                request,
            } => {
                let n = &mut self.nodes[node];
                if incarnation != n.incarnation || n.broker.is_none() {
                    return; // the process that asked is gone; the write never happened
                }
                let result = n.disk.exec(&request, &mut self.prng);
                self.note(5, op.0, result.is_ok() as u64, || {
                    let r = match &result {
                        Ok(gregor_core::StorageReply::Read(b)) => format!("read {} bytes", b.len()),
                        other => format!("{other:?}"),
                    };
                    format!("disk: op {} {} -> {r}", op.0, describe(&request))
                });
                if result.is_err() && matches!(request, StorageRequest::Sync { .. }) {
                    // Kafka halts a broker whose log directory fails; a supervisor restarts it.
                    self.count("fsync failures");
                    let at = self.now + (500 + self.prng.below(2_000)) * MS;
                    self.schedule(at, Ev::SupervisorRestart { node });
                }
                let now = self.nodes[node].clock(self.now);
                self.broker_input(node, Input::StorageDone { now, op, result });
            }
            Ev::BrokerTimer { node, incarnation } => {
                let n = &self.nodes[node];
                if incarnation != n.incarnation || n.timer != Some(self.now) {
                    return;
                }
                self.note(6, 0, 0, || "broker: tick".into());
                self.nodes[node].timer = None;
                if self.nodes[node].broker.is_some() {
                    let now = self.nodes[node].clock(self.now);
                    self.broker_input(node, Input::Tick { now });
                }
            }
            Ev::ClientTimer { client } => {
                if self.clients[client].timer_at != Some(self.now) {
                    return;
                }
                self.note(7, client as u64, 0, || format!("client {client}: timer"));
                self.clients[client].timer_at = None;
                if self.clients[client].down {
                    return;
                }
                if self.clients[client].stalled_until > self.now {
                    let at = self.clients[client].stalled_until;
                    self.clients[client].timer_at = Some(at);
                    self.schedule(at, Ev::ClientTimer { client });
                    return;
                }
                self.clients[client].on_timer(&mut self.env);
                self.after_client(client);
            }
            Ev::Fault(f) => self.fault(f),
            Ev::Heal(h) => {
                self.note(9, 0, 0, || format!("heal {h:?}"));
                match h {
                    Heal::Link { client, node } => self
                        .net
                        .heal(Endpoint::Client(client), Endpoint::Node(node)),
                    Heal::DiskFull { node } => self.nodes[node].disk.faults.full = false,
                }
            }
            Ev::Restart { node } => {
                self.nodes[node].restart_pending = false;
                if self.nodes[node].broker.is_none() {
                    self.start_broker(node);
                }
            }
            Ev::SupervisorRestart { node } => {
                self.note(14, 0, 0, || {
                    "supervisor: restarting the broker after a storage failure".into()
                });
                self.stop_broker(node, false);
            }
            Ev::MemberRestart { client } => {
                self.note(10, client as u64, 0, || {
                    format!("client {client}: restarted")
                });
                self.clients[client].down = false;
                self.clients[client].kick(&mut self.env);
                self.after_client(client);
            }
            Ev::Liveness => {
                self.note(11, 0, 0, || "--- liveness phase: faults healed".into());
                self.liveness = true;
                self.env.liveness = true;
                self.net.heal_all();
                for n in &mut self.nodes {
                    n.disk.faults.full = false;
                    n.disk.faults.fsync_fail_per_mille = 0;
                }
                for c in &mut self.clients {
                    c.stalled_until = c.stalled_until.min(self.now);
                }
                for node in 0..self.nodes.len() {
                    if self.nodes[node].broker.is_none() && !self.nodes[node].restart_pending {
                        self.start_broker(node);
                    }
                }
                let give_up = self.now + (self.end - self.now) / 4;
                self.schedule(give_up, Ev::GiveUp);
            }
            Ev::GiveUp => {
                self.note(13, 0, 0, || {
                    "--- producers abandon unfinished batches".into()
                });
                self.env.producers_give_up = true;
                for i in 0..self.clients.len() {
                    self.clients[i].kick(&mut self.env);
                    self.after_client(i);
                }
            }
            Ev::AuditorStart => {
                self.note(12, 0, 0, || "--- auditor starts the final read".into());
                let a = self.clients.len() - 1;
                if let Role::Reader(r) = &mut self.clients[a].role {
                    r.active = true;
                }
                self.clients[a].kick(&mut self.env);
                self.after_client(a);
                // The compacted topic's client turns reader at the same time.
                for c in 0..a {
                    if let Role::Keyed(k) = &mut self.clients[c].role {
                        k.reading = true;
                        self.clients[c].kick(&mut self.env);
                        self.after_client(c);
                    }
                }
            }
        }
    }
}

impl World {
    // ------------------------------------------------------------------ the broker processes

    /// `epoch-cache` (`check::epochs`): each partition's recovered leader-epoch cache against
    /// the batch headers on the node's disk.
    fn recovered_epochs_problems(&self, node: usize) -> Vec<String> {
        let n = &self.nodes[node];
        let Some(broker) = n.broker.as_ref() else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        for (topic, t) in broker.topics() {
            for (i, p) in t.partitions.iter().enumerate() {
                if p.offline.is_some() {
                    continue;
                }
                let prefix = format!("{topic}-{i}/");
                let segments: Vec<(i64, &[u8])> = n
                    .disk
                    .files
                    .iter()
                    .filter_map(|(path, f)| {
                        let name = path.strip_prefix(&prefix)?;
                        let base = gregor_core::files::parse_segment_file_name(name)?;
                        Some((base, f.written.as_slice()))
                    })
                    .collect();
                let (start, end) = (p.log.log_start_offset(), p.log.log_end_offset());
                let batches = crate::check::epochs::batches_below(&segments, end);
                let name = format!("{topic}-{i}");
                let cache = p.log.epochs().entries();
                // The simulated broker runs standalone (epoch 0) unless configured for KRaft.
                let standalone = (!self.config.kraft).then_some(0);
                problems.extend(crate::check::epochs::check_partition(
                    &name, cache, &batches, start, end, standalone,
                ));
            }
        }
        problems
    }

    fn start_broker(&mut self, node: usize) {
        let config = Config {
            seed: self.prng.next_u64(),
            ..self.config.clone()
        };
        let found = self.nodes[node].start(config, self.now);
        for problem in self.recovered_epochs_problems(node) {
            self.failures
                .push(format!("t={}ms: {problem}", self.now / MS));
        }
        let mut log_ends = Vec::new();
        // Per-step invariant across restarts: the acknowledged (high-watermark) prefix is never
        // cut, unless a power loss did it under a policy that allows it.
        let lossy_restart = matches!(
            self.env
                .history
                .events
                .iter()
                .rev()
                .find(|e| matches!(e, Event::Crash { .. })),
            Some(Event::Crash {
                power_loss: true,
                ..
            })
        ) && !self.profile.acks_survive_power_loss();
        for (i, end, hw) in found {
            log_ends.push((i, end));
            let prev = self.nodes[node].hw.get(&i).copied().unwrap_or(0);
            if end < prev && !lossy_restart {
                self.failures.push(format!(
                    "t={}ms: restart found partition {i} ending at {end}, below high watermark {prev}",
                    self.now / MS
                ));
            }
            // From here the new incarnation's high watermark must only grow.
            self.nodes[node].hw.insert(i, hw);
        }
        let inc = self.nodes[node].incarnation;
        self.note(20, inc, 0, || {
            format!("broker: started (incarnation {inc})")
        });
        if inc > 1 {
            self.env.history.events.push(Event::Restart {
                t: self.now / MS,
                log_ends,
            });
        }
        let outputs = self.nodes[node].outputs();
        self.carry_out(node, outputs);
    }

    fn stop_broker(&mut self, node: usize, power_loss: bool) {
        if self.nodes[node].broker.is_none() {
            return;
        }
        let (power_loss, notes) = self.nodes[node].stop(power_loss, &mut self.prng, &self.profile);
        for n in notes {
            self.note(21, 0, 0, || format!("power loss: {n}"));
        }
        self.note(22, power_loss as u64, 0, || {
            format!(
                "broker: {}",
                if power_loss {
                    "power loss"
                } else {
                    "process crash"
                }
            )
        });
        self.env.history.events.push(Event::Crash {
            t: self.now / MS,
            power_loss,
        });
        self.count(if power_loss {
            "power losses"
        } else {
            "crashes"
        });
        let conns: Vec<u64> = self
            .net
            .conns
            .iter()
            .filter(|(_, c)| !c.broken && c.node == node)
            .map(|(id, _)| *id)
            .collect();
        for id in conns {
            self.net.conns.get_mut(&id).expect("listed").broken = true;
            // A crashed process's kernel resets its connections; a dead machine says nothing.
            if !power_loss {
                let at = self.now + self.latency();
                self.schedule(at, Ev::Reset { conn: id });
            }
        }
        if !self.nodes[node].restart_pending {
            self.nodes[node].restart_pending = true;
            let at = self.now + (100 + self.prng.below(3_000)) * MS;
            self.schedule(at, Ev::Restart { node });
        }
    }

    fn broker_input(&mut self, node: usize, input: Input) {
        if let Some(outputs) = self.nodes[node].handle(input) {
            self.carry_out(node, outputs);
        }
    }

    /// Carry out a node's outputs in the order the broker gave them, check the per-step
    /// invariants, and set the node's timer.
    fn carry_out(&mut self, node: usize, outputs: Vec<Output>) {
        for out in outputs {
            match out {
                Output::Response {
                    conn,
                    correlation_id,
                    body,
                    ..
                } => self.transmit_to_client(conn.0, correlation_id, body),
                Output::Close { conn, reason } => {
                    self.note(23, conn.0, 0, || {
                        format!("broker closes conn {}: {reason}", conn.0)
                    });
                    if let Some(c) = self.net.conns.get_mut(&conn.0) {
                        if !c.broken {
                            c.broken = true;
                            let at = self.now + self.latency();
                            self.schedule(at, Ev::Reset { conn: conn.0 });
                        }
                    }
                }
                Output::Storage { op, request } => {
                    let at = self.nodes[node].disk_completion(
                        &request,
                        self.now,
                        &mut self.prng,
                        &self.profile,
                    );
                    let incarnation = self.nodes[node].incarnation;
                    self.schedule(
                        at,
                        Ev::Disk {
                            node,
                            incarnation,
                            op,
                            request,
                        },
                    );
                }
                Output::Log { level, message } => {
                    if self.trace.print {
                        println!(
                            "{:>10.3}ms   broker log {level:?}: {message}",
                            self.now as f64 / 1000.0
                        );
                    }
                }
                Output::Controller { id, request } => unreachable!(
                    "the simulated brokers are standalone (kraft = false) and ask no \
                     controller: {id:?} {request:?}"
                ),
                Output::ReplicaFetch { id, .. } => unreachable!(
                    "the simulated brokers are standalone (kraft = false) and follow no \
                     leader: {id:?}"
                ),
            }
        }
        for (i, prev, now_hw) in self.nodes[node].check_hw() {
            self.failures.push(format!(
                "t={}ms: partition {i} high watermark went back from {prev} to {now_hw}",
                self.now / MS
            ));
        }
        let n = &self.nodes[node];
        if let Some(deadline) = n.broker.as_ref().and_then(|b| b.poll_timeout()) {
            let mut at = n.true_time_of(deadline, self.now);
            if at <= self.now {
                // Rounding between the two clocks: step a microsecond (time always advances).
                at = self.now + 1;
            }
            if n.timer.is_none_or(|t| at < t || t < self.now) {
                self.nodes[node].timer = Some(at);
                let incarnation = self.nodes[node].incarnation;
                self.schedule(at, Ev::BrokerTimer { node, incarnation });
            }
        }
    }

    // ------------------------------------------------------------------ the network

    /// A request is read by the broker (or, on a dead connection, dropped).
    fn deliver(&mut self, conn: u64, request: Request) {
        let (key, corr) = (
            request.header.request_api_key,
            request.header.correlation_id,
        );
        self.note(1, conn, ((key as u64) << 32) | corr as u32 as u64, || {
            format!("conn {conn} -> broker: api {key} corr {corr}")
        });
        let Some(c) = self.net.conns.get_mut(&conn) else {
            return;
        };
        c.unread -= 1;
        if c.unread < SOCKET_REQUESTS_MAX {
            if let Some(client) = c.client() {
                self.env.socket_full.remove(&client);
            }
        }
        let node = c.node;
        let n = &self.nodes[node];
        let alive = !c.broken && c.incarnation == n.incarnation;
        if alive && n.broker.is_some() {
            let now = n.clock(self.now);
            self.broker_input(
                node,
                Input::Request {
                    now,
                    conn: ConnId(conn),
                    request,
                },
            );
        }
    }

    /// Look at a node's held requests again once its disk has caught up enough.
    fn schedule_unhold(&mut self, node: usize) {
        let n = &self.nodes[node];
        if n.held.is_empty() || n.unhold_at.is_some() {
            return;
        }
        let at = n
            .disk_busy_until
            .saturating_sub(WRITE_BACKLOG_MAX)
            .max(self.now + 1);
        self.nodes[node].unhold_at = Some(at);
        self.schedule(at, Ev::Unhold { node });
    }

    fn open_conn(&mut self, from: Endpoint, node: usize) -> u64 {
        // A new connection has empty buffers.
        if let Endpoint::Client(c) = from {
            self.env.socket_full.remove(&c);
        }
        let incarnation = self.nodes[node].incarnation;
        self.net.open(from, node, incarnation)
    }

    fn transmit_to_client(&mut self, conn: u64, corr: i32, body: ResponseKind) {
        let lat = self.latency();
        if let Some(at) = self.net.send_from_node(conn, self.now, lat) {
            self.schedule(at, Ev::ToClient { conn, corr, body });
        }
    }

    /// Carry out what clients left in the outbox.
    fn flush_clients(&mut self) {
        while !self.env.outbox.is_empty() {
            let outs = std::mem::take(&mut self.env.outbox);
            for (client, out) in outs {
                match out {
                    Out::Drop => {
                        let Some(conn) = self.clients[client].conn.take() else {
                            continue;
                        };
                        let at = self.now + self.latency();
                        if let Some(c) = self.net.conns.get_mut(&conn) {
                            if !c.broken {
                                c.broken = true;
                                let incarnation = c.incarnation;
                                self.schedule(at, Ev::Closed { conn, incarnation });
                            }
                        }
                    }
                    Out::Send { header, body } => self.transmit_to_broker(client, header, body),
                }
            }
        }
    }

    fn transmit_to_broker(&mut self, client: usize, header: RequestHeader, body: RequestKind) {
        // Every client talks to node 0 today; with more nodes, metadata will say which.
        let node = 0;
        let (from, to) = (Endpoint::Client(client), Endpoint::Node(node));
        let conn = match self.clients[client].conn {
            Some(c) => c,
            None => {
                // Connecting needs the link open both ways; otherwise the SYN is lost and the
                // attempt hangs until the client's request timeout (or its connection-setup
                // timeout) ends it. A machine that is up with no broker process refuses the
                // connection at once (RST); a machine without power says nothing.
                //
                // A failed attempt is still the client's one connection: what the client sends
                // meanwhile queues behind it and is lost with it (librdkafka holds requests in
                // the broker's output queue until the connection is up; the Java client sends
                // nothing to a node that is not ready). Were a later request to open a fresh
                // connection instead, it could overtake the stranded one: an idempotent
                // producer's later batch would be appended while the earlier one waits for its
                // timeout, which no real client lets happen (seed 1226).
                let n = &self.nodes[node];
                let hangs = !self.net.can_connect(from, to) || (n.broker.is_none() && n.power_off);
                if hangs || n.broker.is_none() {
                    let c = self.open_conn(from, node);
                    self.net.conns.get_mut(&c).expect("just opened").broken = true;
                    self.clients[client].conn = Some(c);
                    let at = if hangs {
                        self.now + CONNECT_TIMEOUT
                    } else {
                        self.now + self.latency()
                    };
                    self.schedule(at, Ev::Reset { conn: c });
                    return;
                }
                let c = self.open_conn(from, node);
                self.clients[client].conn = Some(c);
                c
            }
        };
        let lat = self.latency();
        let Some(at) = self.net.send_to_node(conn, self.now, lat) else {
            return;
        };
        let c = self.net.conns.get_mut(&conn).expect("client's conn exists");
        c.unread += 1;
        if c.unread >= SOCKET_REQUESTS_MAX {
            self.env.socket_full.insert(client);
        }
        self.schedule(
            at,
            Ev::ToBroker {
                conn,
                request: Request { header, body },
            },
        );
    }

    fn after_client(&mut self, client: usize) {
        // Whatever could be done now was done by the callback that just ran: only future
        // instants need a timer.
        let Some(at) = self.clients[client].next_wake(self.now) else {
            return;
        };
        if at <= self.now {
            return;
        }
        let c = &mut self.clients[client];
        if c.timer_at.is_none_or(|t| at < t || t < self.now) {
            c.timer_at = Some(at);
            self.schedule(at, Ev::ClientTimer { client });
        }
    }

    fn defer_if_stalled(&mut self, client: usize, ev: Ev) -> bool {
        let until = self.clients[client].stalled_until;
        if until > self.now {
            self.schedule(until, ev);
            true
        } else {
            false
        }
    }

    // ------------------------------------------------------------------ faults

    fn fault(&mut self, f: Fault) {
        if self.liveness {
            return;
        }
        if let Some(r) = faults::rate(&self.profile, f) {
            let at = self.now + (1 + self.prng.below(2 * r)) * MS;
            self.schedule(at, Ev::Fault(f));
        }
        self.note(8, f as u64, 0, || format!("fault: {f:?}"));
        match f {
            Fault::Crash => {
                let node = self.pick_node();
                self.stop_broker(node, false)
            }
            Fault::PowerLoss => {
                let node = self.pick_node();
                self.stop_broker(node, true)
            }
            Fault::ConnReset => {
                let live: Vec<u64> = self
                    .net
                    .conns
                    .iter()
                    .filter(|(_, c)| !c.broken && c.client().is_some())
                    .map(|(id, _)| *id)
                    .collect();
                if live.is_empty() {
                    return;
                }
                let conn = live[self.prng.below(live.len() as u64) as usize];
                let c = self.net.conns.get_mut(&conn).expect("listed");
                c.broken = true;
                let incarnation = c.incarnation;
                let (a, b) = (self.now + self.latency(), self.now + self.latency());
                self.schedule(a, Ev::Reset { conn });
                self.schedule(b, Ev::Closed { conn, incarnation });
                self.count("connection resets");
            }
            Fault::Partition => {
                let client = self.prng.below(self.clients.len() as u64 - 1) as usize;
                let node = self.pick_node();
                let (c, n) = (Endpoint::Client(client), Endpoint::Node(node));
                match self.prng.below(3) {
                    0 => self.net.cut(c, n),
                    1 => self.net.cut(n, c),
                    _ => {
                        self.net.cut(c, n);
                        self.net.cut(n, c);
                    }
                }
                let at = self.now + (1_000 + self.prng.below(9_000)) * MS;
                self.schedule(at, Ev::Heal(Heal::Link { client, node }));
                self.count("network partitions");
            }
            Fault::Clog => {
                let client = self.prng.below(self.clients.len() as u64 - 1) as usize;
                let node = self.pick_node();
                let until = self.now + (500 + self.prng.below(4_500)) * MS;
                self.net
                    .clog(Endpoint::Client(client), Endpoint::Node(node), until);
                self.count("clogs");
            }
            Fault::ClockJump => {
                let node = self.pick_node();
                let jump = self.prng.below(90_000) as i64 - 30_000;
                let n = &mut self.nodes[node];
                if jump >= 0 {
                    n.clock_offset_ns += jump * 1_000_000;
                } else {
                    // The wall clock steps back (NTP). A running broker does not see it: the
                    // driver's time is the wall clock read at start plus a monotonic clock
                    // (net/src/clock.rs). The next process starts from the stepped clock. (A
                    // step back applied to a running broker froze its time, since the core's
                    // clock never goes back: sessions and rebalances stood still for minutes,
                    // simulator seed 1706.)
                    n.wall_step_ns += jump * 1_000_000;
                }
                self.count("clock jumps");
            }
            Fault::DiskFull => {
                let node = self.pick_node();
                self.nodes[node].disk.faults.full = true;
                let at = self.now + (500 + self.prng.below(4_500)) * MS;
                self.schedule(at, Ev::Heal(Heal::DiskFull { node }));
                self.count("disk full");
            }
            Fault::Member => {
                let members: Vec<usize> = self
                    .clients
                    .iter()
                    .filter(|c| matches!(c.role, Role::Member(_)) && !c.down)
                    .map(|c| c.id)
                    .collect();
                if members.is_empty() {
                    return;
                }
                let id = members[self.prng.below(members.len() as u64) as usize];
                match self.prng.below(3) {
                    0 => {
                        self.clients[id].crash_member(&mut self.env);
                        let at = self.now + (1_000 + self.prng.below(7_000)) * MS;
                        self.schedule(at, Ev::MemberRestart { client: id });
                        self.count("member crashes");
                    }
                    1 => {
                        // Stall past the session timeout: the group must evict it and move on.
                        self.clients[id].stalled_until =
                            self.now + (6_000 + self.prng.below(8_000)) * MS;
                        self.count("member stalls");
                    }
                    _ => {
                        let back = self.now + (1_000 + self.prng.below(4_000)) * MS;
                        self.clients[id].leave_member(&mut self.env, back);
                        self.count("member leaves");
                    }
                }
                self.after_client(id);
            }
        }
    }

    // ------------------------------------------------------------------ the verdict

    fn finish(mut self, opts: &Options) -> Report {
        let auditor = self.clients.last().expect("the auditor");
        if let Role::Reader(r) = &auditor.role {
            if !r.finished {
                self.failures.push(
                    "liveness: the auditor could not read every partition to its end after faults healed"
                        .into(),
                );
            }
        }
        if self
            .clients
            .iter()
            .any(|c| matches!(&c.role, Role::Keyed(k) if !k.finished))
        {
            self.failures.push(
                "liveness: the compacted topic's reader could not read its partition to its end after faults healed"
                    .into(),
            );
        }
        let h = std::mem::replace(&mut self.env.history, History::new(true));
        let anomalies = if self.failures.is_empty() {
            check::check(&h)
        } else {
            vec![]
        };
        let mut acked = 0u64;
        let mut sends = 0u64;
        let mut polled = 0u64;
        let mut processed = 0u64;
        let mut assigned = 0u64;
        for e in &h.events {
            match e {
                Event::Send { .. } => sends += 1,
                Event::SendDone {
                    outcome: crate::history::Outcome::Ok { .. },
                    values,
                    ..
                } => acked += values.len() as u64,
                Event::Poll { records, .. } => polled += records.len() as u64,
                Event::Processed { .. } => processed += 1,
                Event::Assigned { .. } => assigned += 1,
                _ => {}
            }
        }
        let disks = self.nodes.iter().map(|n| &n.disk);
        let (written, syncs, failed, full) = disks.fold((0, 0, 0, 0), |a, d| {
            (
                a.0 + d.bytes_written,
                a.1 + d.syncs,
                a.2 + d.failed_syncs,
                a.3 + d.full_rejections,
            )
        });
        let mut summary = vec![format!(
            "{} events; {} sends, {} records acknowledged, {} polled, {} processed by groups, {} assignments; disk: {} bytes written, {} fsyncs ({} failed), {} rejected as full",
            self.events, sends, acked, polled, processed, assigned, written, syncs, failed, full
        )];
        if let Some(line) = check::compaction::summary(&h) {
            summary.push(line);
        }
        if !self.stats.is_empty() {
            summary.push(format!(
                "faults: {}",
                self.stats
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.trace.word(acked);
        self.trace.word(polled);
        Report {
            seed: opts.seed,
            profile: self.profile.describe(),
            summary,
            anomalies,
            failures: self.failures,
            trace_hash: self.trace.hash,
            events: self.events,
            simulated_ms: self.end / MS,
            history: h,
        }
    }
}

/// Run one seed.
pub fn run(opts: &Options) -> Report {
    World::new(opts).run(opts)
}
