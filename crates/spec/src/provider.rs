//! What each provider offers and reserves: server sizes, disk sizes, global netmasks and the addresses of a
//! global network the provider keeps for itself.

use crate::model::Provider;

/// A provider's catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Catalogue {
    /// Host numbers at the bottom of a global network the provider keeps (gateway and router interfaces).
    pub reserved_low: u32,
    /// Netmasks the provider's router+switch offers (`None`: any).
    pub global_netmasks: Option<&'static [u8]>,
    /// vCPU counts offered (`None`: any).
    pub cores: Option<&'static [u32]>,
    /// Memory sizes offered, GB (`None`: any).
    pub memory_gb: Option<&'static [u32]>,
    /// Disk sizes offered, GB (`None`: any).
    pub disk_gb: Option<&'static [u32]>,
}

/// Sakura Cloud: the router+switch keeps .1 (gateway) and .2/.3 (its redundant interfaces); networks are /26–/28;
/// server plans and SSD sizes as the provider lists them.
const SAKURACLOUD: Catalogue = Catalogue {
    reserved_low: 3,
    global_netmasks: Some(&[26, 27, 28]),
    cores: Some(&[1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32]),
    memory_gb: Some(&[
        1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 28, 32, 48, 64, 96, 128, 192, 224, 256,
    ]),
    disk_gb: Some(&[20, 40, 100, 250, 500, 750, 1024, 2048, 4096]),
};

/// The local lab: only the gateway is kept; any size.
const LAB: Catalogue = Catalogue {
    reserved_low: 1,
    global_netmasks: None,
    cores: None,
    memory_gb: None,
    disk_gb: None,
};

/// The catalogue of `p`.
pub fn catalogue(p: Provider) -> Catalogue {
    match p {
        Provider::Sakuracloud => SAKURACLOUD,
        Provider::Lab => LAB,
    }
}

/// Formats an offer list for a hint.
pub fn offers(v: &[u32]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
