//! The node's metadata side driven by the network and time: the sans-IO [`Member`] in combined
//! mode (a Raft voter, its committed metadata image, the active controller while it leads, and
//! the broker's registration and road to the active controller; `gregor_core::cluster::member`).
//!
//! One task owns the member. It waits for an [`Event`] from the network, a request from its
//! broker ([`super::link`]), a remote controller's answer, or the member's next deadline
//! ([`Member::poll_timeout`]), hands it over, then drains [`Member::poll_output`] and performs
//! each output **in order**: a storage output (the quorum's own, [`MemberOutput::Raft`]) is
//! fsynced before the next output is looked at, so a vote is durable before the VoteResponse
//! that reports it is sent, an entry before the fetch that counts it, and every record a
//! controller answer depends on before that answer leaves (the calling contract of
//! [`gregor_core::raft`] and [`gregor_core::cluster::quorum_controller`]). A response to a
//! peer's Raft request goes back on the connection it came on; a Raft request goes to the
//! peer's queue; a controller answer goes to the connection that asked; a committed image and
//! the answers to the broker's own requests go to the broker task; a request the member sends
//! another controller goes out on a kept connection to it ([`controller_client::ControllerLinks`]).
//!
//! The committed image lives in the member: it replays committed records, takes snapshots
//! every `snapshot_interval_entries` committed offsets (KIP-630) and loads those a leader sends.
//! DescribeQuorum and DescribeCluster (`gregor cluster status`) read it here.

use super::controller_client;
use super::link::{QuorumEnd, Resigned, ToBroker};
use super::storage::{Recovered, Storage};
use super::transport::{self, Event, Peers, Reply};
use super::QuorumConfig;
use crate::clock::Clock;
use gregor_core::cluster::import::LocalTopics;
use gregor_core::cluster::lifecycle::{BrokerState, Shutdown};
use gregor_core::cluster::member::Output as MemberOutput;
use gregor_core::cluster::quorum_controller::QuorumControllerConfig;
use gregor_core::cluster::wire::quorum_status;
use gregor_core::cluster::{
    ControllerError, Member, MemberConfig, Registration, Reply as ControllerReply, Request,
    RequestId,
};
use gregor_core::raft::wire::QuorumStatus;
use gregor_core::raft::{Message, NodeId, Output, RaftConfig, Role};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Events waiting for the driver; the network's tasks wait when it is full.
pub const EVENT_QUEUE_MAX: usize = 1024;
/// Controller requests waiting for their answer (their records to commit); more are refused
/// at once with REQUEST_TIMED_OUT, so a stalled quorum cannot grow this without bound.
pub const CONTROLLER_PENDING_MAX: usize = 4096;
/// How often a leader repeats BeginQuorumEpoch to a voter that has not fetched for as long.
///
/// A voter that restarts, or was cut off during the election, does not know the new leader.
/// Without this it would wait for its election timeout and stand in a higher epoch, unseating a
/// leader it cannot even beat (its log is behind). Kafka's leader resends BeginQuorumEpoch
/// to voters that have not fetched lately for the same reason. The core's `RaftNode` does not
/// repeat it yet, so this driver does; the message is idempotent (a node that already follows
/// the leader of that epoch ignores it). It belongs in `RaftNode` eventually.
pub const BEGIN_QUORUM_EPOCH_RESEND: std::time::Duration = std::time::Duration::from_millis(500);

/// The longest a resigning leader waits for the other voters to acknowledge its
/// EndQuorumEpoch before the process goes on stopping. The message is what lets them elect at
/// once; a voter that is down or cut off does not acknowledge and is not waited for longer.
pub const RESIGN_ACK_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);

/// A controller answer on its way back to the connection that asked.
pub type ControllerAnswer = Result<ControllerReply, ControllerError>;

/// Requests from remote brokers are handed to the member under this node id: the member only
/// echoes it back with the answer, which the driver routes by request id.
const REMOTE_BROKER: NodeId = NodeId(-1);

