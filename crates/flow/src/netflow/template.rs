//! Template cache for NetFlow v9 and IPFIX, plus what options data taught us
//! (sampling rates and interface names).
//!
//! Keyed by exporter address, observation domain (v9 source id) and template
//! id. The cache never reads a clock: every operation that may expire
//! templates takes the caller's current time in seconds.

use std::collections::HashMap;
use std::net::IpAddr;

/// One field specifier of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    /// Information element id / NetFlow v9 field type (enterprise bit cleared).
    pub id: u16,
    /// Field length in bytes; 65535 = variable length (IPFIX).
    pub length: u16,
    /// Private enterprise number for enterprise-specific IPFIX elements.
    pub enterprise: Option<u32>,
}

/// Length value marking a variable-length IPFIX field.
pub const VARIABLE_LENGTH: u16 = 0xFFFF;

/// A data or options template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Template id (>= 256).
    pub id: u16,
    /// Number of leading scope fields (0 for a data template).
    pub scope_fields: usize,
    /// Scope fields followed by the other fields.
    pub fields: Vec<FieldSpec>,
}

impl Template {
    /// True for an options template.
    pub fn is_options(&self) -> bool {
        self.scope_fields > 0
    }

    /// Minimum encoded record length (variable-length fields count 1 byte).
    pub fn min_record_len(&self) -> usize {
        self.fields
            .iter()
            .map(|f| {
                if f.length == VARIABLE_LENGTH {
                    1
                } else {
                    usize::from(f.length)
                }
            })
            .sum()
    }
}

/// Safety limits and expiry for a [`TemplateCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Templates kept per exporter address (all domains together).
    pub max_templates_per_exporter: usize,
    /// Fields accepted in one template.
    pub max_fields: usize,
    /// Largest accepted minimum record length of a template, in bytes.
    pub max_record_len: usize,
    /// Templates not refreshed for this many seconds are dropped; `None`
    /// keeps them forever (until withdrawn or replaced).
    pub template_timeout_secs: Option<u64>,
    /// Interface names remembered per exporter.
    pub max_interfaces_per_exporter: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_templates_per_exporter: 1024,
            max_fields: 256,
            max_record_len: 8192,
            template_timeout_secs: Some(1800),
            max_interfaces_per_exporter: 16_384,
        }
    }
}

/// Counters kept by the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Templates added or replaced.
    pub templates_learned: u64,
    /// Templates withdrawn by the exporter (IPFIX).
    pub templates_withdrawn: u64,
    /// Templates dropped by expiry.
    pub templates_expired: u64,
    /// Templates rejected for exceeding a limit.
    pub templates_rejected: u64,
    /// Data sets skipped because their template was unknown.
    pub missing_template_sets: u64,
}

/// Interface name and description learned from options data (IE 82 / 83).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceInfo {
    /// interfaceName (IE 82).
    pub name: Option<String>,
    /// interfaceDescription (IE 83).
    pub description: Option<String>,
}

/// Sampling parameters learned from options data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SamplingInfo {
    /// One packet in `rate` is sampled.
    pub rate: u32,
    /// Sampling algorithm (IE 35: 1 deterministic, 2 random), if sent.
    pub algorithm: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    exporter: IpAddr,
    version: u16,
    domain: u32,
    id: u16,
}

#[derive(Debug, Clone)]
struct Entry {
    template: Template,
    last_seen: u64,
}

/// Templates and options-derived state, per exporter and observation domain.
#[derive(Debug, Clone, Default)]
pub struct TemplateCache {
    config: CacheConfig,
    templates: HashMap<Key, Entry>,
    per_exporter: HashMap<IpAddr, usize>,
    sampling: HashMap<(IpAddr, u32), SamplingInfo>,
    interfaces: HashMap<(IpAddr, u32, u32), InterfaceInfo>,
    interfaces_per_exporter: HashMap<IpAddr, usize>,
    stats: CacheStats,
}

/// Why a template was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    TooManyTemplates(usize),
    TooManyFields(usize),
    RecordTooLong(usize),
}

impl TemplateCache {
    /// An empty cache with the given limits.
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The cache's configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Number of templates held.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// True if no template is held.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Number of templates (data and options) held for one exporter.
    pub fn templates_of(&self, exporter: IpAddr) -> usize {
        self.per_exporter.get(&exporter).copied().unwrap_or(0)
    }

    /// Exporters that have at least one template, with their template counts.
    pub fn exporters(&self) -> Vec<(IpAddr, usize)> {
        let mut v: Vec<(IpAddr, usize)> = self.per_exporter.iter().map(|(a, n)| (*a, *n)).collect();
        v.sort();
        v
    }

    /// Interface names/descriptions learned for one exporter: `(domain, ifIndex, info)`, sorted.
    pub fn interfaces_of(&self, exporter: IpAddr) -> Vec<(u32, u32, InterfaceInfo)> {
        let mut v: Vec<(u32, u32, InterfaceInfo)> = self
            .interfaces
            .iter()
            .filter(|(k, _)| k.0 == exporter)
            .map(|(k, i)| (k.1, k.2, i.clone()))
            .collect();
        v.sort_by_key(|(d, i, _)| (*d, *i));
        v
    }

    /// Sampling learned from options data for an exporter's domain.
    pub fn sampling(&self, exporter: IpAddr, domain: u32) -> Option<SamplingInfo> {
        self.sampling.get(&(exporter, domain)).copied()
    }

