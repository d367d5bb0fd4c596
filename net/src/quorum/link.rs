//! The road between a node's broker and its metadata side, two tasks of one process (Kafka's
//! `BrokerServer` and `SharedServer`): the broker hands its requests for the active controller
//! (`gregor_core::Output::Controller`) to the quorum thread, and the quorum thread hands back
//! every committed image and each request's answer, which the broker takes as inputs
//! (`Input::Metadata`, `Input::ControllerReply`). Both channels are unbounded: the broker sends
//! a handful of requests at a time (a CreateTopics' topics, a producer-id block), and images
//! come one per commit of the metadata log.
//!
//! At start the broker first sends what its data directory holds ([`LocalTopics`], for the
//! import of a standalone broker's directory into an empty metadata log) and then waits for
//! [`ToBroker::Ready`] before it takes any image or opens its Kafka listener: a broker that
//! followed an image before the import committed would delete its topics as strays (KIP-858).

use gregor_core::cluster::import::LocalTopics;
use gregor_core::cluster::{ControllerError, MetadataImage, Reply, Request, RequestId};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What the quorum thread sends the broker.
#[derive(Debug)]
pub enum ToBroker {
    /// The committed metadata image moved (offsets only grow).
    Image(Arc<MetadataImage>),
    /// The answer to the broker's request `id`.
    Reply {
        id: RequestId,
        result: Result<Reply, ControllerError>,
    },
    /// The broker may follow the images sent so far and serve clients: in a one-voter quorum
    /// once its broker is unfenced with any import committed (so the first client finds topics
    /// it can create and partitions it leads), at once otherwise (a cluster's broker serves
    /// what it can while the quorum forms, as before).
    Ready,
}

/// The broker's end.
pub struct BrokerEnd {
    pub requests: mpsc::UnboundedSender<(RequestId, Request)>,
    pub events: mpsc::UnboundedReceiver<ToBroker>,
    /// The data directory's topics, sent once at start.
    pub local_topics: oneshot::Sender<LocalTopics>,
    /// How the process asks for a controlled shutdown on SIGTERM.
    pub shutdown: ShutdownAsk,
}

/// The metadata side's end.
pub struct QuorumEnd {
    pub requests: mpsc::UnboundedReceiver<(RequestId, Request)>,
    pub events: mpsc::UnboundedSender<ToBroker>,
    pub local_topics: oneshot::Receiver<LocalTopics>,
    /// Controlled shutdowns asked for: each is answered once the controller has moved this
    /// broker's leaderships and fenced it (`ShouldShutDown`).
    pub shutdown: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
}

/// The process's handle for a controlled shutdown (KIP-631): [`ShutdownAsk::begin`] starts it
/// and resolves once the broker may stop.
#[derive(Clone)]
pub struct ShutdownAsk(mpsc::UnboundedSender<oneshot::Sender<()>>);

impl ShutdownAsk {
    /// Ask the node's lifecycle to heartbeat `WantShutDown`; the answer comes when the active
    /// controller said `ShouldShutDown` (an error: the metadata side is gone).
    pub fn begin(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        // A gone quorum thread drops `tx`, which the receiver reads as an error.
        let _ = self.0.send(tx);
        rx
    }
}

/// The process's handle for the last thing its metadata side does before the process exits
/// cleanly: give up the quorum's leadership if it holds it (KIP-595's graceful resignation,
/// EndQuorumEpoch to the other voters), so they elect the next active controller at once
/// instead of after their fetch timeout.
#[derive(Clone)]
pub struct ResignAsk(mpsc::UnboundedSender<oneshot::Sender<Resigned>>);

/// What a resignation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resigned {
    /// The node led the quorum (the active controller) and resigned.
    pub led: bool,
    /// The voters sent EndQuorumEpoch, and how many acknowledged it in time.
    pub told: usize,
    pub acknowledged: usize,
}

impl ResignAsk {
    /// Ask for the resignation; the answer comes once the other voters acknowledged it or a
    /// bounded wait is over (an error: the metadata side is gone).
    pub fn ask(&self) -> oneshot::Receiver<Resigned> {
        let (tx, rx) = oneshot::channel();
        // A gone quorum thread drops `tx`, which the receiver reads as an error.
        let _ = self.0.send(tx);
        rx
    }
}

/// A resignation handle and the metadata side's end of it.
pub fn resign_pair() -> (
    ResignAsk,
    mpsc::UnboundedReceiver<oneshot::Sender<Resigned>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (ResignAsk(tx), rx)
}

/// A connected pair of ends.
pub fn pair() -> (BrokerEnd, QuorumEnd) {
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (local_tx, local_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    (
        BrokerEnd {
            requests: req_tx,
            events: ev_rx,
            local_topics: local_tx,
            shutdown: ShutdownAsk(stop_tx),
        },
        QuorumEnd {
            requests: req_rx,
            events: ev_tx,
            local_topics: local_rx,
            shutdown: stop_rx,
        },
    )
}
