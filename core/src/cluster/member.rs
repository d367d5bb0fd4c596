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
use super::lifecycle::{BrokerState, Lifecycle};
use super::quorum_controller::{
    self, follow_commits, load, QuorumController, QuorumControllerConfig, Reply, Request, RequestId,
};
use super::MetadataImage;
use crate::raft::{self, Entry, Message, NodeId, QuorumState, RaftNode, Snapshot};
use crate::time::{Duration, Instant};
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
        };
        m.pump();
        m
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

    /// Move everything along until nothing moves: the source's outputs (in order, the image
    /// handed over right after the last output that moved it), the local controller's answers
    /// routed to whoever asked, the lifecycle's due request, the channel's sends and answers.
    fn pump(&mut self) {
        loop {
            let raws = self.drain_source();
            let mut busy = !raws.is_empty();
            let last_move = raws.iter().rposition(|r| {
                matches!(
                    r,
                    Raw::Raft(raft::Output::Committed { .. } | raft::Output::InstallSnapshot(_))
                )
            });
            for (i, raw) in raws.into_iter().enumerate() {
                match raw {
                    Raw::Raft(r) => self.outputs.push_back(Output::Raft(r)),
                    Raw::Respond(id, result) => self.route_answer(id, result),
                }
                if last_move == Some(i) {
                    self.hand_over_image();
                }
            }
            busy |= self.drive_channel();
            if !busy {
                break;
            }
        }
        // A restart from a snapshot starts with an image no output moved.
        self.hand_over_image();
        self.invariants();
    }

    /// Everything the source has to say, in order; an observer's commits replayed.
    fn drain_source(&mut self) -> Vec<Raw> {
        let mut raws = Vec::new();
        match &mut self.source {
            Source::Voter(c) => {
                while let Some(o) = c.poll_output() {
                    raws.push(match o {
                        quorum_controller::Output::Raft(r) => Raw::Raft(r),
                        quorum_controller::Output::Respond { id, result } => {
                            Raw::Respond(id, result)
                        }
                    });
                }
            }
            Source::Observer(o) => {
                while let Some(r) = o.raft.poll_output() {
                    follow_commits(&mut o.image, &mut o.applied, o.raft.log(), &r);
                    if let raft::Output::Truncate { end_offset } = r {
                        assert!(
                            end_offset >= o.applied,
                            "committed entries are never truncated"
                        );
                    }
                    raws.push(Raw::Raft(r));
                }
                assert!(!o.raft.is_leader(), "an observer never leads");
            }
        }
        raws
    }

    /// The local controller answered request `id`: to the channel or the remote broker.
    fn route_answer(&mut self, id: RequestId, result: Result<Reply, ControllerError>) {
        let asker = self
            .asks
            .remove(&id)
            .unwrap_or_else(|| panic!("the controller answered {id:?} twice or unasked"));
        match asker {
            Asker::Channel(attempt) => {
                let ch = self.channel.as_mut().expect("the channel asked");
                ch.answer(self.now, attempt, result);
            }
            Asker::Remote { from, id } => self.outputs.push_back(Output::Respond {
                to: from,
                id,
                result,
            }),
        }
    }

    fn hand_over_image(&mut self) {
        let image = self.source.image();
        if image.offset() == self.image.offset() {
            return;
        }
        assert!(
            image.offset() > self.image.offset(),
            "the committed image only moves forward"
        );
        self.image = Arc::new(image.clone());
        if self.role.has_broker() {
            self.outputs.push_back(Output::Image(self.image.clone()));
        }
    }

    /// The lifecycle's due request into the channel, the channel's events out; whether
    /// anything happened.
    fn drive_channel(&mut self) -> bool {
        let Some(ch) = &mut self.channel else {
            return false;
        };
        ch.quorum_leader(self.source.raft().leader());
        let replayed = self.image.offset();
        if let Some(l) = &mut self.lifecycle {
            if let Some(request) = l.due(self.now, replayed) {
                let deadline = self.now + self.config.request_timeout;
                ch.send(self.now, Caller::Lifecycle, request, deadline);
            }
        }
        let mut busy = false;
        while let Some(e) = ch.poll_event() {
            busy = true;
            match e {
                Event::Send { to, id, request } => match &mut self.source {
                    Source::Voter(c) if to == self.id => {
                        // The local controller: no wire. Its answer comes out of the source.
                        self.next_ask += 1;
                        let ours = RequestId(self.next_ask);
                        self.asks.insert(ours, Asker::Channel(id));
                        c.request(self.now, ours, request);
                    }
                    _ => {
                        assert_ne!(to, self.id, "an observer is not a controller");
                        self.outputs.push_back(Output::Request { to, id, request });
                    }
                },
                Event::Done {
                    caller: Caller::Lifecycle,
                    result,
                } => {
                    let l = self.lifecycle.as_mut().expect("the lifecycle asked");
                    l.answer(self.now, result);
                }
                Event::Done {
                    caller: Caller::Broker(id),
                    result,
                } => {
                    assert!(
                        self.broker_waiting.remove(&id),
                        "a broker request is answered once"
                    );
                    self.outputs
                        .push_back(Output::ControllerReply { id, result });
                }
            }
        }
        busy
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
        loop {
            while let Some(o) = m.poll_output() {
                match &o {
                    Output::Raft(raft::Output::Send { .. }) | Output::Request { .. } => {
                        panic!("a one-voter combined node needs no wire: {o:?}")
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

    #[test]
    fn a_broker_only_node_sends_its_registration_over_the_wire_and_refuses_controller_work() {
        let voters = BTreeSet::from([NodeId(1), NodeId(2), NodeId(3)]);
        let registration = Registration {
            broker_id: BrokerId(100),
            incarnation_id: [1; 16],
            endpoints: Vec::new(),
            rack: None,
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
