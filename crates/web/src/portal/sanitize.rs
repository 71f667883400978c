//! Mail HTML made safe to show inside a portal page: ammonia keeps only harmless markup; no
//! remote image is fetched unless the reader asks (a remote image tells the sender when and
//! where a message was read); every link shows where it really goes.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sanitized HTML and how many remote images were left out.
pub struct Clean {
    pub html: String,
    pub blocked_images: usize,
}

pub fn html(input: &str, allow_remote: bool) -> Clean {
    let blocked = Arc::new(AtomicUsize::new(0));
    let counter = blocked.clone();
    let mut builder = ammonia::Builder::default();
    builder
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        .set_tag_attribute_value("a", "target", "_blank")
        .attribute_filter(move |element, attribute, value| {
            if element == "img" && attribute == "src" {
                let remote = value.trim_start().get(..4).is_some_and(|p| p.eq_ignore_ascii_case("http"))
                    || value.trim_start().starts_with("//");
                if remote && !allow_remote {
                    counter.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                if !remote {
                    // cid: and other local references cannot be shown here.
                    return None;
                }
            }
            if attribute == "srcset" {
                return None;
            }
            Some(value.into())
        });
    let cleaned = builder.clean(input).to_string();
    Clean { html: show_link_targets(&cleaned), blocked_images: blocked.load(Ordering::Relaxed) }
}

/// Puts the real target after each link's text: `<a href="T">text</a> <span>[T]</span>`.
/// Runs on ammonia's output, whose serialization is regular (`<a href="...">`, attributes
/// double-quoted and escaped, anchors never nested).
fn show_link_targets(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 64);
    let mut rest = html;
    while let Some(start) = rest.find("<a ") {
        let (before, from_a) = rest.split_at(start);
        out.push_str(before);
        let Some(tag_end) = from_a.find('>') else {
            out.push_str(from_a);
            return out;
        };
        let tag = &from_a[..tag_end];
        let href = tag.find("href=\"").and_then(|i| {
            let v = &tag[i + 6..];
            v.find('"').map(|j| &v[..j])
        });
        let Some(close) = from_a.find("</a>") else {
            out.push_str(from_a);
            return out;
        };
        out.push_str(&from_a[..close + 4]);
        if let Some(href) = href {
            // `href` is already escaped by ammonia's serializer.
            out.push_str(&format!(" <span class=\"link-target\">[{href}]</span>"));
        }
        rest = &from_a[close + 4..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_go_remote_images_wait_and_links_show_their_target() {
        let c = html(
            r#"<p onclick="x()">Hi<script>alert(1)</script></p><img src="https://track.example/p.gif"><a href="https://evil.example/login">https://bank.example</a><a href="javascript:alert(1)">j</a><style>body{}</style>"#,
            false,
        );
        assert!(!c.html.contains("script") && !c.html.contains("onclick") && !c.html.contains("<style"), "{}", c.html);
        assert!(!c.html.contains("track.example"), "{}", c.html);
        assert_eq!(c.blocked_images, 1);
        assert!(c.html.contains("<span class=\"link-target\">[https://evil.example/login]</span>"), "{}", c.html);
        assert!(!c.html.contains("javascript:"), "{}", c.html);
        let c = html(r#"<img src="https://img.example/a.png">"#, true);
        assert!(c.html.contains("https://img.example/a.png") && c.blocked_images == 0, "{}", c.html);
    }
}
