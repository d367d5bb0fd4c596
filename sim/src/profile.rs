//! Swarm testing: each seed draws its own fault profile and workload shape.
//!
//! Running every fault at a fixed rate in every seed tests the average case; bugs hide in the
//! corners (many crashes and no partitions; only a slow disk). Swarm testing (Groce et al., 2012)
//! lets each seed switch faults on or off and pick their rates, so across a seed range every
//! combination is visited.

use crate::clients::Compaction;
use gregor_core::config::TopicCompression;
use gregor_core::prng::Prng;
use gregor_core::Durability;

/// Mean time between faults of one kind, in simulated ms; `None` means the fault is off.
pub type Rate = Option<u64>;

#[derive(Clone, Debug)]
pub struct Profile {
    pub durability: Durability,
    /// Network latency: base and random extra, in ms.
    pub net_latency_ms: (u64, u64),
    /// Disk write latency and fsync latency ranges, in microseconds.
    pub write_us: (u64, u64),
    pub fsync_us: (u64, u64),
    /// Broker process crashes (page cache survives).
    pub crash: Rate,
    /// Power losses (only synced bytes survive).
    pub power_loss: Rate,
    /// Whether a power loss may keep a torn piece of the last write, and garble it.
    pub torn_writes: bool,
    pub torn_bit_flips: bool,
    /// A client's connection is reset.
    pub conn_reset: Rate,
    /// A client is cut off from the broker, one way or both, for a while.
    pub partition: Rate,
    /// A client's link is clogged: messages held, then delivered in order.
    pub clog: Rate,
    /// The broker's clock jumps (forward or back).
    pub clock_jump: Rate,
    /// Clock drift, parts per million.
    pub clock_drift_ppm: i64,
    /// The disk fills up for a while.
    pub disk_full: Rate,
    /// Per mille of fsyncs that fail.
    pub fsync_fail_per_mille: u64,
    /// Group members crash, stall past their session timeout, or leave.
    pub member_faults: Rate,
    /// Workload shape.
    pub partitions: i32,
    pub producers: usize,
    pub readers: usize,
    /// Group consumers: per group, (members, commit mode after=true).
    pub groups: Vec<(usize, bool)>,
    /// Milliseconds between a producer's sends.
    pub produce_gap_ms: u64,
    /// Segment size, small so rolling happens.
    pub segment_bytes: u64,
    /// Retention by time and by size (Kafka `retention.ms`, `retention.bytes`; −1 is off), small
    /// enough that whole segments are deleted within a run; `None` keeps the defaults (a week,
    /// no size limit: nothing is deleted).
    pub retention: Option<(i64, i64)>,
    /// How the topic's batches are stored: its `compression.type` (the leader recompresses
    /// every batch in another codec) and its `index.interval.bytes` (how densely reads find
    /// their start through the sparse index). Kafka's defaults: `producer`, 4096.
    pub compression: TopicCompression,
    pub index_interval_bytes: u32,
    /// A second, compacted topic with its keyed workload (`clients::keyed`), in some seeds.
    pub compaction: Option<Compaction>,
}

fn rate(prng: &mut Prng, on_per_10: u64, lo: u64, hi: u64) -> Rate {
    if prng.ratio(on_per_10, 10) {
        Some(lo + prng.below(hi - lo + 1))
    } else {
        None
    }
}

impl Profile {
    /// Draw a profile from the seed's PRNG.
    pub fn draw(prng: &mut Prng) -> Profile {
        let durability = match prng.below(4) {
            0 => Durability::None,
            1 => Durability::Interval {
                records: 1 + prng.below(50),
                interval_ms: 1 + prng.below(500),
            },
            _ => Durability::GroupCommit,
        };
        let slow_disk = prng.ratio(1, 4);
        let groups = (0..prng.below(3))
            .map(|_| (1 + prng.below(3) as usize, prng.ratio(1, 2)))
            .collect();
        Profile {
            durability,
            net_latency_ms: (prng.below(3), 1 + prng.below(20)),
            write_us: (5, if slow_disk { 5_000 } else { 200 }),
            fsync_us: if slow_disk {
                (1_000, 200_000)
            } else {
                (100, 3_000)
            },
            crash: rate(prng, 5, 3_000, 20_000),
            power_loss: rate(prng, 4, 5_000, 30_000),
            torn_writes: prng.ratio(2, 3),
            torn_bit_flips: prng.ratio(1, 2),
            conn_reset: rate(prng, 5, 500, 5_000),
            partition: rate(prng, 4, 2_000, 15_000),
            clog: rate(prng, 4, 1_000, 10_000),
            clock_jump: rate(prng, 3, 5_000, 30_000),
            clock_drift_ppm: prng.below(2001) as i64 - 1000,
            disk_full: rate(prng, 3, 5_000, 30_000),
            fsync_fail_per_mille: if prng.ratio(1, 5) {
                1 + prng.below(20)
            } else {
                0
            },
            member_faults: rate(prng, 5, 2_000, 15_000),
            partitions: 1 + prng.below(4) as i32,
            producers: 1 + prng.below(4) as usize,
            readers: 1 + prng.below(2) as usize,
            groups,
            produce_gap_ms: 1 + prng.below(50),
            segment_bytes: 2_048 + prng.below(64 * 1024),
            retention: None,
            compression: TopicCompression::Producer,
            index_interval_bytes: 4096,
            compaction: None,
        }
    }

