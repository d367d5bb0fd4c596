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
use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use gregor_core::wire;
use gregor_core::ConnId;
use kafka_protocol::messages::ResponseKind;
use kafka_protocol::protocol::buf::ByteBufMut;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
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
use gregor_core::kafka_protocol::messages::RequestKind;
use gregor_core::sasl::{self, Credentials, SaslSession, Step};
use std::sync::RwLock;
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn};

/// What a connection's reader needs to authenticate it (KIP-43, KIP-152): the session, which
/// decides (`gregor_core::sasl`), the credentials it checks against, and the writer it answers
/// the SASL requests on, itself (they never reach the broker task).
pub struct Auth {
    pub session: SaslSession,
    pub credentials: Arc<RwLock<Credentials>>,
    pub writer: mpsc::UnboundedSender<Frame>,
    pub backlog: Arc<Backlog>,
    /// The listener's name, for log lines.
    pub listener: &'static str,
    /// Kafka's `connection.failed.authentication.delay.ms` (100): how long a failed
    /// authentication's answer (and the close) waits, so a client guessing passwords gets
    /// at most one guess per delay per connection, and a reconnect costs it the delay again.
    pub failed_delay: std::time::Duration,
    /// The broker's clock: a SASL login's lifetime (KIP-368) is judged on it.
    pub clock: crate::clock::Clock,
}

impl Auth {
    fn send(&self, frame: Frame) {
        self.backlog.queued.fetch_add(frame.len(), Ordering::SeqCst);
        let _ = self.writer.send(frame);
    }
}