    /// Interface name/description learned from options data.
    pub fn interface(
        &self,
        exporter: IpAddr,
        domain: u32,
        if_index: u32,
    ) -> Option<&InterfaceInfo> {
        self.interfaces.get(&(exporter, domain, if_index))
    }

    /// Drop templates not refreshed within the timeout; returns how many.
    pub fn expire(&mut self, now_secs: u64) -> usize {
        let Some(timeout) = self.config.template_timeout_secs else {
            return 0;
        };
        let before = self.templates.len();
        let per = &mut self.per_exporter;
        self.templates.retain(|k, e| {
            let keep = now_secs.saturating_sub(e.last_seen) <= timeout;
            if !keep {
                if let Some(c) = per.get_mut(&k.exporter) {
                    *c = c.saturating_sub(1);
                }
            }
            keep
        });
        let n = before - self.templates.len();
        self.stats.templates_expired += n as u64;
        n
    }

    /// Forget everything about one exporter (e.g. after it restarted).
    pub fn remove_exporter(&mut self, exporter: IpAddr) {
        self.templates.retain(|k, _| k.exporter != exporter);
        self.per_exporter.remove(&exporter);
        self.sampling.retain(|k, _| k.0 != exporter);
        self.interfaces.retain(|k, _| k.0 != exporter);
        self.interfaces_per_exporter.remove(&exporter);
    }

    pub(crate) fn insert(
        &mut self,
        exporter: IpAddr,
        version: u16,
        domain: u32,
        template: Template,
        now: u64,
    ) -> Result<(), Rejected> {
        let r = self.check(exporter, version, domain, &template);
        if let Err(e) = r {
            self.stats.templates_rejected += 1;
            return Err(e);
        }
        let key = Key {
            exporter,
            version,
            domain,
            id: template.id,
        };
        let entry = Entry {
            template,
            last_seen: now,
        };
        if self.templates.insert(key, entry).is_none() {
            *self.per_exporter.entry(exporter).or_insert(0) += 1;
        }
        self.stats.templates_learned += 1;
        Ok(())
    }

    fn check(
        &self,
        exporter: IpAddr,
        version: u16,
        domain: u32,
        t: &Template,
    ) -> Result<(), Rejected> {
        if t.fields.len() > self.config.max_fields {
            return Err(Rejected::TooManyFields(t.fields.len()));
        }
        let len = t.min_record_len();
        if len > self.config.max_record_len {
            return Err(Rejected::RecordTooLong(len));
        }
        let key = Key {
            exporter,
            version,
            domain,
            id: t.id,
        };
        let count = self.per_exporter.get(&exporter).copied().unwrap_or(0);
        if !self.templates.contains_key(&key) && count >= self.config.max_templates_per_exporter {
            return Err(Rejected::TooManyTemplates(count));
        }
        Ok(())
    }

    /// Withdraw one template (`Some(id)`) or all data (`options == false`) or
    /// options templates of a domain. Returns how many were removed.
    pub(crate) fn withdraw(
        &mut self,
        exporter: IpAddr,
        version: u16,
        domain: u32,
        id: Option<u16>,
        options: bool,
    ) -> usize {
        let before = self.templates.len();
        self.templates.retain(|k, e| {
            !(k.exporter == exporter
                && k.version == version
                && k.domain == domain
                && match id {
                    Some(i) => k.id == i,
                    None => e.template.is_options() == options,
                })
        });
        let n = before - self.templates.len();
        if let Some(c) = self.per_exporter.get_mut(&exporter) {
            *c = c.saturating_sub(n);
        }
        self.stats.templates_withdrawn += n as u64;
        n
    }

    /// Look a template up, expiring it if stale.
    pub(crate) fn get(
        &mut self,
        exporter: IpAddr,
        version: u16,
        domain: u32,
        id: u16,
        now: u64,
    ) -> Option<Template> {
        let key = Key {
            exporter,
            version,
            domain,
            id,
        };
        let stale = match (self.templates.get(&key), self.config.template_timeout_secs) {
            (None, _) => return None,
            (Some(e), Some(t)) => now.saturating_sub(e.last_seen) > t,
            (Some(_), None) => false,
        };
        if stale {
            self.templates.remove(&key);
            if let Some(c) = self.per_exporter.get_mut(&exporter) {
                *c = c.saturating_sub(1);
            }
            self.stats.templates_expired += 1;
            return None;
        }
        self.templates.get(&key).map(|e| e.template.clone())
    }

    pub(crate) fn note_rejected(&mut self) {
        self.stats.templates_rejected += 1;
    }

    pub(crate) fn note_missing(&mut self) {
        self.stats.missing_template_sets += 1;
    }

    pub(crate) fn set_sampling(&mut self, exporter: IpAddr, domain: u32, info: SamplingInfo) {
        self.sampling.insert((exporter, domain), info);
    }

    pub(crate) fn set_interface(
        &mut self,
        exporter: IpAddr,
        domain: u32,
        if_index: u32,
        info: InterfaceInfo,
    ) {
        let key = (exporter, domain, if_index);
        if !self.interfaces.contains_key(&key) {
            let c = self.interfaces_per_exporter.entry(exporter).or_insert(0);
            if *c >= self.config.max_interfaces_per_exporter {
                return;
            }
            *c += 1;
        }
        self.interfaces.insert(key, info);
    }
}
