//! Prints a valid session cookie (`NAME=VALUE`) for a gate config, sealed with its cookie keys — for benchmarks
//! and smoke tests that cannot click through a sign-in. Usage:
//! `cargo run -p yagura-gate --example mint_session -- CONFIG USER [GROUP,GROUP…]`.

use std::process::ExitCode;
use yagura_gate::policy::Identity;
use yagura_gate::session::{Sealer, Session};
use yagura_gate::GateConfig;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, user, rest @ ..] = args.as_slice() else {
        eprintln!("usage: mint_session CONFIG USER [GROUP,GROUP…]");
        return ExitCode::from(2);
    };
    let cfg = match yagura_daemon::config::load::<GateConfig>(std::path::Path::new(config)) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let sealer = match Sealer::from_file(std::path::Path::new(cfg.cookie_secret_file.as_str())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let now = yagura_gate::proxy::now();
    let groups = rest
        .first()
        .map(|g| g.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let s = Session {
        sid: format!("bench-{now}"),
        who: Identity {
            provider: "github".into(),
            id: "1".into(),
            user: user.clone(),
            email: Some(format!("{user}@example.org")),
            groups,
            restricted: vec![],
        },
        iat: now,
        exp: now + cfg.session_ttl.as_secs(),
        chk: now,
        tok: "minted".into(),
        rt: None,
        cache: Default::default(),
    };
    match sealer.seal(&cfg.cookie_name, &s) {
        Some(v) => {
            println!("{}={v}", cfg.cookie_name);
            ExitCode::SUCCESS
        }
        None => ExitCode::from(1),
    }
}
