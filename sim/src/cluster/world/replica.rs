//! Routing replica fetches between the nodes, as the real driver does (issue 10).
//!
//! A follower's broker emits [`Output::ReplicaFetch`]: a Kafka Fetch request (with its own
//! broker id as `replica_id`) for the partitions that broker `to` leads. The real driver sends it
//! over a TCP connection it keeps to that broker and answers with exactly one
//! [`Input::ReplicaFetched`]. Here the request is encoded and decoded through the real wire code,
//! travels the simulated network on a connection reserved for the (follower, leader) pair — so
//! it meets the same latency, cuts, clogs, crashes and pauses as every other message — and
//! reaches the leader's broker as an ordinary `Input::Request`. The leader's `Output::Response`
//! on that connection travels back, is decoded, and becomes `Input::ReplicaFetched` at the
//! follower.
//!
//! The contract, as the real driver keeps it:
//! * one answer per fetch: the response, or `Err` when the leader is unknown, unreachable (the
//!   connect times out or is refused), the connection is reset, or no answer came within the
//!   request's `max_wait_ms` plus 30 s (then the connection is closed and the next fetch opens
//!   a new one);
//! * no answer at all to a follower process that has crashed since it asked (incarnations);
//! * a connection is closed at the leader when either end's process goes away, so a restarted
//!   leader never sees a stale follower connection and a restarted follower starts afresh.

use super::{Ev, World, CONNECT_TIMEOUT};
use crate::clients::{Us, MS};
use crate::network::Endpoint;
use bytes::Bytes;
use gregor_core::cluster::BrokerId;
use gregor_core::io::{Input, ReplicaFetchId};
use gregor_core::wire;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, RequestKind, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::collections::BTreeMap;

/// Replica connections' ids start here, far above any client connection's (the network numbers
/// those from 1 up): pair `(from, to)` owns the range `BASE + pair << 24 ..`, one id per
/// connection made for it, so a message still in flight on a closed connection can never be
/// taken for one on its successor.
const BASE: u64 = 1 << 40;

/// How long past `max_wait_ms` a fetch may go unanswered before the driver gives up on it (the
/// real driver's request timeout, 30 s).
const GRACE: Us = 30_000 * MS;

/// A fetch sent and not answered yet.
#[derive(Debug)]
pub(super) struct Pending {
    /// The follower's node and the incarnation of its broker process that asked.
    from: usize,
    incarnation: u64,
    id: ReplicaFetchId,
    leader: BrokerId,
    api_version: i16,
}

/// The replica connections and their fetches in flight.
#[derive(Debug, Default)]
pub(super) struct Replicas {
    /// The open connection of each (follower, leader) pair.
    open: BTreeMap<(usize, usize), u64>,
    /// Every open replica connection's pair, and how many ids each pair used.
    pair_of: BTreeMap<u64, (usize, usize)>,
    made: BTreeMap<(usize, usize), u64>,
    /// Fetches in flight, by (connection, correlation id).
    pending: BTreeMap<(u64, i32), Pending>,
    next_correlation: i32,
    /// Every fetch a running follower process waits on: (node, incarnation, fetch id). The
    /// contract's own check: each is answered once, never twice.
    /// With the instant by which it must have been answered.
    outstanding: BTreeMap<(usize, u64, u64), Us>,
    /// The answers handed to followers, in order: (node, fetch id, whether a response).
    pub answers: Vec<(usize, ReplicaFetchId, bool)>,
}

impl Replicas {
    /// Is `conn` one of the replica connections (open or closed)?
    pub fn is_replica_conn(conn: u64) -> bool {
        conn >= BASE
    }
}

