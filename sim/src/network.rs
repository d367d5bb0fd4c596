//! The simulated network: TCP-like connections between endpoints (client to broker today,
//! broker to broker next), and the state of every directed link between two endpoints.
//!
//! The fault model, per directed link: a link can be cut (every segment sent over it is lost,
//! and a TCP connection that loses a segment for good is dead, silently), or clogged until some
//! instant (segments wait, then arrive in order). A connection delivers in order in each
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

    pub fn cut(&mut self, from: Endpoint, to: Endpoint) {
        self.links.entry((from, to)).or_default().cut = true;
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
    /// direction's link is cut, else delivered after its latency, behind everything sent before
    /// it in the same direction and after any clog on the link.
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
        if link.cut {
            // A TCP connection that loses a segment for good is dead; nobody is told.
            c.broken = true;
            return None;
        }
        let last = match dir {
            Direction::ToNode => &mut c.to_broker_at,
            Direction::FromNode => &mut c.to_client_at,
        };
        let at = (now + latency).max(*last).max(link.clogged_until);
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
