//! Liveness: once every fault is healed and every controller is up (the liveness phase), a
//! leader is elected and a new record commits within a bound. (Safety holds whatever happens;
//! progress needs a majority that can talk, which the healed phase guarantees.)

use super::Anomaly;
use gregor_core::time::{Duration, Instant};

pub struct Liveness {
    healed_at: Instant,
    bound: Duration,
    /// The highest high watermark any node reached before the heal.
    hw_at_heal: i64,
    /// When a leader was first seen after the heal.
    leader_at: Option<Instant>,
    /// When a high watermark past `hw_at_heal` was first seen.
    commit_at: Option<Instant>,
}

impl Liveness {
    pub fn new(healed_at: Instant, bound: Duration, hw_at_heal: i64) -> Liveness {
        Liveness {
            healed_at,
            bound,
            hw_at_heal,
            leader_at: None,
            commit_at: None,
        }
    }

    pub fn leader_seen(&mut self, at: Instant) {
        assert!(at >= self.healed_at);
        self.leader_at.get_or_insert(at);
    }

    pub fn high_watermark_seen(&mut self, at: Instant, hw: i64) {
        assert!(at >= self.healed_at);
        if hw > self.hw_at_heal {
            self.commit_at.get_or_insert(at);
        }
    }

    /// When progress was made (a leader and a new commit), if it was.
    pub fn recovered_at(&self) -> Option<Instant> {
        Some(self.leader_at?.max(self.commit_at?))
    }

    /// The verdict at the end of the run.
    pub fn finish(&self) -> Vec<Anomaly> {
        let deadline = self.healed_at + self.bound;
        match self.recovered_at() {
            Some(t) if t <= deadline => Vec::new(),
            _ => vec![Anomaly {
                kind: "liveness",
                detail: format!(
                    "healed at {} ms: leader first seen at {:?} ms, a commit past {} at {:?} ms; the bound was {} ms",
                    self.healed_at.unix_ms(),
                    self.leader_at.map(|t| t.unix_ms()),
                    self.hw_at_heal,
                    self.commit_at.map(|t| t.unix_ms()),
                    self.bound.as_ms(),
                ),
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_leader_or_no_new_commit_within_the_bound_is_caught() {
        let heal = Instant::from_unix_ms(10_000);
        let bound = Duration::from_ms(5_000);
        let at = |ms| Instant::from_unix_ms(ms);
        let mut ok = Liveness::new(heal, bound, 7);
        ok.leader_seen(at(11_000));
        ok.high_watermark_seen(at(11_500), 8);
        assert!(ok.finish().is_empty());
        let mut stuck = Liveness::new(heal, bound, 7);
        stuck.leader_seen(at(11_000));
        stuck.high_watermark_seen(at(12_000), 7);
        assert_eq!(stuck.finish().len(), 1, "a leader that commits nothing new");
        let mut late = Liveness::new(heal, bound, 7);
        late.leader_seen(at(16_000));
        late.high_watermark_seen(at(16_000), 9);
        assert_eq!(late.finish().len(), 1, "too late");
        assert!(Liveness::new(heal, bound, 7).finish().len() == 1, "never");
    }
}