/// Run the node's metadata side: the quorum member in its role, the controller listener when
/// there is one, and for `broker` (its registration and its end of the road to the broker
/// task) the broker's lifecycle, requests, the import of a standalone broker's data directory
/// and the [`ToBroker::Ready`] that lets the broker serve.
pub async fn run(
    config: QuorumConfig,
    storage: Storage,
    recovered: Recovered,
    listener: Option<tokio::net::TcpListener>,
    broker: Option<(Registration, QuorumEnd)>,
    resign_asks: mpsc::UnboundedReceiver<oneshot::Sender<Resigned>>,
) -> anyhow::Result<()> {
    let mut resign_asks = Some(resign_asks);
    let clock = Clock::new();
    let (events, mut inbox) = mpsc::channel(EVENT_QUEUE_MAX);
    info!(node_id = config.node_id.0, role = ?config.role, listen = ?config.listen,
        voters = ?config.voters, "metadata quorum member starting");
    if let Some(listener) = listener {
        tokio::spawn(transport::accept_loop(listener, events.clone()));
    }
    let log_was_empty = recovered.snapshot.is_none() && recovered.entries.is_empty();
    // Held for the driver's life: with no listener and no peer (a lone voter in process) no
    // network task holds a sender, and the inbox must not read as closed.
    let _inbox_open = events.clone();
    let peers = Peers::start(config.node_id, &config.voters, events);
    let voters: BTreeSet<NodeId> = config.voters.keys().copied().collect();
    let alone = config.alone();
    let seed: u64 = rand::random();
    info!(seed, "controller seed (election timeouts, placement)");
    let qc_config = QuorumControllerConfig {
        raft: RaftConfig::default(),
        snapshot_every: config.snapshot_interval_entries,
        bootstrap_scram: config.bootstrap_scram.clone(),
        ..QuorumControllerConfig::default()
    };
    let (registration, link) = broker.unzip();
    let member_config = MemberConfig {
        controller: qc_config,
        ..MemberConfig::default()
    };
    let member = Member::restore(
        config.role,
        config.node_id,
        voters.clone(),
        registration,
        member_config,
        seed,
        clock.now(),
        recovered.state,
        recovered.snapshot,
        recovered.entries,
    );
    let (mut from_broker, to_broker, local_topics, mut stop_asks) = match link {
        Some(QuorumEnd {
            requests,
            events,
            local_topics,
            shutdown,
        }) => (
            Some(requests),
            Some(events),
            Some(local_topics),
            Some(shutdown),
        ),
        None => (None, None, None, None),
    };
    let (answers_tx, mut answers) = mpsc::unbounded_channel();
    let mut d = Driver {
        qc: member,
        to_broker,
        answers: answers_tx,
        voters,
        addresses: config.voters.clone(),
        storage,
        peers,
        clock,
        reply: None,
        waiting: BTreeMap::new(),
        next_request: 0,
        caught_up: BTreeMap::new(),
        seen: ((-1, None), false),
        image_offset: -1,
        links: controller_client::ControllerLinks::new(&format!(
            "gregor-broker-{}",
            config.node_id.0
        )),
        ready_at: None,
        stop_waiters: Vec::new(),
        resigning: None,
    };
    if let Some(local) = local_topics {
        // The broker sends its data directory's topics as soon as it has read them.
        let Ok(local) = local.await else {
            return Ok(());
        };
        d.ready_at = Some(d.import(log_was_empty, alone, &local)?);
    }
    d.perform()?;
    let mut announce = tokio::time::interval(BEGIN_QUORUM_EPOCH_RESEND);
    loop {
        let deadline = d.clock.to_tokio(d.qc.poll_timeout());
        tokio::select! {
            ev = inbox.recv() => match ev {
                Some(ev) => d.on_event(ev),
                None => return Ok(()),
            },
            _ = tokio::time::sleep_until(deadline) => d.qc.tick(d.clock.now()),
            ask = async { match from_broker.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => match ask {
                Some((id, request)) => d.qc.broker_request(d.clock.now(), id, request),
                // The broker task ended: the process is stopping.
                None => return Ok(()),
            },
            ask = async { match stop_asks.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => match ask {
                Some(done) => {
                    info!("controlled shutdown: heartbeating WantShutDown");
                    d.stop_waiters.push(done);
                    d.qc.begin_controlled_shutdown(d.clock.now());
                }
                None => stop_asks = None,
            },
            ask = async { match resign_asks.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => match ask {
                Some(done) => d.resign(done)?,
                None => resign_asks = None,
            },
            answer = answers.recv() => {
                let (id, result) = answer.expect("the driver holds a sender");
                d.qc.controller_reply(d.clock.now(), id, result);
            }
            _ = announce.tick() => d.announce(),
        }
        d.perform()?;
    }
}

struct Driver {
    /// The node's metadata side (named for the quorum controller it holds).
    qc: Member,
    /// Committed images and the answers to the broker's own requests, to the broker task
    /// (none on a controller alone).
    to_broker: Option<mpsc::UnboundedSender<ToBroker>>,
    /// Remote controllers' answers to the member's requests come back here.
    answers: mpsc::UnboundedSender<(RequestId, ControllerAnswer)>,
    voters: BTreeSet<NodeId>,
    addresses: BTreeMap<NodeId, std::net::SocketAddr>,
    storage: Storage,
    peers: Peers,
    clock: Clock,
    /// The Raft request being handled and where its answer goes.
    reply: Option<(NodeId, oneshot::Sender<Reply>)>,
    /// Controller requests waiting for their answer.
    waiting: BTreeMap<RequestId, oneshot::Sender<ControllerAnswer>>,
    next_request: u64,
    /// When each replica last fetched having the leader's whole log (unix ms).
    caught_up: BTreeMap<NodeId, i64>,
    /// The (epoch, leader) and leadership last logged.
    seen: ((i32, Option<NodeId>), bool),
    /// The committed image's offset last logged.
    image_offset: i64,
    /// A kept connection to each other controller, for the member's requests.
    links: controller_client::ControllerLinks,
    /// The committed offset the broker waits for before [`ToBroker::Ready`] (its broker
    /// unfenced too); none once sent, or without a broker.
    ready_at: Option<i64>,
    /// Who waits for the broker's controlled shutdown to be allowed (KIP-631).
    stop_waiters: Vec<oneshot::Sender<()>>,
    /// While a resignation's outputs are performed: the acknowledgements of the
    /// EndQuorumEpoch requests sent.
    resigning: Option<Vec<oneshot::Receiver<()>>>,
}

fn is_response(m: &Message) -> bool {
    matches!(
        m,
        Message::VoteResponse { .. }
            | Message::FetchResponse { .. }
            | Message::FetchSnapshotResponse { .. }
    )
}

impl Driver {
    fn on_event(&mut self, ev: Event) {
        let now = self.clock.now();
        match ev {
            Event::Request {
                from,
                message,
                reply,
            } => {
                let voter_only = matches!(
                    message,
                    Message::Vote { .. }
                        | Message::BeginQuorumEpoch { .. }
                        | Message::EndQuorumEpoch { .. }
                );
                if from == self.qc.id() || (voter_only && !self.voters.contains(&from)) {
                    // Only voters stand and lead; a node never hears from itself.
                    warn!(
                        from = from.0,
                        "ignoring {message:?}: not from another voter"
                    );
                    let _ = reply.send(self.reply_with(None));
                    return;
                }
                if let Message::EndQuorumEpoch { epoch, successors } = &message {
                    info!(
                        from = from.0,
                        epoch = epoch.0,
                        successors = ?successors.iter().map(|s| s.0).collect::<Vec<_>>(),
                        "EndQuorumEpoch received: the quorum leader resigned; the first \
                         successor stands at once"
                    );
                }
                self.reply = Some((from, reply));
                self.qc.handle(now, from, message);
            }
            Event::Response { from, message } => self.qc.handle(now, from, message),
            Event::Describe { reply } => {
                let _ = reply.send((self.status(), self.qc.raft().is_leader()));
            }
            Event::DescribeCluster { reply } => {
                let _ = reply.send(self.cluster());
            }
            Event::Controller { request, reply } => {
                if self.waiting.len() >= CONTROLLER_PENDING_MAX {
                    let _ = reply.send(Err(ControllerError::RequestTimedOut));
                    return;
                }
                self.next_request += 1;
                let id = RequestId(self.next_request);
                self.waiting.insert(id, reply);
                self.qc.controller_request(now, REMOTE_BROKER, id, request);
            }
        }
    }

    /// As leader, tell each voter that has not fetched within [`BEGIN_QUORUM_EPOCH_RESEND`]
    /// who leads this epoch.
    fn announce(&mut self) {
        let Role::Leader(l) = self.qc.raft().role() else {
            return;
        };
        let now = self.clock.now();
        let quiet = gregor_core::Duration(BEGIN_QUORUM_EPOCH_RESEND.as_nanos() as u64);
        let epoch = self.qc.raft().epoch();
        for v in self.voters.iter().filter(|v| **v != self.qc.id()) {
            let last = l.replicas.get(v).map(|p| p.last_fetch);
            if last.is_none_or(|t| now.saturating_since(t) >= quiet) {
                self.peers.send(*v, Message::BeginQuorumEpoch { epoch });
            }
        }
    }

    fn reply_with(&self, response: Option<Message>) -> Reply {
        Reply {
            response,
            epoch: self.qc.raft().epoch(),
            leader: self.qc.raft().leader(),
        }
    }

    /// Perform the controller's outputs in order, then acknowledge a Raft request that got no
    /// answer (BeginQuorumEpoch, EndQuorumEpoch) and log what changed.
    fn perform(&mut self) -> anyhow::Result<()> {
        while let Some(out) = self.qc.poll_output() {
            match out {
                MemberOutput::Raft(o) => self.perform_raft(o)?,
                MemberOutput::Respond { to, id, result } => {
                    assert_eq!(to, REMOTE_BROKER, "remote requests are handed over as such");
                    match self.waiting.remove(&id) {
                        // The asker may have gone (connection closed): nothing to do.
                        Some(tx) => drop(tx.send(result)),
                        None => warn!(?id, "an answer to no request"),
                    }
                }
                // The broker task ends only when the process does; nothing to do if it has.
                MemberOutput::Image(image) => self.to_broker(ToBroker::Image(image)),
                MemberOutput::ControllerReply { id, result } => {
                    self.to_broker(ToBroker::Reply { id, result })
                }
                MemberOutput::Request { to, id, request } => self.ask_remote(to, id, request),
            }
        }
        if let Some((_, reply)) = self.reply.take() {
            let _ = reply.send(self.reply_with(None));
        }
        if let Some(at) = self.ready_at {
            let unfenced = matches!(self.qc.broker_state(), Some(BrokerState::Unfenced { .. }));
            if at < 0 || (unfenced && self.qc.image().offset() >= at) {
                info!(
                    image_offset = self.qc.image().offset(),
                    "the broker may serve: its metadata image is ready"
                );
                self.to_broker(ToBroker::Ready);
                self.ready_at = None;
            }
        }
        if !self.stop_waiters.is_empty() && self.qc.shutdown() == Some(Shutdown::Allowed) {
            info!("controlled shutdown allowed: the controller moved this broker's leaderships");
            for w in self.stop_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        self.log_changes();
        Ok(())
    }

    fn to_broker(&self, message: ToBroker) {
        let to = self
            .to_broker
            .as_ref()
            .expect("only a node with a broker has images and answers for it");
        // The broker task ends only when the process does; nothing to do if it has.
        let _ = to.send(message);
    }

    /// gregor's migration ([`gregor_core::cluster::import`]): on the first start of a data
    /// directory a standalone broker wrote (no metadata log yet, local topics), write its
    /// topics into the log before the broker follows any image. Returns the offset the broker
    /// must see committed before it serves: -1 (at once) in a cluster, where the broker serves
    /// while the quorum forms as it always did.
    fn import(
        &mut self,
        log_was_empty: bool,
        alone: bool,
        local: &LocalTopics,
    ) -> anyhow::Result<i64> {
        if !alone {
            if log_was_empty && !local.topics.is_empty() {
                anyhow::bail!(
                    "the data directory holds {} topics but the metadata log is empty: they were \
                     written by a standalone broker (or the metadata log was lost). Start this \
                     node once alone (no controller_quorum_voters) to import them; a cluster \
                     node would delete them as strays",
                    local.topics.len()
                );
            }
            return Ok(-1);
        }
        if !log_was_empty || local.is_empty() {
            // Ready once the broker is unfenced (its registration is after any import).
            return Ok(0);
        }
        let names: Vec<&str> = local.topics.iter().map(|t| t.name.as_str()).collect();
        info!(topics = ?names, next_producer_id = local.next_producer_id,
            "importing a standalone broker's data directory into the new metadata log");
        let at = self.qc.import(self.clock.now(), local).map_err(|e| {
            anyhow::anyhow!("importing the data directory's topics: {}", e.message())
        })?;
        Ok(at)
    }

    /// The process is stopping cleanly: resign the quorum's leadership if this node holds it
    /// ([`Member::resign`]), send the EndQuorumEpoch requests, and answer `done` once every
    /// other voter acknowledged them or [`RESIGN_ACK_WAIT`] is over.
    fn resign(&mut self, done: oneshot::Sender<Resigned>) -> anyhow::Result<()> {
        let epoch = self.qc.raft().epoch().0;
        let led = self.qc.resign(self.clock.now());
        self.resigning = Some(Vec::new());
        let performed = self.perform();
        let acks = self.resigning.take().unwrap_or_default();
        performed?;
        if !led {
            let _ = done.send(Resigned {
                led,
                told: 0,
                acknowledged: 0,
            });
            return Ok(());
        }
        info!(
            epoch,
            voters_told = acks.len(),
            "resigned the metadata quorum's leadership (stopping): EndQuorumEpoch sent"
        );
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + RESIGN_ACK_WAIT;
            let told = acks.len();
            let mut acknowledged = 0;
            for ack in acks {
                // `timeout` with what is left, not `timeout_at`: madsim's tokio has only the
                // former.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if let Ok(Ok(())) = tokio::time::timeout(left, ack).await {
                    acknowledged += 1;
                }
            }
            let _ = done.send(Resigned {
                led,
                told,
                acknowledged,
            });
        });
        Ok(())
    }

    /// Send `request` to controller `to`, once, on a connection of its own; its answer (or
    /// NOT_CONTROLLER when it could not be reached, so the member asks another voter after its
    /// backoff) comes back through `answers`. Retrying and choosing whom to ask are the
    /// member's (its controller channel's) business.
    fn ask_remote(&mut self, to: NodeId, id: RequestId, request: Request) {
        let answers = self.answers.clone();
        let Some(addr) = self.addresses.get(&to).copied() else {
            warn!(
                to = to.0,
                "asked to send a controller request to a node that is not a voter"
            );
            let _ = answers.send((id, Err(ControllerError::NotController { leader: None })));
            return;
        };
        let links = self.links.clone();
        tokio::spawn(async move {
            let result = match links.send(addr, &request).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(refusal)) => Err(controller_client::refusal_error(refusal, &request)),
                Err(e) => {
                    debug!(to = to.0, "controller request failed: {e:#}");
                    Err(ControllerError::NotController { leader: None })
                }
            };
            let _ = answers.send((id, result));
        });
    }

    fn perform_raft(&mut self, out: Output) -> anyhow::Result<()> {
        match out {
            Output::SaveQuorumState(s) => self.storage.save_quorum_state(&s)?,
            Output::Append {
                base_offset,
                entries,
            } => self.storage.append(base_offset, &entries)?,
            Output::Truncate { end_offset } => self.storage.truncate(end_offset)?,
            Output::Send { to, message } if is_response(&message) => match self.reply.take() {
                Some((from, reply)) if from == to => {
                    let _ = reply.send(self.reply_with(Some(message)));
                }
                other => {
                    self.reply = other;
                    debug!(to = to.0, "dropping {message:?}: no request to answer");
                }
            },
            Output::Send { to, message } => {
                let resigning = matches!(message, Message::EndQuorumEpoch { .. });
                match self.resigning.as_mut().filter(|_| resigning) {
                    Some(acks) => match self.peers.send_answered(to, message) {
                        Some(ack) => acks.push(ack),
                        None => debug!(to = to.0, "EndQuorumEpoch not queued"),
                    },
                    None => {
                        if !self.peers.send(to, message) {
                            debug!(to = to.0, "peer queue full or unknown: message dropped");
                        }
                    }
                }
            }
            Output::SaveSnapshot(s) => self.storage.save_snapshot(&s, true)?,
            Output::InstallSnapshot(s) => {
                self.storage.save_snapshot(&s, false)?;
                info!(
                    end_offset = s.id.end_offset,
                    "installed the leader's metadata snapshot"
                );
            }
            Output::Committed { .. } => {}
        }
        Ok(())
    }

    fn log_changes(&mut self) {
        let now_ms = self.clock.now().unix_ms();
        let raft = self.qc.raft();
        let end = raft.log().end();
        crate::metrics::publish_quorum(crate::metrics::quorum_figures(
            &self.status(),
            raft.is_leader(),
            end,
        ));
        if let Role::Leader(l) = raft.role() {
            for (id, p) in &l.replicas {
                if p.matched >= end {
                    self.caught_up.insert(*id, p.last_fetch.unix_ms());
                }
            }
            self.caught_up.insert(raft.id(), now_ms);
        }
        let offset = self.qc.image().offset();
        if offset != self.image_offset {
            debug!(offset, "committed metadata image moved");
            self.image_offset = offset;
        }
        let now = ((raft.epoch().0, raft.leader()), raft.is_leader());
        if now == self.seen {
            return;
        }
        let (epoch, leader) = now.0;
        match (raft.role(), leader) {
            (Role::Leader(_), _) => {
                info!(
                    epoch,
                    node_id = raft.id().0,
                    "elected leader of the metadata quorum: the active controller"
                )
            }
            (_, Some(l)) => info!(epoch, leader = l.0, "metadata quorum leader changed"),
            (Role::Candidate { .. }, None) => info!(epoch, "standing for election"),
            (Role::Resigned { .. }, None) => info!(epoch, "resigned the quorum's leadership"),
            (_, None) => info!(epoch, "no metadata quorum leader known"),
        }
        self.seen = now;
    }

    /// DescribeCluster's view: the committed image, the quorum leader (the active controller
    /// once it has taken over), and the controllers' addresses.
    fn cluster(&self) -> transport::ClusterView {
        transport::ClusterView {
            image: self.qc.image().clone(),
            controller: self.qc.raft().leader().map(|n| n.0),
            controllers: self
                .addresses
                .iter()
                .map(|(id, a)| (id.0, a.ip().to_string(), a.port()))
                .collect(),
        }
    }

    /// DescribeQuorum's view: the leader knows every replica's progress; another node reports
    /// only the leader and epoch it knows. The core's status, with the last caught-up times
    /// this driver tracks at every fetch.
    fn status(&self) -> QuorumStatus {
        let mut status = quorum_status(self.qc.raft(), self.clock.now());
        for r in status.voters.iter_mut().chain(status.observers.iter_mut()) {
            r.last_caught_up_ms = self.caught_up.get(&r.id).copied().unwrap_or(-1);
        }
        status
    }
}
