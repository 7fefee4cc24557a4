//! The on-disk block format of the log store, with no I/O (so it can be fuzzed and property-tested alone).
//!
//! A segment file is a sequence of frames, one per block:
//!
//! ```text
//! frame   = magic "YLB1" | summary_len u32 | payload_len u32 | crc32 u32 | summary | payload   (LE integers)
//! summary = version u8 | flags u8 (bit 0: payload is LZ4) | count u32 | raw_len u32 | recv_min i64 | recv_max i64
//!           | severity mask u8 | facility mask u32 | hosts set | apps set | peers set
//! set     = n u8 (255: too many to list, never pruned) | n × FNV-1a 32-bit hash of the value
//! payload = count × record, LZ4-compressed (block format) unless flag bit 0 is clear
//! record  = flags u8 | received (zigzag varint: bit 6 of flags set → the value itself, else the delta from
//!           the previous record) | [ts − received zigzag varint] | peer (4 or 16 bytes) | facility u8 | severity u8
//!           | host, app, procid, msgid (varint len+1, 0 = absent, UTF-8) | raw (varint len, bytes)
//!           | msg (varint k: 0 → varint len + UTF-8 bytes follow; k > 0 → msg is the last k − 1 bytes of raw)
//! ```
//!
//! The CRC covers summary and payload, so a torn or corrupted block is detected before anything in it is
//! trusted; [`scan`] walks frames and stops at the first one that is incomplete or fails its checks.

use crate::store::LogRow;
use std::net::IpAddr;

/// Frame magic.
pub const MAGIC: [u8; 4] = *b"YLB1";
/// Bytes of the fixed frame header.
pub const FRAME_HEADER: usize = 16;
/// Largest summary accepted.
pub const MAX_SUMMARY: usize = 4096;
/// Largest payload (compressed or not) and uncompressed block accepted.
pub const MAX_PAYLOAD: usize = 16 << 20;
const VERSION: u8 = 1;
/// Distinct values a summary set lists before it gives up (and the block can no longer be pruned by it).
const MAX_SET: usize = 254;
const FLAG_LZ4: u8 = 1;
/// Record flag: `received` is absolute (the first record of a block; lets blocks be concatenated).
const REC_ABSOLUTE: u8 = 0x40;

/// Why bytes are not a valid block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Fewer bytes than the frame announces (a torn tail).
    #[error("truncated block")]
    Truncated,
    /// Not a frame start.
    #[error("bad magic")]
    BadMagic,
    /// A length beyond the limits.
    #[error("block too large")]
    TooLarge,
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
    /// Anything else malformed inside a checked block.
    #[error("malformed block: {0}")]
    Malformed(&'static str),
}

/// What a block holds, readable without decompressing it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Messages in the block.
    pub count: u32,
    /// Uncompressed payload bytes.
    pub raw_len: u32,
    /// Payload compressed with LZ4.
    pub lz4: bool,
    /// Earliest receive time, Unix ms.
    pub recv_min: i64,
    /// Latest receive time, Unix ms.
    pub recv_max: i64,
    /// Bit n set: a message of severity n.
    pub severities: u8,
    /// Bit n set: a message of facility n (facilities ≥ 31 share bit 31).
    pub facilities: u32,
    /// Hashes of the HOSTNAMEs (None: too many to list).
    pub hosts: Option<Vec<u32>>,
    /// Hashes of the APP-NAMEs (None: too many).
    pub apps: Option<Vec<u32>>,
    /// Hashes of the sender addresses (canonical text; None: too many).
    pub peers: Option<Vec<u32>>,
}

