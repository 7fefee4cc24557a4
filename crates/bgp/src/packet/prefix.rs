//! NLRI prefix encoding (RFC 4271 §4.3): a length in bits followed by the
//! minimum number of octets holding the prefix.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::reader::Reader;

/// Why a prefix list could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrefixError {
    /// Prefix length above 32 (IPv4) or 128 (IPv6).
    LengthTooLong,
    /// The field ends in the middle of a prefix.
    Truncated,
}

fn decode_raw<const N: usize>(r: &mut Reader<'_>) -> Result<([u8; N], u8), PrefixError> {
    let bits = r.u8().ok_or(PrefixError::Truncated)?;
    let max_bits = N * 8;
    if usize::from(bits) > max_bits {
        return Err(PrefixError::LengthTooLong);
    }
    let n = usize::from(bits).div_ceil(8);
    let bytes = r.take(n).ok_or(PrefixError::Truncated)?;
    let mut addr = [0u8; N];
    for (dst, src) in addr.iter_mut().zip(bytes) {
        *dst = *src;
    }
    Ok((addr, bits))
}

/// Decode a whole field of IPv4 prefixes. Host bits past the prefix length
/// are cleared.
pub(crate) fn decode_ipv4(buf: &[u8]) -> Result<Vec<Ipv4Net>, PrefixError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let (addr, bits) = decode_raw::<4>(&mut r)?;
        let net =
            Ipv4Net::new(Ipv4Addr::from(addr), bits).map_err(|_| PrefixError::LengthTooLong)?;
        out.push(net.trunc());
    }
    Ok(out)
}

/// Decode a whole field of IPv6 prefixes. Host bits past the prefix length
/// are cleared.
pub(crate) fn decode_ipv6(buf: &[u8]) -> Result<Vec<Ipv6Net>, PrefixError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let (addr, bits) = decode_raw::<16>(&mut r)?;
        let net =
            Ipv6Net::new(Ipv6Addr::from(addr), bits).map_err(|_| PrefixError::LengthTooLong)?;
        out.push(net.trunc());
    }
    Ok(out)
}

fn encode_raw(octets: &[u8], bits: u8, out: &mut Vec<u8>) {
    out.push(bits);
    let n = usize::from(bits).div_ceil(8);
    let mut bytes: Vec<u8> = octets.iter().copied().take(n).collect();
    // Clear host bits in the last octet so the encoding is canonical.
    let rem = bits % 8;
    if rem != 0 {
        if let Some(last) = bytes.last_mut() {
            *last &= 0xffu8 << (8 - rem);
        }
    }
    out.extend_from_slice(&bytes);
}

/// Append one IPv4 prefix.
pub(crate) fn encode_ipv4(net: &Ipv4Net, out: &mut Vec<u8>) {
    encode_raw(&net.addr().octets(), net.prefix_len(), out);
}

/// Append one IPv6 prefix.
pub(crate) fn encode_ipv6(net: &Ipv6Net, out: &mut Vec<u8>) {
    encode_raw(&net.addr().octets(), net.prefix_len(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_vectors() {
        let bytes = [24, 192, 0, 2, 32, 10, 0, 0, 1, 8, 10];
        let got = decode_ipv4(&bytes[..]).unwrap();
        assert_eq!(
            got,
            vec![v4("192.0.2.0/24"), v4("10.0.0.1/32"), v4("10.0.0.0/8")]
        );
        let mut out = Vec::new();
        for p in &got {
            encode_ipv4(p, &mut out);
        }
        assert_eq!(out, bytes);
    }

    #[test]
    fn default_route_is_one_octet() {
        assert_eq!(decode_ipv4(&[0]).unwrap(), vec![v4("0.0.0.0/0")]);
        let mut out = Vec::new();
        encode_ipv4(&v4("0.0.0.0/0"), &mut out);
        assert_eq!(out, [0]);
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(
            decode_ipv4(&[9, 10, 0xff]).unwrap(),
            vec![v4("10.128.0.0/9")]
        );
        let mut out = Vec::new();
        encode_ipv4(&"10.255.0.0/9".parse().unwrap(), &mut out);
        assert_eq!(out, [9, 10, 0x80]);
    }

    #[test]
    fn rejects_bad_prefixes() {
        assert_eq!(
            decode_ipv4(&[33, 1, 2, 3, 4, 5]),
            Err(PrefixError::LengthTooLong)
        );
        assert_eq!(decode_ipv4(&[24, 10, 0]), Err(PrefixError::Truncated));
        assert_eq!(decode_ipv4(&[8, 10, 24]), Err(PrefixError::Truncated));
        assert_eq!(decode_ipv6(&[129]), Err(PrefixError::LengthTooLong));
        assert_eq!(decode_ipv6(&[64, 0x20, 0x01]), Err(PrefixError::Truncated));
    }

    #[test]
    fn ipv6_vectors() {
        let bytes = [
            32, 0x20, 0x01, 0x0d, 0xb8, 128, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 1,
        ];
        let got = decode_ipv6(&bytes).unwrap();
        assert_eq!(
            got,
            vec![
                "2001:db8::/32".parse::<Ipv6Net>().unwrap(),
                "2001:db8::1/128".parse().unwrap()
            ]
        );
        let mut out = Vec::new();
        for p in &got {
            encode_ipv6(p, &mut out);
        }
        assert_eq!(out, bytes);
    }
}
