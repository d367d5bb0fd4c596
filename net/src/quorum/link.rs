//! The road between a node's broker and its metadata side, two tasks of one process (Kafka's
//! `BrokerServer` and `SharedServer`): the broker hands its requests for the active controller
//! (`gregor_core::Output::Controller`) to the quorum thread, and the quorum thread hands back
//! every committed image and each request's answer, which the broker takes as inputs
//! (`Input::Metadata`, `Input::ControllerReply`). Both channels are unbounded: the broker sends
//! a handful of requests at a time (a CreateTopics' topics, a producer-id block), and images
//! come one per commit of the metadata log.

use gregor_core::cluster::{ControllerError, MetadataImage, Reply, Request, RequestId};
use std::sync::Arc;
use tokio::sync::mpsc;

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
}

/// The broker's end.
pub struct BrokerEnd {
    pub requests: mpsc::UnboundedSender<(RequestId, Request)>,
    pub events: mpsc::UnboundedReceiver<ToBroker>,
}

/// The metadata side's end.
pub struct QuorumEnd {
    pub requests: mpsc::UnboundedReceiver<(RequestId, Request)>,
    pub events: mpsc::UnboundedSender<ToBroker>,
}

/// A connected pair of ends.
pub fn pair() -> (BrokerEnd, QuorumEnd) {
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    (
        BrokerEnd {
            requests: req_tx,
            events: ev_rx,
        },
        QuorumEnd {
            requests: req_rx,
            events: ev_tx,
        },
    )
}
