//! One simulated machine running one broker process: the process (or its absence), its disk and
//! the disk's timing, its clock, and what the per-step invariants remember about it. The world
//! holds a `Vec` of these; a single-broker run has one.
//!
//! A node knows nothing of the network or the event queue: it hands the broker's outputs back to
//! the world, which carries them. What a crash keeps is decided here, by the disk model: a process
//! crash keeps the page cache (unless a failed fsync dropped pages), a power loss keeps only what
//! was synced.

use crate::clients::{Us, TOPIC};
use crate::disk::SimDisk;
use crate::profile::Profile;
use gregor_core::io::{Input, Output, Request, StorageFault, StorageReply, StorageRequest};
use gregor_core::prng::Prng;
use gregor_core::testkit::Storage;
use gregor_core::{Broker, Config, Instant};
use std::collections::{BTreeMap, VecDeque};

/// Wall-clock base of the simulation (every broker's epoch-ns clock starts here).
pub const EPOCH_NS: i64 = 1_700_000_000_000 * 1_000_000;

/// The simulator's disk serves the shared test driver as well (the fuzz targets use it).
impl Storage for SimDisk {
    fn exec(
        &mut self,
        request: &StorageRequest,
        prng: &mut Prng,
    ) -> Result<StorageReply, StorageFault> {
        SimDisk::exec(self, request, prng)
    }
}

pub struct Node {
    /// The running process, if any.
    pub broker: Option<Broker>,
    /// Bumped at every start and stop: events addressed to an earlier process are dropped.
    pub incarnation: u64,
    pub restart_pending: bool,
    /// The machine lost power (and is still off).
    pub power_off: bool,
    /// When the broker's next timer event is scheduled.
    pub timer: Option<Us>,
    pub disk: SimDisk,
    /// Writes complete one after another: when the last one queued completes.
    pub disk_busy_until: Us,
    /// Requests that reached the machine while the broker was busy writing, in arrival order.
    pub held: VecDeque<(u64, Request)>,
    /// When the held requests are next looked at.
    pub unhold_at: Option<Us>,
    /// The machine's clock: offset from true time (ns) and drift (parts per million).
    pub clock_offset_ns: i64,
    /// Steps back of the machine's wall clock not yet seen by a broker process: the next
    /// process reads them at start.
    pub wall_step_ns: i64,
    pub clock_drift_ppm: i64,
    /// Per-step invariants: the highest high watermark seen per partition.
    pub hw: BTreeMap<i32, i64>,
}

impl Node {
    pub fn new(clock_drift_ppm: i64) -> Node {
        Node {
            broker: None,
            incarnation: 0,
            restart_pending: false,
            power_off: false,
            timer: None,
            disk: SimDisk::default(),
            disk_busy_until: 0,
            held: VecDeque::new(),
            unhold_at: None,
            clock_offset_ns: 0,
            wall_step_ns: 0,
            clock_drift_ppm,
            hw: BTreeMap::new(),
        }
    }

    /// The broker's reading of its clock at true time `t`.
    pub fn clock(&self, t: Us) -> Instant {
        let ns = t as i64 * 1000;
        let drift = ns / 1_000_000 * self.clock_drift_ppm;
        Instant((EPOCH_NS + ns + drift + self.clock_offset_ns).max(0) as u64)
    }

    /// The true time (not before `now`) at which the broker's clock reads `deadline`.
    pub fn true_time_of(&self, deadline: Instant, now: Us) -> Us {
        let want = deadline.0 as i64 - EPOCH_NS - self.clock_offset_ns;
        if want <= 0 {
            return now;
        }
        let ns = (want as i128 * 1_000_000 / (1_000_000 + self.clock_drift_ppm) as i128) as i64;
        ((ns / 1000) as Us + 1).max(now)
    }

    /// Start a broker process on what the disk holds. Returns, per partition of the workload's
    /// topic, (partition, log end found, high watermark at start) for the world's invariants.
    pub fn start(&mut self, config: Config, now: Us) -> Vec<(i32, i64, i64)> {
        assert!(self.broker.is_none(), "one process per node");
        self.incarnation += 1;
        self.clock_offset_ns += std::mem::take(&mut self.wall_step_ns);
        let broker = Broker::new(config, self.disk.recovered(), self.clock(now))
            .expect("the simulator's configuration is valid");
        let mut found = Vec::new();
        if let Some(t) = broker.topics().get(TOPIC) {
            for (i, p) in t.partitions.iter().enumerate() {
                found.push((i as i32, p.log.log_end_offset(), p.high_watermark));
            }
        }
        self.broker = Some(broker);
        self.power_off = false;
        self.timer = None;
        found
    }

    /// Kill the process (and with `power_loss`, the machine). Returns whether unsynced data was
    /// lost (a process crash loses pages a failed fsync dropped: to the log, a power loss), and
    /// the disk's notes on what it tore.
    pub fn stop(
        &mut self,
        power_loss: bool,
        prng: &mut Prng,
        profile: &Profile,
    ) -> (bool, Vec<String>) {
        assert!(self.broker.is_some(), "only a running broker stops");
        let mut lost = power_loss;
        let mut notes = Vec::new();
        if power_loss {
            notes = self
                .disk
                .power_loss(prng, profile.torn_writes, profile.torn_bit_flips);
        } else {
            let before = self.written_bytes();
            self.disk.process_crash(prng);
            lost = self.written_bytes() != before;
        }
        self.broker = None;
        self.power_off = lost;
        self.incarnation += 1;
        self.timer = None;
        (lost, notes)
    }

