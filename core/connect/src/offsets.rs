//! Source offsets: which position is safe to store, and how it is stored.
//!
//! A source record carries the source offset *after* it (a line's end). Records are acknowledged
//! out of order (several partitions, retries), so the offset that may be stored is the one of
//! the last record such that it and every record before it are acknowledged — storing a later
//! one would skip an unacknowledged record after a crash. Kafka's `OffsetStorageWriter` and
//! `SubmittedRecords` (KIP-618) do the same.
//!
//! The offsets live in a compacted topic (`offset.storage.topic`, `connect-offsets`), keyed as
//! Kafka's workers key them: the JSON array `["<connector>", {<source partition>}]`, the value
//! a JSON object; compaction keeps the latest value of every key.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The sequence number of one record the source handed on.
pub type Seq = u64;

/// Records handed on, in order, with the offset after each, until they are acknowledged.
#[derive(Clone, Debug)]
pub struct Pending<O> {
    next: Seq,
    waiting: BTreeMap<Seq, (O, bool)>,
    /// The offset after the last record of the acknowledged prefix, not yet stored.
    ready: Option<O>,
}

impl<O> Default for Pending<O> {
    fn default() -> Self {
        Pending {
            next: 0,
            waiting: BTreeMap::new(),
            ready: None,
        }
    }
}

impl<O: Clone> Pending<O> {
    /// A record with the source offset `after` it was handed on (or skipped: then call
    /// [`Pending::done`] at once).
    pub fn track(&mut self, after: O) -> Seq {
        let seq = self.next;
        self.next += 1;
        self.waiting.insert(seq, (after, false));
        seq
    }

    /// Record `seq` is acknowledged (or handled for good).
    pub fn done(&mut self, seq: Seq) {
        let e = self.waiting.get_mut(&seq);
        assert!(e.is_some(), "record {seq} acknowledged twice or never sent");
        if let Some(e) = e {
            e.1 = true;
        }
        while let Some(e) = self.waiting.first_entry() {
            if !e.get().1 {
                break;
            }
            self.ready = Some(e.remove().0);
        }
    }

    /// Records not acknowledged yet.
    pub fn unacknowledged(&self) -> usize {
        self.waiting.len()
    }

    /// The offset to store now, if the acknowledged prefix moved since the last call.
    pub fn take_ready(&mut self) -> Option<O> {
        self.ready.take()
    }
}

/// The key of a source partition's offset: `["<connector>", <partition>]`.
pub fn offset_key(connector: &str, partition: &Value) -> Vec<u8> {
    assert!(partition.is_object(), "a source partition is a JSON object");
    serde_json::to_vec(&json!([connector, partition])).expect("JSON values serialize")
}

/// The connector and source partition of an offset key, or `None` if it is not one.
pub fn parse_offset_key(key: &[u8]) -> Option<(String, Value)> {
    match serde_json::from_slice::<Value>(key).ok()? {
        Value::Array(mut a) if a.len() == 2 => {
            let partition = a.pop()?;
            let name = a.pop()?.as_str()?.to_string();
            partition.is_object().then_some((name, partition))
        }
        _ => None,
    }
}

/// The file source's partition: the file's path, as Kafka's `FileStreamSourceTask` names it.
pub fn file_partition(path: &str) -> Value {
    json!({ "filename": path })
}

/// The file source's offset: the byte position (Kafka's name) and the file's inode (gregor's
/// addition, to tell a rotated file from the one the position is in).
pub fn file_offset(position: u64, inode: Option<u64>) -> Vec<u8> {
    let v = match inode {
        Some(i) => json!({ "position": position, "inode": i }),
        None => json!({ "position": position }),
    };
    serde_json::to_vec(&v).expect("JSON values serialize")
}

/// Read a file offset back: (position, inode). `None` for a value that is not one.
pub fn parse_file_offset(value: &[u8]) -> Option<(u64, Option<u64>)> {
    let v: Value = serde_json::from_slice(value).ok()?;
    let position = v.get("position")?.as_u64()?;
    Some((position, v.get("inode").and_then(Value::as_u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_acknowledged_prefix_is_ready() {
        let mut p = Pending::default();
        let a = p.track(10);
        let b = p.track(20);
        let c = p.track(30);
        p.done(b);
        assert_eq!(p.take_ready(), None, "record a is not acknowledged");
        p.done(a);
        assert_eq!(p.take_ready(), Some(20));
        assert_eq!(p.take_ready(), None);
        assert_eq!(p.unacknowledged(), 1);
        p.done(c);
        assert_eq!(p.take_ready(), Some(30));
    }

    #[test]
    fn keys_and_values_are_kafkas_json_and_read_back() {
        let k = offset_key("local-file-source", &file_partition("/tmp/in.txt"));
        assert_eq!(
            String::from_utf8(k.clone()).unwrap(),
            r#"["local-file-source",{"filename":"/tmp/in.txt"}]"#
        );
        let (name, part) = parse_offset_key(&k).unwrap();
        assert_eq!(name, "local-file-source");
        assert_eq!(part, file_partition("/tmp/in.txt"));
        assert_eq!(
            parse_file_offset(&file_offset(42, Some(7))),
            Some((42, Some(7)))
        );
        // Kafka's own FileStreamSource offsets have no inode.
        assert_eq!(parse_file_offset(br#"{"position":5}"#), Some((5, None)));
        assert_eq!(parse_offset_key(b"garbage"), None);
        assert_eq!(parse_file_offset(b"{}"), None);
    }
}
