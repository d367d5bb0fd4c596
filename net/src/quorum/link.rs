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
