//! A client for the active controller: one request of [`gregor_core::cluster::wire`] sent to
//! whichever controller is active, as a broker's `NodeToControllerChannelManager` does in Kafka.
//!
//! The client knows the controller quorum's voters (`controller.quorum.voters`), not which one
//! is active. It starts with the last one that answered (or the first voter), and:
//! * on NOT_CONTROLLER (41) it asks that node DescribeQuorum for the leader it knows and goes
//!   there next (Kafka's brokers learn the leader from the Raft quorum they observe; a client
//!   of the controller listener learns it the same way, from the quorum's own answer);
//! * on REQUEST_TIMED_OUT (7: the quorum is not committing), a refused connection or a timeout,
//!   it tries the next voter;
//! * between tries it waits, from [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`], and it gives up
//!   at the deadline with the last thing it heard.
//!
//! A NOT_CONTROLLER after the request reached an active controller that then lost its
//! leadership means "maybe": its records may still commit under the next leader. So a retried
//! CreateTopics can find TOPIC_ALREADY_EXISTS for the topic it created itself, as in Kafka.

use anyhow::bail;
use bytes::Bytes;
use gregor_core::cluster::wire::client::{self, response_correlation_id};
use gregor_core::cluster::wire::{Answer, Refusal};
use gregor_core::cluster::{BrokerId, ControllerError, Request};
use gregor_core::raft::wire::{self as qwire, DESCRIBE_QUORUM_VERSIONS};
use gregor_core::raft::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tracing::debug;

pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long one connection attempt, or one exchange on it, may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
const NOT_CONTROLLER: i16 = 41;
const REQUEST_TIMED_OUT: i16 = 7;
const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

pub struct ControllerClient {
    voters: BTreeMap<NodeId, SocketAddr>,
    client_id: String,
    /// The voter to try next.
    target: NodeId,
    /// The open connection, to `target`.
    conn: Option<TcpStream>,
    correlation_id: i32,
    /// After a failed connection attempt to `target`, none is made again before this instant
    /// (a kept link fails fast meanwhile); the wait doubles from [`BACKOFF_MIN`] to
    /// [`BACKOFF_MAX`] while attempts keep failing.
    connect_after: Option<Instant>,
    connect_backoff: Duration,
    /// Connections opened so far (for the kept links' log lines and tests).
    opened: u64,
}

impl ControllerClient {
    pub fn new(voters: BTreeMap<NodeId, SocketAddr>, client_id: &str) -> ControllerClient {
        let target = *voters.keys().next().expect("at least one voter");
        ControllerClient {
            voters,
            client_id: client_id.to_string(),
            target,
            conn: None,
            correlation_id: 0,
            connect_after: None,
            connect_backoff: BACKOFF_MIN,
            opened: 0,
        }
    }

