//! One device over SNMP v2c or v3: a session (created lazily, re-created after a timeout so a late reply can
//! never be taken for the next one, re-initialised when the agent's USM engine changes), GETs of the system
//! scalars and multi-column GETBULK walks of ifTable/ifXTable, each request with a timeout and retries.

use crate::oid;
use crate::table::{self, Sample, Val};
use crate::{AuthProtocol, Credentials, PrivProtocol, SnmpError, Target};
use snmp2::{v3, AsyncSession, Oid, Value};

/// Most GETBULK rounds one walk may take (a guard against agents whose OIDs do not increase).
const MAX_ROUNDS: usize = 10_000;
/// SNMP error-status tooBig.
const TOO_BIG: u32 = 1;

/// A poller of one device; keeps its session and what it learnt about the device between polls.
pub struct Client {
    target: Target,
    session: Option<Box<AsyncSession>>,
    /// The device lacks HC counters or ifName somewhere: walk the fallback columns too.
    fallback: bool,
    next_req_id: i32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.target)
            .field("connected", &self.session.is_some())
            .field("fallback", &self.fallback)
            .finish()
    }
}

enum Op<'a> {
    Get(&'a [Vec<u64>]),
    Bulk(&'a [Vec<u64>], u32),
}

fn to_oid(v: &[u64]) -> Result<Oid<'static>, SnmpError> {
    Oid::from(v).map_err(|e| SnmpError::Protocol(format!("bad OID {v:?}: {e:?}")))
}

fn from_oid(o: &Oid<'_>) -> Option<Vec<u64>> {
    o.iter().map(|i| i.collect())
}

fn owned(v: &Value<'_>) -> Val {
    match v {
        Value::Integer(n) => Val::Int(*n),
        Value::OctetString(b) => Val::Bytes(b.to_vec()),
        Value::Counter32(n) => Val::C32(*n),
        Value::Counter64(n) => Val::C64(*n),
        Value::Unsigned32(n) => Val::Gauge(*n),
        Value::Timeticks(n) => Val::Ticks(*n),
        Value::EndOfMibView | Value::NoSuchObject | Value::NoSuchInstance => Val::Missing,
        _ => Val::Other,
    }
}

fn security(c: &Credentials) -> Option<v3::Security> {
    let Credentials::V3 {
        user,
        auth,
        auth_password,
        privacy,
    } = c
    else {
        return None;
    };
    let proto = match auth {
        AuthProtocol::Md5 => v3::AuthProtocol::Md5,
        AuthProtocol::Sha1 => v3::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => v3::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => v3::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
    };
    let mut s = v3::Security::new(user.as_bytes(), auth_password).with_auth_protocol(proto);
    if let Some((p, pass)) = privacy {
        let cipher = match p {
            PrivProtocol::Des => v3::Cipher::Des,
            PrivProtocol::Aes128 => v3::Cipher::Aes128,
            PrivProtocol::Aes192 => v3::Cipher::Aes192,
            PrivProtocol::Aes256 => v3::Cipher::Aes256,
        };
        s = s.with_auth(v3::Auth::AuthPriv {
            cipher,
            privacy_password: pass.clone(),
        });
        if matches!(p, PrivProtocol::Aes192 | PrivProtocol::Aes256) {
            s = s.with_key_extension_method(v3::KeyExtension::Blumenthal);
        }
    } else {
        s = s.with_auth(v3::Auth::AuthNoPriv);
    }
    Some(s)
}

fn classify(e: snmp2::Error) -> SnmpError {
    match e {
        snmp2::Error::AuthFailure(k) => SnmpError::Security(format!("{k:?}")),
        snmp2::Error::Crypto(m) => SnmpError::Security(m),
        snmp2::Error::Send | snmp2::Error::Receive => {
            SnmpError::Io(std::io::Error::other(e.to_string()))
        }
        other => SnmpError::Protocol(other.to_string()),
    }
}

impl Client {
    /// A client for `target`; nothing is sent until [`Client::poll`].
    pub fn new(target: Target) -> Self {
        Self {
            target,
            session: None,
            fallback: false,
            next_req_id: 1,
        }
    }

    /// The device.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Drops the session (the next request opens a new socket and, for v3, rediscovers the engine).
    pub fn reset(&mut self) {
        self.session = None;
    }

    async fn open(&mut self) -> Result<(), SnmpError> {
        if self.session.is_some() {
            return Ok(());
        }
        let addr = self.target.addr;
        let id = self.next_req_id;
        let t = self.target.timeout;
        let s = match &self.target.credentials {
            Credentials::V2c { community } => {
                Box::new(AsyncSession::new_v2c(addr, community, id).await?)
            }
            c @ Credentials::V3 { .. } => {
                let sec =
                    security(c).ok_or_else(|| SnmpError::Protocol("no v3 security".into()))?;
                let mut s = Box::new(AsyncSession::new_v3(addr, id, sec).await?);
                // Engine discovery: two round trips, each within the timeout.
                match tokio::time::timeout(t * 2, s.init()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(classify(e)),
                    Err(_) => {
                        return Err(SnmpError::Timeout {
                            timeout: t,
                            attempts: 1,
                        })
                    }
                }
                s
            }
        };
        // Request ids keep increasing across sessions of this client.
        self.next_req_id = self.next_req_id.wrapping_add(1 << 16);
        self.session = Some(s);
        Ok(())
    }

