//! Idempotence: with the idempotent producer (KIP-98), a value appears in the log at most once
//! (`duplicate`), however often it was retried, and its records sit in each partition in the
//! order it sent them (`idempotent-reorder`), even with five batches in flight and retries after
//! resets: the broker refuses a batch whose sequence does not follow (OUT_OF_ORDER_SEQUENCE_NUMBER)
//! rather than append it out of order. A plain producer's retry may duplicate, and with several
//! requests in flight reorder.

use super::{Cuts, Facts, Kind};
use crate::history::{Part, Value};
use std::collections::BTreeMap;

pub(super) fn check(f: &Facts, cuts: &Cuts, bad: &mut dyn FnMut(Kind, String)) {
    // idempotent-reorder: in the final log, an idempotent producer's values in one partition
    // grow with the offset (a producer makes its values in increasing order).
    let mut last: BTreeMap<(usize, Part), (i64, Value)> = BTreeMap::new();
    for (part, log) in &f.fin {
        for (&o, &v) in log {
            let Some(&(producer, true)) = f.producer_of.get(&v) else {
                continue;
            };
            if let Some(&(po, pv)) = last.get(&(producer, *part)) {
                if v < pv && !cuts.any() {
                    bad(
                        Kind::IdempotentReorder,
                        format!("idempotent producer {producer}: value {v} at {part}/{o} after its later value {pv} at {part}/{po}"),
                    );
                }
            }
            last.insert((producer, *part), (o, v));
        }
    }

    for (v, places) in &f.fin_by_value {
        if places.len() > 1 {
            let (idempotent, retried) = f.sent.get(v).copied().unwrap_or((false, false));
            if idempotent || !retried {
                bad(
                    Kind::Duplicate,
                    format!(
                        "value {v} appears {} times in the log: {places:?}",
                        places.len()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{clean, fin, kinds};
    use super::super::Kind;

    #[test]
    fn duplicate_fires() {
        let mut h = clean();
        fin(&mut h).push((3, 3));
        assert!(kinds(&h).contains(&Kind::Duplicate));
    }

    #[test]
    fn idempotent_reorder_fires() {
        let mut h = clean();
        // The broker appended the producer's second batch before its first.
        *fin(&mut h) = vec![(0, 3), (1, 1), (2, 2)];
        assert!(kinds(&h).contains(&Kind::IdempotentReorder));
        // A plain producer may reorder with several requests in flight.
        for e in &mut h.events {
            if let crate::history::Event::Send { idempotent, .. } = e {
                *idempotent = false;
            }
        }
        assert!(!kinds(&h).contains(&Kind::IdempotentReorder));
    }
}
