//! A broker-only node under the narrower interface it had before combined mode: the
//! [`Member`] of [`Role::Broker`] (a Raft observer replaying the metadata log, and the broker's
//! [`Lifecycle`](super::lifecycle::Lifecycle) registering and heartbeating; KIP-631), whose
//! outputs are the observer's quorum outputs ([`Output::Raft`]) and the requests to send
//! ([`Output::Request`]), the answers coming back through [`BrokerLifecycle::response`]. The
//! image it would hand a broker stays inside ([`BrokerLifecycle::image`]). A node that runs a
//! broker uses [`Member`] itself.

use super::controller::{ControllerError, Registration};
use super::member::{self, Member, MemberConfig, Role};
use super::quorum_controller::{QuorumControllerConfig, Reply, Request, RequestId};
use super::MetadataImage;
use crate::raft::{self, Entry, Message, NodeId, QuorumState, RaftConfig, RaftNode, Snapshot};
use crate::time::{Duration, Instant};
use std::collections::BTreeSet;

pub use super::lifecycle::BrokerState;

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
    /// The process is stopping: ask for a controlled shutdown (KIP-631; see
    /// [`super::lifecycle`]).
    pub fn begin_controlled_shutdown(&mut self, now: Instant) {
        self.member.begin_controlled_shutdown(now);
    }
    /// How far the controlled shutdown has gone.
    pub fn shutdown(&self) -> super::lifecycle::Shutdown {
        self.member.shutdown().expect("a broker has a lifecycle")
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