    /// In one seed of two, a topic `compression.type` other than `producer` (every codec,
    /// uncompressed included: the workload's producers send uncompressed batches, so each one is
    /// recompressed), and in one of two a small `index.interval.bytes` (an entry every batch
    /// or every few). Drawn from a PRNG of its own, so the rest of the seed's profile does not
    /// change with them. The checkers that read values back (`lost-write`, `fetch-order`, ...)
    /// then check recompression and dense indexes as they check everything else.
    pub fn draw_topic_format(&mut self, seed: u64) {
        let mut prng = Prng::new(seed ^ 0x666f_726d_6174_7321);
        if prng.ratio(1, 2) {
            let codecs = &TopicCompression::ALL[1..];
            self.compression = codecs[prng.below(codecs.len() as u64) as usize];
        }
        if prng.ratio(1, 2) {
            self.index_interval_bytes = [0, 64, 512][prng.below(3) as usize];
        }
    }

    /// In one seed of two, retention by time, by size or both, with small segments so whole
    /// segments expire. Drawn from a PRNG of its own (so the rest of the seed's profile does not
    /// change with it). The broker checks retention once a minute of its clock (Kafka's
    /// `log.retention.check.interval.ms`), and a restart starts that minute again: such a seed
    /// runs without broker crashes or power losses in two cases of three, so deletion happens.
    pub fn draw_retention(&mut self, seed: u64) {
        let mut prng = Prng::new(seed ^ 0x7265_7465_6e74_696f);
        if !prng.ratio(1, 2) {
            return;
        }
        let by_time = prng.ratio(2, 3);
        let by_size = !by_time || prng.ratio(1, 2);
        let ms = if by_time {
            5_000 + prng.below(30_000) as i64
        } else {
            -1
        };
        let bytes = if by_size {
            4_096 + prng.below(16 * 1024) as i64
        } else {
            -1
        };
        self.retention = Some((ms, bytes));
        self.segment_bytes = 2_048 + prng.below(6 * 1024);
        if prng.ratio(2, 3) {
            self.crash = None;
            self.power_loss = None;
        }
    }

    /// A policy that acknowledges only what is synced promises survival of power loss.
    pub fn acks_survive_power_loss(&self) -> bool {
        matches!(self.durability, Durability::GroupCommit)
    }

    /// One line per setting, for the run's header.
    pub fn describe(&self) -> String {
        let r = |r: Rate| r.map_or("off".to_string(), |ms| format!("every ~{ms}ms"));
        format!(
            "durability: {:?}\n\
             network: latency {}+{}ms; resets {}; partitions {}; clogs {}\n\
             disk: write {}-{}us, fsync {}-{}us; full {}; fsync failures {}‰\n\
             broker: crashes {}; power loss {} (torn writes {}, bit flips {}); clock jumps {}, drift {}ppm\n\
             workload: {} partitions, {} producers, {} readers, groups {:?} (members, commit-after); gap {}ms; segments {}B; member faults {}\n\
             retention: {}\n\
             topic format: compression.type={}, index.interval.bytes={}\n\
             compacted topic: {}",
            self.durability,
            self.net_latency_ms.0,
            self.net_latency_ms.1,
            r(self.conn_reset),
            r(self.partition),
            r(self.clog),
            self.write_us.0,
            self.write_us.1,
            self.fsync_us.0,
            self.fsync_us.1,
            r(self.disk_full),
            self.fsync_fail_per_mille,
            r(self.crash),
            r(self.power_loss),
            self.torn_writes,
            self.torn_bit_flips,
            r(self.clock_jump),
            self.clock_drift_ppm,
            self.partitions,
            self.producers,
            self.readers,
            self.groups,
            self.produce_gap_ms,
            self.segment_bytes,
            r(self.member_faults),
            self.retention.map_or("default (nothing deleted)".to_string(), |(ms, b)| format!("{ms}ms, {b}B (-1: off)")),
            self.compression.name(),
            self.index_interval_bytes,
            self.compaction.as_ref().map_or("none".to_string(), Compaction::describe),
        )
    }
}
