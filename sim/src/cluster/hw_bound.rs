//! The per-step bound on a leader's high watermark (issue 10): **`hw-above-isr`** and
//! **`hw-above-durable`**, judged by the cluster world after every step of every broker.
//!
//! Kafka's leader advances a partition's high watermark to the smallest log end offset among
//! the in-sync replicas (`Partition.maybeIncrementLeaderHW`): the ISR is the promise that each
//! member holds everything below it. So at every instant, on the leader:
//!
//! * the high watermark is at most the log end of every ISR member that is alive in the run the
//!   leader's image registered (a member restarted as a new incarnation, not registered yet,
//!   or stopped, is not judged: the controller takes it out of the ISR when its new run
//!   registers, KIP-903); a follower's log end only grows past what it reported in its last
//!   fetch, so a high watermark above it means the leader counted records a member lacks;
//! * under group commit it is at most the leader's own durable end: gregor acknowledges only
//!   what every in-sync replica, the leader included, has synced (`docs/guarantees.md`).
//!
//! The check is a pure function of one sample, so a planted sample proves it can fail.

use crate::history::{Ms, Part};

/// What the world saw of one partition's leader after a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HwSample {
    pub node: i32,
    pub part: Part,
    pub hw: i64,
    /// The leader's durable end, when the world runs group commit.
    pub durable_end: Option<i64>,
    /// `(node, log end)` of each ISR member other than the leader that is alive in the
    /// incarnation the leader's image registered.
    pub isr_ends: Vec<(i32, i64)>,
    pub t: Ms,
}

/// The anomalies of one sample, as (checker name, detail).
pub fn check(s: &HwSample) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some((node, end)) = s
        .isr_ends
        .iter()
        .filter(|(_, e)| *e < s.hw)
        .min_by_key(|x| x.1)
    {
        out.push((
            "hw-above-isr",
            format!(
                "t={}ms: broker {} leads partition {} with high watermark {} above in-sync broker {node}'s log end {end}",
                s.t, s.node, s.part, s.hw
            ),
        ));
    }
    if let Some(d) = s.durable_end.filter(|d| *d < s.hw) {
        out.push((
            "hw-above-durable",
            format!(
                "t={}ms: broker {} leads partition {} with high watermark {} above its durable end {d} (group commit)",
                s.t, s.node, s.part, s.hw
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HwSample {
        HwSample {
            node: 1,
            part: 0,
            hw: 10,
            durable_end: Some(12),
            isr_ends: vec![(2, 10), (3, 15)],
            t: 100,
        }
    }

    #[test]
    fn a_high_watermark_within_every_bound_passes() {
        assert!(check(&sample()).is_empty());
    }

    #[test]
    fn a_high_watermark_above_an_isr_members_log_end_fires() {
        let s = HwSample {
            isr_ends: vec![(2, 9), (3, 15)],
            ..sample()
        };
        let found = check(&s);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "hw-above-isr");
        assert!(
            found[0].1.contains("broker 2's log end 9"),
            "{}",
            found[0].1
        );
    }

    #[test]
    fn a_high_watermark_above_the_leaders_durable_end_fires() {
        let s = HwSample {
            durable_end: Some(8),
            ..sample()
        };
        let names: Vec<_> = check(&s).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["hw-above-durable"]);
        let unjudged = HwSample {
            durable_end: None,
            ..s
        };
        assert!(
            check(&unjudged).is_empty(),
            "judged under group commit only"
        );
    }
}
