//! NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) decoders.
//!
//! [`decode`] dispatches on the version field. NetFlow v5 is stateless;
//! v9 and IPFIX need a [`TemplateCache`] that the caller keeps per collector
//! and passes in together with the exporter's address and the current time
//! (seconds, any epoch the caller uses consistently; used only for template
//! expiry).
//!
//! Supported: data templates, options templates (sampling interval and
//! algorithm from IE 34/35, 305/306 and v9 field 50; interface names and
//! descriptions from IE 82/83 scoped by ifIndex), IPFIX template withdrawal,
//! IPFIX variable-length fields, enterprise-specific IEs (skipped by length),
//! template expiry. Data sets whose template is unknown are counted in
//! [`Packet::missing_templates`] and skipped; problems in one set are
//! collected in [`Packet::errors`].

mod template;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::reader::{be_uint, Reader};
use crate::{DecodeError, FlowProtocol, FlowRecord, MacAddr};
use template::Rejected;
pub use template::{
    CacheConfig, CacheStats, FieldSpec, InterfaceInfo, SamplingInfo, Template, TemplateCache,
    VARIABLE_LENGTH,
};

/// A decoded NetFlow / IPFIX export packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// 5, 9 or 10 (IPFIX).
    pub version: u16,
    /// Export time from the header, Unix seconds.
    pub export_time_secs: u32,
    /// Sequence number from the header (v5: flow sequence).
    pub sequence: u32,
    /// v9 source id / IPFIX observation domain (v5: engine type << 8 | engine id).
    pub observation_domain: u32,
    /// Decoded flow records.
    pub records: Vec<FlowRecord>,
    /// Templates (data and options) learned from this packet.
    pub templates_learned: u32,
    /// Templates withdrawn by this packet.
    pub templates_withdrawn: u32,
    /// Options data records processed (sampling / interface information).
    pub options_records: u32,
    /// Template ids of data sets skipped because the template is unknown.
    pub missing_templates: Vec<u16>,
    /// Problems in individual sets or records (counted, not fatal).
    pub errors: Vec<DecodeError>,
}

