//! A node's metadata side: whatever its role, the one state machine that holds its part of the
//! metadata quorum, the committed image its broker serves, its broker's registration, and the
//! road from its broker to the active controller (Kafka's `SharedServer` with the
//! `BrokerServer`'s lifecycle manager and controller channel, and, when it is a controller, the
//! `ControllerServer`'s `QuorumController`; KIP-500, KIP-631).
//!
//! ## Roles (`process.roles`)
//! * [`Role::Controller`]: a voter of the quorum and nothing else ([`QuorumController`]).
//! * [`Role::Broker`]: a Raft *observer* that replays the committed log into its own image, and
//!   a [`Lifecycle`] registering and heartbeating. It never votes.
//! * [`Role::Combined`]: both in one process. The broker does not run an observer of its own:
//!   it serves the co-located controller's committed image, replayed from the same log by the
//!   same Raft client, and registers itself like any broker. Kafka makes this the default for
//!   small clusters; a one-voter combined node is a whole cluster in one process.
//!
//! ## What goes in and out
//! Inputs: quorum messages from peers ([`Member::handle`]), time ([`Member::tick`]), the local
//! broker's requests ([`Member::broker_request`]: CreateTopic, DeleteTopic,
//! AllocateProducerIds), remote brokers' requests for this node's controller
//! ([`Member::controller_request`]) and remote controllers' answers to this node's requests
//! ([`Member::controller_reply`]). Outputs ([`Output`]), performed in order:
//! * [`Output::Raft`]: the quorum's own outputs, with their durability contract unchanged (a
//!   storage output is durable before anything after it is performed; see [`crate::raft`]);
//! * [`Output::Image`]: the committed image the broker should serve moved (offsets only grow);
//! * [`Output::ControllerReply`]: the answer to a local broker request, exactly once;
//! * [`Output::Respond`]: the answer to a remote broker's request;
//! * [`Output::Request`]: a request to send to a remote controller.
//!
//! ## Routing
//! A local broker request and the lifecycle's registration and heartbeats take the same road,
//! the node's [`ControllerChannel`]: to the local [`QuorumController`] when it is the active
//! controller (no wire: the request is handed over in the same step, and its answer comes back
//! when its records commit), otherwise to the active controller the node knows of (the quorum
//! leader its Raft client follows), following NOT_CONTROLLER hints, giving up on a silent
//! controller after the request timeout and asking the next voter, until the request's deadline.
//! A request from a remote broker is handed to the local controller, which answers
//! NOT_CONTROLLER when it is not active; a broker-only node answers NOT_CONTROLLER itself.
//! The local controller sees requests under ids this node gives them, so a local broker's id
//! and a remote broker's id never collide; every answer it gives goes back to whoever asked,
//! once (asserted).

use super::channel::{Caller, ControllerChannel, Event};
use super::controller::{ControllerError, Registration};
use super::lifecycle::{BrokerState, Lifecycle, Shutdown};
use super::quorum_controller::{
    self, follow_commits, load, QuorumController, QuorumControllerConfig, Reply, Request, RequestId,
};
use super::MetadataImage;
use crate::raft::{self, Entry, Message, NodeId, QuorumState, RaftNode, Snapshot};
use crate::time::{Duration, Instant};

mod flow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Kafka's `process.roles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Controller,
    Broker,
    Combined,
}

impl Role {
    /// Whether the node runs a broker (and so a lifecycle and a channel to the controller).
    pub fn has_broker(self) -> bool {
        matches!(self, Role::Broker | Role::Combined)
    }
    /// Whether the node is a voter of the quorum.
    pub fn has_controller(self) -> bool {
        matches!(self, Role::Controller | Role::Combined)
    }
}

/// The node's settings, Kafka's names.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// The controller's settings; an observer uses their `raft` part.
    pub controller: QuorumControllerConfig,
    /// `broker.heartbeat.interval.ms` (2 s).
    pub heartbeat_interval: Duration,
    /// How long one controller is given to answer before the next is asked (and how long a
    /// registration or heartbeat is waited for in all).
    pub request_timeout: Duration,
    /// How long a local broker request may take in all before it is answered
    /// REQUEST_TIMED_OUT (Kafka's `request.timeout.ms`, 30 s, which bounds a forwarded request).
    pub broker_request_deadline: Duration,
}

impl Default for MemberConfig {
    fn default() -> MemberConfig {
        MemberConfig {
            controller: QuorumControllerConfig::default(),
            heartbeat_interval: Duration::from_ms(2_000),
            request_timeout: Duration::from_ms(3_000),
            broker_request_deadline: Duration::from_ms(30_000),
        }
    }
}

