//! The broker's side of KRaft: registering with the active controller, heartbeating, and
//! replaying the metadata log as a Raft *observer* (Kafka's `BrokerLifecycleManager` with the
//! broker's `KafkaRaftClient` and `MetadataLoader`; KIP-631).
//!
//! A broker is not a voter: it fetches the `__cluster_metadata` log from the quorum leader like a
//! follower does, but never votes or stands. It replays the committed records into its own
//! [`MetadataImage`], the one it serves clients from (Metadata, DescribeCluster,
//! FindCoordinator). Its life with the controller:
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
//! * Requests go to the controller the broker believes active; NOT_CONTROLLER names another, and
//!   a request unanswered within the request timeout is given up and asked of the next one.
//!
//! Sans-IO like the rest: [`BrokerLifecycle::poll_output`] yields the observer's quorum outputs
//! ([`Output::Raft`], same contract as the controller's) and the requests to send
//! ([`Output::Request`]); answers come back through [`BrokerLifecycle::response`].

use super::controller::{ControllerError, Registration};
use super::quorum_controller::{follow_commits, Reply, Request, RequestId};
use super::{BrokerEpoch, MetadataImage};
use crate::raft::{self, Entry, Message, NodeId, QuorumState, RaftConfig, RaftNode, Snapshot};
use crate::time::{Duration, Instant};
use std::collections::{BTreeSet, VecDeque};

/// Kafka's `retry.backoff.ms` (100 ms): the pause before asking another controller.
const RETRY_BACKOFF: Duration = Duration::from_ms(100);

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

/// What the broker asks its driver to do, in order.
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
        BrokerLifecycleConfig {
            raft: RaftConfig::default(),
            heartbeat_interval: Duration::from_ms(2_000),
            request_timeout: Duration::from_ms(3_000),
        }
    }
}

/// One broker's lifecycle and metadata replay. See the module docs.
#[derive(Debug)]
pub struct BrokerLifecycle {
    config: BrokerLifecycleConfig,
    registration: Registration,
    controllers: Vec<NodeId>,
    raft: RaftNode,
    image: MetadataImage,
    applied: i64,
    state: BrokerState,
    /// The controller requests go to.
    target: NodeId,
    in_flight: Option<(RequestId, Instant)>,
    next_request_at: Instant,
    next_id: u64,
    now: Instant,
    outputs: VecDeque<Output>,
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
        assert!(
            !controllers.contains(&node),
            "a broker is an observer, not a voter"
        );
        assert_eq!(node.0, registration.broker_id.0, "node.id is the broker id");
        let (image, applied) = match &snapshot {
            Some(s) => (super::quorum_controller::load(s), s.id.end_offset),
            None => (MetadataImage::new(), 0),
        };
        let voters = controllers.clone();
        let raft = RaftNode::restore(
            node,
            voters,
            config.raft.clone(),
            seed,
            now,
            state,
            snapshot,
            entries,
        );
        let controllers: Vec<NodeId> = controllers.into_iter().collect();
        let target = controllers[node.0.unsigned_abs() as usize % controllers.len()];
        let mut b = BrokerLifecycle {
            config,
            registration,
            controllers,
            raft,
            image,
            applied,
            state: BrokerState::Starting,
            target,
            in_flight: None,
            next_request_at: now,
            next_id: 0,
            now,
            outputs: VecDeque::new(),
        };
        b.pump();
        b
    }

    pub fn state(&self) -> BrokerState {
        self.state
    }
    /// The broker's metadata image: the committed log it has replayed.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next instant [`BrokerLifecycle::tick`] has work to do.
    pub fn poll_timeout(&self) -> Instant {
        let request = match self.in_flight {
            Some((_, sent)) => sent + self.config.request_timeout,
            None => self.next_request_at,
        };
        self.raft.poll_timeout().min(request)
    }

    /// A quorum message (a fetch answer from the leader, usually).
    pub fn handle(&mut self, now: Instant, from: NodeId, message: Message) {
        self.advance_clock(now);
        self.raft.handle(now, from, message);
        self.pump();
    }

    /// Time passed: the observer's fetches, and the next registration or heartbeat.
    pub fn tick(&mut self, now: Instant) {
        self.advance_clock(now);
        self.raft.tick(now);
        if let Some((_, sent)) = self.in_flight {
            if now >= sent + self.config.request_timeout {
                // No answer: that controller is gone or cut off. Ask the next one.
                self.in_flight = None;
                self.target = self.next_controller(None);
                self.next_request_at = now;
            }
        }
        if self.in_flight.is_none() && now >= self.next_request_at {
            self.send_request();
        }
        self.pump();
    }

    /// The controller's answer to request `id`.
    pub fn response(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<Reply, ControllerError>,
    ) {
        self.advance_clock(now);
        if self.in_flight.map(|f| f.0) != Some(id) {
            return; // an answer to a request given up on
        }
        self.in_flight = None;
        self.next_request_at = now + self.config.heartbeat_interval;
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
            Err(ControllerError::NotController { leader }) => {
                // Ask the named leader, after Kafka's `retry.backoff.ms`: while no controller
                // is active, every one answers NOT_CONTROLLER at once, and retrying without a
                // pause would spin.
                self.target = self.next_controller(leader);
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
            // yet), REQUEST_TIMED_OUT: ask again at the next interval.
            Err(_) => {}
            Ok(other) => unreachable!("the lifecycle asked for no {other:?}"),
        }
        self.pump();
    }

    fn epoch(&self) -> Option<BrokerEpoch> {
        match self.state {
            BrokerState::Starting => None,
            BrokerState::Fenced { epoch } | BrokerState::Unfenced { epoch } => Some(epoch),
        }
    }

    fn next_controller(&self, hint: Option<i32>) -> NodeId {
        match hint.map(NodeId).filter(|l| self.controllers.contains(l)) {
            Some(l) => l,
            None => {
                let i = self.controllers.iter().position(|c| *c == self.target);
                self.controllers[(i.map_or(0, |i| i + 1)) % self.controllers.len()]
            }
        }
    }

    fn send_request(&mut self) {
        let request = match self.epoch() {
            None => Request::BrokerRegistration(self.registration.clone()),
            Some(epoch) => Request::BrokerHeartbeat {
                broker_id: self.registration.broker_id,
                broker_epoch: epoch,
                // The last offset replayed into the image.
                metadata_offset: self.applied - 1,
            },
        };
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.in_flight = Some((id, self.now));
        self.outputs.push_back(Output::Request {
            to: self.target,
            id,
            request,
        });
    }

    fn advance_clock(&mut self, now: Instant) {
        assert!(now >= self.now, "time never goes back for a node");
        self.now = now;
    }

    fn pump(&mut self) {
        while let Some(o) = self.raft.poll_output() {
            follow_commits(&mut self.image, &mut self.applied, self.raft.log(), &o);
            if let raft::Output::Truncate { end_offset } = o {
                assert!(
                    end_offset >= self.applied,
                    "committed entries are never truncated"
                );
            }
            self.outputs.push_back(Output::Raft(o));
        }
        assert!(!self.raft.is_leader(), "an observer never leads");
        assert_eq!(self.image.offset(), self.applied - 1);
        assert_eq!(self.applied, self.raft.high_watermark());
        assert!(self.controllers.contains(&self.target));
        assert!(self.in_flight.is_none_or(|(_, sent)| sent <= self.now));
    }
}
