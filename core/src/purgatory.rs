//! The purgatory: requests parked until what they wait for happens, or their deadline passes.
//!
//! Kafka parks a produce with `acks=all` as a `DelayedProduce` and a long-polling fetch as a
//! `DelayedFetch` in a `DelayedOperationPurgatory`, *watched* under the keys of the partitions
//! they wait on, with their timeout in a timing wheel. When a partition's high watermark moves,
//! only the operations watching that partition are tried again (`checkAndComplete(key)`), and a
//! timeout fires only the operation it belongs to. gregor does the same with ordered maps:
//!
//! - a waiter is an id (the broker keeps the request itself) watched under one or more keys;
//! - [`Purgatory::candidates`] returns the waiters that may be ready: those watching a key
//!   that moved in this step, those past their deadline, and those parked in this step (what
//!   they wait for may have happened already), in the order they were parked;
//! - deadlines live in a [`TimerTable`], so the next deadline is a lookup.
//!
//! The work per step is the number of waiters on the keys that moved, not the number parked.
//!
//! Safety properties, asserted in [`Purgatory::invariants`]: every waiter is watched under each
//! of its keys and under no other, has exactly one deadline, and the purgatory holds at most
//! its limit (the caller refuses a request beyond it with an error code, before parking it).

use crate::time::{Instant, TimerTable};
use std::collections::{BTreeMap, BTreeSet};

/// Parked waiters, keyed by what they wait for.
#[derive(Debug)]
pub struct Purgatory<K: Ord + Clone> {
    max: usize,
    /// Each waiter's keys.
    keys: BTreeMap<u64, Vec<K>>,
    /// Each key's waiters.
    watchers: BTreeMap<K, BTreeSet<u64>>,
    deadlines: TimerTable<u64>,
    /// Waiters parked since the last [`Purgatory::candidates`].
    fresh: BTreeSet<u64>,
}

impl<K: Ord + Clone> Purgatory<K> {
    pub fn new(max: usize) -> Self {
        assert!(max > 0);
        Purgatory {
            max,
            keys: BTreeMap::new(),
            watchers: BTreeMap::new(),
            deadlines: TimerTable::default(),
            fresh: BTreeSet::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.keys.len() >= self.max
    }
    pub fn contains(&self, id: u64) -> bool {
        self.keys.contains_key(&id)
    }

    /// Park waiter `id` under `keys` until `deadline`. Precondition: not full, not parked.
    pub fn watch(&mut self, id: u64, keys: Vec<K>, deadline: Instant) {
        assert!(!self.is_full(), "purgatory over its limit");
        assert!(!self.keys.contains_key(&id), "waiter {id} parked twice");
        let mut keys = keys;
        keys.sort();
        keys.dedup();
        for k in &keys {
            assert!(self.watchers.entry(k.clone()).or_default().insert(id));
        }
        self.keys.insert(id, keys);
        self.deadlines.set(id, deadline);
        self.fresh.insert(id);
    }

    /// Take waiter `id` out (completed, or its request gone). A waiter not parked is ignored.
    pub fn unwatch(&mut self, id: u64) {
        let Some(keys) = self.keys.remove(&id) else {
            return;
        };
        for k in keys {
            let ids = self.watchers.get_mut(&k).expect("watched under its keys");
            assert!(ids.remove(&id));
            if ids.is_empty() {
                self.watchers.remove(&k);
            }
        }
        self.deadlines.stop(&id);
        self.fresh.remove(&id);
        assert!(self.deadlines.get(&id).is_none());
    }

    /// Make every waiter on `key` a candidate at the next [`Purgatory::candidates`] (for an
    /// event that does not move the key's ends, such as a topic deleted).
    pub fn touch(&mut self, key: &K) {
        if let Some(ids) = self.watchers.get(key) {
            self.fresh.extend(ids.iter().copied());
        }
    }

    /// The waiters that may be ready now, in the order they were parked (ids grow).
    pub fn candidates<'a>(
        &mut self,
        moved: impl IntoIterator<Item = &'a K>,
        now: Instant,
    ) -> BTreeSet<u64>
    where
        K: 'a,
    {
        let mut ids = std::mem::take(&mut self.fresh);
        for k in moved {
            if let Some(w) = self.watchers.get(k) {
                ids.extend(w.iter().copied());
            }
        }
        ids.extend(self.deadlines.expired(now).copied());
        assert!(ids.iter().all(|id| self.keys.contains_key(id)));
        ids
    }

    /// The earliest deadline of any parked waiter.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    pub fn invariants(&self) {
        assert!(self.keys.len() <= self.max, "purgatory over its limit");
        self.deadlines.invariants();
        assert_eq!(
            self.deadlines.len(),
            self.keys.len(),
            "one deadline per waiter"
        );
        let watched: usize = self.watchers.values().map(|w| w.len()).sum();
        let keyed: usize = self.keys.values().map(|k| k.len()).sum();
        assert_eq!(watched, keyed, "each waiter watched under exactly its keys");
        for (k, ids) in &self.watchers {
            assert!(!ids.is_empty());
            for id in ids {
                assert!(self.keys[id].binary_search(k).is_ok());
            }
        }
        assert!(self.fresh.iter().all(|id| self.keys.contains_key(id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_waiters_on_moved_keys_or_past_deadline_are_candidates() {
        let mut p: Purgatory<&str> = Purgatory::new(10);
        p.watch(1, vec!["a"], Instant(100));
        p.watch(2, vec!["b", "a"], Instant(50));
        p.watch(3, vec!["c"], Instant(200));
        assert_eq!(p.candidates([], Instant(0)).len(), 3, "fresh ones first");
        assert!(p.candidates([], Instant(0)).is_empty());
        assert_eq!(p.candidates([&"b"], Instant(0)), BTreeSet::from([2]));
        assert_eq!(p.candidates([], Instant(100)), BTreeSet::from([1, 2]));
        assert_eq!(p.next_deadline(), Some(Instant(50)));
        p.unwatch(2);
        p.invariants();
        assert_eq!(p.next_deadline(), Some(Instant(100)));
        assert_eq!(p.candidates([&"a"], Instant(0)), BTreeSet::from([1]));
        p.touch(&"c");
        assert_eq!(p.candidates([], Instant(0)), BTreeSet::from([3]));
    }
}
