//! One client connection: a reader task that turns frames into requests, and a writer task
//! that sends response frames back. Neither knows anything about Kafka's semantics; they only
//! move bytes (mini-redis's `Connection`).
//!
//! A Kafka frame is a 4-byte big-endian length and that many bytes. The reader refuses a
//! negative length or one above `request_bytes_max` before allocating anything, and closes the
//! connection on a frame it cannot decode, with a log line naming the peer and the problem.
//! Flow control: the reader takes a permit per request from a semaphore holding
//! `requests_per_connection_max`; the broker task gives permits back as requests finish, so a
//! client that pipelines without limit is simply not read from until it catches up. And a client
//! that does not read its answers is not read from either, once `connection_buffer_bytes_max`
//! of them are waiting (see [`Backlog`]).
//!
//! What the reader sends the broker task is an [`Event`] (`event.rs`), so this module and the
//! runtime that owns the broker do not import each other.

use crate::backlog::Backlog;
use crate::event::Event;
use bytes::{Bytes, BytesMut};
use gregor_core::wire;
use gregor_core::ConnId;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
#[cfg(not(madsim))]
pub use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
// madsim's TcpStream has no `into_split`; tokio's generic split works on any stream.
#[cfg(madsim)]
pub type OwnedReadHalf = tokio::io::ReadHalf<tokio::net::TcpStream>;
#[cfg(madsim)]
pub type OwnedWriteHalf = tokio::io::WriteHalf<tokio::net::TcpStream>;

/// Split a socket into its reading and writing halves.
pub fn split(socket: tokio::net::TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    #[cfg(not(madsim))]
    return socket.into_split();
    #[cfg(madsim)]
    return tokio::io::split(socket);
}
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, warn};

pub async fn read_loop(
    conn: ConnId,
    peer: SocketAddr,
    read: OwnedReadHalf,
    events: mpsc::UnboundedSender<Event>,
    permits: Arc<Semaphore>,
    request_bytes_max: usize,
) {
    let mut read = BufReader::with_capacity(64 * 1024, read);
    // A failed read of the length means the client closed the connection (or it reset).
    while let Ok(len) = read.read_i32().await {
        if len < 0 || len as usize > request_bytes_max {
            warn!(%peer, len, max = request_bytes_max, "closing connection: request frame length out of bounds");
            break;
        }
        let mut frame = BytesMut::zeroed(len as usize);
        if let Err(e) = read.read_exact(&mut frame).await {
            debug!(%peer, len, error = %e, "connection closed mid-frame");
            break;
        }
        let Ok(permit) = permits.acquire().await else {
            break; // the broker closed this connection
        };
        permit.forget();
        match wire::decode_request(frame.freeze()) {
            Ok(request) => {
                if events.send(Event::Request { conn, request }).is_err() {
                    break;
                }
            }
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: bad request");
                break;
            }
        }
    }
    let _ = events.send(Event::Closed { conn });
}

pub async fn write_loop(
    write: OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
    backlog: Arc<Backlog>,
) {
    let mut write = BufWriter::with_capacity(64 * 1024, write);
    while let Some(frame) = frames.recv().await {
        if write.write_all(&frame).await.is_err() {
            return;
        }
        backlog.queued.fetch_sub(frame.len(), Ordering::SeqCst);
        // Coalesce whatever else is ready into the same flush.
        while let Ok(more) = frames.try_recv() {
            if write.write_all(&more).await.is_err() {
                return;
            }
            backlog.queued.fetch_sub(more.len(), Ordering::SeqCst);
        }
        if write.flush().await.is_err() {
            return;
        }
        backlog.drained();
    }
    let _ = write.shutdown().await;
}
