//! HTTP/1.1 to upstreams without a connection task: [`codec`] turns heads and chunked bodies into bytes and
//! back (pure), [`conn`] drives one connection from the request that uses it. HTTP/2 upstreams and websocket
//! upgrades stay on hyper's client (`conns`).

pub mod codec;
pub mod conn;

pub use codec::{CodecError, Framing, Target};
pub use conn::{Conn, H1Error, Home, Io, Outgoing, ResponseBody};
