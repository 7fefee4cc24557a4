//! VIP addresses on a local interface (normally `lo`) via rtnetlink, so the node accepts traffic for an
//! announced VIP: added before the route is announced, removed after it is withdrawn.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::Handle;
use tracing::{debug, info};

/// Why an address could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    /// The netlink socket could not be opened.
    #[error("netlink: {0}")]
    Io(#[from] std::io::Error),
    /// The interface does not exist.
    #[error("interface `{0}` not found")]
    NoInterface(String),
    /// The kernel refused.
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
}

/// Adds and removes addresses on one interface.
#[derive(Debug, Clone)]
pub struct Addresses {
    handle: Handle,
    interface: String,
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

impl Addresses {
    /// Opens a netlink connection (spawned on the current runtime) for `interface`.
    pub fn new(interface: &str) -> Result<Self, VipError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Self {
            handle,
            interface: interface.to_string(),
        })
    }

    async fn index(&self) -> Result<u32, VipError> {
        nix::net::if_::if_nametoindex(self.interface.as_str())
            .map_err(|_| VipError::NoInterface(self.interface.clone()))
    }

    async fn list(&self, prefix: &IpNet) -> Result<Vec<AddressMessage>, VipError> {
        let index = self.index().await?;
        // Read the whole dump (dropping it early makes the netlink connection log a warning).
        let addrs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(prefix.addr())
            .set_prefix_length_filter(prefix.prefix_len())
            .execute()
            .try_collect()
            .await?;
        Ok(addrs)
    }

    /// Whether `prefix` (as an address) is on the interface.
    pub async fn contains(&self, prefix: &IpNet) -> Result<bool, VipError> {
        Ok(!self.list(prefix).await?.is_empty())
    }

    /// Adds `prefix` (already present is fine).
    pub async fn add(&self, prefix: &IpNet) -> Result<(), VipError> {
        let index = self.index().await?;
        match self
            .handle
            .address()
            .add(index, prefix.addr(), prefix.prefix_len())
            .execute()
            .await
        {
            Ok(()) => {
                info!(address = %prefix, interface = %self.interface, "VIP address added");
                Ok(())
            }
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `prefix` (already absent is fine).
    pub async fn remove(&self, prefix: &IpNet) -> Result<(), VipError> {
        for msg in self.list(prefix).await? {
            match self.handle.address().del(msg).execute().await {
                Ok(()) => {
                    info!(address = %prefix, interface = %self.interface, "VIP address removed")
                }
                Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => {}
                Err(e) => return Err(e.into()),
            }
        }
        debug!(address = %prefix, "VIP address absent");
        Ok(())
    }
}

/// The address a VIP prefix stands for (its network address).
pub fn vip_address(prefix: &IpNet) -> IpAddr {
    prefix.addr()
}