impl World {
    /// Route one [`gregor_core::io::Output::ReplicaFetch`] of node `i`'s broker.
    pub(super) fn replica_fetch(
        &mut self,
        i: usize,
        to: BrokerId,
        id: ReplicaFetchId,
        api_version: i16,
        request: FetchRequest,
    ) {
        self.count("replica fetches");
        let incarnation = self.machines[i].node.incarnation;
        let due = self.now + request.max_wait_ms.max(0) as Us * MS + GRACE + CONNECT_TIMEOUT;
        if let Some(_earlier) = self
            .replicas
            .outstanding
            .insert((i, incarnation, id.0), due)
        {
            self.failures.push(format!(
                "t={}ms: node {} sent replica fetch {id:?} while one with that id was out",
                self.now / MS,
                i + 1
            ));
        }
        let j = to.0 as i64 - 1;
        if j < 0 || j as usize >= self.machines.len() || j as usize == i {
            self.replica_failed(i, incarnation, id, to, 1, format!("no endpoint for {to:?}"));
            return;
        }
        let j = j as usize;
        let conn = match self.replicas.open.get(&(i, j)) {
            Some(&conn) if self.net.conns.get(&conn).is_some_and(|c| !c.broken) => conn,
            _ => match self.replica_connect(i, j) {
                Ok(conn) => conn,
                Err((after, why)) => {
                    self.replica_failed(i, incarnation, id, to, after, why);
                    return;
                }
            },
        };
        self.replicas.next_correlation = self.replicas.next_correlation.wrapping_add(1);
        let correlation_id = self.replicas.next_correlation;
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(api_version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(format!("replica-{}", i + 1))));
        let wait = request.max_wait_ms.max(0) as Us * MS;
        let frame = wire::encode_request(&header, &RequestKind::Fetch(request))
            .expect("a follower's fetch encodes at the version it chose");
        let request = wire::decode_request(frame.slice(4..)).expect("and decodes back");
        self.replicas.pending.insert(
            (conn, correlation_id),
            Pending {
                from: i,
                incarnation,
                id,
                leader: to,
                api_version,
            },
        );
        let lat = self.latency();
        if let Some(at) = self.net.send_to_node(conn, self.now, lat) {
            self.schedule(at, Ev::ToBroker(conn, Box::new(request)));
        }
        // A lost request (the link cut it) is noticed only by the timeout, as on a real network.
        self.schedule(
            self.now + wait + GRACE,
            Ev::ReplicaTimeout(conn, correlation_id),
        );
    }

    /// Open a connection from node `i` to node `j`'s broker, or say after how long the attempt
    /// fails and why.
    fn replica_connect(&mut self, i: usize, j: usize) -> Result<u64, (Us, String)> {
        if let Some(old) = self.replicas.open.get(&(i, j)).copied() {
            self.replica_close(old, "broken");
        }
        let (from, to) = (Endpoint::Node(i), Endpoint::Node(j));
        let m = &self.machines[j];
        if !self.net.can_connect(from, to) || (m.member.is_none() && m.node.power_off) {
            return Err((CONNECT_TIMEOUT, "connect timed out".into()));
        }
        if m.node.broker.is_none() {
            return Err((2 * self.latency(), "connection refused".into()));
        }
        let made = self.replicas.made.entry((i, j)).or_default();
        *made += 1;
        let pair = (i * 64 + j) as u64;
        let conn = BASE + (pair << 24) + *made;
        let incarnation = m.node.incarnation;
        self.net.open_as(conn, from, j, incarnation);
        self.replicas.open.insert((i, j), conn);
        self.replicas.pair_of.insert(conn, (i, j));
        self.count("replica connections");
        Ok(conn)
    }

    /// Answer fetch `id` of node `i`'s process `incarnation` with an error, `after` from now.
    fn replica_failed(
        &mut self,
        i: usize,
        incarnation: u64,
        id: ReplicaFetchId,
        leader: BrokerId,
        after: Us,
        why: String,
    ) {
        let now = self.machines[i].node.clock(self.now + after);
        let input = Box::new(Input::ReplicaFetched {
            now,
            from: leader,
            id,
            result: Err(why),
        });
        self.schedule(
            self.now + after,
            Ev::BrokerInput {
                node: i,
                incarnation,
                input,
            },
        );
    }

    /// A response frame (without its length prefix) arrived at the follower's end of replica
    /// connection `conn`: decode it at the version the fetch was sent with, and hand it to the
    /// follower if the process that asked still runs.
    pub(super) fn replica_response(&mut self, conn: u64, frame: Bytes) {
        // Every response header starts with the correlation id; its version (flexible or not)
        // depends on the request's, which the pending fetch knows.
        let Some(correlation) = frame
            .get(..4)
            .map(|b| i32::from_be_bytes(b.try_into().expect("4")))
        else {
            return;
        };
        let Some(p) = self.replicas.pending.remove(&(conn, correlation)) else {
            return; // the fetch timed out already, or its connection was reset
        };
        let mut b = frame;
        let version = p.api_version;
        let decoded =
            ResponseHeader::decode(&mut b, ApiKey::Fetch.response_header_version(version))
                .and_then(|_| FetchResponse::decode(&mut b, version));
        let result = decoded.map_err(|e| format!("undecodable fetch response: {e}"));
        assert!(
            result.is_ok(),
            "a leader's fetch response decodes at the version asked: {result:?}"
        );
        self.note(20, conn);
        let n = &self.machines[p.from].node;
        if n.incarnation != p.incarnation || n.broker.is_none() {
            return; // the follower that asked is gone
        }
        let now = n.clock(self.now);
        self.replica_answered(p.from, p.incarnation, p.id, true);
        self.pump(
            p.from,
            vec![Input::ReplicaFetched {
                now,
                from: p.leader,
                id: p.id,
                result,
            }],
        );
    }

    /// Fetch `id` of node `i`'s process `incarnation` is answered now (`ok`: with a response).
    pub(super) fn replica_answered(
        &mut self,
        i: usize,
        incarnation: u64,
        id: ReplicaFetchId,
        ok: bool,
    ) {
        self.count(if ok {
            "replica fetches answered"
        } else {
            "replica fetches failed"
        });
        if self
            .replicas
            .outstanding
            .remove(&(i, incarnation, id.0))
            .is_none()
        {
            self.failures.push(format!(
                "t={}ms: node {} got a second answer to replica fetch {id:?}",
                self.now / MS,
                i + 1
            ));
        }
        self.replicas.answers.push((i, id, ok));
    }

    /// At the end of the run: a fetch of a process that still runs went unanswered past its
    /// deadline (the contract says every fetch gets exactly one answer).
    pub(super) fn replica_unanswered(&self) -> Vec<String> {
        self.replicas
            .outstanding
            .iter()
            .filter(|((i, inc, _), due)| {
                let n = &self.machines[*i].node;
                n.incarnation == *inc && n.broker.is_some() && **due < self.now
            })
            .map(|((i, _, id), due)| {
                format!(
                    "node {} never got an answer to replica fetch {id} (due at {}ms)",
                    i + 1,
                    due / MS
                )
            })
            .collect()
    }

    /// Fetch `correlation` on `conn` got no answer in time: fail it, and close the connection
    /// (the real driver drops a connection whose request timed out).
    pub(super) fn replica_timeout(&mut self, conn: u64, correlation: i32) {
        if !self.replicas.pending.contains_key(&(conn, correlation)) {
            return;
        }
        self.count("replica fetches timed out");
        self.replica_close(conn, "request timed out");
    }

    /// Replica connection `conn` is gone (reset, timed out, or one end's process went away):
    /// every fetch on it fails now, and the leader's broker, if it still runs, learns the
    /// connection closed.
    pub(super) fn replica_close(&mut self, conn: u64, why: &str) {
        if let Some(pair) = self.replicas.pair_of.remove(&conn) {
            if self.replicas.open.get(&pair) == Some(&conn) {
                self.replicas.open.remove(&pair);
            }
        }
        let failed: Vec<(u64, i32)> = self
            .replicas
            .pending
            .range((conn, i32::MIN)..=(conn, i32::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in failed {
            let p = self.replicas.pending.remove(&k).expect("listed");
            let why = format!("replica connection to {:?}: {why}", p.leader);
            self.replica_failed(p.from, p.incarnation, p.id, p.leader, 0, why);
        }
        if let Some(c) = self.net.conns.get_mut(&conn) {
            c.broken = true;
            let at = self.now + self.latency();
            self.schedule(at, Ev::Closed(conn));
        }
    }

    /// Node `i`'s process went away: close every replica connection it fetched on. (The ones
    /// it led are reset by its kernel after a crash, or time out after a power loss, as the
    /// world's crash does for every connection to a node.)
    pub(super) fn replica_follower_gone(&mut self, i: usize) {
        let conns: Vec<u64> = self
            .replicas
            .pair_of
            .iter()
            .filter(|(_, (a, _))| *a == i)
            .map(|(c, _)| *c)
            .collect();
        for conn in conns {
            self.replica_close(conn, "process gone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::world::Options;

    /// A healthy three-node cluster with no workload and no faults, run for 5 s (a quorum
    /// leader elected, every broker registered and started).
    fn cluster() -> World {
        let mut w = World::new(Options::new(7, 3));
        w.profile.weights = [0; 12];
        w.profile.loss_permille = 0;
        for i in 0..3 {
            w.start(i);
        }
        advance(&mut w, 5_000 * MS);
        w
    }

    fn advance(w: &mut World, until: Us) {
        while let Some((&(at, seq), _)) = w.queue.iter().next() {
            if at > until {
                break;
            }
            let ev = w.queue.remove(&(at, seq)).expect("first");
            w.now = at;
            w.dispatch(*ev);
        }
        w.now = until;
    }

    /// Node `i`'s broker fetches from broker `to` (an id), as a follower would.
    fn fetch(w: &mut World, i: usize, to: i32, id: u64) {
        let request = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(i as i32 + 1))
            .with_max_wait_ms(500)
            .with_min_bytes(1);
        w.replica_fetch(i, BrokerId(to), ReplicaFetchId(id), 12, request);
    }

    fn answers_of(w: &World, i: usize) -> Vec<(u64, bool)> {
        w.replicas
            .answers
            .iter()
            .filter(|a| a.0 == i)
            .map(|a| (a.1 .0, a.2))
            .collect()
    }

    #[test]
    fn a_fetch_reaches_the_leader_and_its_response_comes_back() {
        let mut w = cluster();
        fetch(&mut w, 0, 2, 1);
        fetch(&mut w, 2, 2, 9);
        let t = w.now;
        advance(&mut w, t + 2_000 * MS);
        assert_eq!(answers_of(&w, 0), vec![(1, true)], "{:?}", w.failures);
        assert_eq!(answers_of(&w, 2), vec![(9, true)]);
        // The second fetch on the pair reuses the connection.
        fetch(&mut w, 0, 2, 2);
        advance(&mut w, t + 4_000 * MS);
        assert_eq!(answers_of(&w, 0), vec![(1, true), (2, true)]);
        assert_eq!(w.counters.get("replica connections"), Some(&2));
        assert!(w.failures.is_empty(), "{:?}", w.failures);
        assert!(w.replica_unanswered().is_empty());
    }

    #[test]
    fn unreachable_unknown_and_timed_out_fetches_fail_once() {
        let mut w = cluster();
        // An unknown broker: at once.
        fetch(&mut w, 0, 9, 1);
        // A cut link: the connect times out.
        w.net.cut(Endpoint::Node(0), Endpoint::Node(1));
        fetch(&mut w, 0, 2, 2);
        let t = w.now;
        advance(&mut w, t + CONNECT_TIMEOUT + MS);
        assert_eq!(answers_of(&w, 0), vec![(1, false), (2, false)]);
        // Connected, then the way back is cut: no answer until max_wait + 30 s.
        w.net.heal_all();
        fetch(&mut w, 0, 2, 3);
        w.net.cut(Endpoint::Node(1), Endpoint::Node(0));
        let t = w.now;
        advance(&mut w, t + 20_000 * MS);
        assert_eq!(answers_of(&w, 0).len(), 2, "nothing yet");
        advance(&mut w, t + 31_000 * MS);
        assert_eq!(answers_of(&w, 0), vec![(1, false), (2, false), (3, false)]);
        assert!(w.failures.is_empty(), "{:?}", w.failures);
    }

    /// A fetch sent while the pair is cut, on the connection kept across the cut, is held and
    /// answered once the cut heals, as TCP's retransmission delivers it: not lost, so the
    /// follower does not wait out the 30 s replica timeout (seed 710 of `--cluster 3
    /// --replication`: a follower isolated when it sent its fetch stayed out of the ISR for the
    /// whole liveness phase).
    #[test]
    fn a_fetch_sent_across_a_cut_that_heals_is_answered_after_the_heal() {
        let mut w = cluster();
        fetch(&mut w, 0, 2, 1);
        let t = w.now;
        advance(&mut w, t + 2_000 * MS);
        assert_eq!(answers_of(&w, 0), vec![(1, true)], "{:?}", w.failures);
        let t = w.now;
        let (a, b) = (Endpoint::Node(0), Endpoint::Node(1));
        w.net.cut_until(a, b, t + 3_000 * MS);
        w.net.cut_until(b, a, t + 3_000 * MS);
        fetch(&mut w, 0, 2, 2);
        advance(&mut w, t + 2_900 * MS);
        assert_eq!(answers_of(&w, 0), vec![(1, true)], "held by the cut");
        w.net.heal(a, b);
        advance(&mut w, t + 5_000 * MS);
        assert_eq!(answers_of(&w, 0), vec![(1, true), (2, true)]);
        assert_eq!(w.counters.get("replica connections"), Some(&1), "kept");
        assert!(w.failures.is_empty(), "{:?}", w.failures);
    }

    #[test]
    fn a_crashed_leader_fails_the_fetch_and_a_crashed_follower_gets_no_answer() {
        let mut w = cluster();
        // Clog the pair so the fetch is still out when the leader crashes.
        let t = w.now;
        w.net
            .clog(Endpoint::Node(0), Endpoint::Node(1), t + 1_000 * MS);
        fetch(&mut w, 0, 2, 1);
        w.crash(1, false);
        advance(&mut w, t + 500 * MS);
        assert_eq!(answers_of(&w, 0), vec![(1, false)], "reset by the kernel");
        // The follower crashes with a fetch out: nothing reaches its next process.
        fetch(&mut w, 0, 3, 2);
        w.crash(0, false);
        advance(&mut w, t + 60_000 * MS);
        assert_eq!(answers_of(&w, 0), vec![(1, false)]);
        assert!(w.failures.is_empty(), "{:?}", w.failures);
    }
}