    /// One request with timeout and retries; returns the error-status and the varbinds.
    async fn request(&mut self, op: &Op<'_>) -> Result<(u32, Vec<(Vec<u64>, Val)>), SnmpError> {
        let attempts = self.target.retries.saturating_add(1);
        let t = self.target.timeout;
        let mut last = SnmpError::Timeout {
            timeout: t,
            attempts,
        };
        for _ in 0..attempts {
            if let Err(e) = self.open().await {
                self.reset();
                last = e;
                if matches!(last, SnmpError::Security(_)) {
                    return Err(last);
                }
                continue;
            }
            let Some(s) = self.session.as_mut() else {
                continue;
            };
            let oids: Vec<Oid<'static>> = match op {
                Op::Get(o) | Op::Bulk(o, _) => {
                    o.iter().map(|v| to_oid(v)).collect::<Result<_, _>>()?
                }
            };
            let refs: Vec<&Oid<'_>> = oids.iter().collect();
            let fut = async {
                let pdu = match op {
                    Op::Get(_) => s.get_many(&refs).await,
                    Op::Bulk(_, reps) => s.getbulk(&refs, 0, *reps).await,
                }?;
                let mut vbs = Vec::new();
                for (name, value) in pdu.varbinds {
                    if let Some(o) = from_oid(&name) {
                        vbs.push((o, owned(&value)));
                    }
                }
                Ok::<_, snmp2::Error>((pdu.error_status, vbs))
            };
            match tokio::time::timeout(t, fut).await {
                Ok(Ok(r)) => return Ok(r),
                // The agent's engine changed (it restarted) or it refused our credentials (it answers with an
                // unauthenticated report either way): rediscover and repeat; if it persists, it is a security
                // error.
                Ok(Err(e @ snmp2::Error::AuthUpdated))
                | Ok(Err(
                    e @ snmp2::Error::AuthFailure(
                        v3::AuthErrorKind::EngineBootsMismatch
                        | v3::AuthErrorKind::EngineTimeMismatch
                        | v3::AuthErrorKind::NotAuthenticated,
                    ),
                )) => {
                    self.reset();
                    last = SnmpError::Security(format!(
                        "{e} (wrong user, pass phrase or protocol, or the agent restarted)"
                    ));
                }
                Ok(Err(snmp2::Error::RequestIdMismatch)) => {
                    self.reset();
                    last = SnmpError::Protocol("late reply".into());
                }
                Ok(Err(e)) => {
                    self.reset();
                    return Err(classify(e));
                }
                Err(_) => {
                    // A late reply must not be read as the answer to the next request: new socket.
                    self.reset();
                    last = SnmpError::Timeout {
                        timeout: t,
                        attempts,
                    };
                }
            }
        }
        Err(last)
    }

    /// Walks several table columns at once with GETBULK: each request asks for every unfinished column from
    /// where it stopped, so a table of R rows and C columns takes about R / max_repetitions requests.
    pub async fn walk(&mut self, columns: &[Vec<u64>]) -> Result<Vec<(Vec<u64>, Val)>, SnmpError> {
        let mut cursors: Vec<(usize, Vec<u64>)> = columns.iter().cloned().enumerate().collect();
        let mut out = Vec::new();
        let mut reps = self.target.max_repetitions.max(1);
        for _ in 0..MAX_ROUNDS {
            if cursors.is_empty() {
                return Ok(out);
            }
            let oids: Vec<Vec<u64>> = cursors.iter().map(|(_, o)| o.clone()).collect();
            let (status, vbs) = self.request(&Op::Bulk(&oids, reps)).await?;
            if status == TOO_BIG && reps > 1 {
                reps = (reps / 2).max(1);
                continue;
            }
            if status != 0 {
                return Err(SnmpError::Agent { status, index: 0 });
            }
            let k = cursors.len();
            let mut done = vec![false; k];
            let mut progressed = false;
            for (i, (o, v)) in vbs.into_iter().enumerate() {
                let c = i % k;
                if done[c] {
                    continue;
                }
                let col = &columns[cursors[c].0];
                if matches!(v, Val::Missing) || o.len() <= col.len() || !o.starts_with(col) {
                    done[c] = true;
                    progressed = true;
                    continue;
                }
                if o <= cursors[c].1 {
                    return Err(SnmpError::Protocol(format!(
                        "agent returned OIDs out of order in column {col:?}"
                    )));
                }
                cursors[c].1 = o.clone();
                progressed = true;
                out.push((o, v));
            }
            if !progressed {
                return Err(SnmpError::Protocol(
                    "GETBULK returned nothing usable".into(),
                ));
            }
            let mut n = 0;
            cursors.retain(|_| {
                let keep = !done[n];
                n += 1;
                keep
            });
        }
        Err(SnmpError::Protocol("walk did not end".into()))
    }

    /// Polls the device once: sysUpTime, sysName and the interface tables.
    pub async fn poll(&mut self) -> Result<Sample, SnmpError> {
        let scalars = [oid::SYS_UPTIME.to_vec(), oid::SYS_NAME.to_vec()];
        let (status, sys) = self.request(&Op::Get(&scalars)).await?;
        if status != 0 {
            return Err(SnmpError::Agent { status, index: 0 });
        }
        let find = |o: &[u64]| sys.iter().find(|(n, _)| n == o).map(|(_, v)| v);
        let mut cols = oid::primary_columns();
        if self.fallback {
            cols.extend(oid::fallback_columns());
        }
        let mut rows = self.walk(&cols).await?;
        let mut sample = table::build(find(oid::SYS_UPTIME), find(oid::SYS_NAME), &rows);
        if !self.fallback && sample.needs_fallback {
            // Learnt once per client: this device needs the 32-bit counters / ifDescr as well.
            self.fallback = true;
            rows.extend(self.walk(&oid::fallback_columns()).await?);
            sample = table::build(find(oid::SYS_UPTIME), find(oid::SYS_NAME), &rows);
        }
        if !matches!(find(oid::SYS_UPTIME), Some(Val::Ticks(_))) {
            return Err(SnmpError::Protocol("no sysUpTime.0 in the response".into()));
        }
        Ok(sample)
    }
}
