//! Which partition a record goes to.
//!
//! * A record with a key goes to `toPositive(murmur2(key)) % partitions`, exactly as the Java
//!   client's default partitioner computes it (`BuiltInPartitioner.partitionForKey`), so a key
//!   lands on the same partition whichever client wrote it. librdkafka matches this with
//!   `partitioner=murmur2_random`; its own default (`consistent_random`, CRC-32) does not.
//! * A record without a key goes to the topic's *sticky* partition (KIP-480): one partition,
//!   picked at random, takes every unkeyed record until its batch is closed, then another is
//!   picked. Unkeyed records thus form full batches instead of one tiny batch per partition.

/// MurmurHash2 as `org.apache.kafka.common.utils.Utils.murmur2` computes it: seed 0x9747b28c,
/// 4-byte little-endian words, the tail mixed in reverse order, then the final avalanche.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record in a topic of `partitions` partitions.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    // Java's `Utils.toPositive`: clear the sign bit (not `abs`, which overflows on MIN).
    let p = (murmur2(key) & 0x7fff_ffff) % partitions;
    assert!((0..partitions).contains(&p));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values the Java client's `Utils.murmur2` returns (Kafka's `UtilsTest.testMurmur2`).
    #[test]
    fn murmur2_matches_java() {
        let cases: &[(&str, i32)] = &[
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (s, want) in cases {
            assert_eq!(murmur2(s.as_bytes()), *want, "murmur2({s:?})");
        }
    }

    #[test]
    fn keys_spread_and_stay_in_range() {
        let mut seen = [0u32; 7];
        for i in 0..700 {
            seen[partition_for_key(format!("key{i}").as_bytes(), 7) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