    /// Send `request` to the active controller and return its answer (a success, or a refusal
    /// other than NOT_CONTROLLER and REQUEST_TIMED_OUT), retrying until `deadline` passes.
    pub async fn send(&mut self, request: &Request, deadline: Duration) -> anyhow::Result<Answer> {
        let end = Instant::now() + deadline;
        let mut backoff = BACKOFF_MIN;
        loop {
            let last;
            match self.try_once(request).await {
                Ok(Err(r)) if r.code == NOT_CONTROLLER => {
                    let leader = self.leader_hint().await.ok().flatten();
                    last = format!(
                        "node {} is not the controller (leader it knows: {leader:?})",
                        self.target.0
                    );
                    match leader.filter(|l| self.voters.contains_key(l)) {
                        Some(l) if l != self.target => self.switch(l),
                        _ => self.next_voter(),
                    }
                }
                Ok(Err(r)) if r.code == REQUEST_TIMED_OUT => {
                    last = format!("node {}: {}", self.target.0, r.message);
                    self.next_voter();
                }
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    last = format!("node {}: {e:#}", self.target.0);
                    self.next_voter();
                }
            }
            if Instant::now() + backoff >= end {
                bail!("no active controller answered within {deadline:?}: {last}");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn switch(&mut self, to: NodeId) {
        self.target = to;
        self.conn = None;
        self.connect_after = None;
        self.connect_backoff = BACKOFF_MIN;
    }

    fn next_voter(&mut self) {
        let next = self
            .voters
            .range(NodeId(self.target.0 + 1)..)
            .next()
            .or_else(|| self.voters.iter().next())
            .map(|(id, _)| *id)
            .expect("at least one voter");
        self.switch(next);
    }

    async fn connection(&mut self) -> anyhow::Result<&mut TcpStream> {
        if self.conn.is_none() {
            let addr = self.voters[&self.target];
            if let Some(at) = self.connect_after.filter(|at| Instant::now() < *at) {
                bail!(
                    "not connected to {addr}: reconnecting in {:?}",
                    at - Instant::now()
                );
            }
            let connected = match timeout(EXCHANGE_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s.set_nodelay(true).map(|_| s).map_err(anyhow::Error::from),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context(format!("connecting to {addr}"))),
                Err(_) => Err(anyhow::anyhow!("connecting to {addr} timed out")),
            };
            match connected {
                Ok(s) => {
                    self.opened += 1;
                    self.connect_after = None;
                    self.connect_backoff = BACKOFF_MIN;
                    self.conn = Some(s);
                }
                Err(e) => {
                    self.connect_after = Some(Instant::now() + self.connect_backoff);
                    self.connect_backoff = (self.connect_backoff * 2).min(BACKOFF_MAX);
                    return Err(e);
                }
            }
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    /// Write `frame` and read the response with the same correlation id.
    async fn exchange(&mut self, frame: Bytes, corr: i32) -> anyhow::Result<Bytes> {
        let conn = self.connection().await?;
        let result = timeout(EXCHANGE_TIMEOUT, async {
            conn.write_all(&frame).await?;
            let mut len = [0u8; 4];
            conn.read_exact(&mut len).await?;
            let len = u32::from_be_bytes(len) as usize;
            if len > RESPONSE_BYTES_MAX {
                bail!("a response of {len} bytes");
            }
            let mut buf = vec![0u8; len];
            conn.read_exact(&mut buf).await?;
            Ok(Bytes::from(buf))
        })
        .await;
        let bytes = match result {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                self.conn = None;
                return Err(e);
            }
            Err(_) => {
                self.conn = None;
                bail!("no response within {EXCHANGE_TIMEOUT:?}");
            }
        };
        if response_correlation_id(&bytes) != Some(corr) {
            self.conn = None;
            bail!("a response to another request");
        }
        Ok(bytes)
    }

    fn next_corr(&mut self) -> i32 {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        self.correlation_id
    }

    async fn try_once(&mut self, request: &Request) -> anyhow::Result<Answer> {
        let corr = self.next_corr();
        let frame = client::encode_request(corr, &self.client_id, request)?;
        let bytes = self.exchange(frame, corr).await?;
        let answer = client::decode_response(bytes, request);
        if answer.is_err() {
            self.conn = None;
        }
        Ok(answer?)
    }

    /// The quorum leader the current target knows, from its DescribeQuorum answer.
    async fn leader_hint(&mut self) -> anyhow::Result<Option<NodeId>> {
        let corr = self.next_corr();
        let version = DESCRIBE_QUORUM_VERSIONS.1;
        let frame = qwire::encode_describe_quorum_request(corr, version)?;
        let bytes = self.exchange(frame, corr).await?;
        let (status, _) = qwire::decode_describe_quorum_response(bytes, version)?;
        Ok(status.leader)
    }
}

/// A kept connection to each remote controller, for a node's metadata side (Kafka's
/// `NodeToControllerChannelManager` keeps one too). A broker heartbeats every 2 s, so a
/// connection per request would open 30 a minute per broker for nothing.
///
/// * One connection per controller address, opened on first use and reused after.
/// * Requests on it are **serialized**: one is written, its answer read, then the next. The
///   controller listener serves a connection's requests one at a time in order anyway, so
///   pipelining would only queue them there instead of here.
/// * Each exchange keeps [`EXCHANGE_TIMEOUT`]; a timeout, an I/O error or a response that does
///   not match drops the connection, and the next request opens a new one.
/// * A failed connection attempt is not repeated before a backoff (from [`BACKOFF_MIN`]
///   doubling to [`BACKOFF_MAX`]); requests meanwhile fail at once, and the node's controller
///   channel (`gregor_core::cluster::channel`) decides whom to ask next and when, as before.
///   Its choice of controller is untouched: these links only carry what it sends.
#[derive(Clone)]
pub struct ControllerLinks {
    client_id: String,
    links: Arc<std::sync::Mutex<BTreeMap<SocketAddr, Arc<tokio::sync::Mutex<ControllerClient>>>>>,
}

impl ControllerLinks {
    pub fn new(client_id: &str) -> ControllerLinks {
        ControllerLinks {
            client_id: client_id.to_string(),
            links: Arc::default(),
        }
    }

    /// Send `request` to the controller at `addr` on its kept connection: the answer, or why
    /// none came.
    pub async fn send(&self, addr: SocketAddr, request: &Request) -> anyhow::Result<Answer> {
        let link = self
            .links
            .lock()
            .expect("not poisoned")
            .entry(addr)
            .or_insert_with(|| {
                let voters = BTreeMap::from([(NodeId(0), addr)]);
                Arc::new(tokio::sync::Mutex::new(ControllerClient::new(
                    voters,
                    &self.client_id,
                )))
            })
            .clone();
        let mut link = link.lock().await;
        let before = link.opened;
        let answer = link.try_once(request).await;
        if link.opened != before {
            debug!(%addr, opened = link.opened, "opened a connection to a controller");
        }
        answer
    }
}

/// A refusal read off the wire, as the controller's error it encodes (the wire carries a code
/// and a message; the request names the broker or topic the error is about).
pub fn refusal_error(r: Refusal, request: &Request) -> ControllerError {
    let broker = match request {
        Request::BrokerRegistration(reg) => reg.broker_id,
        Request::BrokerHeartbeat { broker_id, .. }
        | Request::AllocateProducerIds { broker_id, .. } => *broker_id,
        _ => BrokerId(-1),
    };
    let topic = match request {
        Request::CreateTopic { name, .. }
        | Request::DeleteTopic { name }
        | Request::CreatePartitions { name, .. }
        | Request::AlterConfigs { name, .. } => name.clone(),
        _ => String::new(),
    };
    if let (
        3,
        Request::ElectLeader { partition, .. } | Request::AlterReassignment { partition, .. },
    ) = (r.code, request)
    {
        return ControllerError::UnknownTopicOrPartition(*partition);
    }
    match r.code {
        101 => ControllerError::DuplicateBrokerRegistration(broker),
        102 => ControllerError::BrokerIdNotRegistered(broker),
        77 => ControllerError::StaleBrokerEpoch(broker),
        36 => ControllerError::TopicAlreadyExists(topic),
        3 => ControllerError::UnknownTopic(topic),
        17 => ControllerError::InvalidTopic(r.message),
        37 => ControllerError::InvalidPartitions(-1),
        38 => ControllerError::InvalidReplicationFactor {
            asked: -1,
            brokers: 0,
        },
        40 => ControllerError::InvalidConfig(r.message),
        42 => ControllerError::InvalidRequest(r.message),
        84 => ControllerError::ElectionNotNeeded(r.message),
        80 => ControllerError::PreferredLeaderNotAvailable(r.message),
        83 => ControllerError::EligibleLeadersNotAvailable(r.message),
        39 => ControllerError::InvalidReplicaAssignment(r.message),
        85 => ControllerError::NoReassignmentInProgress(r.message),
        91 => ControllerError::ResourceNotFound(r.message),
        92 => ControllerError::DuplicateResource(r.message),
        93 => ControllerError::UnacceptableCredential(r.message),
        33 => ControllerError::UnsupportedSaslMechanism(r.message),
        // NOT_CONTROLLER: the wire names no leader; the member's channel asks the quorum leader
        // its own Raft client knows, or the next voter.
        41 => ControllerError::NotController { leader: None },
        // REQUEST_TIMED_OUT, and any code this controller does not send: "ask again later".
        _ => ControllerError::RequestTimedOut,
    }
}
