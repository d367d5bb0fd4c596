//! A state store: an in-memory ordered map of bytes to bytes, whose every change is also a
//! record for its changelog topic (Kafka Streams' logged `InMemoryKeyValueStore`).
//!
//! The changelog is compacted, so the latest record per key *is* the store: a task that starts
//! on another instance (after a crash or a rebalance) replays its partition of the changelog
//! into an empty map before it processes anything ([`Store::restore`]). A deleted key is a
//! tombstone (a record without a value), which compaction removes in time.
//!
//! A windowed store keys each aggregate by the window's start, then the record's key
//! ([`window_key`]): ordered by start, so the windows past retention are the first ones.

use crate::record::{Emit, EmitKind, Origin, Record, ORIGIN_HEADER};
use std::collections::BTreeMap;

pub struct Store {
    name: String,
    changelog: String,
    /// The task's partition: changelog records go to the same partition number.
    partition: i32,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Per upstream partition, the highest [`Origin`] (offset, index) applied to the store.
    applied: BTreeMap<(String, i32), (i64, u32)>,
}

/// The key of a window's aggregate: the start (8 bytes, big-endian, never negative so the
/// byte order is the numeric order) followed by the record's key.
pub fn window_key(start: i64, key: &[u8]) -> Vec<u8> {
    assert!(start >= 0, "windows start at or after the epoch");
    let mut k = start.to_be_bytes().to_vec();
    k.extend_from_slice(key);
    k
}

/// The window start and record key of a windowed store key; `None` if it is too short.
pub fn split_window_key(k: &[u8]) -> Option<(i64, &[u8])> {
    let (start, key) = k.split_at_checked(8)?;
    Some((i64::from_be_bytes(start.try_into().ok()?), key))
}

impl Store {
    pub fn new(name: &str, changelog: String, partition: i32) -> Store {
        assert!(partition >= 0, "a task's partition is not negative");
        Store {
            name: name.to_string(),
            changelog,
            partition,
            map: BTreeMap::new(),
            applied: BTreeMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn changelog(&self) -> &str {
        &self.changelog
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Whether the record from `origin` was applied already (see [`Origin`]).
    pub fn applied(&self, origin: &Origin) -> bool {
        self.applied
            .get(&origin.stream())
            .is_some_and(|&high| (origin.offset, origin.index) <= high)
    }

    fn note(&mut self, origin: Option<&Origin>) {
        if let Some(o) = origin {
            let high = self
                .applied
                .entry(o.stream())
                .or_insert((o.offset, o.index));
            *high = (*high).max((o.offset, o.index));
        }
    }

    /// Set `key` to `value` because of the record from `origin`, and emit the changelog
    /// record that says so.
    pub fn put(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        ts: i64,
        origin: Option<&Origin>,
        out: &mut Vec<Emit>,
    ) {
        self.note(origin);
        out.push(self.changelog_record(key, Some(value.clone()), ts, origin));
        self.map.insert(key.to_vec(), value);
    }

    /// Remove `key` and emit its tombstone.
    pub fn delete(&mut self, key: &[u8], ts: i64, origin: Option<&Origin>, out: &mut Vec<Emit>) {
        self.note(origin);
        if self.map.remove(key).is_some() {
            out.push(self.changelog_record(key, None, ts, origin));
        }
    }

    /// Remove the first entries while `expired(key)` holds (a windowed store's old windows),
    /// with their tombstones.
    pub fn expire_front(
        &mut self,
        expired: impl Fn(&[u8]) -> bool,
        ts: i64,
        origin: Option<&Origin>,
        out: &mut Vec<Emit>,
    ) {
        while let Some((k, _)) = self.map.first_key_value() {
            if !expired(k) {
                break;
            }
            let k = k.clone();
            self.delete(&k, ts, origin, out);
        }
    }

    /// Apply one changelog record read back: the latest value of a key, or its tombstone, and
    /// the origin it carries.
    pub fn restore(&mut self, key: &[u8], value: Option<&[u8]>, origin: Option<&Origin>) {
        self.note(origin);
        match value {
            Some(v) => self.map.insert(key.to_vec(), v.to_vec()),
            None => self.map.remove(key),
        };
    }

    fn changelog_record(
        &self,
        key: &[u8],
        value: Option<Vec<u8>>,
        ts: i64,
        origin: Option<&Origin>,
    ) -> Emit {
        Emit {
            topic: self.changelog.clone(),
            partition: Some(self.partition),
            record: Record {
                key: Some(key.to_vec()),
                value,
                timestamp_ms: ts,
                headers: origin
                    .map(|o| (ORIGIN_HEADER.to_string(), Some(o.encode())))
                    .into_iter()
                    .collect(),
            },
            kind: EmitKind::Changelog,
        }
    }
}