/// FNV-1a, 32 bits: stable across versions and platforms (it is stored).
pub fn hash(s: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Hash of a value that is absent (never equal to a string's in practice; queries for it prune nothing).
const ABSENT: u32 = 0;

impl Summary {
    /// Could the block hold a message with this host hash?
    pub fn may_have_host(&self, h: u32) -> bool {
        self.hosts
            .as_ref()
            .is_none_or(|s| s.binary_search(&h).is_ok())
    }
    /// Could the block hold a message with this app hash?
    pub fn may_have_app(&self, h: u32) -> bool {
        self.apps
            .as_ref()
            .is_none_or(|s| s.binary_search(&h).is_ok())
    }
    /// Could the block hold a message from this peer hash?
    pub fn may_have_peer(&self, h: u32) -> bool {
        self.peers
            .as_ref()
            .is_none_or(|s| s.binary_search(&h).is_ok())
    }
    /// Could the block hold a message of this severity or worse?
    pub fn may_have_severity_at_most(&self, sev: u8) -> bool {
        let mask = if sev >= 7 {
            0xff
        } else {
            (1u16 << (sev + 1)) as u8 - 1
        };
        self.severities & mask != 0
    }
    /// Could the block hold a message of this facility?
    pub fn may_have_facility(&self, fac: u8) -> bool {
        self.facilities & fac_bit(fac) != 0
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.push(if self.lz4 { FLAG_LZ4 } else { 0 });
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.recv_min.to_le_bytes());
        out.extend_from_slice(&self.recv_max.to_le_bytes());
        out.push(self.severities);
        out.extend_from_slice(&self.facilities.to_le_bytes());
        for set in [&self.hosts, &self.apps, &self.peers] {
            match set {
                Some(v) if v.len() <= MAX_SET => {
                    out.push(v.len() as u8);
                    for h in v {
                        out.extend_from_slice(&h.to_le_bytes());
                    }
                }
                _ => out.push(255),
            }
        }
    }

    /// Decodes a summary (bounds-checked; never panics).
    pub fn decode(b: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader { b, pos: 0 };
        if r.u8()? != VERSION {
            return Err(CodecError::Malformed("version"));
        }
        let flags = r.u8()?;
        let mut s = Summary {
            lz4: flags & FLAG_LZ4 != 0,
            count: r.u32()?,
            raw_len: r.u32()?,
            recv_min: r.i64()?,
            recv_max: r.i64()?,
            severities: r.u8()?,
            facilities: r.u32()?,
            ..Summary::default()
        };
        if s.raw_len as usize > MAX_PAYLOAD {
            return Err(CodecError::TooLarge);
        }
        let mut sets = [None, None, None];
        for set in &mut sets {
            let n = r.u8()?;
            if n != 255 {
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(r.u32()?);
                }
                *set = Some(v);
            }
        }
        let [hosts, apps, peers] = sets;
        s.hosts = hosts;
        s.apps = apps;
        s.peers = peers;
        if r.pos != b.len() {
            return Err(CodecError::Malformed("summary length"));
        }
        Ok(s)
    }
}

fn fac_bit(fac: u8) -> u32 {
    1u32 << fac.min(31)
}

/// A fixed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Summary bytes after the header.
    pub summary_len: usize,
    /// Payload bytes after the summary.
    pub payload_len: usize,
    /// CRC-32 of summary and payload.
    pub crc: u32,
}

impl FrameHeader {
    /// Whole frame length.
    pub fn frame_len(&self) -> usize {
        FRAME_HEADER + self.summary_len + self.payload_len
    }

    /// Parses the fixed header (`b` must hold at least [`FRAME_HEADER`] bytes).
    pub fn decode(b: &[u8]) -> Result<Self, CodecError> {
        if b.len() < FRAME_HEADER {
            return Err(CodecError::Truncated);
        }
        if b[..4] != MAGIC {
            return Err(CodecError::BadMagic);
        }
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let h = FrameHeader {
            summary_len: u(4) as usize,
            payload_len: u(8) as usize,
            crc: u(12),
        };
        if h.summary_len > MAX_SUMMARY || h.payload_len > MAX_PAYLOAD {
            return Err(CodecError::TooLarge);
        }
        Ok(h)
    }
}

/// Accumulates messages into one block.
#[derive(Debug, Clone, Default)]
pub struct BlockBuilder {
    records: Vec<u8>,
    summary: Summary,
    hosts: Vec<u32>,
    apps: Vec<u32>,
    peers: Vec<u32>,
    last_received: i64,
    peer_text: Option<(IpAddr, u32)>,
}

fn add_to_set(set: &mut Vec<u32>, h: u32) {
    // Small sets: a linear scan beats hashing; past the limit, stop tracking.
    if set.len() <= MAX_SET && !set.contains(&h) {
        set.push(h);
    }
}

impl BlockBuilder {
    /// Messages so far.
    pub fn count(&self) -> u32 {
        self.summary.count
    }

    /// Uncompressed bytes so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no message was added.
    pub fn is_empty(&self) -> bool {
        self.summary.count == 0
    }

    /// Earliest receive time in the block (meaningful once a message was added).
    pub fn recv_min(&self) -> i64 {
        self.summary.recv_min
    }

    /// Latest receive time in the block.
    pub fn recv_max(&self) -> i64 {
        self.summary.recv_max
    }

