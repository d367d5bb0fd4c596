//! The "controlled-shutdown" fault (KIP-631): a node is asked to stop cleanly, as SIGTERM asks
//! `gregor serve` (net/src/main.rs). Its member's lifecycle heartbeats `WantShutDown`; the
//! active controller moves the node's leaderships to other in-sync replicas, takes it out of
//! the ISRs and fences it; once the member says [`Shutdown::Allowed`] the process stops (its
//! page cache is kept: a clean stop, then a restart 1–10 s later like any crash; an active
//! controller resigns first, [`World::stop_cleanly`]). If no
//! controller finishes it within [`STOP_TIMEOUT`] (the quorum is cut off, say), it stops anyway,
//! as the real broker does.
//!
//! Every checker keeps judging: a clean stop must never lose an acknowledged acks=all record,
//! nor let two leaders of one epoch serve.
//!
//! The fault has its own PRNG and its own schedule, drawn only for the replicated workload, so
//! a seed that does not draw it replays exactly as before it existed.

use super::{Ev, World};
use crate::clients::{Us, MS};
use gregor_core::cluster::lifecycle::Shutdown;
use gregor_core::prng::Prng;

/// How long a controlled shutdown may take before the node stops anyway (the broker's
/// `controlled_shutdown_timeout_ms` default).
pub(super) const STOP_TIMEOUT: Us = 5_000 * MS;

/// The fault's own randomness and cadence.
pub(super) struct Stops {
    prng: Prng,
    /// About how often a node is asked to stop (ms); none: the fault is off for this seed.
    every_ms: Option<u64>,
}

impl Stops {
    /// Drawn from the seed alone: on in about three replicated seeds of four.
    pub(super) fn draw(seed: u64, replication: bool) -> Stops {
        let mut prng = Prng::new(seed ^ 0x5349_4754_4552_4d00);
        let on = replication && prng.ratio(3, 4);
        let every_ms = on.then(|| 2_000 + prng.below(8_000));
        Stops { prng, every_ms }
    }

    /// The profile's line for the fault: empty when it is off.
    pub(super) fn describe(&self) -> String {
        match self.every_ms {
            Some(ms) => format!("\ncontrolled-shutdown: a node asked to stop every ~{ms} ms"),
            None => String::new(),
        }
    }
}

impl World {
    /// Schedule the first controlled shutdown, when the seed draws the fault.
    pub(super) fn schedule_stops(&mut self) {
        if let Some(every) = self.stops.every_ms {
            let first = 1 + self.stops.prng.below(every);
            self.schedule(first * MS, Ev::ControlledShutdown);
        }
    }

    /// A controlled shutdown is due: ask a running node to stop cleanly; schedule the next.
    pub(super) fn controlled_shutdown_due(&mut self) {
        let Some(every) = self.stops.every_ms.filter(|_| !self.healed) else {
            return;
        };
        let n = self.machines.len();
        let i = self.stops.prng.below(n as u64) as usize;
        let gap = 1 + self.stops.prng.below(2 * every);
        self.schedule(self.now + gap * MS, Ev::ControlledShutdown);
        let m = &mut self.machines[i];
        if m.stop_by.is_some() {
            return; // already stopping
        }
        let local = m.node.clock(self.now);
        let Some(member) = m.member.as_mut() else {
            return; // not running
        };
        member.begin_controlled_shutdown(local);
        m.stop_by = Some(self.now + STOP_TIMEOUT);
        let incarnation = m.node.incarnation;
        self.count("controlled shutdowns");
        self.note(19, i as u64);
        self.say(|| format!("node {} asked to stop cleanly (SIGTERM)", i + 1));
        self.schedule(
            self.now + STOP_TIMEOUT,
            Ev::StopTimeout {
                node: i,
                incarnation,
            },
        );
        self.pump(i, Vec::new());
    }

    /// After node `i` was pumped: stop it if its controlled shutdown is allowed.
    pub(super) fn stop_if_allowed(&mut self, i: usize) {
        let m = &self.machines[i];
        let allowed = m
            .member
            .as_ref()
            .is_some_and(|member| member.shutdown() == Some(Shutdown::Allowed));
        if m.stop_by.is_some() && allowed {
            self.count("controlled shutdowns done");
            self.say(|| format!("node {} stops: its leaderships moved", i + 1));
            self.stop_cleanly(i);
        }
        assert!(
            self.machines[i].member.is_none() || !allowed || self.machines[i].stop_by.is_none()
        );
    }

    /// Node `i`'s controlled shutdown timed out: it stops anyway.
    pub(super) fn stop_timed_out(&mut self, i: usize, incarnation: u64) {
        let m = &self.machines[i];
        if m.node.incarnation != incarnation || m.member.is_none() || m.stop_by.is_none() {
            return;
        }
        self.count("controlled shutdowns timed out");
        self.say(|| format!("node {} stops: no controller finished its shutdown", i + 1));
        self.stop_cleanly(i);
    }

    /// Node `i`'s process stops cleanly: last, as `gregor serve` does on SIGTERM, its member
    /// resigns the quorum's leadership if it holds it (KIP-595: EndQuorumEpoch to the other
    /// voters, so they elect the next active controller at once); the messages leave, then the
    /// process is gone (page cache kept).
    fn stop_cleanly(&mut self, i: usize) {
        let local = self.machines[i].node.clock(self.now);
        let resigned = self.machines[i]
            .member
            .as_mut()
            .is_some_and(|member| member.resign(local));
        if resigned {
            self.count("controller resignations");
            self.say(|| format!("node {} resigns as the active controller", i + 1));
            self.pump_outputs(i, Vec::new());
        }
        self.crash(i, false);
    }
}