/// What the node asks its driver to do, in order. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The quorum's own output, unchanged (storage or a message to a peer).
    Raft(raft::Output),
    /// The committed image the broker should serve moved (the broker's `Input::Metadata`).
    Image(Arc<MetadataImage>),
    /// The answer to the local broker's request `id` (the broker's `Input::ControllerReply`).
    ControllerReply {
        id: RequestId,
        result: Result<Reply, ControllerError>,
    },
    /// The answer to remote broker `to`'s request `id`.
    Respond {
        to: NodeId,
        id: RequestId,
        result: Result<Reply, ControllerError>,
    },
    /// Send `request` to controller `to`; hand its answer to [`Member::controller_reply`].
    Request {
        to: NodeId,
        id: RequestId,
        request: Request,
    },
}

/// A broker-only node's view of the log: a Raft observer and the image it replays.
#[derive(Debug)]
struct Observer {
    raft: RaftNode,
    image: MetadataImage,
    /// The next offset to replay; equals the high watermark between calls.
    applied: i64,
}

/// Where the committed image comes from. (One per node for its whole life, never moved
/// around: the size difference between the variants costs nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Source {
    Voter(QuorumController),
    Observer(Observer),
}

impl Source {
    fn raft(&self) -> &RaftNode {
        match self {
            Source::Voter(c) => c.raft(),
            Source::Observer(o) => &o.raft,
        }
    }
    fn image(&self) -> &MetadataImage {
        match self {
            Source::Voter(c) => c.image(),
            Source::Observer(o) => &o.image,
        }
    }
}

/// One output of the source, before routing.
enum Raw {
    Raft(raft::Output),
    Respond(RequestId, Result<Reply, ControllerError>),
}

/// Who asked the local controller a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asker {
    /// This node's channel, attempt `.0`.
    Channel(RequestId),
    /// Remote broker `from`, by its id.
    Remote { from: NodeId, id: RequestId },
}

/// A node's metadata side. See the module docs.
#[derive(Debug)]
pub struct Member {
    role: Role,
    id: NodeId,
    config: MemberConfig,
    now: Instant,
    source: Source,
    lifecycle: Option<Lifecycle>,
    channel: Option<ControllerChannel>,
    /// The local controller's requests not yet answered, by the id this node gave them.
    asks: BTreeMap<RequestId, Asker>,
    next_ask: u64,
    /// The local broker's requests not yet answered.
    broker_waiting: BTreeSet<RequestId>,
    /// The image last handed to the broker.
    image: Arc<MetadataImage>,
    outputs: VecDeque<Output>,
    /// A combined node's broker incarnation, until its controller has first been active and
    /// ended the session of the previous incarnation (this node's previous run).
    previous_run: Option<[u8; 16]>,
}

