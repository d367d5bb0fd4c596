//! The purgatory: requests parked until what they wait for happens, or their deadline passes.
//!
//! Kafka parks a produce with `acks=all` as a `DelayedProduce` and a long-polling fetch as a
//! `DelayedFetch` in a `DelayedOperationPurgatory`, *watched* under the keys of the partitions
//! they wait on, with their timeout in a hierarchical timing wheel. When a partition's high
//! watermark moves, only the operations watching that partition are tried again
//! (`checkAndComplete(key)`), and a timeout fires only the operation it belongs to.
//!
//! gregor goes one step further, because what a waiter waits for is a *level*: a produce waits
//! until its partition's acknowledged end reaches the end of its batch, a fetch until the high
//! watermark passes its fetch offset. So each key keeps its waiters ordered by the level they
//! need, and when a key reaches level `L` exactly the waiters needing at most `L` come out, a
//! prefix of that order:
//!
//! - a waiter is an id (the broker keeps the request itself) watched under one or more keys,
//!   each with the level it needs there;
//! - [`Purgatory::candidates`] returns the waiters that may be ready: on each key that moved,
//!   those whose need the key's new level meets; those past their deadline; those parked (or
//!   [touched](Purgatory::touch)) since the last call, because what they wait for may have
//!   happened already or may never happen now; in the order they were parked (ids grow);
//! - deadlines live in a [`TimerTable`] ordered by `(deadline, id)`, so the next deadline is a
//!   lookup and the expired ones are a prefix.
//!
//! The work per step is O(log n) per moved key plus the waiters released: a produce queue a
//! thousand deep costs what a queue of one does. (Stop 18 measured the old shape, which tried
//! every waiter of a moved key on every step: 27% of the broker's CPU with one-record batches.)
//!
//! Safety properties, asserted in [`Purgatory::invariants`]: every waiter is watched under each
//! of its keys at the level it needs there and under no other, has exactly one deadline, and
//! the purgatory holds at most its limit (the caller refuses a request beyond it with an error
//! code, before parking it).

use crate::time::{Instant, TimerTable};
use std::collections::{BTreeMap, BTreeSet};

/// A level no key reaches in the normal course: passing it as a key's level makes every waiter
/// on the key a candidate (for events that end waits without raising the level, such as a
/// partition going offline).
pub const EVERY_WAITER: i64 = i64::MAX;

/// Parked waiters, keyed by what they wait for and ordered by the level they need.
#[derive(Debug)]
pub struct Purgatory<K: Ord + Clone> {
    max: usize,
    /// Each waiter's keys, each with the level it needs there (sorted by key, one per key).
    keys: BTreeMap<u64, Vec<(K, i64)>>,
    /// Each key's waiters, ordered by the level they need, then by id.
    watchers: BTreeMap<K, BTreeSet<(i64, u64)>>,
    deadlines: TimerTable<u64>,
    /// Waiters parked or touched since the last [`Purgatory::candidates`].
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

    /// Park waiter `id` until `deadline`, under each key with the level it needs there (a key
    /// named twice keeps the lower need: the waiter is looked at once the first is met).
    /// Precondition: not full, not parked.
    pub fn watch(&mut self, id: u64, keys: Vec<(K, i64)>, deadline: Instant) {
        assert!(!self.is_full(), "purgatory over its limit");
        assert!(!self.keys.contains_key(&id), "waiter {id} parked twice");
        self.index(id, keys);
        self.deadlines.set(id, deadline);
        self.fresh.insert(id);
        assert_eq!(
            self.deadlines.len(),
            self.keys.len(),
            "one deadline per waiter"
        );
    }

    /// Replace the keys of parked waiter `id` (a produce over several partitions, some of them
    /// settled), keeping its deadline. It does not become a candidate by this.
    pub fn rewatch(&mut self, id: u64, keys: Vec<(K, i64)>) {
        let old = self.keys.remove(&id).expect("rewatch of a parked waiter");
        self.drop_index(id, old);
        self.index(id, keys);
        assert!(
            self.deadlines.get(&id).is_some(),
            "a parked waiter keeps its deadline"
        );
    }

    fn index(&mut self, id: u64, mut keys: Vec<(K, i64)>) {
        // Sorted by key then need: dedup keeps each key's first, its lowest need.
        keys.sort();
        keys.dedup_by(|later, first| later.0 == first.0);
        for (k, need) in &keys {
            let fresh_entry = self
                .watchers
                .entry(k.clone())
                .or_default()
                .insert((*need, id));
            assert!(fresh_entry, "waiter {id} watched twice under one key");
        }
        assert!(self.keys.insert(id, keys).is_none());
    }

