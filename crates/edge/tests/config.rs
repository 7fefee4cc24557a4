//! The edge config: the shipped example loads, and mistakes are all reported at their key paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use yagura_daemon::config;
use yagura_edge::config::{parse_community, parse_large_community, AnnounceWhen, EdgeConfig, Mode};

#[test]
fn the_example_config_loads() {
    let text = include_str!("../../../examples/edge.toml");
    let c = config::parse::<EdgeConfig>("edge.toml", text)
        .unwrap()
        .config;
    assert_eq!(c.asn, 65001);
    assert_eq!(c.peers[0].mode, Mode::Both);
    assert_eq!(c.vips[1].announce, AnnounceWhen::Hook);
    let bfd = c.peers[0].bfd_timing(&c.bfd).unwrap();
    assert_eq!(bfd.interval.as_millis(), 100);
    assert!(c.vips[0].wants_address());
}

#[test]
fn every_mistake_is_reported_with_its_position() {
    let text = r#"asn = 0
router_id = "0.0.0.0"
[bfd]
interval = "1ms"
[[peers]]
name = "R"
address = "198.18.0.1"
asn = 65000
keepalive = "5s"
md5_password_env = "not a name"
[[peers]]
name = "r2"
address = "198.18.0.1"
asn = 65000
local_address = "2001:db8::1"
graceful_restart = { restart_time = "5000s" }
[[vips]]
name = "a"
prefix = "198.19.0.10/32"
large_communities = ["1:2"]
[[vips]]
name = "a"
prefix = "198.19.0.10/32"
announce = "sometimes"
"#;
    let err = config::parse::<EdgeConfig>("e.toml", text)
        .unwrap_err()
        .to_string();
    // `announce = "sometimes"` is a type error; fix it to see the semantic ones.
    assert!(err.contains("e.toml:24:12"), "{err}");
    let text = text.replace("announce = \"sometimes\"", "announce = \"never\"");
    let err = config::parse::<EdgeConfig>("e.toml", &text)
        .unwrap_err()
        .to_string();
    for want in [
        "e.toml:1:7",   // asn 0
        "e.toml:2:13",  // router id
        "e.toml:4:12",  // BFD interval
        "e.toml:6:8",   // peer name
        "e.toml:9:13",  // keepalive > hold/3
        "e.toml:10:20", // env name
        "e.toml:13:11", // duplicate address
        "e.toml:15:17", // family mismatch
        "e.toml:16:37", // restart time
        "e.toml:20:22", // large community
        "e.toml:22:8",  // duplicate VIP name
        "e.toml:23:10", // duplicate prefix
    ] {
        assert!(err.contains(want), "missing {want} in\n{err}");
    }
    assert!(
        err.contains("(14 errors)") || err.contains("(12 errors)"),
        "{err}"
    );
    assert!(
        !err.contains("e.toml:5:1"),
        "the [bfd] error is repeated per peer:\n{err}"
    );
}

#[test]
fn communities_parse() {
    assert_eq!(parse_community("65000:100").unwrap().0, 65000 << 16 | 100);
    assert!(parse_community("no-export").is_ok());
    assert!(parse_community("70000:1").is_err());
    assert!(parse_large_community("4200000000:1:2").is_ok());
    assert!(parse_large_community("1:2").is_err());
}