pub async fn read_loop<R: AsyncRead + Unpin>(
    conn: ConnId,
    peer: SocketAddr,
    read: R,
    events: mpsc::UnboundedSender<Event>,
    permits: Arc<Semaphore>,
    request_bytes_max: usize,
    mut auth: Auth,
) {
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let listener = auth.listener;
    // A failed read of the length means the client closed the connection (or it reset).
    while let Ok(len) = read.read_i32().await {
        // Before authentication a frame is at most a SASL token (Kafka's
        // `sasl.server.max.receive.size`): an unauthenticated client cannot make the broker
        // allocate a 100 MiB request buffer.
        let max = if auth.session.is_authenticated() {
            request_bytes_max
        } else {
            sasl::TOKEN_BYTES_MAX + 1024
        };
        if len < 0 || len as usize > max {
            warn!(%peer, listener, len, max, "closing connection: request frame length out of bounds (a TLS or non-Kafka client on this port?)");
            break;
        }
        let frame = match read_frame(&mut read, len as usize).await {
            Ok(frame) => frame,
            Err(e) => {
                debug!(%peer, len, error = %e, "connection closed mid-frame");
                break;
            }
        };
        let was_authenticated = auth.session.is_authenticated();
        if auth.session.expects_raw_token() {
            // After SaslHandshake v0: the frame is a bare token, and so is the answer.
            let reply = {
                let creds = auth.credentials.read().expect("credentials lock");
                auth.session.on_raw_token(&frame, &creds)
            };
            match reply {
                Ok(reply) => auth.send(Frame::raw(&reply)),
                Err(why) => {
                    warn!(%peer, listener, %why, "closing connection: SASL authentication failed");
                    tokio::time::sleep(auth.failed_delay).await;
                    break;
                }
            }
        } else {
            let request = match wire::decode_request(frame.freeze()) {
                Ok(request) => request,
                Err(e) => {
                    warn!(%peer, listener, error = %e, "closing connection: bad request");
                    break;
                }
            };
            let now = auth.clock.now();
            let step = if was_authenticated {
                // The common case, after authentication: no lock, no SASL state to consult
                // unless the request is a SASL one (a re-authentication, KIP-368) or the
                // login's lifetime is over.
                match &request.body {
                    RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_) => {
                        let creds = auth.credentials.read().expect("credentials lock");
                        auth.session.on_request_at(&request, &creds, now)
                    }
                    _ if auth.session.expired(now) => {
                        auth.session
                            .on_request_at(&request, &Credentials::default(), now)
                    }
                    _ => Step::Forward,
                }
            } else {
                let creds = auth.credentials.read().expect("credentials lock");
                auth.session.on_request_at(&request, &creds, now)
            };
            let header = &request.header;
            let (correlation_id, version) = (header.correlation_id, header.request_api_version);
            match step {
                Step::Forward => {
                    let Ok(permit) = permits.acquire().await else {
                        break; // the broker closed this connection
                    };
                    permit.forget();
                    if events.send(Event::Request { conn, request }).is_err() {
                        break;
                    }
                }
                Step::Respond(body) => match encode_frame(correlation_id, version, &body) {
                    Ok(frame) => auth.send(frame),
                    Err(e) => {
                        warn!(%peer, error = %e, "closing connection: cannot encode a SASL answer");
                        break;
                    }
                },
                Step::RespondAndClose(body, why) => {
                    warn!(%peer, listener, %why, "closing connection: SASL authentication failed");
                    // The core decided this exchange failed; the wait is the runtime's timer.
                    tokio::time::sleep(auth.failed_delay).await;
                    if let Ok(frame) = encode_frame(correlation_id, version, &body) {
                        auth.send(frame);
                        linger_until_the_client_closes(&mut read, peer).await;
                    }
                    break;
                }
                Step::Close(why) => {
                    warn!(%peer, listener, %why, "closing connection");
                    break;
                }
            }
        }
        if !was_authenticated {
            if let Some(principal) = auth.session.principal() {
                // Also after a re-authentication (KIP-368): the same principal, told again.
                info!(%peer, listener, principal, "SASL authentication succeeded");
                let principal = principal.to_string();
                if events
                    .send(Event::Authenticated { conn, principal })
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = events.send(Event::Closed { conn });
}

/// How long a connection whose SASL exchange failed stays open after its answer was queued,
/// waiting for the client to close it first.
pub const FAILED_AUTH_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// After a SASL failure's answer: wait (at most [`FAILED_AUTH_LINGER`]) for the client to
/// close, discarding whatever it sends, before the broker closes its side.
///
/// Why not close at once, as the answer is queued: the answer and the close (a FIN, after a
/// TLS close_notify) then reach the client within microseconds of each other, and a client
/// that reads until the socket would block sees both in one wake-up. kafka-python 3 does
/// exactly that and drops what it read when the same read loop meets the end of the stream:
/// it reported "socket disconnected" instead of SASL_AUTHENTICATION_FAILED, about one run in
/// a few. Every client closes a connection whose authentication failed once it has read the
/// error, so the broker's close normally finds the client's already there; one that does not
/// close is closed after the linger, which bounds what a failed client holds. The failed
/// authentication delay is unaffected: the answer still waits for it.
async fn linger_until_the_client_closes<R: AsyncRead + Unpin>(read: &mut R, peer: SocketAddr) {
    let mut sink = [0u8; 4096];
    let drained = tokio::time::timeout(FAILED_AUTH_LINGER, async {
        loop {
            match read.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    if drained.is_err() {
        debug!(%peer, "the client kept a failed connection open: closing it");
    }
}

/// Read one frame's `len` bytes into a buffer of its own, without zeroing it first: the
/// socket's bytes land in uninitialised capacity (`read_buf`), and whatever the 64 KiB reader
/// buffer already holds is copied once. Bytes the client sent are then the bytes the broker keeps
/// and, for a produce, the bytes written to the segment (`wire::decode_request` leaves a lone
/// record batch the only owner of this buffer, so the core can rewrite its base offset in place).
///
/// A frame gets its own allocation rather than a slice of one shared, reused arena because a
/// slice of a shared arena can never be written in place by the core: the arena's other slices
/// hold references to it. The allocation's cost is kept low by the allocator set-up in
/// `runtime::keep_freed_memory`: freed request buffers stay in the process, so the next request
/// reuses their pages rather than faulting in fresh, zero-filled ones from the kernel.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    read: &mut R,
    len: usize,
) -> std::io::Result<BytesMut> {
    let mut frame = BytesMut::with_capacity(len);
    let mut rest = read.take(len as u64);
    while frame.len() < len {
        if rest.read_buf(&mut frame).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    assert_eq!(frame.len(), len, "take() stops at the frame's end");
    Ok(frame)
}

/// A response frame as the chunks it is written in: the length prefix and the encoded header and
/// fields, with a fetch response's record sections between them as they were read from the
/// segment files (`Bytes` handles on the read buffers, not copies).
pub struct Frame {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Frame {
    /// A raw SASL token as a frame: its length and its bytes, no response header (the framing
    /// after a SaslHandshake v0).
    pub fn raw(token: &[u8]) -> Frame {
        let mut b = BytesMut::with_capacity(wire::FRAME_PREFIX_BYTES + token.len());
        b.put_u32(u32::try_from(token.len()).expect("a token is at most TOKEN_BYTES_MAX"));
        b.extend_from_slice(token);
        Frame {
            len: b.len(),
            chunks: vec![b.freeze()],
        }
    }

    /// The frame's length in bytes, length prefix included.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// Encode a response frame (`wire::encode_response_into`), keeping its record sections
/// (`wire::record_sections`) as references to the bytes read from the segments.
///
/// Before, a fetch response was encoded into one buffer that grew from 128 bytes by doubling:
/// every stored byte was copied into it at least once and, with the regrowth, up to twice more.
/// Now the stored bytes go from the read buffer to the socket; the writer's `BufWriter` passes
/// a chunk larger than its buffer straight to the socket.
pub fn encode_frame(
    correlation_id: i32,
    api_version: i16,
    body: &ResponseKind,
) -> anyhow::Result<Frame> {
    let sections = wire::record_sections(body);
    if sections.is_empty() {
        // Nothing stored to keep by reference (every response but a fetch with data): one
        // buffer, one allocation, as small responses such as a produce's acknowledgement need.
        let whole = wire::encode_response(correlation_id, api_version, body)?;
        return Ok(Frame {
            len: whole.len(),
            chunks: vec![whole],
        });
    }
    let mut b = FrameBuilder {
        sections: &sections,
        next: 0,
        done: Vec::with_capacity(1 + 2 * sections.len()),
        head: BytesMut::with_capacity(256),
        len: 0,
    };
    wire::encode_response_into(&mut b, correlation_id, api_version, body)?;
    b.flush();
    let len = u32::try_from(b.len)?;
    let mut chunks = Vec::with_capacity(1 + b.done.len());
    chunks.push(Bytes::copy_from_slice(&len.to_be_bytes()));
    chunks.extend(b.done);
    let frame = Frame {
        chunks,
        len: wire::FRAME_PREFIX_BYTES + len as usize,
    };
    assert_eq!(
        frame.len,
        frame.chunks.iter().map(|c| c.len()).sum::<usize>()
    );
    Ok(frame)
}

/// `kafka-protocol`'s encoders write into a `ByteBufMut`. This one gathers what they write in
/// `head`, except a slice that is the next expected record section (the same bytes at the same
/// address, as the encoder puts a `Bytes` field): that becomes a chunk of its own, a clone of
/// the section's handle.
struct FrameBuilder<'a> {
    sections: &'a [&'a Bytes],
    /// The next section to expect: sections are encoded in the order listed.
    next: usize,
    /// Finished chunks.
    done: Vec<Bytes>,
    /// Bytes written since the last finished chunk.
    head: BytesMut,
    /// Bytes in `done`.
    len: usize,
}

impl FrameBuilder<'_> {
    fn flush(&mut self) {
        if !self.head.is_empty() {
            let part = self.head.split().freeze();
            self.len += part.len();
            self.done.push(part);
        }
    }
}

// SAFETY: the three required methods forward to `head`, a `BytesMut`: the chunk `chunk_mut`
// hands out is `head`'s spare capacity, and `advance_mut` advances `head` by what was written
// into it, which is `BytesMut`'s own contract. `put_slice` only appends, safely.
#[allow(unsafe_code)]
unsafe impl BufMut for FrameBuilder<'_> {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the chunk `chunk_mut` returned, which
        // is `head`'s.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        let section = self
            .sections
            .get(self.next)
            .filter(|s| s.as_ptr() == src.as_ptr() && s.len() == src.len());
        match section {
            Some(section) => {
                self.next += 1;
                self.flush();
                self.len += section.len();
                self.done.push((*section).clone());
            }
            None => self.head.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for FrameBuilder<'_> {
    fn offset(&self) -> usize {
        self.len + self.head.len()
    }

    // `kafka-protocol` seeks and rewrites only to fill gaps it reserved (`put_gap`), which none
    // of its generated messages do; both work within the unfinished `head`.
    fn seek(&mut self, offset: usize) {
        assert!(offset >= self.len, "a seek back into a finished chunk");
        self.head.resize(offset - self.len, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        assert!(r.start >= self.len, "a range inside a finished chunk");
        &mut self.head[r.start - self.len..r.end - self.len]
    }
}

pub async fn write_loop<W: AsyncWrite + Unpin>(
    write: W,
    mut frames: mpsc::UnboundedReceiver<Frame>,
    backlog: Arc<Backlog>,
) {
    let mut write = BufWriter::with_capacity(64 * 1024, write);
    while let Some(frame) = frames.recv().await {
        if write_frame(&mut write, &frame).await.is_err() {
            return;
        }
        backlog.queued.fetch_sub(frame.len(), Ordering::SeqCst);
        // Coalesce whatever else is ready into the same flush.
        while let Ok(more) = frames.try_recv() {
            if write_frame(&mut write, &more).await.is_err() {
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

/// Write a frame's chunks: small ones gather in the `BufWriter`, one at least as large as its
/// buffer goes to the socket directly (after what is buffered).
async fn write_frame<W: AsyncWrite + Unpin>(
    write: &mut BufWriter<W>,
    frame: &Frame,
) -> std::io::Result<()> {
    for chunk in &frame.chunks {
        write.write_all(chunk).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn fetch_response(records: &[Bytes]) -> ResponseKind {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(Some(r.clone()))
            })
            .collect();
        ResponseKind::Fetch(FetchResponse::default().with_responses(
            vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)],
        ))
    }

    /// The chunked frame is byte for byte the frame `wire::encode_response` builds, at every
    /// Fetch version (old int32-length records and flexible varint-length ones), and its
    /// record sections are the stored buffers themselves, not copies.
    #[test]
    fn a_fetch_frame_is_the_encoded_frame_with_the_stored_bytes_in_place() {
        let records = [
            Bytes::from(vec![7u8; 100_000]),
            Bytes::new(),
            Bytes::from(vec![9u8; 33]),
        ];
        let body = fetch_response(&records);
        for version in [4i16, 11, 12, 13] {
            let whole = wire::encode_response(42, version, &body).unwrap();
            let frame = encode_frame(42, version, &body).unwrap();
            assert_eq!(frame.len(), whole.len());
            assert_eq!(frame.chunks.concat(), whole.to_vec(), "version {version}");
            for r in records.iter().filter(|r| !r.is_empty()) {
                assert!(
                    frame
                        .chunks
                        .iter()
                        .any(|c| c.as_ptr() == r.as_ptr() && c.len() == r.len()),
                    "version {version}: a record section was copied"
                );
            }
        }
    }

    /// Any other response is one chunk after the length prefix, equal to the whole frame.
    #[test]
    fn other_responses_encode_as_before() {
        let body = ResponseKind::ApiVersions(Default::default());
        let whole = wire::encode_response(7, 3, &body).unwrap();
        let frame = encode_frame(7, 3, &body).unwrap();
        assert_eq!(frame.chunks.concat(), whole.to_vec());
    }
}
