//! The road from a node to the active controller (Kafka's `NodeToControllerChannelManager`,
//! with its `RaftControllerNodeProvider`; KIP-590 forwarding, KIP-631 broker lifecycle).
//!
//! A broker sends several kinds of requests to "the controller": its own BrokerRegistration and
//! BrokerHeartbeats, and on behalf of its clients CreateTopics, DeleteTopics and
//! AllocateProducerIds. Only the *active* controller (the quorum leader) may answer them, and
//! which node that is changes with every election. Kafka gives all of them one channel that
//! knows where to send and what to do when that was wrong; this is that channel, sans-IO:
//!
//! * **Where to send.** To the quorum leader this node knows of (its Raft client learns the
//!   leader from fetch answers and BeginQuorumEpoch), which may be this very node in combined
//!   mode: then the request never touches the wire. Knowledge goes stale, so the channel follows
//!   the quorum's leader only when that *changes*; otherwise it keeps its own target.
//! * **NOT_CONTROLLER** names the leader the answering node knows (or none): the channel asks it
//!   after Kafka's `retry.backoff.ms`, or the next voter when none was named. Without the pause,
//!   a quorum with no leader would be asked in a tight loop.
//! * **No answer** within the request timeout: that controller is gone or cut off; the attempt is
//!   abandoned (a late answer to it is ignored: each attempt has its own id) and the next voter is
//!   asked.
//! * **A deadline per request**: past it the caller gets REQUEST_TIMED_OUT, so every request is
//!   answered exactly once, whatever the quorum does.
//!
//! A retried request may have been carried out by the controller that did not answer (or
//! answered NOT_CONTROLLER after writing its records): the second attempt then sees the effect
//! (TOPIC_ALREADY_EXISTS, say). Kafka's forwarding has the same "maybe"; the caller decides.

use super::controller::ControllerError;
use super::quorum_controller::{Reply, Request, RequestId};
use crate::raft::NodeId;
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, VecDeque};

/// Kafka's `retry.backoff.ms` (100 ms): the pause before asking again after NOT_CONTROLLER.
pub const RETRY_BACKOFF: Duration = Duration::from_ms(100);

/// Who is waiting for an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Caller {
    /// The node's own lifecycle (registration, heartbeat): at most one at a time.
    Lifecycle,
    /// The local broker's request, by the broker's own id for it.
    Broker(RequestId),
}

/// Where one request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// Sent to `to` at `at`, under the id it is keyed by.
    Sent { to: NodeId, at: Instant },
    /// Told NOT_CONTROLLER: sent again at `until`.
    Backoff { until: Instant },
}

#[derive(Clone, Debug)]
struct Pending {
    caller: Caller,
    request: Request,
    deadline: Instant,
    attempt: Attempt,
}

/// What the channel asks of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Send `request` to controller `to` (possibly this node) under `id`; hand the answer to
    /// [`ControllerChannel::answer`] with that id.
    Send {
        to: NodeId,
        id: RequestId,
        request: Request,
    },
    /// `caller`'s request is answered (by a controller, or REQUEST_TIMED_OUT at its deadline).
    Done {
        caller: Caller,
        result: Result<Reply, ControllerError>,
    },
}

/// One node's channel to the active controller. See the module docs.
#[derive(Debug)]
pub struct ControllerChannel {
    voters: Vec<NodeId>,
    /// How long one controller is given to answer.
    request_timeout: Duration,
    /// The controller the next attempt goes to.
    target: NodeId,
    /// The quorum leader as last reported, to follow it only when it changes.
    quorum_leader: Option<NodeId>,
    /// Requests not yet answered, by the id of their current attempt.
    pending: BTreeMap<RequestId, Pending>,
    next_id: u64,
    now: Instant,
    events: VecDeque<Event>,
}

impl ControllerChannel {
    /// A channel for node `node` over the controller quorum `voters`; the first target spreads
    /// nodes over the voters until a leader is known.
    pub fn new(
        node: NodeId,
        voters: Vec<NodeId>,
        request_timeout: Duration,
        now: Instant,
    ) -> ControllerChannel {
        assert!(!voters.is_empty(), "a quorum has a voter");
        assert!(
            voters.windows(2).all(|w| w[0] < w[1]),
            "voters sorted, once"
        );
        assert!(request_timeout.0 > 0);
        let target = voters[node.0.unsigned_abs() as usize % voters.len()];
        ControllerChannel {
            voters,
            request_timeout,
            target,
            quorum_leader: None,
            pending: BTreeMap::new(),
            next_id: 0,
            now,
            events: VecDeque::new(),
        }
    }

