//! Plans a generated spec of 100 clusters × 50 nodes: parse, validate and plan (goal: under 100 ms).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let text = yagura_spec::synth::large(100, 50);
    let checked = yagura_spec::check("bench.toml", &text);
    assert!(!checked.has_errors(), "{}", checked.report().short());
    let plan = checked.plan.unwrap();
    assert_eq!(plan.clusters.len(), 100);
    assert_eq!(
        plan.clusters.iter().map(|c| c.nodes.len()).sum::<usize>(),
        5000
    );
    let mut g = c.benchmark_group("plan");
    g.sample_size(30);
    g.bench_function("check+plan 100 clusters x 50 nodes", |b| {
        b.iter(|| {
            let checked = yagura_spec::check("bench.toml", std::hint::black_box(&text));
            std::hint::black_box(checked.plan.unwrap().clusters.len())
        })
    });
    g.bench_function("check+plan+json 100 clusters x 50 nodes", |b| {
        b.iter(|| {
            let checked = yagura_spec::check("bench.toml", std::hint::black_box(&text));
            std::hint::black_box(checked.plan.unwrap().to_json().len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
