//! Fetch limits: a response to a fetch over several partitions carries at most the request's
//! top-level `max_bytes` of records (a consumer's `fetch.max.bytes`), except that the first
//! batch is returned whole even when it alone is larger, so a consumer always makes progress
//! (`fetch-over-limit`). Reference: KIP-74.
//!
//! A client that trusts the limit sizes its receive buffer by it: librdkafka fails a response
//! larger than `receive.message.max.bytes` with "Invalid response size".

use super::Kind;
use crate::history::{Event, History};

pub(super) fn check(h: &History, bad: &mut dyn FnMut(Kind, String)) {
    for e in &h.events {
        let Event::FetchBytes {
            t,
            reader,
            max_bytes,
            total,
            first_batch,
        } = e
        else {
            continue;
        };
        let allowed = (*max_bytes).max(0) as u64;
        if *total > allowed.max(*first_batch) {
            bad(
                Kind::FetchOverLimit,
                format!("consumer {reader} asked for at most {max_bytes} bytes (t={t}) and got {total} (first batch {first_batch})"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{clean, kinds};
    use super::super::Kind;
    use crate::history::Event;
    use std::collections::BTreeSet;

    fn fetched(max_bytes: i32, total: u64, first_batch: u64) -> Event {
        Event::FetchBytes {
            t: 30,
            reader: 10,
            max_bytes,
            total,
            first_batch,
        }
    }

    #[test]
    fn fetch_over_limit_fires() {
        let mut h = clean();
        h.events.push(fetched(500, 900, 120));
        assert_eq!(kinds(&h), BTreeSet::from([Kind::FetchOverLimit]));
        // A first batch larger than the limit may come alone, whole; nothing may follow it.
        let mut h = clean();
        h.events.push(fetched(100, 300, 300));
        h.events.push(fetched(500, 500, 80));
        assert_eq!(kinds(&h), BTreeSet::new());
        h.events.push(fetched(100, 380, 300));
        assert_eq!(kinds(&h), BTreeSet::from([Kind::FetchOverLimit]));
    }
}
