//! Polls SNMP agents in rounds and prints how long each full round took (the SNMP benchmark's yagura side).
//!
//! `poll [--v3 USER:AUTHPASS:PRIVPASS] [--community C] [--rounds N] [--concurrency N] [--timeout-ms N]
//!  [--max-repetitions N] HOST:PORT...` — v3 uses SHA-1 + AES-128.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};
use yagura_snmp::{poller, AuthProtocol, Client, Credentials, PrivProtocol, Target};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut community, mut rounds, mut conc, mut timeout, mut reps) =
        ("public".to_string(), 5usize, 64usize, 2000u64, 25u32);
    let mut v3: Option<Credentials> = None;
    let mut addrs = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--community" => community = args.next().unwrap(),
            "--rounds" => rounds = args.next().unwrap().parse().unwrap(),
            "--concurrency" => conc = args.next().unwrap().parse().unwrap(),
            "--timeout-ms" => timeout = args.next().unwrap().parse().unwrap(),
            "--max-repetitions" => reps = args.next().unwrap().parse().unwrap(),
            "--v3" => {
                let s = args.next().unwrap();
                let p: Vec<&str> = s.splitn(3, ':').collect();
                v3 = Some(Credentials::V3 {
                    user: p[0].into(),
                    auth: AuthProtocol::Sha1,
                    auth_password: p[1].as_bytes().to_vec(),
                    privacy: Some((PrivProtocol::Aes128, p[2].as_bytes().to_vec())),
                });
            }
            _ => addrs.push(a.parse::<std::net::SocketAddr>().expect("HOST:PORT")),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut clients: Vec<Client> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Client::new(Target {
                    name: format!("dev{i}"),
                    addr: *a,
                    credentials: v3.clone().unwrap_or(Credentials::V2c {
                        community: community.as_bytes().to_vec(),
                    }),
                    timeout: Duration::from_millis(timeout),
                    retries: 1,
                    max_repetitions: reps,
                })
            })
            .collect();
        let mut times = Vec::new();
        for r in 0..rounds {
            let t = Instant::now();
            let (cs, outcomes) = poller::poll_round(clients, conc, Duration::from_secs(30)).await;
            clients = cs;
            let el = t.elapsed();
            let ok = outcomes.iter().filter(|o| o.result.is_ok()).count();
            let ifs: usize = outcomes
                .iter()
                .filter_map(|o| o.result.as_ref().ok())
                .map(|s| s.interfaces.len())
                .sum();
            if let Some(e) = outcomes.iter().find_map(|o| o.result.as_ref().err()) {
                eprintln!("round {r}: first error: {e}");
            }
            println!(
                "round {r}: {:.3} s, {ok}/{} devices, {ifs} interfaces",
                el.as_secs_f64(),
                outcomes.len()
            );
            times.push(el.as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        println!(
            "median round {:.3} s over {} rounds",
            times[times.len() / 2],
            times.len()
        );
    });
}