impl Packet {
    fn new(version: u16, export_time_secs: u32, sequence: u32, observation_domain: u32) -> Self {
        Self {
            version,
            export_time_secs,
            sequence,
            observation_domain,
            records: Vec::new(),
            templates_learned: 0,
            templates_withdrawn: 0,
            options_records: 0,
            missing_templates: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// Decode a NetFlow v5, v9 or IPFIX packet sent by `exporter`.
///
/// `now_secs` is the caller's clock, used only to expire templates.
pub fn decode(
    buf: &[u8],
    exporter: IpAddr,
    now_secs: u64,
    cache: &mut TemplateCache,
) -> Result<Packet, DecodeError> {
    let mut r = Reader::new(buf);
    match r.u16()? {
        5 => decode_v5(buf, exporter),
        9 => decode_v9(buf, exporter, now_secs, cache),
        10 => decode_ipfix(buf, exporter, now_secs, cache),
        v => Err(DecodeError::UnsupportedVersion(u32::from(v))),
    }
}

/// Maximum records in a NetFlow v5 packet.
pub const V5_MAX_RECORDS: u16 = 30;

/// Decode a NetFlow v5 packet (24-byte header, 48-byte records).
pub fn decode_v5(buf: &[u8], exporter: IpAddr) -> Result<Packet, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.u16()?;
    if version != 5 {
        return Err(DecodeError::UnsupportedVersion(u32::from(version)));
    }
    let count = r.u16()?;
    let sys_uptime = r.u32()?;
    let unix_secs = r.u32()?;
    let unix_nsecs = r.u32()?;
    let sequence = r.u32()?;
    let engine_type = r.u8()?;
    let engine_id = r.u8()?;
    let sampling = r.u16()?;
    let domain = (u32::from(engine_type) << 8) | u32::from(engine_id);
    let mut p = Packet::new(5, unix_secs, sequence, domain);
    if count > V5_MAX_RECORDS {
        return Err(DecodeError::LimitExceeded {
            what: "NetFlow v5 record count",
            value: u64::from(count),
            limit: u64::from(V5_MAX_RECORDS),
        });
    }
    let interval = u32::from(sampling & 0x3FFF);
    let export_ms = u64::from(unix_secs) * 1000 + u64::from(unix_nsecs / 1_000_000);
    for _ in 0..count {
        let rec = match r.bytes(48) {
            Ok(b) => b,
            Err(e) => {
                p.errors.push(e);
                break;
            }
        };
        let mut x = Reader::new(rec);
        let mut f = FlowRecord::new(FlowProtocol::NetflowV5, exporter, domain);
        let v4 = |x: &mut Reader<'_>| x.array::<4>().map(|a| IpAddr::V4(Ipv4Addr::from(a)));
        f.src_addr = Some(v4(&mut x)?);
        f.dst_addr = Some(v4(&mut x)?);
        f.next_hop = Some(v4(&mut x)?);
        f.input_if = Some(u32::from(x.u16()?));
        f.output_if = Some(u32::from(x.u16()?));
        f.packets = Some(u64::from(x.u32()?));
        f.bytes = Some(u64::from(x.u32()?));
        let first = x.u32()?;
        let last = x.u32()?;
        f.start_ms = uptime_to_unix_ms(export_ms, sys_uptime, first);
        f.end_ms = uptime_to_unix_ms(export_ms, sys_uptime, last);
        f.src_port = Some(x.u16()?);
        f.dst_port = Some(x.u16()?);
        x.skip(1)?;
        f.tcp_flags = Some(u16::from(x.u8()?));
        f.protocol = Some(x.u8()?);
        f.tos = Some(x.u8()?);
        f.src_as = Some(u32::from(x.u16()?));
        f.dst_as = Some(u32::from(x.u16()?));
        f.src_mask = Some(x.u8()?);
        f.dst_mask = Some(x.u8()?);
        if interval > 0 {
            f.sampling_rate = Some(interval);
        }
        fix_icmp(&mut f);
        p.records.push(f);
    }
    Ok(p)
}

/// Absolute time of an uptime-relative timestamp.
fn uptime_to_unix_ms(export_ms: u64, sys_uptime: u32, t: u32) -> Option<u64> {
    export_ms.checked_sub(u64::from(sys_uptime.wrapping_sub(t)))
}

/// NetFlow convention: ICMP type/code is exported in the destination port.
fn fix_icmp(f: &mut FlowRecord) {
    if matches!(f.protocol, Some(1 | 58)) && f.icmp_type.is_none() {
        if let Some(dp) = f.dst_port {
            f.icmp_type = Some((dp >> 8) as u8);
            f.icmp_code = Some((dp & 0xFF) as u8);
        }
    }
}

/// Decode a NetFlow v9 packet (RFC 3954).
pub fn decode_v9(
    buf: &[u8],
    exporter: IpAddr,
    now_secs: u64,
    cache: &mut TemplateCache,
) -> Result<Packet, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.u16()?;
    if version != 9 {
        return Err(DecodeError::UnsupportedVersion(u32::from(version)));
    }
    let _count = r.u16()?;
    let sys_uptime = r.u32()?;
    let unix_secs = r.u32()?;
    let sequence = r.u32()?;
    let source_id = r.u32()?;
    let mut p = Packet::new(9, unix_secs, sequence, source_id);
    let ctx = Ctx {
        exporter,
        version: 9,
        domain: source_id,
        now: now_secs,
        export_ms: u64::from(unix_secs) * 1000,
        sys_uptime: Some(sys_uptime),
    };
    decode_sets(&mut r, &ctx, cache, &mut p);
    Ok(p)
}

/// Decode an IPFIX message (RFC 7011).
pub fn decode_ipfix(
    buf: &[u8],
    exporter: IpAddr,
    now_secs: u64,
    cache: &mut TemplateCache,
) -> Result<Packet, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.u16()?;
    if version != 10 {
        return Err(DecodeError::UnsupportedVersion(u32::from(version)));
    }
    let length = usize::from(r.u16()?);
    let export_time = r.u32()?;
    let sequence = r.u32()?;
    let domain = r.u32()?;
    if length < 16 || length > buf.len() {
        return Err(DecodeError::Invalid {
            what: "IPFIX message length",
            value: length as u64,
        });
    }
    let mut r = Reader::new(&buf[16..length]);
    let mut p = Packet::new(10, export_time, sequence, domain);
    let ctx = Ctx {
        exporter,
        version: 10,
        domain,
        now: now_secs,
        export_ms: u64::from(export_time) * 1000,
        sys_uptime: None,
    };
    decode_sets(&mut r, &ctx, cache, &mut p);
    Ok(p)
}

struct Ctx {
    exporter: IpAddr,
    version: u16,
    domain: u32,
    now: u64,
    export_ms: u64,
    /// NetFlow v9 header sysUptime (ms); `None` for IPFIX.
    sys_uptime: Option<u32>,
}

impl Ctx {
    fn ipfix(&self) -> bool {
        self.version == 10
    }
}

