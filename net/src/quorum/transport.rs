//! The quorum's network: the controller listener, and one outgoing connection to each other
//! voter.
//!
//! Each node sends its *requests* (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch,
//! FetchSnapshot) on its own connection to the peer, and answers the peer's requests on the
//! connection the peer opened to it: Kafka's model, one connection per direction. A request
//! carries a correlation id; the requester keeps a [`Pending`] per id to decode the response,
//! so responses are matched by id, not by order. Frames are Kafka's (a 4-byte length, then the
//! header and body), at most [`FRAME_BYTES_MAX`] bytes.
//!
//! Limits: a peer's outgoing queue holds [`PEER_QUEUE_MAX`] messages and a message that finds
//! it full is dropped (Raft resends what matters on its request timeout); a connection with
//! more than [`PENDING_MAX`] unanswered requests is closed and opened again; the listener
//! serves at most [`CONNECTIONS_MAX`] connections. A lost connection is retried with backoff
//! from [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]; messages queued meanwhile are dropped, as
//! a fresh request will be made.

use super::driver::ControllerAnswer;
use bytes::Bytes;
use gregor_core::cluster::wire::{self as cwire, Call};
use gregor_core::cluster::{MetadataImage, Request};
use gregor_core::raft::wire::{self, Inbound, Pending, QuorumStatus};
use gregor_core::raft::{Epoch, Message, NodeId};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, info, warn};

pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
pub const PEER_QUEUE_MAX: usize = 64;
pub const PENDING_MAX: usize = 64;
pub const CONNECTIONS_MAX: usize = 64;
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What the network hands the driver.
pub enum Event {
    /// A request from a peer; the driver answers through `reply`.
    Request {
        from: NodeId,
        message: Message,
        reply: oneshot::Sender<Reply>,
    },
    /// A peer's response to one of this node's requests.
    Response { from: NodeId, message: Message },
    /// A DescribeQuorum: the status, and whether this node is the leader.
    Describe {
        reply: oneshot::Sender<(QuorumStatus, bool)>,
    },
    /// A DescribeCluster: the committed image and who leads.
    DescribeCluster { reply: oneshot::Sender<ClusterView> },
    /// One request for the controller (one topic of a CreateTopics, a heartbeat, ...),
    /// answered once its records are committed.
    Controller {
        request: Request,
        reply: oneshot::Sender<ControllerAnswer>,
    },
}

/// What DescribeCluster is answered from.
pub struct ClusterView {
    pub image: Arc<MetadataImage>,
    /// The quorum leader this node knows: the active controller.
    pub controller: Option<i32>,
    /// Every controller: id, host, port.
    pub controllers: Vec<(i32, String, u16)>,
}

/// The driver's answer to a request: the response Raft produced (none for BeginQuorumEpoch and
/// EndQuorumEpoch, which are acknowledged), and the node's epoch and leader for the ack.
pub struct Reply {
    pub response: Option<Message>,
    pub epoch: Epoch,
    pub leader: Option<NodeId>,
}

/// Read one frame (its length prefix stripped); `None` at a clean end of stream.
async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > FRAME_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame length {len} outside 0..={FRAME_BYTES_MAX}"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(Bytes::from(buf)))
}

