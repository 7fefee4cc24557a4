//! The HTML the gate shows people: the sign-in page and error pages (signed in but not allowed, an organization
//! that restricts OAuth apps, an expired sign-in, an upstream that is down). Self-contained (inline CSS and SVG, no
//! external requests), escaped, and served with a strict Content-Security-Policy.

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The Content-Security-Policy of every page.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = r#"
*{box-sizing:border-box}
html,body{margin:0}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,sans-serif;
background:radial-gradient(1200px 600px at 10% -10%,#e3ecff 0,transparent 60%),radial-gradient(900px 500px at 110% 110%,#efe5ff 0,transparent 60%),#f6f7fb;
color:#1b2030;display:flex;min-height:100vh;padding:24px}
main{width:100%;max-width:440px;margin:auto}
.card{background:#fff;border:1px solid #e4e7ef;border-radius:16px;box-shadow:0 1px 2px rgba(16,24,40,.04),0 12px 32px rgba(16,24,40,.08);padding:36px 36px 28px}
.brand{display:flex;align-items:center;gap:10px;margin-bottom:28px;color:#2b3550;font-weight:650;letter-spacing:.2px}
.brand svg{width:30px;height:30px}
.brand small{font-weight:500;color:#8a93a8;margin-left:auto;font-size:12px}
h1{font-size:22px;line-height:1.3;margin:0 0 10px;font-weight:650}
p{margin:0 0 14px;line-height:1.55;color:#4a5368;font-size:15px}
.target{display:inline-block;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13.5px;background:#f1f3f9;border:1px solid #e4e7ef;border-radius:6px;padding:1px 7px;color:#2b3550}
.actions{display:flex;flex-direction:column;gap:10px;margin-top:22px}
a.btn{display:flex;align-items:center;justify-content:center;gap:10px;text-decoration:none;font-weight:600;font-size:15px;border-radius:10px;padding:12px 16px;border:1px solid #d5d9e4;color:#1b2030;background:#fff}
a.btn:hover{background:#f6f7fb}
a.btn.primary{background:#1f2328;border-color:#1f2328;color:#fff}
a.btn.primary:hover{background:#32383f}
a.btn svg{width:20px;height:20px;fill:currentColor}
.status{display:inline-flex;align-items:center;gap:8px;font-size:12.5px;font-weight:650;letter-spacing:.4px;text-transform:uppercase;border-radius:999px;padding:4px 10px;margin-bottom:14px}
.status.warn{background:#fff4e5;color:#a05a00}
.status.err{background:#feecec;color:#b42318}
.status.info{background:#eaf1ff;color:#2350b5}
.who{display:flex;align-items:center;gap:12px;background:#f8f9fc;border:1px solid #eceef4;border-radius:10px;padding:10px 12px;margin:6px 0 4px}
.avatar{width:34px;height:34px;border-radius:50%;background:linear-gradient(135deg,#6d8cff,#9b6dff);color:#fff;display:flex;align-items:center;justify-content:center;font-weight:700}
.who div{font-size:14px;color:#4a5368}.who b{color:#1b2030;display:block;font-size:14.5px}
.hint{font-size:13.5px;color:#6b7489;border-top:1px solid #eef0f5;margin-top:22px;padding-top:14px}
footer{text-align:center;color:#8a93a8;font-size:12.5px;margin-top:18px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px}
"#;

const LOGO: &str = r##"<svg viewBox="0 0 32 32" aria-hidden="true"><rect x="1" y="1" width="30" height="30" rx="8" fill="#1f2a44"/><path d="M8 12h16l-2-4H10z" fill="#8fb3ff"/><path d="M11 12v12M21 12v12M11 17h10M11 22h10M9 24h14" stroke="#fff" stroke-width="2" stroke-linecap="round" fill="none"/></svg>"##;

const GITHUB: &str = r#"<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M8 0C3.58 0 0 3.58 0 8c0 3.54 2.29 6.53 5.47 7.59.4.07.55-.17.55-.38 0-.19-.01-.82-.01-1.49-2.01.37-2.53-.49-2.69-.94-.09-.23-.48-.94-.82-1.13-.28-.15-.68-.52-.01-.53.63-.01 1.08.58 1.23.82.72 1.21 1.87.87 2.33.66.07-.52.28-.87.51-1.07-1.78-.2-3.64-.89-3.64-3.95 0-.87.31-1.59.82-2.15-.08-.2-.36-1.02.08-2.12 0 0 .67-.21 2.2.82.64-.18 1.32-.27 2-.27.68 0 1.36.09 2 .27 1.53-1.04 2.2-.82 2.2-.82.44 1.1.16 1.92.08 2.12.51.56.82 1.27.82 2.15 0 3.07-1.87 3.75-3.65 3.95.29.25.54.73.54 1.48 0 1.07-.01 1.93-.01 2.2 0 .21.15.46.55.38A8.013 8.013 0 0016 8c0-4.42-3.58-8-8-8z"/></svg>"#;

const KEY: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 14a3 3 0 110-6 3 3 0 010 6zm5.6-4A6 6 0 101 11a6 6 0 0011.6 1H15v2h2v-2h2v2h2v-4z"/></svg>"#;

fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{t} · yagura gate</title><style>{STYLE}</style></head><body><main><div class=\"card\">\
<div class=\"brand\">{LOGO}<span>yagura gate</span></div>{body}</div><footer>Protected by yagura gate</footer></main></body></html>",
        t = esc(title)
    )
}

/// One sign-in choice.
#[derive(Debug, Clone)]
pub struct Provider {
    /// `github` or `oidc`.
    pub kind: &'static str,
    /// Button label.
    pub label: String,
    /// Where the button goes.
    pub href: String,
}

/// The sign-in page.
pub fn sign_in(target: Option<&str>, providers: &[Provider]) -> String {
    let lead = match target {
        Some(t) => format!(
            "<p>Sign in to continue to <span class=\"target\">{}</span>.</p>",
            esc(t)
        ),
        None => "<p>Sign in to reach the services behind this gate.</p>".into(),
    };
    let mut buttons = String::new();
    for (i, p) in providers.iter().enumerate() {
        let icon = if p.kind == "github" { GITHUB } else { KEY };
        buttons.push_str(&format!(
            "<a class=\"btn{}\" href=\"{}\">{icon}<span>{}</span></a>",
            if i == 0 { " primary" } else { "" },
            esc(&p.href),
            esc(&p.label)
        ));
    }
    shell(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{lead}<div class=\"actions\">{buttons}</div>\
<p class=\"hint\">Access is granted by your organization and team membership, checked again every few minutes while you are signed in.</p>"
        ),
    )
}

/// Who is signed in, for error pages.
#[derive(Debug, Clone)]
pub struct Who<'a> {
    /// Login.
    pub user: &'a str,
    /// Provider label.
    pub via: &'a str,
}

/// An action button.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    /// Label.
    pub label: &'a str,
    /// Link.
    pub href: &'a str,
}

/// Kind of message.
#[derive(Debug, Clone, Copy)]
pub enum Tone {
    /// Access refused.
    Warn,
    /// Something failed.
    Error,
    /// Neutral.
    Info,
}

/// A message page: a status chip, a title, paragraphs (already HTML), who is signed in, actions and a hint.
pub fn message(
    chip: &str,
    tone: Tone,
    title: &str,
    paragraphs_html: &[String],
    who: Option<Who<'_>>,
    actions: &[Action<'_>],
    hint_html: Option<&str>,
) -> String {
    let class = match tone {
        Tone::Warn => "warn",
        Tone::Error => "err",
        Tone::Info => "info",
    };
    let mut b = format!(
        "<div class=\"status {class}\">{}</div><h1>{}</h1>",
        esc(chip),
        esc(title)
    );
    for p in paragraphs_html {
        b.push_str(&format!("<p>{p}</p>"));
    }
    if let Some(w) = who {
        let initial = w
            .user
            .chars()
            .next()
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default();
        b.push_str(&format!(
            "<div class=\"who\"><div class=\"avatar\">{}</div><div><b>{}</b>signed in with {}</div></div>",
            esc(&initial),
            esc(w.user),
            esc(w.via)
        ));
    }
    if !actions.is_empty() {
        b.push_str("<div class=\"actions\">");
        for (i, a) in actions.iter().enumerate() {
            b.push_str(&format!(
                "<a class=\"btn{}\" href=\"{}\">{}</a>",
                if i == 0 { " primary" } else { "" },
                esc(a.href),
                esc(a.label)
            ));
        }
        b.push_str("</div>");
    }
    if let Some(h) = hint_html {
        b.push_str(&format!("<p class=\"hint\">{h}</p>"));
    }
    shell(title, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let p = sign_in(Some("<script>"), &[]);
        assert!(!p.contains("<script>"));
        assert!(p.contains("&lt;script&gt;"));
    }
}