fn decode_sets(r: &mut Reader<'_>, ctx: &Ctx, cache: &mut TemplateCache, p: &mut Packet) {
    let (tmpl_id, opt_id) = if ctx.ipfix() { (2, 3) } else { (0, 1) };
    while r.remaining() >= 4 {
        let start = r.position();
        let (Ok(set_id), Ok(len)) = (r.u16(), r.u16()) else {
            break;
        };
        let len = usize::from(len);
        if len < 4 {
            p.errors.push(DecodeError::Invalid {
                what: "set length",
                value: len as u64,
            });
            return;
        }
        let body = match r.bytes(len - 4) {
            Ok(b) => b,
            Err(_) => {
                p.errors.push(DecodeError::Truncated {
                    offset: start,
                    needed: len,
                    available: r.remaining() + 4,
                });
                return;
            }
        };
        let res = if set_id == tmpl_id {
            template_set(body, ctx, cache, p, false)
        } else if set_id == opt_id {
            template_set(body, ctx, cache, p, true)
        } else if set_id >= 256 {
            data_set(set_id, body, ctx, cache, p)
        } else {
            // Reserved set ids are ignored (RFC 7011 §3.3.2).
            Ok(())
        };
        if let Err(e) = res {
            p.errors.push(e);
        }
    }
}

fn read_field(r: &mut Reader<'_>, ipfix: bool) -> Result<FieldSpec, DecodeError> {
    let raw_id = r.u16()?;
    let length = r.u16()?;
    if ipfix && raw_id & 0x8000 != 0 {
        Ok(FieldSpec {
            id: raw_id & 0x7FFF,
            length,
            enterprise: Some(r.u32()?),
        })
    } else {
        Ok(FieldSpec {
            id: raw_id,
            length,
            enterprise: None,
        })
    }
}

fn reject_error(e: Rejected, cache: &TemplateCache) -> DecodeError {
    let c = cache.config();
    let (what, value, limit) = match e {
        Rejected::TooManyTemplates(n) => {
            ("templates per exporter", n, c.max_templates_per_exporter)
        }
        Rejected::TooManyFields(n) => ("fields per template", n, c.max_fields),
        Rejected::RecordTooLong(n) => ("template record length", n, c.max_record_len),
    };
    DecodeError::LimitExceeded {
        what,
        value: value as u64,
        limit: limit as u64,
    }
}

fn template_set(
    body: &[u8],
    ctx: &Ctx,
    cache: &mut TemplateCache,
    p: &mut Packet,
    options: bool,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(body);
    let ipfix = ctx.ipfix();
    let max_fields = cache.config().max_fields;
    loop {
        // Remaining bytes shorter than a template header are padding.
        let min_header = if options && !ipfix { 6 } else { 4 };
        if r.remaining() < min_header {
            return Ok(());
        }
        let id = r.u16()?;
        let (field_count, scope_count) = if !options {
            (usize::from(r.u16()?), 0)
        } else if ipfix {
            let fc = usize::from(r.u16()?);
            if fc == 0 {
                (0, 0)
            } else {
                (fc, usize::from(r.u16()?))
            }
        } else {
            // v9: scope and option lengths are in bytes, 4 bytes per field.
            let scope_len = usize::from(r.u16()?);
            let opt_len = usize::from(r.u16()?);
            ((scope_len + opt_len) / 4, scope_len / 4)
        };
        if field_count == 0 {
            if id == 0 {
                // Zero padding.
                return Ok(());
            }
            if ipfix {
                // Withdrawal: a set id (2/3) as template id withdraws all.
                let which = if id == 2 || id == 3 { None } else { Some(id) };
                let n = cache.withdraw(ctx.exporter, ctx.version, ctx.domain, which, options);
                p.templates_withdrawn += n as u32;
                continue;
            }
            return Err(DecodeError::Invalid {
                what: "template field count",
                value: 0,
            });
        }
        if id < 256 {
            return Err(DecodeError::Invalid {
                what: "template id",
                value: u64::from(id),
            });
        }
        if options && scope_count == 0 {
            return Err(DecodeError::Invalid {
                what: "options template scope field count",
                value: 0,
            });
        }
        if field_count > max_fields {
            // Cannot skip reliably without reading the fields; stop this set.
            cache.note_rejected();
            return Err(DecodeError::LimitExceeded {
                what: "fields per template",
                value: field_count as u64,
                limit: max_fields as u64,
            });
        }
        let mut fields = Vec::with_capacity(field_count);
        for _ in 0..field_count {
            fields.push(read_field(&mut r, ipfix)?);
        }
        let t = Template {
            id,
            scope_fields: scope_count,
            fields,
        };
        match cache.insert(ctx.exporter, ctx.version, ctx.domain, t, ctx.now) {
            Ok(()) => p.templates_learned += 1,
            Err(e) => p.errors.push(reject_error(e, cache)),
        }
    }
}

