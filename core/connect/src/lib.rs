//! # gregor-connect: Kafka Connect's decisions, sans-IO
//!
//! Kafka Connect moves data between Kafka and other systems with *connectors*: a source reads
//! something outside (a file, a syslog socket) and produces records; a sink consumes records and
//! writes them somewhere. A *worker* runs them, converts data to bytes with *converters*, stores
//! how far each source got (its *source offsets*) in a compacted topic, and handles bad records
//! by `errors.tolerance`. `gregor connect` is such a worker, standalone (docs/connect.md).
//!
//! This crate holds what the worker decides, with no IO — no files, sockets, threads or clocks —
//! as the rest of gregor's core: it is handed the bytes read, the file metadata observed, the
//! acknowledgements and the time, and says what to read, what to produce and which offsets to
//! store. `gregor-net` (`net/src/connect/`) does the IO; a simulator can drive the same code.
//!
//! ## A tour, in reading order
//! 1. [`config`] — `connect.toml`, with Kafka's setting names.
//! 2. [`lines`] — bytes to lines, with a length limit.
//! 3. [`tail`] — following a file as `tail -F`: appends, rotation, truncation.
//! 4. [`offsets`] — which source offset is safe to store, and its JSON key and value.
//! 5. [`errors`] — `errors.tolerance`: fail, or skip and log, with a dead-letter topic.
//! 6. [`convert`] — the converters: bytes, string, json.
//! 7. [`syslog`] — RFC 5424 and RFC 3164 messages, and RFC 6587 TCP framing.
//! 8. [`source`] — the file source task, tying 2–6 together.

pub mod config;
pub mod convert;
pub mod errors;
pub mod lines;
pub mod offsets;
pub mod source;
pub mod syslog;
pub mod tail;
