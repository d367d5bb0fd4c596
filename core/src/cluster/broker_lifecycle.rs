//! The broker's side of KRaft: registering with the active controller and heartbeating (Kafka's
//! `BrokerLifecycleManager`; KIP-631).
//!
//! A broker is registered and kept alive by its node, whatever else the node is. Its life with
//! the controller:
//!
//! ```text
//!  Starting ──registered──▶ Fenced ──heartbeat shows it replayed its own──▶ Unfenced
//!     ▲                     │  ▲       registration record                  │
//!     │  STALE_BROKER_EPOCH │  └──────── the controller fenced it ──────────┘
//!     └─────────────────────┘            (a heartbeat answer says fenced)
//! ```
//! * **Registration** names an incarnation id, new at each process start; the answer (sent only
//!   once the RegisterBroker record is committed) is the broker epoch, that record's offset.
//! * **Heartbeats**, every `broker.heartbeat.interval.ms` (2 s), carry the offset the broker has
//!   replayed to. The controller unfences it once that reaches the broker epoch: the broker has
//!   then seen its own registration, so its image knows what it leads.
//!
//! [`Lifecycle`] is only that logic: it says which request is due and learns from its answer.
//! It does not care where the replayed image comes from nor how the request reaches the active
//! controller; the node around it ([`super::member::Member`]) supplies both. On a broker-only
//! node the image is the node's own Raft *observer*'s, which fetches the `__cluster_metadata`
//! log from the quorum leader like a follower but never votes; on a combined node it is the
//! co-located controller's committed image (one Raft client, one log, as in Kafka's combined
//! mode). Requests go through the node's [`super::channel::ControllerChannel`] (NOT_CONTROLLER
//! hints, request timeout, the next voter), the same road the broker's own CreateTopics take.
//!
//! [`BrokerLifecycle`] is the broker-only node under its older, narrower interface: a `Member`
//! with [`Role::Broker`](super::member::Role::Broker) whose outputs are the observer's quorum
//! outputs ([`Output::Raft`]) and the requests to send ([`Output::Request`]), the answers coming
//! back through [`BrokerLifecycle::response`].

use super::channel::RETRY_BACKOFF;
use super::controller::{ControllerError, Registration};
use super::member::{self, Member, MemberConfig, Role};
use super::quorum_controller::{QuorumControllerConfig, Reply, Request, RequestId};
use super::{BrokerEpoch, BrokerId, MetadataImage};
use crate::raft::{self, Entry, Message, NodeId, QuorumState, RaftConfig, RaftNode, Snapshot};
use crate::time::{Duration, Instant};
use std::collections::BTreeSet;

/// Where the broker stands with the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerState {
    /// Not registered (or told its registration is stale): registering.
    Starting,
    /// Registered as `epoch` but fenced: it may not lead or join an ISR.
    Fenced { epoch: BrokerEpoch },
    /// Registered and unfenced: it serves the partitions it leads.
    Unfenced { epoch: BrokerEpoch },
}

/// The lifecycle's logic: which request is due, and what each answer means. See the module
/// docs.
#[derive(Debug)]
pub struct Lifecycle {
    registration: Registration,
    heartbeat_interval: Duration,
    state: BrokerState,
    /// A registration or heartbeat is out and not answered yet.
    waiting: bool,
    next_request_at: Instant,
    now: Instant,
}

impl Lifecycle {
    /// A broker incarnation starting at `now`: it registers at once.
    pub fn new(registration: Registration, heartbeat_interval: Duration, now: Instant) -> Self {
        assert!(heartbeat_interval.0 > 0, "heartbeats are spaced");
        Lifecycle {
            registration,
            heartbeat_interval,
            state: BrokerState::Starting,
            waiting: false,
            next_request_at: now,
            now,
        }
    }

