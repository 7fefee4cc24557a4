//! Backend selection, pure: round-robin, least-connections and Maglev consistent hashing of the client address
//! (Eisenbud et al., NSDI 2016). Hashes are fixed (FNV-1a), so every edge given the same backend names builds
//! the same table and sends a client to the same backend; a backend leaving moves few other clients.

use std::net::IpAddr;

use serde::Deserialize;

/// How a pool picks a backend for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Each healthy backend in turn.
    #[default]
    RoundRobin,
    /// The healthy backend with the fewest active connections (ties: the first in config order).
    LeastConnections,
    /// Maglev consistent hashing of the client address: the same backend on every edge.
    Maglev,
}

/// The Maglev lookup table size (a prime; 65537 keeps disruption near the ideal 1/N for up to hundreds of
/// backends).
pub const MAGLEV_SIZE: usize = 65_537;

/// FNV-1a 64 of `bytes` mixed with `seed`: stable across builds, platforms and Rust versions.
pub fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Final avalanche (splitmix64) so close inputs spread over the table.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The hash of a client address used for Maglev (IPv4-mapped IPv6 hashes as the IPv4 address).
pub fn client_hash(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(a) => fnv1a(0, &a.octets()),
        IpAddr::V6(a) => fnv1a(0, &a.octets()),
    }
}

/// A Maglev lookup table over a list of backend names: entry → index into that list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    /// Builds the table of `size` entries (`size` should be prime and larger than the number of names) for
    /// `names`; only the names decide it, so equal inputs give equal tables on every edge.
    pub fn new<S: AsRef<str>>(names: &[S], size: usize) -> Self {
        let n = names.len();
        if n == 0 || size < 2 {
            return Self { table: Vec::new() };
        }
        let m = size as u64;
        let perms: Vec<(u64, u64)> = names
            .iter()
            .map(|s| {
                let b = s.as_ref().as_bytes();
                (
                    fnv1a(0x5eed_0001, b) % m,
                    fnv1a(0x5eed_0002, b) % (m - 1) + 1,
                )
            })
            .collect();
        let mut next = vec![0u64; n];
        let mut table = vec![u32::MAX; size];
        let mut filled = 0;
        'fill: loop {
            for (i, (offset, skip)) in perms.iter().enumerate() {
                let mut c = (offset + next[i] * skip) % m;
                while table[c as usize] != u32::MAX {
                    next[i] += 1;
                    c = (offset + next[i] * skip) % m;
                }
                table[c as usize] = u32::try_from(i).unwrap_or(u32::MAX);
                next[i] += 1;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
        Self { table }
    }

    /// The index (into the names given to [`Maglev::new`]) for a key hash, `None` for an empty table.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let i = (hash % self.table.len() as u64) as usize;
        self.table.get(i).map(|&v| v as usize)
    }

    /// The raw table (for tests and comparison between edges).
    pub fn table(&self) -> &[u32] {
        &self.table
    }
}

/// The selector of one pool: the algorithm, the healthy backends (indices into the pool's backend list), and
/// for Maglev the table over their names.
#[derive(Debug, Clone)]
pub struct Selector {
    algorithm: Algorithm,
    up: Vec<usize>,
    maglev: Maglev,
}

impl Selector {
    /// A selector over the backends (`names`, in config order) whose `healthy` flag is set.
    pub fn new<S: AsRef<str>>(algorithm: Algorithm, names: &[S], healthy: &[bool]) -> Self {
        let up: Vec<usize> = (0..names.len())
            .filter(|&i| healthy.get(i).copied().unwrap_or(false))
            .collect();
        let maglev = if algorithm == Algorithm::Maglev {
            let up_names: Vec<&str> = up.iter().map(|&i| names[i].as_ref()).collect();
            Maglev::new(&up_names, MAGLEV_SIZE)
        } else {
            Maglev { table: Vec::new() }
        };
        Self {
            algorithm,
            up,
            maglev,
        }
    }

    /// How many backends are selectable.
    pub fn healthy(&self) -> usize {
        self.up.len()
    }

    /// Picks a backend index for a new connection from `client`: `turn` is a per-pool counter (round-robin),
    /// `active(i)` the active connections of backend `i` (least-connections). `None` when no backend is up.
    pub fn pick(&self, client: IpAddr, turn: u64, active: impl Fn(usize) -> u64) -> Option<usize> {
        if self.up.is_empty() {
            return None;
        }
        match self.algorithm {
            Algorithm::RoundRobin => self.up.get((turn % self.up.len() as u64) as usize).copied(),
            Algorithm::LeastConnections => {
                // Start the scan at the turn so equal loads spread instead of piling on the first backend.
                let n = self.up.len();
                let start = (turn % n as u64) as usize;
                (0..n)
                    .map(|k| self.up[(start + k) % n])
                    .min_by_key(|&i| active(i))
            }
            Algorithm::Maglev => self
                .maglev
                .lookup(client_hash(client))
                .and_then(|k| self.up.get(k).copied()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_over_healthy() {
        let s = Selector::new(
            Algorithm::RoundRobin,
            &["a", "b", "c"],
            &[true, false, true],
        );
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        let picks: Vec<_> = (0..4).map(|t| s.pick(ip, t, |_| 0).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
    }

    #[test]
    fn least_connections_picks_the_idlest() {
        let s = Selector::new(Algorithm::LeastConnections, &["a", "b", "c"], &[true; 3]);
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        let active = [5u64, 1, 3];
        assert_eq!(s.pick(ip, 0, |i| active[i]), Some(1));
        assert_eq!(s.pick(ip, 2, |i| active[i]), Some(1));
    }

    #[test]
    fn none_when_all_down() {
        let s = Selector::new(Algorithm::Maglev, &["a"], &[false]);
        assert_eq!(s.pick("::1".parse().unwrap(), 0, |_| 0), None);
    }

    #[test]
    fn maglev_is_balanced() {
        let names = ["m1", "m2", "m3"];
        let t = Maglev::new(&names, MAGLEV_SIZE);
        let mut counts = [0usize; 3];
        for &v in t.table() {
            counts[v as usize] += 1;
        }
        for c in counts {
            assert!((21_000..=22_700).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn mapped_v6_hashes_as_v4() {
        assert_eq!(
            client_hash("::ffff:198.18.0.7".parse().unwrap()),
            client_hash("198.18.0.7".parse().unwrap())
        );
    }
}