    fn drop_index(&mut self, id: u64, keys: Vec<(K, i64)>) {
        for (k, need) in keys {
            let ids = self.watchers.get_mut(&k).expect("watched under its keys");
            assert!(ids.remove(&(need, id)), "watched at the level it needs");
            if ids.is_empty() {
                self.watchers.remove(&k);
            }
        }
    }

    /// Take waiter `id` out (completed, or its request gone). A waiter not parked is ignored.
    pub fn unwatch(&mut self, id: u64) {
        let Some(keys) = self.keys.remove(&id) else {
            return;
        };
        self.drop_index(id, keys);
        self.deadlines.stop(&id);
        self.fresh.remove(&id);
        assert!(self.deadlines.get(&id).is_none());
    }

    /// Make every waiter on `key` a candidate at the next [`Purgatory::candidates`] (for an
    /// event that ends waits without raising the key's level, such as a topic deleted).
    pub fn touch(&mut self, key: &K) {
        if let Some(ids) = self.watchers.get(key) {
            self.fresh.extend(ids.iter().map(|(_, id)| *id));
        }
    }

    /// The highest level any waiter on `key` needs (`None` if none waits on it). A key whose
    /// level can fall (a log cut back after a failed write) uses it to tell whether the fall
    /// reached below a waiter, who must then be told.
    pub fn highest_need(&self, key: &K) -> Option<i64> {
        self.watchers.get(key)?.last().map(|(need, _)| *need)
    }

    /// The lowest level any waiter on `key` needs.
    pub fn lowest_need(&self, key: &K) -> Option<i64> {
        self.watchers.get(key)?.first().map(|(need, _)| *need)
    }