    pub fn state(&self) -> BrokerState {
        self.state
    }
    pub fn broker_id(&self) -> BrokerId {
        self.registration.broker_id
    }
    /// The broker epoch of this incarnation, once registered.
    pub fn epoch(&self) -> Option<BrokerEpoch> {
        match self.state {
            BrokerState::Starting => None,
            BrokerState::Fenced { epoch } | BrokerState::Unfenced { epoch } => Some(epoch),
        }
    }
    /// Whether a request is out.
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// When the next request is due (none while one is out).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.waiting).then_some(self.next_request_at)
    }

    /// The request due at `now`, if one is: a registration until registered, then a heartbeat
    /// reporting `replayed`, the offset of the last record in the broker's image.
    pub fn due(&mut self, now: Instant, replayed: i64) -> Option<Request> {
        self.advance(now);
        if self.waiting || now < self.next_request_at {
            return None;
        }
        assert!(replayed >= -1);
        let request = match self.epoch() {
            None => Request::BrokerRegistration(self.registration.clone()),
            Some(epoch) => Request::BrokerHeartbeat {
                broker_id: self.registration.broker_id,
                broker_epoch: epoch,
                metadata_offset: replayed,
            },
        };
        self.waiting = true;
        Some(request)
    }

    /// The answer to the request that was due.
    pub fn answer(&mut self, now: Instant, result: Result<Reply, ControllerError>) {
        self.advance(now);
        assert!(self.waiting, "an answer comes to a request");
        self.waiting = false;
        self.next_request_at = now + self.heartbeat_interval;
        match result {
            Ok(Reply::BrokerRegistration { broker_epoch }) => {
                self.state = BrokerState::Fenced {
                    epoch: broker_epoch,
                };
                // Heartbeat at once: unfencing waits only for the replay to reach the epoch.
                self.next_request_at = now;
            }
            Ok(Reply::BrokerHeartbeat { fenced }) => {
                if let Some(epoch) = self.epoch() {
                    self.state = if fenced {
                        BrokerState::Fenced { epoch }
                    } else {
                        BrokerState::Unfenced { epoch }
                    };
                }
            }
            Err(ControllerError::NotController { .. } | ControllerError::RequestTimedOut) => {
                // No controller could answer in time (the channel already tried the ones it
                // knew of), or the active one is backlogged: try again after Kafka's
                // `retry.backoff.ms`, which also keeps a local controller from being asked in
                // a loop within one step.
                self.next_request_at = now + RETRY_BACKOFF;
            }
            Err(
                ControllerError::StaleBrokerEpoch(_) | ControllerError::BrokerIdNotRegistered(_),
            ) => {
                // The controller no longer knows this incarnation: register again.
                self.state = BrokerState::Starting;
                self.next_request_at = now;
            }
            // DUPLICATE_BROKER_REGISTRATION (the previous incarnation's session has not lapsed
            // yet): ask again at the next interval.
            Err(_) => {}
            Ok(other) => unreachable!("the lifecycle asked for no {other:?}"),
        }
        assert!(self.next_request_at >= now && !self.waiting);
    }

    fn advance(&mut self, now: Instant) {
        assert!(now >= self.now, "time never goes back for a node");
        self.now = now;
    }
}

/// What the broker-only node asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The observer's quorum output, unchanged.
    Raft(raft::Output),
    /// Send `request` to controller `to`; hand its answer to [`BrokerLifecycle::response`].
    Request {
        to: NodeId,
        id: RequestId,
        request: Request,
    },
}

/// The broker's timers, Kafka's names.
#[derive(Clone, Debug)]
pub struct BrokerLifecycleConfig {
    pub raft: RaftConfig,
    /// `broker.heartbeat.interval.ms` (2 s).
    pub heartbeat_interval: Duration,
    /// How long an unanswered request is waited for before asking another controller.
    pub request_timeout: Duration,
}

impl Default for BrokerLifecycleConfig {
    fn default() -> BrokerLifecycleConfig {
        let m = MemberConfig::default();
        BrokerLifecycleConfig {
            raft: RaftConfig::default(),
            heartbeat_interval: m.heartbeat_interval,
            request_timeout: m.request_timeout,
        }
    }
}

/// A broker-only node: its lifecycle and its observer's metadata replay. See the module docs.
#[derive(Debug)]
pub struct BrokerLifecycle {
    member: Member,
}

impl BrokerLifecycle {
    /// A broker process starting with `registration` (a fresh incarnation id), its metadata log
    /// as its outputs left it on disk (empty on a first start), and the controller quorum.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        node: NodeId,
        registration: Registration,
        controllers: BTreeSet<NodeId>,
        config: BrokerLifecycleConfig,
        seed: u64,
        now: Instant,
        state: QuorumState,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    ) -> BrokerLifecycle {
        let config = MemberConfig {
            controller: QuorumControllerConfig {
                raft: config.raft,
                ..QuorumControllerConfig::default()
            },
            heartbeat_interval: config.heartbeat_interval,
            request_timeout: config.request_timeout,
            ..MemberConfig::default()
        };
        let member = Member::restore(
            Role::Broker,
            node,
            controllers,
            Some(registration),
            config,
            seed,
            now,
            state,
            snapshot,
            entries,
        );
        BrokerLifecycle { member }
    }

    pub fn state(&self) -> BrokerState {
        self.member
            .broker_state()
            .expect("a broker has a lifecycle")
    }
    /// The broker's metadata image: the committed log it has replayed.
    pub fn image(&self) -> &MetadataImage {
        self.member.image()
    }
    pub fn raft(&self) -> &RaftNode {
        self.member.raft()
    }
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            match self.member.poll_output()? {
                member::Output::Raft(r) => return Some(Output::Raft(r)),
                member::Output::Request { to, id, request } => {
                    return Some(Output::Request { to, id, request })
                }
                // No broker behind this interface reads the image it would be handed.
                member::Output::Image(_) => {}
                o @ (member::Output::ControllerReply { .. } | member::Output::Respond { .. }) => {
                    unreachable!("nothing asked this broker-only node for {o:?}")
                }
            }
        }
    }

    /// The next instant [`BrokerLifecycle::tick`] has work to do.
    pub fn poll_timeout(&self) -> Instant {
        self.member.poll_timeout()
    }

    /// A quorum message (a fetch answer from the leader, usually).
    pub fn handle(&mut self, now: Instant, from: NodeId, message: Message) {
        self.member.handle(now, from, message);
    }

    /// Time passed: the observer's fetches, and the next registration or heartbeat.
    pub fn tick(&mut self, now: Instant) {
        self.member.tick(now);
    }

    /// The controller's answer to request `id`.
    pub fn response(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<Reply, ControllerError>,
    ) {
        self.member.controller_reply(now, id, result);
    }
}
