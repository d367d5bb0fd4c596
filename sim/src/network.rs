//! The simulated network: TCP-like connections between endpoints (client to broker today,
//! broker to broker next), and the state of every directed link between two endpoints.
//!
//! The fault model, per directed link: a link can be cut, or clogged until some instant
//! (segments wait, then arrive in order). What a cut does to a connection that was open across
//! it depends on whether the cut is known to end. TCP does not lose a segment that a cut drops:
//! it keeps it and retransmits it, backing off (200 ms, 400 ms, ...), until the peer
//! acknowledges it or `tcp_retries2` (about 15 minutes on Linux) gives up. So a cut that heals
//! after seconds, as every drawn partition of the cluster world does ([`Network::cut_until`]),
//! only delays the bytes: they arrive, in order, when it heals, much as through a clog. A cut
//! with no known end ([`Network::cut`], which the single-broker world still draws) is taken as
//! one TCP gives up on: the segment is lost and the connection dead, silently, and each side
//! finds out by its own timeout. Either way, no new connection can be made across a cut. A connection delivers in order in each
//! direction; latency is drawn per message from the profile. Connecting needs both directions of
//! the link open. Nothing here schedules events: the world asks when a message would arrive and
//! schedules it.

use crate::clients::{Us, MS};
use gregor_core::prng::Prng;
use std::collections::BTreeMap;

/// Something that sends and receives messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    /// A workload client, by index.
    Client(usize),
    /// The operator's admin connection (never faulted).
    Admin,
    /// A broker machine, by index into the world's nodes.
    Node(usize),
}

/// The state of one directed link.
#[derive(Default, Clone, Copy, Debug)]
pub struct Link {
    pub cut: bool,
    /// When the cut is due to heal, if its fault said (0: not known, see the module doc).
    pub cut_until: Us,
    pub clogged_until: Us,
}

/// One TCP connection from `from` to node `node`.
pub struct Conn {
    pub from: Endpoint,
    pub node: usize,
    pub broken: bool,
    /// Requests sent on this connection that the broker has not read yet.
    pub unread: usize,
    pub to_broker_at: Us,
    pub to_client_at: Us,
    /// The incarnation of the node's process this connection was made to.
    pub incarnation: u64,
}

impl Conn {
    /// The client index, for a workload client's connection.
    pub fn client(&self) -> Option<usize> {
        match self.from {
            Endpoint::Client(c) => Some(c),
            _ => None,
        }
    }
}

pub struct Network {
    pub conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    /// Directed links that are not healthy; a missing entry is a healthy link.
    links: BTreeMap<(Endpoint, Endpoint), Link>,
    /// Base latency and the extra drawn uniformly on top (ms).
    latency_ms: (u64, u64),
}

impl Network {
    pub fn new(latency_ms: (u64, u64)) -> Network {
        Network {
            conns: BTreeMap::new(),
            next_conn: 0,
            links: BTreeMap::new(),
            latency_ms,
        }
    }

    /// One message's latency.
    pub fn latency(&self, prng: &mut Prng) -> Us {
        let (base, extra) = self.latency_ms;
        base * MS + prng.below(extra * MS + 1) + 20
    }

    pub fn link(&self, from: Endpoint, to: Endpoint) -> Link {
        if from == Endpoint::Admin || to == Endpoint::Admin {
            return Link::default();
        }
        self.links.get(&(from, to)).copied().unwrap_or_default()
    }

    /// Cut `from` → `to` with no known end: what an open connection sends across it is lost.
    pub fn cut(&mut self, from: Endpoint, to: Endpoint) {
        self.links.entry((from, to)).or_default().cut = true;
    }

    /// Cut `from` → `to` until `until` (when the world heals it): an open connection's bytes
    /// across it are retransmitted by TCP and arrive, in order, once it heals. Two overlapping
    /// cuts hold the bytes until the later end.
    pub fn cut_until(&mut self, from: Endpoint, to: Endpoint, until: Us) {
        let link = self.links.entry((from, to)).or_default();
        link.cut = true;
        link.cut_until = link.cut_until.max(until);
    }

    /// Clog both directions between `a` and `b` until `until`.
    pub fn clog(&mut self, a: Endpoint, b: Endpoint, until: Us) {
        self.links.entry((a, b)).or_default().clogged_until = until;
        self.links.entry((b, a)).or_default().clogged_until = until;
    }

    /// Heal both directions between `a` and `b`.
    pub fn heal(&mut self, a: Endpoint, b: Endpoint) {
        self.links.remove(&(a, b));
        self.links.remove(&(b, a));
    }

    pub fn heal_all(&mut self) {
        self.links.clear();
    }

