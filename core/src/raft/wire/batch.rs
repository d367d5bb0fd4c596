//! Log entries as Kafka's v2 record batches (see the table in the parent module's docs).

use super::*;
use crate::batch::{BatchHeader, HEADER_BYTES, LOG_OVERHEAD};

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let before = out.len();
    // Zigzag, then 7 bits a byte, low first (Kafka's `ByteUtils.writeVarlong`).
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
    assert!(
        (1..=10).contains(&(out.len() - before)),
        "a varint is 1 to 10 bytes"
    );
}

/// A cursor over a record's bytes that refuses to read past the end.
struct Reader<'a> {
    b: &'a [u8],
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<i64, WireError> {
        let mut z: u64 = 0;
        for i in 0..10 {
            let (&byte, rest) = self
                .b
                .split_first()
                .ok_or_else(|| WireError::Batch("varint cut short".into()))?;
            self.b = rest;
            z |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(WireError::Batch("varint longer than 10 bytes".into()))
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.b.len() < n {
            return Err(WireError::Batch(format!(
                "{n} bytes wanted, {} left",
                self.b.len()
            )));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    /// A varint length then that many bytes; -1 is null.
    fn nullable(&mut self) -> Result<Option<&[u8]>, WireError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(WireError::Batch(format!("length {n}"))),
            n => self
                .bytes(usize::try_from(n).map_err(|_| WireError::Batch("length".into()))?)
                .map(Some),
        }
    }
}

/// One record of a batch: (key, value), offset delta `delta`, no headers.
fn put_record(out: &mut Vec<u8>, delta: i64, key: Option<&[u8]>, value: &[u8]) {
    let mut body = vec![0u8]; // attributes (unused in v2 records)
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, delta);
    match key {
        None => put_varint(&mut body, -1),
        Some(k) => {
            put_varint(&mut body, k.len() as i64);
            body.extend_from_slice(k);
        }
    }
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    put_varint(&mut body, 0); // header count
    put_varint(out, body.len() as i64);
    out.extend_from_slice(&body);
}

fn leader_change_value(leader: NodeId) -> Vec<u8> {
    let msg = LeaderChangeMessage::default().with_leader_id(leader.0.into());
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    msg.encode(&mut buf, 0)
        .expect("a LeaderChangeMessage encodes at v0");
    assert!(buf.len() >= 6, "a version and a leader id at least");
    buf.to_vec()
}

/// One v2 batch of `entries`, all of one epoch and one kind, from `base_offset` on.
fn put_batch(out: &mut BytesMut, base_offset: i64, entries: &[Entry]) {
    assert!(!entries.is_empty());
    let epoch = entries[0].epoch;
    let control = matches!(entries[0].record, Record::LeaderChange { .. });
    assert!(entries
        .iter()
        .all(|e| e.epoch == epoch && matches!(e.record, Record::LeaderChange { .. }) == control));
    let mut records = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match &e.record {
            Record::LeaderChange { leader } => {
                let mut key = Vec::with_capacity(4);
                key.extend_from_slice(&0i16.to_be_bytes());
                key.extend_from_slice(&CONTROL_LEADER_CHANGE.to_be_bytes());
                put_record(
                    &mut records,
                    i as i64,
                    Some(&key),
                    &leader_change_value(*leader),
                );
            }
            Record::Data(d) => put_record(&mut records, i as i64, None, d),
        }
    }
    let mut b = vec![0u8; HEADER_BYTES];
    b[0..8].copy_from_slice(&base_offset.to_be_bytes());
    let len = (HEADER_BYTES - LOG_OVERHEAD + records.len()) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[12..16].copy_from_slice(&epoch.0.to_be_bytes());
    b[16] = 2;
    let attributes: i16 = if control { 0x20 } else { 0 };
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    b[23..27].copy_from_slice(&(entries.len() as i32 - 1).to_be_bytes());
    // No timestamps: Raft entries carry none (Kafka's NO_TIMESTAMP).
    b[27..35].copy_from_slice(&(-1i64).to_be_bytes());
    b[35..43].copy_from_slice(&(-1i64).to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&(entries.len() as i32).to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(b.len(), HEADER_BYTES + records.len());
    assert!(
        base_offset >= 0 && epoch.0 >= 0,
        "offsets and epochs are not negative"
    );
    let h = BatchHeader::parse(&b).expect("the batch just written parses");
    assert!(
        h.verify(&b).is_ok(),
        "the batch just written passes its CRC"
    );
    assert_eq!(h.size, b.len());
    assert_eq!(h.is_control(), control);
    assert_eq!(h.records_count as usize, entries.len());
    out.extend_from_slice(&b);
}