    fn written_bytes(&self) -> u64 {
        self.disk
            .files
            .values()
            .map(|f| f.written.len() as u64)
            .sum()
    }

    /// Hand the broker one input (if it runs) and collect everything it wants done, in order.
    pub fn handle(&mut self, input: Input) -> Option<Vec<Output>> {
        let b = self.broker.as_mut()?;
        b.handle(input);
        Some(self.outputs())
    }

    /// Drain the broker's outputs.
    pub fn outputs(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(b) = self.broker.as_mut() {
            while let Some(o) = b.poll_output() {
                out.push(o);
            }
        }
        out
    }

    /// When a storage operation completes. Writes complete in the order issued (each after the
    /// previous); an fsync takes its own, longer, time and may finish after later writes.
    pub fn disk_completion(
        &mut self,
        r: &StorageRequest,
        now: Us,
        prng: &mut Prng,
        profile: &Profile,
    ) -> Us {
        let start = self.disk_busy_until.max(now);
        match r {
            StorageRequest::Sync { .. } => {
                let (lo, hi) = profile.fsync_us;
                start + lo + prng.below(hi - lo + 1)
            }
            _ => {
                let (lo, hi) = profile.write_us;
                let done = start + lo + prng.below(hi - lo + 1);
                self.disk_busy_until = done;
                done
            }
        }
    }

    /// Per-step invariant on what the broker exposes: the high watermark never goes back.
    /// Returns a description of each violation.
    pub fn check_hw(&mut self) -> Vec<(i32, i64, i64)> {
        let mut bad = Vec::new();
        let Some(b) = &self.broker else {
            return bad;
        };
        let Some(t) = b.topics().get(TOPIC) else {
            return bad;
        };
        for (i, p) in t.partitions.iter().enumerate() {
            let prev = self.hw.entry(i as i32).or_insert(0);
            if p.high_watermark < *prev {
                bad.push((i as i32, *prev, p.high_watermark));
            }
            *prev = (*prev).max(p.high_watermark);
        }
        bad
    }
}

/// One line describing a storage operation, for the trace.
pub fn describe(r: &StorageRequest) -> String {
    match r {
        StorageRequest::CreatePartition { dir, .. } => format!("create {}", dir.dir_name()),
        StorageRequest::DeletePartition { dir } => format!("delete {}", dir.dir_name()),
        StorageRequest::CreateSegment { file, .. } => {
            format!("create {}/{}", file.dir.dir_name(), file.file_name())
        }
        StorageRequest::Append {
            file,
            position,
            data,
        } => format!(
            "append {}/{} @{position} +{}",
            file.dir.dir_name(),
            file.file_name(),
            data.len()
        ),
        StorageRequest::Sync { file } => {
            format!("fsync {}/{}", file.dir.dir_name(), file.file_name())
        }
        StorageRequest::Read {
            file,
            position,
            len,
        } => format!(
            "read {}/{} @{position} {len}",
            file.dir.dir_name(),
            file.file_name()
        ),
        StorageRequest::Truncate { file, len } => {
            format!(
                "truncate {}/{} to {len}",
                file.dir.dir_name(),
                file.file_name()
            )
        }
        StorageRequest::DeleteSegment { file } => {
            format!("delete {}/{}", file.dir.dir_name(), file.file_name())
        }
        StorageRequest::WriteBrokerMeta { .. } => "write broker.meta".into(),
        StorageRequest::WriteSegmentIndex { file, covers, .. } => format!(
            "write index {}/{} covering {covers}",
            file.dir.dir_name(),
            file.file_name()
        ),
        StorageRequest::DeleteSegmentIndex { file } => {
            format!("delete index {}/{}", file.dir.dir_name(), file.file_name())
        }
        StorageRequest::WriteProducerSnapshot { dir, offset, .. } => {
            format!("write producer snapshot {}@{offset}", dir.dir_name())
        }
        StorageRequest::DeleteProducerSnapshots { dir, above } => {
            format!(
                "delete producer snapshots of {} above {above}",
                dir.dir_name()
            )
        }
        StorageRequest::CreateCleanedSegment { file, .. } => {
            format!(
                "create {}/{}",
                file.dir.dir_name(),
                file.cleaned_file_name()
            )
        }
        StorageRequest::AppendCleanedSegment {
            file,
            position,
            data,
        } => format!(
            "write {}/{} @{position} {}",
            file.dir.dir_name(),
            file.cleaned_file_name(),
            data.len()
        ),
        StorageRequest::SwapCleanedSegment { file } => format!(
            "swap in {}/{}",
            file.dir.dir_name(),
            file.cleaned_file_name()
        ),
        StorageRequest::CompleteSegmentSwap { file } => format!(
            "rename {}/{} into place",
            file.dir.dir_name(),
            file.swap_file_name()
        ),
        StorageRequest::DiscardCleanedSegment { file } => format!(
            "discard {}/{}",
            file.dir.dir_name(),
            file.cleaned_file_name()
        ),
    }
}