    /// Can a connection be made from `from` to `to` (the handshake needs both directions)?
    pub fn can_connect(&self, from: Endpoint, to: Endpoint) -> bool {
        !self.link(from, to).cut && !self.link(to, from).cut
    }

    pub fn open(&mut self, from: Endpoint, node: usize, incarnation: u64) -> u64 {
        self.next_conn += 1;
        let id = self.next_conn;
        self.conns.insert(
            id,
            Conn {
                from,
                node,
                broken: false,
                unread: 0,
                to_broker_at: 0,
                to_client_at: 0,
                incarnation,
            },
        );
        id
    }

    /// Open a connection with an id the caller reserved (the cluster world's replica
    /// connections, numbered apart from the clients').
    pub fn open_as(&mut self, id: u64, from: Endpoint, node: usize, incarnation: u64) {
        let fresh = Conn {
            from,
            node,
            broken: false,
            unread: 0,
            to_broker_at: 0,
            to_client_at: 0,
            incarnation,
        };
        let old = self.conns.insert(id, fresh);
        assert!(old.is_none(), "connection id {id} used twice");
    }

    /// When a message sent now on `conn` towards the node arrives, or `None` if the link cut it
    /// (which kills the connection). TCP: in order on one connection.
    pub fn send_to_node(&mut self, conn: u64, now: Us, latency: Us) -> Option<Us> {
        self.send(conn, Direction::ToNode, now, latency)
    }

    /// When a message sent now on `conn` from the node arrives, or `None` (see
    /// [`Network::send_to_node`]).
    pub fn send_from_node(&mut self, conn: u64, now: Us, latency: Us) -> Option<Us> {
        self.send(conn, Direction::FromNode, now, latency)
    }

    /// One message over one direction of a connection: lost (and the connection dead) if that
    /// direction's link is cut with no known end, else delivered after its latency, behind
    /// everything sent before it in the same direction, and after any clog on the link or the
    /// end of a cut (TCP's retransmission after the heal).
    fn send(&mut self, conn: u64, dir: Direction, now: Us, latency: Us) -> Option<Us> {
        let c = self.conns.get(&conn)?;
        let node = Endpoint::Node(c.node);
        let (from, to) = match dir {
            Direction::ToNode => (c.from, node),
            Direction::FromNode => (node, c.from),
        };
        let link = self.link(from, to);
        let c = self.conns.get_mut(&conn).expect("looked up");
        if c.broken {
            return None;
        }
        if link.cut && link.cut_until == 0 {
            // A TCP connection that loses a segment for good is dead; nobody is told.
            c.broken = true;
            return None;
        }
        let held = if link.cut { link.cut_until } else { 0 };
        let last = match dir {
            Direction::ToNode => &mut c.to_broker_at,
            Direction::FromNode => &mut c.to_client_at,
        };
        let at = (now + latency).max(*last).max(link.clogged_until).max(held);
        *last = at;
        Some(at)
    }
}

/// The two directions of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    ToNode,
    FromNode,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept connection across a cut that heals: the bytes wait for the heal and arrive in
    /// order (TCP retransmits them), and the connection lives on; a cut with no known end loses
    /// them and kills it. No connection is made across either.
    #[test]
    fn a_cut_that_heals_delays_a_kept_connection_and_one_that_does_not_kills_it() {
        let (c, n) = (Endpoint::Client(0), Endpoint::Node(0));
        let mut net = Network::new((0, 0));
        let conn = net.open(c, 0, 1);
        net.cut_until(c, n, 5_000 * MS);
        assert!(!net.can_connect(c, n));
        assert_eq!(net.send_to_node(conn, 1_000 * MS, MS), Some(5_000 * MS));
        assert_eq!(net.send_to_node(conn, 1_001 * MS, MS), Some(5_000 * MS));
        // The other direction is open: its bytes are not held.
        assert_eq!(net.send_from_node(conn, 1_001 * MS, MS), Some(1_002 * MS));
        // Healed early (the liveness phase): what was sent waits no longer than the cut's end,
        // and what follows queues behind it.
        net.heal_all();
        assert_eq!(net.send_to_node(conn, 2_000 * MS, MS), Some(5_000 * MS));
        assert_eq!(net.send_to_node(conn, 6_000 * MS, MS), Some(6_001 * MS));
        assert!(!net.conns[&conn].broken);

        let other = net.open(c, 0, 1);
        net.cut(c, n);
        assert_eq!(net.send_to_node(other, 7_000 * MS, MS), None);
        assert!(net.conns[&other].broken);
        net.heal_all();
        assert_eq!(
            net.send_to_node(other, 8_000 * MS, MS),
            None,
            "dead for good"
        );
    }
}
