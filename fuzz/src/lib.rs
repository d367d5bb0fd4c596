//! Shared harness for the fuzz targets: the core's synchronous test driver
//! (`gregor_core::testkit::Pair`) on the simulator's in-memory disk, so every storage operation
//! completes at once, in order, with the disk's fault model available to the targets.

/// The broker binary's allocator (see there), so the fuzzers test what production runs.
#[path = "../../net/src/alloc.rs"]
pub mod alloc;

use gregor_core::testkit::Pair;
use gregor_core::Config;
use gregor_sim::disk::SimDisk;

pub type Harness = Pair<SimDisk>;

/// A broker on an empty disk.
pub fn harness(config: Config) -> Harness {
    harness_on(config, SimDisk::default())
}

/// A broker recovered from what `disk` holds.
pub fn harness_on(config: Config, disk: SimDisk) -> Harness {
    let recovered = disk.recovered();
    Pair::new(config, recovered, disk)
}