    /// The next thing to do, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// How many requests wait for an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether `caller` has a request waiting.
    pub fn is_waiting(&self, caller: Caller) -> bool {
        self.pending.values().any(|p| p.caller == caller)
    }

    /// The next instant [`ControllerChannel::tick`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| match p.attempt {
                Attempt::Sent { at, .. } => (at + self.request_timeout).min(p.deadline),
                Attempt::Backoff { until } => until.min(p.deadline),
            })
            .min()
    }

    /// The quorum's leader as this node's Raft client knows it; followed when it changes.
    pub fn quorum_leader(&mut self, leader: Option<NodeId>) {
        if leader == self.quorum_leader {
            return;
        }
        self.quorum_leader = leader;
        if let Some(l) = leader.filter(|l| self.voters.contains(l)) {
            self.target = l;
        }
    }

    /// Ask the active controller, answering by `deadline` at the latest.
    pub fn send(&mut self, now: Instant, caller: Caller, request: Request, deadline: Instant) {
        self.advance(now);
        assert!(
            !self.is_waiting(caller),
            "a caller has one request of an id at a time"
        );
        assert!(deadline > now, "a request gets some time");
        let p = Pending {
            caller,
            request,
            deadline,
            attempt: Attempt::Backoff { until: now },
        };
        self.attempt(p);
        self.invariants();
    }

    /// A controller's answer to attempt `id`. An answer to an abandoned attempt is ignored.
    pub fn answer(&mut self, now: Instant, id: RequestId, result: Result<Reply, ControllerError>) {
        self.advance(now);
        let Some(p) = self.pending.get(&id) else {
            return; // an attempt given up on (timed out, or its request past its deadline)
        };
        let Attempt::Sent { to, .. } = p.attempt else {
            return; // already told NOT_CONTROLLER by this attempt: it waits for its retry
        };
        match result {
            Err(ControllerError::NotController { leader }) => {
                self.target = self.next(leader.map(NodeId), to);
                let p = self.pending.get_mut(&id).expect("looked up");
                p.attempt = Attempt::Backoff {
                    until: now + RETRY_BACKOFF,
                };
            }
            result => {
                let p = self.pending.remove(&id).expect("looked up");
                self.events.push_back(Event::Done {
                    caller: p.caller,
                    result,
                });
            }
        }
        self.invariants();
    }

    /// Time passed: requests past their deadline are answered REQUEST_TIMED_OUT, attempts
    /// unanswered for the request timeout go to the next voter, backed-off ones are sent again.
    pub fn tick(&mut self, now: Instant) {
        self.advance(now);
        let due: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| match p.attempt {
                Attempt::Sent { at, .. } => now >= at + self.request_timeout || now >= p.deadline,
                Attempt::Backoff { until } => now >= until || now >= p.deadline,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let p = self.pending.remove(&id).expect("due");
            if let Attempt::Sent { to, at } = p.attempt {
                if now >= at + self.request_timeout && to == self.target {
                    // No answer: that controller is gone or cut off. Ask the next one.
                    self.target = self.next(None, to);
                }
            }
            if now >= p.deadline {
                self.events.push_back(Event::Done {
                    caller: p.caller,
                    result: Err(ControllerError::RequestTimedOut),
                });
            } else {
                self.attempt(p);
            }
        }
        self.invariants();
    }

    fn advance(&mut self, now: Instant) {
        assert!(now >= self.now, "time never goes back for a node");
        self.now = now;
    }

    /// Send `p` to the current target under a fresh id.
    fn attempt(&mut self, mut p: Pending) {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        p.attempt = Attempt::Sent {
            to: self.target,
            at: self.now,
        };
        self.events.push_back(Event::Send {
            to: self.target,
            id,
            request: p.request.clone(),
        });
        assert!(self.pending.insert(id, p).is_none(), "ids are fresh");
    }

    /// The controller to ask after `from` failed: the named leader, else the voter after it.
    fn next(&self, hint: Option<NodeId>, from: NodeId) -> NodeId {
        match hint.filter(|l| self.voters.contains(l)) {
            Some(l) => l,
            None => {
                let i = self.voters.iter().position(|v| *v == from);
                self.voters[i.map_or(0, |i| i + 1) % self.voters.len()]
            }
        }
    }

    fn invariants(&self) {
        assert!(self.voters.contains(&self.target));
        assert!(self.pending.keys().all(|id| id.0 <= self.next_id));
        let mut callers: Vec<Caller> = self.pending.values().map(|p| p.caller).collect();
        let n = callers.len();
        callers.sort();
        callers.dedup();
        assert_eq!(callers.len(), n, "one request per caller id");
        for p in self.pending.values() {
            match p.attempt {
                Attempt::Sent { to, at } => {
                    assert!(self.voters.contains(&to) && at <= self.now);
                }
                Attempt::Backoff { until } => assert!(until <= self.now + RETRY_BACKOFF),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::BrokerId;

    fn hb() -> Request {
        Request::DeleteTopic { name: "t".into() }
    }

    fn sent(c: &mut ControllerChannel) -> (NodeId, RequestId) {
        match c.poll_event() {
            Some(Event::Send { to, id, .. }) => (to, id),
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn not_controller_is_followed_after_a_pause_and_silence_moves_on() {
        let voters = vec![NodeId(1), NodeId(2), NodeId(3)];
        let t = Duration::from_ms(3_000);
        let mut c = ControllerChannel::new(NodeId(101), voters, t, Instant(0));
        let deadline = Instant(0) + Duration::from_ms(30_000);
        c.send(Instant(0), Caller::Broker(RequestId(7)), hb(), deadline);
        let (to, id) = sent(&mut c);
        assert_eq!(to, NodeId(3), "101 % 3 = 2: the third voter");
        c.answer(
            Instant(10),
            id,
            Err(ControllerError::NotController { leader: Some(1) }),
        );
        assert!(c.poll_event().is_none(), "waits out the backoff");
        c.tick(Instant(10) + RETRY_BACKOFF);
        let (to, id2) = sent(&mut c);
        assert_eq!(to, NodeId(1), "the named leader");
        // Silence: the next voter after the request timeout, and the old attempt's late answer
        // is not delivered.
        let later = Instant(10) + RETRY_BACKOFF + t;
        c.tick(later);
        let (to, id3) = sent(&mut c);
        assert_eq!(to, NodeId(2));
        c.answer(later, id2, Ok(Reply::DeleteTopic));
        assert!(c.poll_event().is_none(), "a late answer is ignored");
        c.answer(later, id3, Ok(Reply::DeleteTopic));
        assert_eq!(
            c.poll_event(),
            Some(Event::Done {
                caller: Caller::Broker(RequestId(7)),
                result: Ok(Reply::DeleteTopic)
            })
        );
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn a_request_past_its_deadline_is_answered_timed_out_once() {
        let voters = vec![NodeId(1)];
        let mut c = ControllerChannel::new(NodeId(1), voters, Duration::from_ms(100), Instant(0));
        let caller = Caller::Broker(RequestId(1));
        c.send(
            Instant(0),
            caller,
            Request::AllocateProducerIds {
                broker_id: BrokerId(1),
                broker_epoch: crate::cluster::BrokerEpoch(0),
            },
            Instant(0) + Duration::from_ms(250),
        );
        let mut sends = 0;
        let mut done = Vec::new();
        let mut now = Instant(0);
        loop {
            while let Some(e) = c.poll_event() {
                match e {
                    Event::Send { .. } => sends += 1,
                    Event::Done { caller, result } => done.push((caller, result)),
                }
            }
            let Some(at) = c.poll_timeout() else { break };
            now = at;
            c.tick(now);
        }
        assert_eq!(sends, 3, "at 0, 100 and 200 ms");
        assert_eq!(
            done,
            vec![(caller, Err(ControllerError::RequestTimedOut))],
            "answered once, at the deadline"
        );
        assert_eq!(now, Instant(0) + Duration::from_ms(250));
    }
}
