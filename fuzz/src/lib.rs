//! Shared harness for the fuzz targets: a broker on the simulator's in-memory disk, driven
//! synchronously (every storage operation completes at once, in order).

/// The broker binary's allocator (see there), so the fuzzers test what production runs.
#[path = "../../net/src/alloc.rs"]
pub mod alloc;

use bytes::Bytes;
use gregor_core::io::{ConnId, Input, Output, Request};
use gregor_core::kafka_protocol::messages::ResponseKind;
use gregor_core::prng::Prng;
use gregor_core::wire;
use gregor_core::{Broker, Config, Instant};
use gregor_sim::disk::SimDisk;

pub struct Harness {
    pub broker: Broker,
    pub disk: SimDisk,
    pub now: Instant,
    prng: Prng,
    /// Every response, encoded as it would go on the wire.
    pub responses: Vec<(ConnId, i32, ResponseKind)>,
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        Self::with_disk(config, SimDisk::default())
    }

    pub fn with_disk(config: Config, disk: SimDisk) -> Harness {
        let now = Instant::from_unix_ms(1_700_000_000_000);
        let broker = Broker::new(config, disk.recovered(), now).expect("valid config");
        let mut h = Harness {
            broker,
            disk,
            now,
            prng: Prng::new(1),
            responses: Vec::new(),
        };
        h.drain();
        h
    }

    /// Carry out every output until the broker is quiet. Every response must encode at the
    /// version the client asked for: a broker that cannot answer what it accepted has a bug.
    pub fn drain(&mut self) {
        while let Some(out) = self.broker.poll_output() {
            match out {
                Output::Response {
                    conn,
                    correlation_id,
                    api_version,
                    body,
                } => {
                    if let Err(e) = wire::encode_response(correlation_id, api_version, &body) {
                        panic!("response does not encode at v{api_version}: {e}: {body:?}");
                    }
                    self.responses.push((conn, correlation_id, body));
                }
                Output::Storage { op, request } => {
                    let result = self.disk.exec(&request, &mut self.prng);
                    self.broker.handle(Input::StorageDone {
                        now: self.now,
                        op,
                        result,
                    });
                }
                Output::Close { .. } | Output::Log { .. } => {}
            }
        }
    }

    pub fn request(&mut self, conn: u64, request: Request) {
        self.broker.handle(Input::Request {
            now: self.now,
            conn: ConnId(conn),
            request,
        });
        self.drain();
    }

    /// Feed a byte stream as one connection would: length-prefixed frames, each decoded by the
    /// wire layer and handed to the broker when it decodes.
    pub fn feed_stream(&mut self, conn: u64, mut data: &[u8]) {
        while data.len() >= 4 {
            let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            data = &data[4..];
            if len > data.len() {
                break;
            }
            let frame = Bytes::copy_from_slice(&data[..len]);
            data = &data[len..];
            match wire::decode_request(frame) {
                Ok(req) => self.request(conn, req),
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.now = self.now + gregor_core::Duration::from_ms(ms);
        self.broker.handle(Input::Tick { now: self.now });
        self.drain();
    }
}
