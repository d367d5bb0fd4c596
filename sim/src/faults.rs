//! The fault model: what can go wrong, and how often for a given profile.
//!
//! Each kind of fault the profile enables fires at random intervals (uniform in 1 ms to twice
//! the profile's mean) during the safety phase, and never in the liveness phase. The world
//! carries a fault out; this module names it and its rate:
//!
//! | fault        | what happens                                                        |
//! |--------------|---------------------------------------------------------------------|
//! | `Crash`      | a broker process dies; its machine keeps the page cache             |
//! | `PowerLoss`  | a broker machine loses power: only synced data survives (torn tail) |
//! | `ConnReset`  | one live connection is reset (both ends are told)                   |
//! | `Partition`  | one link between a client and a broker is cut, one way or both     |
//! | `Clog`       | one link delays everything for a while (then delivers in order)     |
//! | `ClockJump`  | a broker's clock jumps forward (to +60 s) at once, or the machine's wall clock steps back (to −30 s), which the next broker process starts from |
//! | `DiskFull`   | a broker's disk refuses writes for a while                          |
//! | `Member`     | a group member crashes, stalls past its session, or leaves          |

use crate::profile::Profile;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Crash,
    PowerLoss,
    ConnReset,
    Partition,
    Clog,
    ClockJump,
    DiskFull,
    Member,
}

/// The end of a fault that lasts.
#[derive(Clone, Copy, Debug)]
pub enum Heal {
    /// The link between a client and a node (both directions).
    Link {
        client: usize,
        node: usize,
    },
    DiskFull {
        node: usize,
    },
}

/// Every fault kind with its mean interval in ms, `None` when the profile leaves it off.
pub fn rates(p: &Profile) -> Vec<(Fault, Option<u64>)> {
    let members = if p.groups.is_empty() {
        None
    } else {
        p.member_faults
    };
    vec![
        (Fault::Crash, p.crash),
        (Fault::PowerLoss, p.power_loss),
        (Fault::ConnReset, p.conn_reset),
        (Fault::Partition, p.partition),
        (Fault::Clog, p.clog),
        (Fault::ClockJump, p.clock_jump),
        (Fault::DiskFull, p.disk_full),
        (Fault::Member, members),
    ]
}

/// The mean interval of one fault kind.
pub fn rate(p: &Profile, f: Fault) -> Option<u64> {
    rates(p)
        .into_iter()
        .find(|(k, _)| *k == f)
        .and_then(|(_, r)| r)
}
