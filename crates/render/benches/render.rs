//! Rendering a 100-cluster platform (the spec benchmark's 100 × 50 nodes): check + plan + render in memory,
//! and render alone.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use yagura_spec::synth::{spec_text, SynthCluster};

fn bench(c: &mut Criterion) {
    let clusters: Vec<SynthCluster> = (0..100).map(|_| SynthCluster::sized(50)).collect();
    let text = spec_text(&clusters);
    let opts = yagura_render::Options::new("examples", "out");
    let checked = yagura_spec::check("bench.toml", &text);
    assert!(!checked.has_errors(), "{}", checked.report().short());
    let (spec, plan) = (checked.spec.unwrap(), checked.plan.unwrap());
    let tree = yagura_render::render(&spec, &plan, &opts).unwrap();
    eprintln!(
        "100 clusters: {} files, {} bytes",
        tree.len(),
        tree.iter().map(|(_, f)| f.bytes.len()).sum::<usize>()
    );
    let mut g = c.benchmark_group("render-100-clusters");
    g.sample_size(10);
    g.bench_function("render", |b| {
        b.iter(|| yagura_render::render(&spec, &plan, &opts).unwrap())
    });
    g.bench_function("check+plan+render", |b| {
        b.iter(|| {
            let ch = yagura_spec::check("bench.toml", &text);
            yagura_render::render(ch.spec.as_ref().unwrap(), ch.plan.as_ref().unwrap(), &opts)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