/// Entries from `base_offset` on as record batches: one batch per run of entries of the same
/// epoch and kind (a leader change is always its own control batch).
pub fn encode_entries(base_offset: i64, entries: &[Entry]) -> Bytes {
    let mut out = BytesMut::new();
    let mut start = 0;
    while start < entries.len() {
        let first = &entries[start];
        let mut end = start + 1;
        if matches!(first.record, Record::Data(_)) {
            while end < entries.len()
                && entries[end].epoch == first.epoch
                && matches!(entries[end].record, Record::Data(_))
            {
                end += 1;
            }
        }
        put_batch(&mut out, base_offset + start as i64, &entries[start..end]);
        start = end;
    }
    assert_eq!(
        out.is_empty(),
        entries.is_empty(),
        "a batch per run of entries"
    );
    out.freeze()
}

/// Read the batch at the start of `bytes`: its base offset, its entries and its size in bytes.
/// The CRC, the header's fields and every record are checked.
pub fn read_batch(bytes: &[u8]) -> Result<(i64, Vec<Entry>, usize), WireError> {
    let h = BatchHeader::parse(bytes).map_err(|e| WireError::Batch(e.to_string()))?;
    h.verify(bytes)
        .map_err(|e| WireError::Batch(e.to_string()))?;
    if h.compression() != 0 {
        return Err(WireError::Batch("compressed metadata batch".into()));
    }
    if h.base_offset < 0 || h.partition_leader_epoch < 0 {
        return Err(WireError::Batch(format!(
            "base offset {} or epoch {} negative",
            h.base_offset, h.partition_leader_epoch
        )));
    }
    if h.records_count <= 0
        || h.records_count > BATCH_RECORDS_MAX
        || h.last_offset_delta != h.records_count - 1
    {
        return Err(WireError::Batch(format!(
            "{} records with last offset delta {}",
            h.records_count, h.last_offset_delta
        )));
    }
    let epoch = Epoch(h.partition_leader_epoch);
    let mut r = Reader {
        b: &bytes[HEADER_BYTES..h.size],
    };
    let mut entries = Vec::new();
    for i in 0..h.records_count as i64 {
        let len = r.varint()?;
        let len =
            usize::try_from(len).map_err(|_| WireError::Batch(format!("record length {len}")))?;
        let mut rec = Reader { b: r.bytes(len)? };
        rec.bytes(1)?; // attributes
        rec.varint()?; // timestamp delta
        if rec.varint()? != i {
            return Err(WireError::Batch("record offsets not contiguous".into()));
        }
        let key = rec.nullable()?.map(<[u8]>::to_vec);
        let value = rec
            .nullable()?
            .ok_or_else(|| WireError::Batch("a record without a value".into()))?
            .to_vec();
        if rec.varint()? != 0 || !rec.b.is_empty() {
            return Err(WireError::Batch("metadata records carry no headers".into()));
        }
        let record = if h.is_control() {
            let key = key.ok_or_else(|| WireError::Batch("control record without key".into()))?;
            if key.len() != 4 || i16::from_be_bytes([key[2], key[3]]) != CONTROL_LEADER_CHANGE {
                return Err(WireError::Batch(format!(
                    "control record key {key:?} is not LEADER_CHANGE"
                )));
            }
            if value.len() < 2 {
                return Err(WireError::Batch("LeaderChangeMessage cut short".into()));
            }
            let version = i16::from_be_bytes([value[0], value[1]]);
            if !(0..=1).contains(&version) {
                return Err(WireError::Batch(format!("LeaderChangeMessage v{version}")));
            }
            let mut buf = Bytes::copy_from_slice(&value[2..]);
            let m = LeaderChangeMessage::decode(&mut buf, version)
                .map_err(|e| WireError::Batch(format!("LeaderChangeMessage: {e}")))?;
            Record::LeaderChange {
                leader: NodeId(m.leader_id.0),
            }
        } else {
            if key.is_some() {
                return Err(WireError::Batch("a metadata record has no key".into()));
            }
            Record::Data(Bytes::from(value))
        };
        entries.push(Entry { epoch, record });
    }
    if !r.b.is_empty() {
        return Err(WireError::Batch("bytes after the last record".into()));
    }
    assert_eq!(entries.len(), h.records_count as usize, "every record read");
    assert!(h.size <= bytes.len(), "the batch lies within the bytes");
    assert!(
        entries.iter().all(|e| e.epoch == epoch),
        "a batch is of one epoch"
    );
    Ok((h.base_offset, entries, h.size))
}

/// Entries from record batches that must start at `base_offset` and follow on without gaps.
pub fn decode_entries(mut bytes: &[u8], base_offset: i64) -> Result<Vec<Entry>, WireError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let expected = base_offset + out.len() as i64;
        let (base, entries, size) = read_batch(bytes)?;
        if base != expected {
            return Err(WireError::Batch(format!(
                "batch at offset {base}, expected {expected}"
            )));
        }
        assert!(!entries.is_empty() && size >= HEADER_BYTES);
        out.extend(entries);
        bytes = &bytes[size..];
    }
    Ok(out)
}