/// Serve the controller listener: quorum RPCs from peers; the broker-to-controller RPCs
/// ([`gregor_core::cluster::wire`]) from brokers; ApiVersions, DescribeQuorum and
/// DescribeCluster from tools.
pub async fn accept_loop(listener: TcpListener, events: mpsc::Sender<Event>) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!("controller listener accept failed: {e}");
                tokio::time::sleep(BACKOFF_MIN).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%peer, "refusing a controller connection: {CONNECTIONS_MAX} open");
            continue;
        };
        let events = events.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, events).await {
                debug!(%peer, "controller connection closed: {e}");
            }
            drop(permit);
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    events: mpsc::Sender<Event>,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    while let Some(frame) = read_frame(&mut stream).await? {
        if cwire::peek(&frame).is_some_and(|(key, _, _)| cwire::serves(key)) {
            let out = serve_controller_request(frame, &events).await?;
            stream.write_all(&out).await?;
            continue;
        }
        let request = wire::decode_request(frame)?;
        let out = match &request.body {
            Inbound::DescribeQuorum => {
                let (tx, rx) = oneshot::channel();
                events.send(Event::Describe { reply: tx }).await?;
                let (status, is_leader) = rx.await?;
                Some(wire::encode_describe_quorum_response(
                    &request, &status, is_leader,
                )?)
            }
            Inbound::Raft { from, message } => {
                let (tx, rx) = oneshot::channel();
                events
                    .send(Event::Request {
                        from: *from,
                        message: message.clone(),
                        reply: tx,
                    })
                    .await?;
                let reply = rx.await?;
                match (&reply.response, message) {
                    (None, Message::BeginQuorumEpoch { .. } | Message::EndQuorumEpoch { .. }) => {
                        Some(wire::encode_ack(&request, reply.epoch, reply.leader)?)
                    }
                    (Some(response), _) => Some(wire::encode_response(&request, response)?),
                    (None, _) => None,
                }
            }
        };
        match out {
            Some(bytes) => stream.write_all(&bytes).await?,
            None => debug!(
                correlation_id = request.correlation_id,
                "no answer to a {:?} request", request.api_key
            ),
        }
    }
    Ok(())
}

/// One request of [`gregor_core::cluster::wire`]: each of its items goes to the driver as its
/// own controller request, and the response waits for every answer (each released only once
/// its records are committed). Items run one after another, as Kafka's controller takes a
/// CreateTopics' topics in order.
async fn serve_controller_request(
    frame: Bytes,
    events: &mpsc::Sender<Event>,
) -> anyhow::Result<Bytes> {
    let request = cwire::decode_request(frame)?;
    let out = match &request.call {
        Call::ApiVersions { .. } => cwire::encode_api_versions_response(&request)?,
        Call::DescribeCluster { .. } => {
            let (tx, rx) = oneshot::channel();
            events.send(Event::DescribeCluster { reply: tx }).await?;
            let view = rx.await?;
            cwire::encode_describe_cluster_response(
                &request,
                "",
                view.controller,
                &view.image,
                &view.controllers,
            )?
        }
        Call::Metadata { .. } => {
            let (tx, rx) = oneshot::channel();
            events.send(Event::DescribeCluster { reply: tx }).await?;
            let view = rx.await?;
            cwire::encode_metadata_response(&request, "", view.controller, &view.image)?
        }
        Call::Controller(items) => {
            let mut asked = Vec::with_capacity(items.len());
            for item in items {
                asked.push(match &item.request {
                    Ok(r) => {
                        let (tx, rx) = oneshot::channel();
                        events
                            .send(Event::Controller {
                                request: r.clone(),
                                reply: tx,
                            })
                            .await?;
                        Ok(rx)
                    }
                    Err(refusal) => Err(refusal.clone()),
                });
            }
            let mut answers = Vec::with_capacity(asked.len());
            for a in asked {
                answers.push(match a {
                    Ok(rx) => rx.await?.map_err(cwire::Refusal::from),
                    Err(refusal) => Err(refusal),
                });
            }
            cwire::encode_response(&request, &answers)?
        }
    };
    Ok(out)
}

/// A request queued for a peer, and who wants to know when the peer answered it.
type Queued = (Message, Option<oneshot::Sender<()>>);

/// The outgoing side: a queue per other voter, each drained by a task that keeps a connection.
pub struct Peers {
    queues: BTreeMap<NodeId, mpsc::Sender<Queued>>,
}