    /// The waiters that may be ready now, in the order they were parked (ids grow): on each
    /// `(key, level)` given, the waiters needing at most `level` there; every waiter past its
    /// deadline; every waiter parked or touched since the last call.
    pub fn candidates<'a>(
        &mut self,
        levels: impl IntoIterator<Item = (&'a K, i64)>,
        now: Instant,
    ) -> BTreeSet<u64>
    where
        K: 'a,
    {
        let mut ids = std::mem::take(&mut self.fresh);
        for (k, level) in levels {
            if let Some(w) = self.watchers.get(k) {
                // The satisfied prefix, and nothing past it: O(log n + released).
                for (need, id) in w.range(..=(level, u64::MAX)) {
                    assert!(*need <= level);
                    ids.insert(*id);
                }
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

    /// What can be checked in O(1) after every step: the limit, and one deadline per waiter.
    pub fn check_counts(&self) {
        assert!(self.keys.len() <= self.max, "purgatory over its limit");
        assert_eq!(
            self.deadlines.len(),
            self.keys.len(),
            "one deadline per waiter"
        );
        assert!(self.fresh.len() <= self.keys.len());
    }

    /// Every structural invariant, in O(n log n): for periodic full checks and tests.
    pub fn invariants(&self) {
        self.check_counts();
        self.deadlines.invariants();
        let watched: usize = self.watchers.values().map(|w| w.len()).sum();
        let keyed: usize = self.keys.values().map(|k| k.len()).sum();
        assert_eq!(watched, keyed, "each waiter watched under exactly its keys");
        for (k, ids) in &self.watchers {
            assert!(!ids.is_empty(), "no key is kept without waiters");
            for (need, id) in ids {
                let keys = &self.keys[id];
                let at = keys
                    .binary_search_by(|(key, _)| key.cmp(k))
                    .expect("a waiter is watched only under its own keys");
                assert_eq!(keys[at].1, *need, "watched at the level it needs");
            }
        }
        for (id, keys) in &self.keys {
            assert!(
                self.deadlines.get(id).is_some(),
                "waiter {id} has a deadline"
            );
            assert!(
                keys.windows(2).all(|w| w[0].0 < w[1].0),
                "one entry per key"
            );
        }
        assert!(self.fresh.iter().all(|id| self.keys.contains_key(id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prng::Prng;

    #[test]
    fn only_satisfied_waiters_on_moved_keys_or_past_deadline_are_candidates() {
        let mut p: Purgatory<&str> = Purgatory::new(10);
        p.watch(1, vec![("a", 5)], Instant(100));
        p.watch(2, vec![("b", 3), ("a", 7)], Instant(50));
        p.watch(3, vec![("c", 1)], Instant(200));
        assert_eq!(p.candidates([], Instant(0)).len(), 3, "fresh ones first");
        assert!(p.candidates([], Instant(0)).is_empty());
        assert!(
            p.candidates([(&"b", 2)], Instant(0)).is_empty(),
            "b below 3"
        );
        assert_eq!(p.candidates([(&"b", 3)], Instant(0)), BTreeSet::from([2]));
        assert_eq!(p.candidates([(&"a", 6)], Instant(0)), BTreeSet::from([1]));
        assert_eq!(p.candidates([], Instant(100)), BTreeSet::from([1, 2]));
        assert_eq!(p.next_deadline(), Some(Instant(50)));
        p.unwatch(2);
        p.invariants();
        assert_eq!(p.next_deadline(), Some(Instant(100)));
        assert_eq!(p.candidates([(&"a", 100)], Instant(0)), BTreeSet::from([1]));
        p.touch(&"c");
        assert_eq!(p.candidates([], Instant(0)), BTreeSet::from([3]));
        assert_eq!(
            p.candidates([(&"c", EVERY_WAITER)], Instant(0)),
            BTreeSet::from([3])
        );
        assert_eq!(p.highest_need(&"a"), Some(5));
        assert_eq!(p.highest_need(&"b"), None);
    }

    #[test]
    fn rewatch_drops_settled_keys_without_waking_the_waiter() {
        let mut p: Purgatory<&str> = Purgatory::new(10);
        p.watch(1, vec![("a", 5), ("b", 9), ("a", 8)], Instant(100));
        p.invariants();
        assert_eq!(
            p.lowest_need(&"a"),
            Some(5),
            "a key named twice keeps its lower need"
        );
        assert_eq!(p.candidates([], Instant(0)), BTreeSet::from([1]));
        assert_eq!(p.candidates([(&"a", 5)], Instant(0)), BTreeSet::from([1]));
        p.rewatch(1, vec![("b", 9)]);
        p.invariants();
        assert!(p.candidates([(&"a", 50)], Instant(0)).is_empty());
        assert_eq!(p.candidates([(&"b", 9)], Instant(0)), BTreeSet::from([1]));
        assert_eq!(
            p.next_deadline(),
            Some(Instant(100)),
            "the deadline is kept"
        );
    }

    /// A model check: random parks, level rises and time, against a plain list of waiters.
    /// Every waiter comes out exactly when its need is met or its deadline passes (none early,
    /// none lost).
    #[test]
    fn candidates_match_a_scan_of_every_waiter() {
        let mut rng = Prng::new(7);
        for _round in 0..50 {
            let mut p: Purgatory<u8> = Purgatory::new(64);
            // The model: id -> (key, need, deadline).
            let mut model: BTreeMap<u64, (u8, i64, u64)> = BTreeMap::new();
            let mut level = [0i64; 3];
            let mut now = 0u64;
            let mut next_id = 0;
            for _ in 0..400 {
                match rng.below(4) {
                    0 | 1 if !p.is_full() => {
                        let key = rng.below(3) as u8;
                        let need = level[key as usize] + 1 + rng.below(20) as i64;
                        let deadline = now + 1 + rng.below(500);
                        p.watch(next_id, vec![(key, need)], Instant(deadline));
                        assert_eq!(
                            p.candidates([], Instant(now)),
                            BTreeSet::from([next_id]),
                            "a new waiter is looked at once"
                        );
                        model.insert(next_id, (key, need, deadline));
                        next_id += 1;
                    }
                    2 => {
                        let key = rng.below(3) as u8;
                        level[key as usize] += rng.below(8) as i64;
                        let got = p.candidates([(&key, level[key as usize])], Instant(now));
                        let want: BTreeSet<u64> = model
                            .iter()
                            .filter(|(_, (k, need, d))| {
                                (*k == key && *need <= level[key as usize]) || *d <= now
                            })
                            .map(|(id, _)| *id)
                            .collect();
                        assert_eq!(got, want);
                        for id in got {
                            p.unwatch(id);
                            model.remove(&id);
                        }
                    }
                    _ => {
                        now += rng.below(100);
                        let got = p.candidates([], Instant(now));
                        let want: BTreeSet<u64> = model
                            .iter()
                            .filter(|(_, (_, _, d))| *d <= now)
                            .map(|(id, _)| *id)
                            .collect();
                        assert_eq!(got, want, "timeouts exact: at their deadline, not before");
                        for id in got {
                            p.unwatch(id);
                            model.remove(&id);
                        }
                    }
                }
                p.invariants();
                assert_eq!(p.len(), model.len(), "none lost");
                let next = model.values().map(|(_, _, d)| Instant(*d)).min();
                assert_eq!(p.next_deadline(), next);
            }
        }
    }
}
