//! The one syscall the disk guard needs and `nix` does not wrap for every quota type: `quotactl(Q_GETQUOTA)`
//! for user and project quotas (nix 0.30 knows `USRQUOTA` and `GRPQUOTA` but not `PRJQUOTA`). The only
//! `unsafe` code of the crate lives here: one call with a pointer to a live, zeroed `struct if_dqblk`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `USRQUOTA` (linux/quota.h).
pub const USRQUOTA: libc::c_int = 0;
/// `PRJQUOTA` (linux/quota.h; ext4 with `-O project,quota`, XFS with `prjquota`).
pub const PRJQUOTA: libc::c_int = 2;
/// Quota block unit of `dqb_bhardlimit`/`dqb_bsoftlimit` (`QIF_DQBLKSIZE`, 1 KiB).
const QIF_DQBLKSIZE: u64 = 1024;

/// One user's or project's quota on a filesystem, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawQuota {
    /// Bytes charged (`dqb_curspace`).
    pub used_bytes: u64,
    /// Hard byte limit (writes fail with EDQUOT past it); 0 = none.
    pub hard_bytes: u64,
    /// Soft byte limit (a grace period starts past it); 0 = none.
    pub soft_bytes: u64,
    /// Inodes charged.
    pub used_inodes: u64,
    /// Hard inode limit; 0 = none.
    pub hard_inodes: u64,
}

/// `quotactl(QCMD(Q_GETQUOTA, kind), device, id, &dqblk)`. `device` is the block device the filesystem is
/// mounted from (see `/proc/self/mountinfo`).
pub fn get_quota(kind: libc::c_int, device: &Path, id: u32) -> io::Result<RawQuota> {
    let special = CString::new(device.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "device path contains NUL"))?;
    let id = libc::c_int::try_from(id)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "quota id out of range"))?;
    let mut dq = libc::dqblk {
        dqb_bhardlimit: 0,
        dqb_bsoftlimit: 0,
        dqb_curspace: 0,
        dqb_ihardlimit: 0,
        dqb_isoftlimit: 0,
        dqb_curinodes: 0,
        dqb_btime: 0,
        dqb_itime: 0,
        dqb_valid: 0,
    };
    // SAFETY: `special` is a NUL-terminated string that outlives the call; `dq` is a live, initialised
    // `struct if_dqblk` (libc's `dqblk` has its layout) that Q_GETQUOTA fills and the kernel keeps no pointer to.
    let rc = unsafe {
        libc::quotactl(
            libc::QCMD(libc::Q_GETQUOTA, kind),
            special.as_ptr(),
            id,
            std::ptr::addr_of_mut!(dq).cast::<libc::c_char>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(RawQuota {
        used_bytes: dq.dqb_curspace,
        hard_bytes: dq.dqb_bhardlimit.saturating_mul(QIF_DQBLKSIZE),
        soft_bytes: dq.dqb_bsoftlimit.saturating_mul(QIF_DQBLKSIZE),
        used_inodes: dq.dqb_curinodes,
        hard_inodes: dq.dqb_ihardlimit,
    })
}