fn data_set(
    set_id: u16,
    body: &[u8],
    ctx: &Ctx,
    cache: &mut TemplateCache,
    p: &mut Packet,
) -> Result<(), DecodeError> {
    let Some(t) = cache.get(ctx.exporter, ctx.version, ctx.domain, set_id, ctx.now) else {
        cache.note_missing();
        p.missing_templates.push(set_id);
        return Ok(());
    };
    let min = t.min_record_len().max(1);
    let mut r = Reader::new(body);
    while r.remaining() >= min {
        let before = r.position();
        let values = match split_record(&mut r, &t) {
            Ok(v) => v,
            Err(e) => {
                let rest = body.get(before..).unwrap_or(&[]);
                if rest.iter().all(|&b| b == 0) {
                    return Ok(()); // padding
                }
                return Err(e);
            }
        };
        if r.position() == before {
            break;
        }
        if t.is_options() {
            p.options_records += 1;
            learn_options(&t, &values, ctx, cache);
        } else {
            p.records.push(to_flow_record(&t, &values, ctx, cache));
        }
    }
    Ok(())
}

/// Slice one record into per-field values.
fn split_record<'a>(r: &mut Reader<'a>, t: &Template) -> Result<Vec<&'a [u8]>, DecodeError> {
    let mut out = Vec::with_capacity(t.fields.len());
    for f in &t.fields {
        let len = if f.length == VARIABLE_LENGTH {
            match r.u8()? {
                255 => usize::from(r.u16()?),
                n => usize::from(n),
            }
        } else {
            usize::from(f.length)
        };
        out.push(r.bytes(len)?);
    }
    Ok(out)
}

