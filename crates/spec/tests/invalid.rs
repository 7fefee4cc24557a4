//! The corpus of invalid specs under `tests/invalid/`: one file per mistake. Each file says what it gets wrong
//! (`# mistake:`) and every diagnostic it must produce, exactly, as `# expect: LINE:COL severity[code] message`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

struct Expect {
    line: usize,
    col: usize,
    head: String,
    message: String,
}

fn expectations(text: &str) -> Vec<Expect> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (pos, rest) = e.split_once(' ').unwrap();
            let (line, col) = pos.split_once(':').unwrap();
            let (head, message) = rest.split_once(' ').unwrap();
            Expect {
                line: line.parse().unwrap(),
                col: col.parse().unwrap(),
                head: head.to_string(),
                message: message.to_string(),
            }
        })
        .collect()
}

#[test]
fn every_invalid_spec_reports_exactly_its_mistakes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus shrank: {}", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.starts_with("# mistake: "),
            "{name} does not say what it gets wrong"
        );
        let expected = expectations(&text);
        assert!(!expected.is_empty(), "{name} expects nothing");
        let checked = yagura_spec::check(&name, &text);
        assert!(checked.has_errors(), "{name} was accepted");
        assert!(checked.plan.is_none(), "{name} was planned");
        let short = checked.report().short();
        let got: Vec<&str> = short.lines().collect();
        if got.len() != expected.len() {
            failures.push(format!(
                "{name}: expected {} diagnostics, got {}:\n{short}",
                expected.len(),
                got.len()
            ));
            continue;
        }
        for (e, g) in expected.iter().zip(&got) {
            let want = format!("{name}:{}:{}: {}: {}", e.line, e.col, e.head, e.message);
            if !g.starts_with(&want) {
                failures.push(format!("{name}:\n  want {want}\n  got  {g}"));
            }
            if e.head.contains("[unknown-key]") && !g.contains("did you mean") {
                failures.push(format!("{name}: no suggestion in {g}"));
            }
            if e.head.contains("[secret-literal]")
                && (g.contains("public") || g.contains("hunter") || g.contains("minio123"))
            {
                failures.push(format!("{name}: a secret is echoed back: {g}"));
            }
        }
        // The human rendering names the same positions.
        let human = checked.report().human(false);
        for e in &expected {
            let pos = format!("{name}:{}:{}", e.line, e.col);
            if !human.contains(&pos) {
                failures.push(format!("{name}: human report lacks {pos}"));
            }
        }
        // JSON diagnostics carry line and col too.
        let json = checked.report().json();
        assert_eq!(json.as_array().unwrap().len(), expected.len(), "{name}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