impl Member {
    /// A node starting with `role` from what its quorum outputs made durable (the quorum state,
    /// the latest snapshot and the log after it: all empty on a first start). A node with a
    /// broker names its `registration` (a fresh incarnation id per process start).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        role: Role,
        id: NodeId,
        voters: BTreeSet<NodeId>,
        registration: Option<Registration>,
        config: MemberConfig,
        seed: u64,
        now: Instant,
        state: QuorumState,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    ) -> Member {
        assert_eq!(
            role.has_broker(),
            registration.is_some(),
            "a broker registers, a controller alone does not"
        );
        assert!(registration.as_ref().is_none_or(|r| r.broker_id.0 == id.0));
        assert_eq!(
            role.has_controller(),
            voters.contains(&id),
            "the voters are the controllers"
        );
        assert!(config.request_timeout.0 > 0 && config.broker_request_deadline.0 > 0);
        let source = if role.has_controller() {
            Source::Voter(QuorumController::restore(
                id,
                voters.clone(),
                config.controller.clone(),
                seed,
                now,
                state,
                snapshot,
                entries,
            ))
        } else {
            let (image, applied) = match &snapshot {
                Some(s) => (load(s), s.id.end_offset),
                None => (MetadataImage::new(), 0),
            };
            let raft = RaftNode::restore(
                id,
                voters.clone(),
                config.controller.raft.clone(),
                seed,
                now,
                state,
                snapshot,
                entries,
            );
            Source::Observer(Observer {
                raft,
                image,
                applied,
            })
        };
        let previous_run = registration
            .as_ref()
            .filter(|_| role == Role::Combined)
            .map(|r| r.incarnation_id);
        let lifecycle = registration.map(|r| Lifecycle::new(r, config.heartbeat_interval, now));
        let channel = role.has_broker().then(|| {
            let voters = voters.iter().copied().collect();
            ControllerChannel::new(id, voters, config.request_timeout, now)
        });
        let mut m = Member {
            role,
            id,
            config,
            now,
            source,
            lifecycle,
            channel,
            asks: BTreeMap::new(),
            next_ask: 0,
            broker_waiting: BTreeSet::new(),
            image: Arc::new(MetadataImage::new()),
            outputs: VecDeque::new(),
            previous_run,
        };
        m.pump();
        m
    }

    /// gregor's migration of a standalone broker's data directory ([`crate::cluster::import`]):
    /// the local controller, active, writes `local`'s topics and producer ids for this node's
    /// broker. Returns the offset the import is committed at once the image reaches it. Only a
    /// controller that is active can do it (at start, the one voter of a one-voter quorum).
    pub fn import(
        &mut self,
        now: Instant,
        local: &crate::cluster::import::LocalTopics,
    ) -> Result<i64, ControllerError> {
        self.advance(now);
        assert!(self.role.has_broker(), "the broker's own topics");
        let broker = super::BrokerId(self.id.0);
        let result = match &mut self.source {
            Source::Voter(c) => c.import(now, broker, local),
            Source::Observer(o) => Err(ControllerError::NotController {
                leader: o.raft.leader().map(|l| l.0),
            }),
        };
        self.pump();
        result
    }

    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    /// The committed image as last handed to the broker (for a controller alone, its own).
    pub fn image(&self) -> &Arc<MetadataImage> {
        &self.image
    }
    pub fn raft(&self) -> &RaftNode {
        self.source.raft()
    }
    /// The co-located controller, when the node is one.
    pub fn controller(&self) -> Option<&QuorumController> {
        match &self.source {
            Source::Voter(c) => Some(c),
            Source::Observer(_) => None,
        }
    }
    /// Where the node's broker stands with the controller (none without a broker).
    pub fn broker_state(&self) -> Option<BrokerState> {
        self.lifecycle.as_ref().map(|l| l.state())
    }
    /// The process is stopping: the broker asks the active controller for a controlled
    /// shutdown ([`Lifecycle::begin_controlled_shutdown`]); [`Member::shutdown`] says when it
    /// may stop. A controller alone has no broker to move: nothing to do.
    pub fn begin_controlled_shutdown(&mut self, now: Instant) {
        self.advance(now);
        if let Some(l) = &mut self.lifecycle {
            l.begin_controlled_shutdown(now);
        }
        self.pump();
        assert!(self
            .lifecycle
            .as_ref()
            .is_none_or(|l| l.shutdown() != Shutdown::NotAsked));
    }
    /// The process is stopping cleanly, after its broker's controlled shutdown: a voter that
    /// leads the quorum resigns with EndQuorumEpoch ([`crate::raft::RaftNode::resign`]) so
    /// another controller is elected at once. Returns whether it resigned (an observer never
    /// does).
    pub fn resign(&mut self, now: Instant) -> bool {
        self.advance(now);
        let led = match &mut self.source {
            Source::Voter(c) => c.resign(now),
            Source::Observer(_) => false,
        };
        self.pump();
        led
    }
    /// How far the broker's controlled shutdown has gone (none without a broker).
    pub fn shutdown(&self) -> Option<Shutdown> {
        self.lifecycle.as_ref().map(|l| l.shutdown())
    }
    /// How many local broker requests wait for their answer.
    pub fn broker_requests_waiting(&self) -> usize {
        self.broker_waiting.len()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next instant [`Member::tick`] has work to do.
    pub fn poll_timeout(&self) -> Instant {
        let source = match &self.source {
            Source::Voter(c) => c.poll_timeout(),
            Source::Observer(o) => o.raft.poll_timeout(),
        };
        let channel = self.channel.as_ref().and_then(|c| c.poll_timeout());
        let lifecycle = self.lifecycle.as_ref().and_then(|l| l.poll_timeout());
        [Some(source), channel, lifecycle]
            .into_iter()
            .flatten()
            .min()
            .expect("the quorum always has a deadline")
    }

    /// A quorum message from a peer.
    pub fn handle(&mut self, now: Instant, from: NodeId, message: Message) {
        self.advance(now);
        match &mut self.source {
            Source::Voter(c) => c.handle(now, from, message),
            Source::Observer(o) => o.raft.handle(now, from, message),
        }
        self.pump();
    }

    /// Time passed: the quorum's deadlines, the controller's when active, the channel's retries
    /// and the lifecycle's next registration or heartbeat.
    pub fn tick(&mut self, now: Instant) {
        self.advance(now);
        match &mut self.source {
            Source::Voter(c) => c.tick(now),
            Source::Observer(o) => o.raft.tick(now),
        }
        if let Some(ch) = &mut self.channel {
            ch.tick(now);
        }
        self.pump();
    }

    /// The local broker asks the active controller (`Output::Controller` of the broker). The
    /// answer comes as [`Output::ControllerReply`] with `id`, exactly once.
    pub fn broker_request(&mut self, now: Instant, id: RequestId, request: Request) {
        self.advance(now);
        assert!(self.role.has_broker(), "a controller alone has no broker");
        assert!(
            self.broker_waiting.insert(id),
            "the broker reused the id of a request still waiting: {id:?}"
        );
        let deadline = now + self.config.broker_request_deadline;
        let ch = self.channel.as_mut().expect("a broker has a channel");
        ch.send(now, Caller::Broker(id), request, deadline);
        self.pump();
    }

    /// Remote broker `from` asks this node's controller (request `id` in its own numbering).
    /// The answer comes as [`Output::Respond`].
    pub fn controller_request(&mut self, now: Instant, from: NodeId, id: RequestId, req: Request) {
        self.advance(now);
        match &mut self.source {
            Source::Voter(c) => {
                self.next_ask += 1;
                let ours = RequestId(self.next_ask);
                self.asks.insert(ours, Asker::Remote { from, id });
                c.request(now, ours, req);
            }
            Source::Observer(o) => {
                // A broker-only node is never the controller: say who is, as Kafka's brokers
                // answer a controller API they do not serve.
                let leader = o.raft.leader().map(|l| l.0);
                self.outputs.push_back(Output::Respond {
                    to: from,
                    id,
                    result: Err(ControllerError::NotController { leader }),
                });
            }
        }
        self.pump();
    }

    /// A remote controller's answer to this node's request `id` (from an [`Output::Request`]).
    pub fn controller_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<Reply, ControllerError>,
    ) {
        self.advance(now);
        let ch = self
            .channel
            .as_mut()
            .expect("only a broker asks a controller");
        ch.answer(now, id, result);
        self.pump();
    }

    // ----- inside -----

    fn advance(&mut self, now: Instant) {
        assert!(now >= self.now, "time never goes back for a node");
        self.now = now;
    }

    /// Checked after every step.
    fn invariants(&self) {
        assert_eq!(
            self.image.offset(),
            self.source.image().offset(),
            "the broker has the committed image"
        );
        assert_eq!(self.role.has_controller(), self.controller().is_some());
        assert_eq!(self.role.has_broker(), self.lifecycle.is_some());
        assert_eq!(self.role.has_broker(), self.channel.is_some());
        if let Source::Observer(o) = &self.source {
            assert_eq!(o.image.offset(), o.applied - 1);
            assert_eq!(o.applied, o.raft.high_watermark());
            assert!(self.asks.is_empty(), "no controller here to ask");
        }
        if let (Some(ch), Some(l)) = (&self.channel, &self.lifecycle) {
            assert_eq!(ch.is_waiting(Caller::Lifecycle), l.is_waiting());
            assert_eq!(
                ch.pending(),
                self.broker_waiting.len() + usize::from(l.is_waiting()),
                "every waiting request is in the channel, once"
            );
        }
        assert!(self.asks.keys().all(|id| id.0 <= self.next_ask));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::Endpoint;
    use crate::cluster::BrokerId;

    /// Run `m` alone until `until`, collecting what it hands its broker; no output may need a
    /// wire (a one-voter combined node is a whole cluster).
    fn run(m: &mut Member, until: Instant, seen: &mut Vec<Output>) {
        run_on(m, until, seen, &mut Disk::default());
    }

    /// What a node's storage outputs made durable: its quorum state and log (no snapshots in
    /// these short runs).
    #[derive(Default)]
    struct Disk {
        state: QuorumState,
        entries: Vec<Entry>,
    }

    fn run_on(m: &mut Member, until: Instant, seen: &mut Vec<Output>, disk: &mut Disk) {
        loop {
            while let Some(o) = m.poll_output() {
                match &o {
                    Output::Raft(raft::Output::Send { .. }) | Output::Request { .. } => {
                        panic!("a one-voter combined node needs no wire: {o:?}")
                    }
                    Output::Raft(raft::Output::SaveQuorumState(s)) => disk.state = s.clone(),
                    Output::Raft(raft::Output::Append {
                        base_offset,
                        entries,
                    }) => {
                        disk.entries.truncate(*base_offset as usize);
                        disk.entries.extend(entries.iter().cloned());
                    }
                    Output::Raft(raft::Output::Truncate { end_offset }) => {
                        disk.entries.truncate(*end_offset as usize)
                    }
                    Output::Raft(_) => {}
                    _ => seen.push(o),
                }
            }
            let at = m.poll_timeout();
            if at > until {
                return;
            }
            m.tick(at.max(m.now));
        }
    }

    #[test]
    fn a_combined_node_alone_registers_its_broker_and_answers_it_without_a_wire() {
        let id = NodeId(1);
        let registration = Registration {
            broker_id: BrokerId(1),
            incarnation_id: [7; 16],
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            rack: None,
            log_dir_new: false,
        };
        let now = Instant(1_000);
        let mut m = Member::restore(
            Role::Combined,
            id,
            BTreeSet::from([id]),
            Some(registration),
            MemberConfig::default(),
            1,
            now,
            QuorumState::default(),
            None,
            Vec::new(),
        );
        let mut seen = Vec::new();
        run(&mut m, now + Duration::from_ms(1_000), &mut seen);
        let epoch = match m.broker_state() {
            Some(BrokerState::Unfenced { epoch }) => epoch,
            other => panic!("not unfenced within a second: {other:?}"),
        };
        let registered = m.image().broker(BrokerId(1)).expect("in the image");
        assert_eq!(registered.broker_epoch, epoch);
        assert!(
            !registered.fenced,
            "the image the broker serves says unfenced"
        );
        let offsets: Vec<i64> = seen
            .iter()
            .filter_map(|o| match o {
                Output::Image(i) => Some(i.offset()),
                _ => None,
            })
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        assert_eq!(offsets.last(), Some(&m.image().offset()));

        seen.clear();
        let t = m.now;
        let create = Request::CreateTopic {
            name: "orders".into(),
            partitions: 2,
            replication_factor: 1,
            configs: Default::default(),
        };
        m.broker_request(t, RequestId(5), create);
        m.broker_request(t, RequestId(6), Request::DeleteTopic { name: "x".into() });
        run(&mut m, t + Duration::from_ms(100), &mut seen);
        let replies: Vec<&Output> = seen
            .iter()
            .filter(|o| matches!(o, Output::ControllerReply { .. }))
            .collect();
        assert_eq!(replies.len(), 2, "each answered once: {seen:?}");
        let Output::ControllerReply {
            id: RequestId(5),
            result: Ok(Reply::CreateTopic { topic_id }),
        } = replies[0]
        else {
            panic!("{replies:?}")
        };
        assert_eq!(
            replies[1],
            &Output::ControllerReply {
                id: RequestId(6),
                result: Err(ControllerError::UnknownTopic("x".into()))
            }
        );
        assert_eq!(m.image().topic_id("orders"), Some(*topic_id));
        assert_eq!(m.broker_requests_waiting(), 0);
    }

    fn solo(incarnation: u8, now: Instant, disk: &Disk) -> Member {
        let registration = Registration {
            broker_id: BrokerId(1),
            incarnation_id: [incarnation; 16],
            endpoints: Vec::new(),
            rack: None,
            log_dir_new: false,
        };
        Member::restore(
            Role::Combined,
            NodeId(1),
            BTreeSet::from([NodeId(1)]),
            Some(registration),
            MemberConfig::default(),
            incarnation as u64,
            now,
            disk.state.clone(),
            None,
            disk.entries.clone(),
        )
    }

    #[test]
    fn a_restarted_solo_node_registers_its_new_incarnation_at_once() {
        let mut disk = Disk::default();
        let mut seen = Vec::new();
        let t0 = Instant(1_000);
        let mut m = solo(1, t0, &disk);
        run_on(&mut m, t0 + Duration::from_ms(500), &mut seen, &mut disk);
        assert!(matches!(
            m.broker_state(),
            Some(BrokerState::Unfenced { .. })
        ));
        // Killed, and started again at once: the old incarnation's session (9 s) has not
        // lapsed, yet the node's own previous run is no rival.
        let t1 = t0 + Duration::from_ms(600);
        let mut m = solo(2, t1, &disk);
        run_on(&mut m, t1 + Duration::from_ms(100), &mut seen, &mut disk);
        let Some(BrokerState::Unfenced { epoch }) = m.broker_state() else {
            panic!("not unfenced at once: {:?}", m.broker_state());
        };
        assert_eq!(
            m.image().broker(BrokerId(1)).unwrap().incarnation_id,
            [2; 16]
        );
        assert_eq!(m.image().broker(BrokerId(1)).unwrap().broker_epoch, epoch);
    }

    #[test]
    fn a_solo_node_imports_a_standalone_brokers_topics_and_leads_them() {
        use crate::cluster::import::{LocalTopic, LocalTopics};
        use crate::cluster::TopicId;
        let mut disk = Disk::default();
        let mut seen = Vec::new();
        let t0 = Instant(0);
        let mut m = solo(1, t0, &disk);
        let local = LocalTopics {
            topics: vec![LocalTopic {
                name: "orders".into(),
                topic_id: TopicId([5; 16]),
                partitions: 2,
                configs: [("retention.ms".to_string(), "1000".to_string())].into(),
            }],
            next_producer_id: 3000,
        };
        let at = m.import(t0, &local).unwrap();
        run_on(&mut m, t0 + Duration::from_ms(200), &mut seen, &mut disk);
        assert!(m.image().offset() >= at);
        let image = m.image().clone();
        let t = &image.topics()[&TopicId([5; 16])];
        assert_eq!(t.name, "orders");
        assert!(
            t.partitions.values().all(|p| p.leader == Some(BrokerId(1))),
            "{t:?}"
        );
        assert_eq!(t.configs["retention.ms"], "1000");
        assert!(image.next_producer_id() >= 3000);
        // Survives a restart, and a second import writes nothing new.
        let t1 = t0 + Duration::from_ms(300);
        let mut m = solo(2, t1, &disk);
        run_on(&mut m, t1 + Duration::from_ms(100), &mut seen, &mut disk);
        let end = disk.entries.len();
        assert_eq!(m.image().topic_id("orders"), Some(TopicId([5; 16])));
        let again = LocalTopics {
            next_producer_id: 0,
            ..local
        };
        m.import(m.now, &again).unwrap();
        assert_eq!(m.raft().log().end() as usize, end, "nothing written");
        // A broker-only node has no controller to write with.
        let voters = BTreeSet::from([NodeId(2)]);
        let reg = Registration {
            broker_id: BrokerId(1),
            incarnation_id: [3; 16],
            endpoints: Vec::new(),
            rack: None,
            log_dir_new: false,
        };
        let mut b = Member::restore(
            Role::Broker,
            NodeId(1),
            voters,
            Some(reg),
            MemberConfig::default(),
            3,
            t1,
            QuorumState::default(),
            None,
            Vec::new(),
        );
        assert!(matches!(
            b.import(t1, &again),
            Err(ControllerError::NotController { .. })
        ));
    }

    #[test]
    fn a_broker_only_node_sends_its_registration_over_the_wire_and_refuses_controller_work() {
        let voters = BTreeSet::from([NodeId(1), NodeId(2), NodeId(3)]);
        let registration = Registration {
            broker_id: BrokerId(100),
            incarnation_id: [1; 16],
            endpoints: Vec::new(),
            rack: None,
            log_dir_new: false,
        };
        let now = Instant(0);
        let mut m = Member::restore(
            Role::Broker,
            NodeId(100),
            voters,
            Some(registration),
            MemberConfig::default(),
            3,
            now,
            QuorumState::default(),
            None,
            Vec::new(),
        );
        let outs: Vec<Output> = std::iter::from_fn(|| m.poll_output()).collect();
        let asked: Vec<_> = outs
            .iter()
            .filter_map(|o| match o {
                Output::Request { to, request, .. } => Some((*to, request.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(asked.len(), 1, "{outs:?}");
        assert_eq!(asked[0].0, NodeId(2), "100 % 3 = 1: the second voter");
        assert!(matches!(asked[0].1, Request::BrokerRegistration(_)));
        m.controller_request(
            now,
            NodeId(101),
            RequestId(9),
            Request::DeleteTopic { name: "t".into() },
        );
        assert_eq!(
            m.poll_output(),
            Some(Output::Respond {
                to: NodeId(101),
                id: RequestId(9),
                result: Err(ControllerError::NotController { leader: None })
            })
        );
    }
}
