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
//! * **Controlled shutdown** ([`Lifecycle::begin_controlled_shutdown`], on SIGTERM): the next
//!   heartbeat goes at once with `WantShutDown`; the controller moves the broker's leaderships
//!   to other in-sync replicas and takes it out of every ISR, and answers once that is
//!   committed; the broker heartbeats again at once, and the controller fences it and answers
//!   `ShouldShutDown`. Only then is the broker [`Shutdown::Allowed`] to stop: clients were
//!   already sent to the new leaders, so they pause for a metadata refresh rather than for
//!   the broker's session to lapse (`broker.session.timeout.ms`, 9 s). A broker never
//!   registered has nothing to move and may stop at once.
//!
//! [`Lifecycle`] is only that logic: it says which request is due and learns from its answer.
//! It does not care where the replayed image comes from nor how the request reaches the active
//! controller; the node around it ([`Member`](crate::cluster::Member)) supplies both. On a broker-only
//! node the image is the node's own Raft *observer*'s, which fetches the `__cluster_metadata`
//! log from the quorum leader like a follower but never votes; on a combined node it is the
//! co-located controller's committed image (one Raft client, one log, as in Kafka's combined
//! mode). Requests go through the node's [`super::channel::ControllerChannel`] (NOT_CONTROLLER
//! hints, request timeout, the next voter), the same road the broker's own CreateTopics take.

use super::channel::RETRY_BACKOFF;
use super::controller::{ControllerError, Registration};
use super::quorum_controller::{Reply, Request};
use super::{BrokerEpoch, BrokerId};
use crate::time::{Duration, Instant};
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

/// How far a controlled shutdown has gone (Kafka's `PENDING_CONTROLLED_SHUTDOWN` and
/// `SHUTTING_DOWN` broker states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Running: no shutdown asked.
    NotAsked,
    /// Heartbeating with `WantShutDown` until the controller says `ShouldShutDown`.
    Pending,
    /// The controller moved everything off this broker (or it never registered): it may stop.
    Allowed,
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
    /// The replayed offset the last heartbeat reported.
    reported: i64,
    next_request_at: Instant,
    now: Instant,
    shutdown: Shutdown,
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
            reported: -1,
            next_request_at: now,
            now,
            shutdown: Shutdown::NotAsked,
        }
    }

    /// The process is stopping (SIGTERM): ask the controller for a controlled shutdown with
    /// the next heartbeat, due at once. A broker that never registered may stop at once.
    /// Asking twice changes nothing.
    pub fn begin_controlled_shutdown(&mut self, now: Instant) {
        self.advance(now);
        if self.shutdown != Shutdown::NotAsked {
            return;
        }
        self.shutdown = match self.state {
            BrokerState::Starting => Shutdown::Allowed,
            BrokerState::Fenced { .. } | BrokerState::Unfenced { .. } => {
                self.next_request_at = now;
                Shutdown::Pending
            }
        };
        assert_ne!(self.shutdown, Shutdown::NotAsked);
    }

    /// How far a controlled shutdown has gone.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown
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

    /// When the next request is due (none while one is out, or once it may stop).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.waiting && self.shutdown != Shutdown::Allowed).then_some(self.next_request_at)
    }

    /// The request due at `now`, if one is: a registration until registered, then a heartbeat
    /// reporting `replayed`, the offset of the last record in the broker's image.
    pub fn due(&mut self, now: Instant, replayed: i64) -> Option<Request> {
        self.advance(now);
        assert!(replayed >= -1);
        // Registered but fenced, and the replay has just reached the registration record: the
        // controller would unfence now, so heartbeat now rather than at the next interval
        // (Kafka's `BrokerLifecycleManager.setReadyToUnfence`).
        let ready_to_unfence = matches!(self.state, BrokerState::Fenced { epoch }
            if self.reported < epoch.0 && replayed >= epoch.0);
        if self.waiting
            || self.shutdown == Shutdown::Allowed
            || (now < self.next_request_at && !ready_to_unfence)
        {
            return None;
        }
        let request = match self.epoch() {
            None => Request::BrokerRegistration(self.registration.clone()),
            Some(epoch) => {
                self.reported = replayed;
                Request::BrokerHeartbeat {
                    broker_id: self.registration.broker_id,
                    broker_epoch: epoch,
                    metadata_offset: replayed,
                    want_shut_down: self.shutdown == Shutdown::Pending,
                }
            }
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
                self.reported = -1;
                // Heartbeat at once: unfencing waits only for the replay to reach the epoch.
                self.next_request_at = now;
            }
            Ok(Reply::BrokerHeartbeat {
                fenced,
                should_shut_down,
            }) => {
                if let Some(epoch) = self.epoch() {
                    self.state = if fenced {
                        BrokerState::Fenced { epoch }
                    } else {
                        BrokerState::Unfenced { epoch }
                    };
                }
                if self.shutdown == Shutdown::Pending {
                    // The controller answers a WantShutDown heartbeat once its records are
                    // committed; the next step (or the stop) goes at once.
                    self.next_request_at = now;
                    if should_shut_down {
                        self.shutdown = Shutdown::Allowed;
                    }
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
                // The controller no longer knows this incarnation: register again, or, when
                // stopping, there is nothing of it left to move.
                self.state = BrokerState::Starting;
                self.next_request_at = now;
                if self.shutdown == Shutdown::Pending {
                    self.shutdown = Shutdown::Allowed;
                }
            }
            // DUPLICATE_BROKER_REGISTRATION (the previous incarnation's session has not lapsed
            // yet): ask again at the next interval.
            Err(_) => {}
            Ok(other) => unreachable!("the lifecycle asked for no {other:?}"),
        }
        assert!(self.next_request_at >= now && !self.waiting);
        assert!(self.shutdown != Shutdown::Allowed || self.poll_timeout().is_none());
    }

    fn advance(&mut self, now: Instant) {
        assert!(now >= self.now, "time never goes back for a node");
        self.now = now;
    }
}
