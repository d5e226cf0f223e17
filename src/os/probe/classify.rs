//! The docs/semantics.md §3 table: an HTTP answer to a verdict and a short human reason. Pure logic; the
//! failures that produce no HTTP answer at all are classified in `mod.rs`.

use netfailover_actors::ports::Verdict;

/// Most body bytes a check ever reads (docs/semantics.md §3); a server sending more is cut off.
pub const BODY_CAP: usize = 64 * 1024;

/// NetworkManager's header that declares the network online whatever the status or body.
pub const ONLINE_HEADER: &str = "x-networkmanager-status";

/// What the check knows about the answer before reading the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// `X-NetworkManager-Status: online` was present.
    pub online_header: bool,
}

/// How much of the body a decision needs: `None` when the head alone decides.
pub fn body_needed(head: Head, expected: &[u8]) -> Option<usize> {
    if head.online_header || !(200..300).contains(&head.status) {
        return None;
    }
    if expected.is_empty() {
        // 204 decides alone; for 200 one byte tells an empty body from a non-empty one.
        return (head.status == 200).then_some(1);
    }
    Some(expected.len().min(BODY_CAP))
}

/// The first bytes of the body, as far as the check read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyPrefix {
    pub bytes: Vec<u8>,
    /// The body ended within `bytes`.
    pub complete: bool,
}

/// Classifies an HTTP answer. `body` is what was read after [`body_needed`] asked for it.
pub fn classify(head: Head, expected: &[u8], body: Option<&BodyPrefix>) -> (Verdict, String) {
    let status = head.status;
    if head.online_header {
        return (
            Verdict::Full,
            format!("HTTP {status}, X-NetworkManager-Status: online"),
        );
    }
    if status >= 500 {
        return (Verdict::Limited, format!("HTTP {status}"));
    }
    if !(200..300).contains(&status) {
        let what = if (300..400).contains(&status) {
            " (redirect not followed)"
        } else {
            ""
        };
        return (Verdict::Portal, format!("HTTP {status}{what}"));
    }
    let empty = BodyPrefix {
        bytes: Vec::new(),
        complete: true,
    };
    let body = body.unwrap_or(&empty);
    if expected.is_empty() {
        if status == 204 {
            return (Verdict::Full, "HTTP 204".into());
        }
        if status == 200 && body.bytes.is_empty() && body.complete {
            return (Verdict::Full, "HTTP 200, empty body".into());
        }
        return (
            Verdict::Portal,
            format!("HTTP {status} with content, expected 204 or an empty body"),
        );
    }
    if body.bytes.starts_with(expected) {
        (Verdict::Full, format!("HTTP {status}, expected body"))
    } else {
        (Verdict::Portal, format!("HTTP {status}, unexpected body"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16) -> Head {
        Head {
            status,
            online_header: false,
        }
    }

    fn body(bytes: &[u8], complete: bool) -> BodyPrefix {
        BodyPrefix {
            bytes: bytes.to_vec(),
            complete,
        }
    }

    #[test]
    fn the_spec_table() {
        use Verdict::{Full, Limited, Portal};
        let cases: &[(u16, &[u8], Option<BodyPrefix>, Verdict)] = &[
            (204, b"", None, Full),
            (200, b"", Some(body(b"", true)), Full),
            (200, b"", Some(body(b"x", false)), Portal),
            (201, b"", None, Portal),
            (200, b"OK", Some(body(b"OK and more", false)), Full),
            (200, b"OK", Some(body(b"O", true)), Portal),
            (200, b"OK", Some(body(b"<html>", false)), Portal),
            (204, b"OK", Some(body(b"", true)), Portal),
            (302, b"", None, Portal),
            (301, b"OK", None, Portal),
            (404, b"", None, Portal),
            (403, b"", None, Portal),
            (500, b"", None, Limited),
            (503, b"OK", None, Limited),
        ];
        for (status, expected, prefix, want) in cases {
            let (got, reason) = classify(head(*status), expected, prefix.as_ref());
            assert_eq!(got, *want, "HTTP {status} expected {expected:?}: {reason}");
        }
    }

    #[test]
    fn the_online_header_wins() {
        let h = Head {
            status: 302,
            online_header: true,
        };
        assert_eq!(body_needed(h, b""), None);
        assert_eq!(classify(h, b"", None).0, Verdict::Full);
    }

    #[test]
    fn only_what_decides_is_read() {
        assert_eq!(body_needed(head(204), b""), None);
        assert_eq!(body_needed(head(200), b""), Some(1));
        assert_eq!(body_needed(head(200), b"hello"), Some(5));
        assert_eq!(body_needed(head(302), b"hello"), None);
        assert_eq!(body_needed(head(500), b""), None);
        let huge = vec![b'a'; BODY_CAP * 2];
        assert_eq!(body_needed(head(200), &huge), Some(BODY_CAP));
    }
}