fn ip(v: &[u8]) -> Option<IpAddr> {
    match v.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
        16 => {
            let a: [u8; 16] = v.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

fn mac(v: &[u8]) -> Option<MacAddr> {
    let a: [u8; 6] = v.try_into().ok()?;
    Some(MacAddr(a))
}

fn num<T: TryFrom<u64>>(v: &[u8]) -> Option<T> {
    if v.is_empty() || v.len() > 8 {
        return None;
    }
    T::try_from(be_uint(v)).ok()
}

/// NTP 64-bit timestamp to Unix milliseconds.
fn ntp_ms(v: &[u8]) -> Option<u64> {
    if v.len() != 8 {
        return None;
    }
    let x = be_uint(v);
    let secs = (x >> 32).checked_sub(2_208_988_800)?;
    let frac_ms = ((x & 0xFFFF_FFFF) * 1000) >> 32;
    Some(secs * 1000 + frac_ms)
}

#[derive(Default)]
struct Times {
    first_uptime: Option<u64>,
    last_uptime: Option<u64>,
    init_ms: Option<u64>,
}

fn to_flow_record(t: &Template, values: &[&[u8]], ctx: &Ctx, cache: &TemplateCache) -> FlowRecord {
    let proto = if ctx.ipfix() {
        FlowProtocol::Ipfix
    } else {
        FlowProtocol::NetflowV9
    };
    let mut f = FlowRecord::new(proto, ctx.exporter, ctx.domain);
    let mut times = Times::default();
    let mut fallback_bytes = None;
    let mut fallback_packets = None;
    for (spec, &v) in t.fields.iter().zip(values) {
        if spec.enterprise.is_some() {
            continue;
        }
        match spec.id {
            1 => f.bytes = num(v),
            2 => f.packets = num(v),
            // octetTotalCount/packetTotalCount, v9 OUT_BYTES/OUT_PKTS.
            85 | 23 => fallback_bytes = fallback_bytes.or(num(v)),
            86 | 24 => fallback_packets = fallback_packets.or(num(v)),
            4 => f.protocol = num(v),
            5 => f.tos = num(v),
            6 => f.tcp_flags = num::<u64>(v).map(|x| (x & 0xFFFF) as u16),
            7 => f.src_port = num(v),
            11 => f.dst_port = num(v),
            8 | 27 => f.src_addr = ip(v).or(f.src_addr),
            12 | 28 => f.dst_addr = ip(v).or(f.dst_addr),
            9 | 29 => f.src_mask = num(v),
            13 | 30 => f.dst_mask = num(v),
            10 => f.input_if = num(v),
            14 => f.output_if = num(v),
            15 | 62 => f.next_hop = ip(v).or(f.next_hop),
            16 => f.src_as = num(v),
            17 => f.dst_as = num(v),
            21 => times.last_uptime = num(v),
            22 => times.first_uptime = num(v),
            32 | 139 => {
                if let Some(x) = num::<u64>(v) {
                    f.icmp_type = Some(((x >> 8) & 0xFF) as u8);
                    f.icmp_code = Some((x & 0xFF) as u8);
                }
            }
            176 | 178 => f.icmp_type = num(v),
            177 | 179 => f.icmp_code = num(v),
            34 | 50 => f.sampling_rate = num::<u32>(v).filter(|&r| r > 0),
            56 => f.src_mac = mac(v),
            80 => f.dst_mac = mac(v),
            57 => f.dst_mac = f.dst_mac.or(mac(v)),
            58 | 243 => f.vlan = f.vlan.or(num::<u16>(v).map(|x| x & 0x0FFF)),
            150 => f.start_ms = num::<u64>(v).map(|s| s * 1000),
            151 => f.end_ms = num::<u64>(v).map(|s| s * 1000),
            152 => f.start_ms = num(v),
            153 => f.end_ms = num(v),
            154 | 156 => f.start_ms = ntp_ms(v),
            155 | 157 => f.end_ms = ntp_ms(v),
            160 => times.init_ms = num(v),
            _ => {}
        }
    }
    if f.bytes.is_none() {
        f.bytes = fallback_bytes;
    }
    if f.packets.is_none() {
        f.packets = fallback_packets;
    }
    let to_abs = |up: Option<u64>| -> Option<u64> {
        let up = up?;
        match ctx.sys_uptime {
            Some(sys) => uptime_to_unix_ms(ctx.export_ms, sys, up as u32),
            None => times.init_ms.map(|i| i.saturating_add(up)),
        }
    };
    if f.start_ms.is_none() {
        f.start_ms = to_abs(times.first_uptime);
    }
    if f.end_ms.is_none() {
        f.end_ms = to_abs(times.last_uptime);
    }
    if f.sampling_rate.is_none() {
        f.sampling_rate = cache.sampling(ctx.exporter, ctx.domain).map(|s| s.rate);
    }
    fix_icmp(&mut f);
    f
}

fn learn_options(t: &Template, values: &[&[u8]], ctx: &Ctx, cache: &mut TemplateCache) {
    let mut if_index: Option<u32> = None;
    let mut interval: Option<u64> = None;
    let mut packet_interval: Option<u64> = None;
    let mut packet_space: Option<u64> = None;
    let mut algorithm: Option<u8> = None;
    let mut name: Option<String> = None;
    let mut description: Option<String> = None;
    for (i, (spec, &v)) in t.fields.iter().zip(values).enumerate() {
        if spec.enterprise.is_some() {
            continue;
        }
        let scope = i < t.scope_fields;
        if scope {
            // v9 scope type 2 = Interface; IPFIX scope IE 10/14 = ifIndex.
            let is_if = if ctx.ipfix() {
                matches!(spec.id, 10 | 14)
            } else {
                spec.id == 2
            };
            if is_if {
                if_index = num(v);
            }
            continue;
        }
        match spec.id {
            // samplingInterval / v9 FLOW_SAMPLER_RANDOM_INTERVAL.
            34 | 50 => interval = num(v),
            // samplingAlgorithm / v9 FLOW_SAMPLER_MODE.
            35 | 49 => algorithm = num(v),
            305 => packet_interval = num(v),
            306 => packet_space = num(v),
            10 | 14 if if_index.is_none() => if_index = num(v),
            82 => name = Some(text(v)),
            83 => description = Some(text(v)),
            _ => {}
        }
    }
    let rate = match (interval, packet_interval, packet_space) {
        (Some(i), _, _) if i > 0 => Some(i),
        (_, Some(pi), Some(ps)) if pi > 0 => Some((pi + ps) / pi),
        _ => None,
    };
    if let Some(rate) = rate.and_then(|r| u32::try_from(r).ok()) {
        cache.set_sampling(ctx.exporter, ctx.domain, SamplingInfo { rate, algorithm });
    }
    if let (Some(idx), true) = (if_index, name.is_some() || description.is_some()) {
        cache.set_interface(
            ctx.exporter,
            ctx.domain,
            idx,
            InterfaceInfo { name, description },
        );
    }
}

/// Lossy text of a string IE, without trailing NULs.
fn text(v: &[u8]) -> String {
    let end = v.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    String::from_utf8_lossy(&v[..end]).into_owned()
}