impl Peers {
    pub fn start(
        me: NodeId,
        voters: &BTreeMap<NodeId, SocketAddr>,
        events: mpsc::Sender<Event>,
    ) -> Peers {
        let mut queues = BTreeMap::new();
        for (&id, &addr) in voters.iter().filter(|(id, _)| **id != me) {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
            queues.insert(id, tx);
            tokio::spawn(peer_task(me, id, addr, rx, events.clone()));
        }
        Peers { queues }
    }

    /// Queue a request for `to`; false when `to` is unknown or its queue is full (dropped).
    pub fn send(&self, to: NodeId, message: Message) -> bool {
        match self.queues.get(&to) {
            Some(q) => q.try_send((message, None)).is_ok(),
            None => false,
        }
    }

    /// [`Peers::send`], and a receiver that resolves once `to` has answered the request (an
    /// EndQuorumEpoch's acknowledgement, say); it reads as an error when the request was
    /// dropped or the connection failed first. None when it could not even be queued.
    pub fn send_answered(&self, to: NodeId, message: Message) -> Option<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        let q = self.queues.get(&to)?;
        q.try_send((message, Some(tx))).ok()?;
        Some(rx)
    }
}

async fn peer_task(
    me: NodeId,
    id: NodeId,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<Queued>,
    events: mpsc::Sender<Event>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut was_connected = true;
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                info!(peer = id.0, %addr, "connected to controller");
                was_connected = true;
                backoff = BACKOFF_MIN;
                match run_connection(me, id, stream, &mut queue, &events).await {
                    Ok(()) => return, // the driver is gone
                    Err(e) => info!(peer = id.0, %addr, "connection to controller lost: {e}"),
                }
            }
            Ok(Err(e)) => {
                if was_connected {
                    info!(peer = id.0, %addr, "cannot connect to controller: {e}");
                }
                was_connected = false;
            }
            Err(_) => was_connected = false,
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        // What queued while disconnected is stale; Raft asks again on its own timers.
        while let Ok((m, _)) = queue.try_recv() {
            debug!(peer = id.0, "dropping {m:?}: not connected");
        }
    }
}

/// Drive one connection until it fails (`Err`) or the driver's queue closes (`Ok`).
async fn run_connection(
    me: NodeId,
    id: NodeId,
    stream: TcpStream,
    queue: &mut mpsc::Receiver<Queued>,
    events: &mpsc::Sender<Event>,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let (mut read, mut write) = tokio::io::split(stream);
    type Waiting = (Pending, Option<oneshot::Sender<()>>);
    let pending: Arc<Mutex<HashMap<i32, Waiting>>> = Arc::default();
    let reader = {
        let pending = pending.clone();
        let events = events.clone();
        async move {
            loop {
                let Some(frame) = read_frame(&mut read).await? else {
                    anyhow::bail!("closed by the peer");
                };
                let corr = wire::response_correlation_id(&frame)?;
                let Some((p, answered)) = pending.lock().expect("not poisoned").remove(&corr)
                else {
                    anyhow::bail!("a response with unknown correlation id {corr}");
                };
                let response = wire::decode_response(frame, &p)?;
                if let Some(tx) = answered {
                    let _ = tx.send(());
                }
                if let Some(message) = response {
                    if events
                        .send(Event::Response { from: id, message })
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
            }
        }
    };
    tokio::pin!(reader);
    let mut corr: i32 = 0;
    loop {
        tokio::select! {
            r = &mut reader => return r.and(Err(anyhow::anyhow!("reader ended"))),
            m = queue.recv() => {
                let Some((m, answered)) = m else { return Ok(()) };
                corr = corr.wrapping_add(1);
                let (bytes, p) = wire::encode_request(me, corr, &m)?;
                {
                    let mut pending = pending.lock().expect("not poisoned");
                    if pending.len() >= PENDING_MAX {
                        anyhow::bail!("{PENDING_MAX} requests unanswered");
                    }
                    pending.insert(corr, (p, answered));
                }
                write.write_all(&bytes).await?;
            }
        }
    }
}