    /// Adds one message.
    pub fn push(&mut self, row: &LogRow) {
        let first = self.summary.count == 0;
        let s = &mut self.summary;
        if first {
            s.recv_min = row.received_ms;
            s.recv_max = row.received_ms;
        } else {
            s.recv_min = s.recv_min.min(row.received_ms);
            s.recv_max = s.recv_max.max(row.received_ms);
        }
        s.count += 1;
        s.severities |= 1u8 << (row.severity & 7);
        s.facilities |= fac_bit(row.facility);
        add_to_set(
            &mut self.hosts,
            row.host.as_deref().map_or(ABSENT, |h| hash(h.as_bytes())),
        );
        add_to_set(
            &mut self.apps,
            row.app.as_deref().map_or(ABSENT, |h| hash(h.as_bytes())),
        );
        let ph = match self.peer_text {
            Some((ip, h)) if ip == row.peer => h,
            _ => {
                let h = hash(row.peer.to_string().as_bytes());
                self.peer_text = Some((row.peer, h));
                h
            }
        };
        add_to_set(&mut self.peers, ph);
        let b = &mut self.records;
        let v6 = row.peer.is_ipv6();
        let flags = u8::from(row.ts_ms.is_some())
            | (u8::from(row.malformed) << 1)
            | (u8::from(row.transport == "tcp") << 2)
            | (u8::from(v6) << 3)
            | (format_code(row.format) << 4)
            | if first { REC_ABSOLUTE } else { 0 };
        b.push(flags);
        if first {
            put_varint(b, zigzag(row.received_ms));
        } else {
            put_varint(b, zigzag(row.received_ms.wrapping_sub(self.last_received)));
        }
        self.last_received = row.received_ms;
        if let Some(ts) = row.ts_ms {
            put_varint(b, zigzag(ts.wrapping_sub(row.received_ms)));
        }
        match row.peer {
            IpAddr::V4(a) => b.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
        }
        b.push(row.facility);
        b.push(row.severity);
        for f in [&row.host, &row.app, &row.proc_id, &row.msg_id] {
            match f {
                None => b.push(0),
                Some(s) => {
                    put_varint(b, s.len() as u64 + 1);
                    b.extend_from_slice(s.as_bytes());
                }
            }
        }
        put_varint(b, row.raw.len() as u64);
        b.extend_from_slice(&row.raw);
        if row.raw.ends_with(row.msg.as_bytes()) {
            put_varint(b, row.msg.len() as u64 + 1);
        } else {
            b.push(0);
            put_varint(b, row.msg.len() as u64);
            b.extend_from_slice(row.msg.as_bytes());
        }
    }

    /// Appends the block as one frame to `out` and resets the builder. `compress` picks LZ4 (kept only when it
    /// saves space).
    pub fn finish_into(&mut self, out: &mut Vec<u8>, compress: bool) {
        let mut summary = std::mem::take(&mut self.summary);
        summary.raw_len = self.records.len() as u32;
        let sorted = |v: &mut Vec<u32>| {
            let mut v = std::mem::take(v);
            if v.len() > MAX_SET {
                return None;
            }
            v.sort_unstable();
            Some(v)
        };
        summary.hosts = sorted(&mut self.hosts);
        summary.apps = sorted(&mut self.apps);
        summary.peers = sorted(&mut self.peers);
        let compressed = if compress {
            let c = lz4_flex::block::compress(&self.records);
            (c.len() < self.records.len()).then_some(c)
        } else {
            None
        };
        summary.lz4 = compressed.is_some();
        let payload: &[u8] = compressed.as_deref().unwrap_or(&self.records);
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[0; 12]);
        let s0 = out.len();
        summary.encode(out);
        let summary_len = out.len() - s0;
        out.extend_from_slice(payload);
        let crc = crc32fast::hash(&out[s0..]);
        out[start + 4..start + 8].copy_from_slice(&(summary_len as u32).to_le_bytes());
        out[start + 8..start + 12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        out[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
        self.records.clear();
        self.peer_text = None;
    }
}

/// Checks a frame's CRC and decodes its summary; `body` is summary + payload.
pub fn check_frame(h: &FrameHeader, body: &[u8]) -> Result<Summary, CodecError> {
    if body.len() < h.summary_len + h.payload_len {
        return Err(CodecError::Truncated);
    }
    let body = &body[..h.summary_len + h.payload_len];
    if crc32fast::hash(body) != h.crc {
        return Err(CodecError::Checksum);
    }
    Summary::decode(&body[..h.summary_len])
}

/// Decodes the messages of a checked block (`payload` as stored).
pub fn decode_payload(s: &Summary, payload: &[u8]) -> Result<Vec<LogRow>, CodecError> {
    let owned;
    let records: &[u8] = if s.lz4 {
        owned = lz4_flex::block::decompress(payload, s.raw_len as usize)
            .map_err(|_| CodecError::Malformed("lz4"))?;
        &owned
    } else {
        payload
    };
    if records.len() != s.raw_len as usize {
        return Err(CodecError::Malformed("payload length"));
    }
    let mut r = Reader { b: records, pos: 0 };
    // Every record takes at least 11 bytes: bound the allocation by what the bytes can hold.
    let mut rows = Vec::with_capacity((s.count as usize).min(records.len() / 11 + 1));
    let mut last = 0i64;
    for _ in 0..s.count {
        let flags = r.u8()?;
        let v = unzigzag(r.varint()?);
        let received = if flags & REC_ABSOLUTE != 0 {
            v
        } else {
            last.wrapping_add(v)
        };
        last = received;
        let ts_ms = if flags & 1 != 0 {
            Some(received.wrapping_add(unzigzag(r.varint()?)))
        } else {
            None
        };
        let peer = if flags & 8 != 0 {
            let o: [u8; 16] = r.take(16)?.try_into().map_err(|_| CodecError::Truncated)?;
            IpAddr::from(o)
        } else {
            let o: [u8; 4] = r.take(4)?.try_into().map_err(|_| CodecError::Truncated)?;
            IpAddr::from(o)
        };
        let facility = r.u8()?;
        let severity = r.u8()?;
        let mut opt = || -> Result<Option<String>, CodecError> {
            match r.varint()? {
                0 => Ok(None),
                n => Ok(Some(r.string(n as usize - 1)?)),
            }
        };
        let (host, app, proc_id, msg_id) = (opt()?, opt()?, opt()?, opt()?);
        let raw_len = r.varint()? as usize;
        let raw = r.take(raw_len)?.to_vec();
        let msg = match r.varint()? {
            0 => {
                let n = r.varint()? as usize;
                r.string(n)?
            }
            k => {
                let n = (k - 1) as usize;
                if n > raw.len() {
                    return Err(CodecError::Malformed("message suffix"));
                }
                String::from_utf8(raw[raw.len() - n..].to_vec())
                    .map_err(|_| CodecError::Malformed("utf-8"))?
            }
        };
        rows.push(LogRow {
            received_ms: received,
            ts_ms,
            peer,
            transport: if flags & 4 != 0 { "tcp" } else { "udp" },
            host,
            app,
            proc_id,
            msg_id,
            facility,
            severity,
            format: format_name((flags >> 4) & 3),
            malformed: flags & 2 != 0,
            msg,
            raw,
        });
    }
    if r.pos != records.len() {
        return Err(CodecError::Malformed("trailing bytes"));
    }
    Ok(rows)
}

/// One valid frame found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameAt {
    /// Offset of the frame in the segment.
    pub offset: usize,
    /// Its header.
    pub header: FrameHeader,
    /// Its summary.
    pub summary: Summary,
}

/// Walks the frames of a segment held in memory, checking each one's CRC. Returns the valid frames and the
/// length of the valid prefix: everything after it (a torn or corrupted tail) is to be cut off.
pub fn scan(bytes: &[u8]) -> (Vec<FrameAt>, usize) {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let Ok(h) = FrameHeader::decode(&bytes[pos..]) else {
            break;
        };
        let body = &bytes[pos + FRAME_HEADER..];
        let Ok(summary) = check_frame(&h, body) else {
            break;
        };
        frames.push(FrameAt {
            offset: pos,
            header: h,
            summary,
        });
        pos += h.frame_len();
    }
    (frames, pos)
}

/// Decodes every message of a segment held in memory (fuzzing, tests): the valid prefix only.
pub fn decode_segment(bytes: &[u8]) -> Result<Vec<LogRow>, CodecError> {
    let (frames, _) = scan(bytes);
    let mut out = Vec::new();
    for f in frames {
        let p0 = f.offset + FRAME_HEADER + f.header.summary_len;
        out.extend(decode_payload(
            &f.summary,
            &bytes[p0..p0 + f.header.payload_len],
        )?);
    }
    Ok(out)
}

fn format_code(f: &str) -> u8 {
    match f {
        "rfc3164" => 1,
        "rfc5424" => 2,
        _ => 0,
    }
}

fn format_name(c: u8) -> &'static str {
    match c {
        1 => "rfc3164",
        2 => "rfc5424",
        _ => "unknown",
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.b.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(i64::from_le_bytes(a))
    }
    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Malformed("varint"))
    }
    fn string(&mut self, n: usize) -> Result<String, CodecError> {
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| CodecError::Malformed("utf-8"))
    }
}
