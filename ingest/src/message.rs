//! Splitting a Vercel `message` into lines, and reading Vercel's request-summary lines
//! (`START …`, `[METHOD] /path status=N`, `END …`, `REPORT … Duration: X ms`).

/// One piece of a Vercel message.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece<'a> {
    /// A line the application wrote: pino/JSON or plain text.
    User(&'a str),
    /// `[GET] /path status=200` (also `[GET] [middleware: "x"] / status=200`).
    Summary {
        method: &'a str,
        path: &'a str,
        status: Option<i32>,
        text: &'a str,
    },
    /// `REPORT RequestId: … Duration: 116 ms …`.
    Report {
        duration_ms: Option<f64>,
        text: &'a str,
    },
    /// `START RequestId: …` / `END RequestId: …`: framing, dropped.
    Framing,
}

/// Splits a message into pieces. A message that is one JSON object is one piece; otherwise it is
/// split on real newlines, and pieces that are not JSON also on the literal two characters `\n`
/// (Vercel's summaries and test deliveries escape their newlines that way).
pub fn split_message(message: &str) -> Vec<Piece<'_>> {
    let trimmed = message.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    if looks_like_object(trimmed) {
        return vec![Piece::User(trimmed)];
    }
    let mut out = Vec::new();
    for line in trimmed.split('\n') {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if looks_like_object(line) {
            out.push(classify(line));
            continue;
        }
        for part in line.split("\\n") {
            // A doubly escaped `\\n` leaves a stray backslash; literal `\t` separates REPORT fields.
            let part = part.trim_matches(|c: char| c.is_whitespace() || c == '\\');
            if !part.is_empty() {
                out.push(classify(part));
            }
        }
    }
    out
}

fn looks_like_object(s: &str) -> bool {
    s.starts_with('{')
        && s.ends_with('}')
        && serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

fn classify(line: &str) -> Piece<'_> {
    let body = line.strip_prefix("SAMPLE MESSAGE: ").unwrap_or(line);
    if body.starts_with("START RequestId:") || body.starts_with("END RequestId:") {
        return Piece::Framing;
    }
    if body.starts_with("REPORT RequestId:") {
        return Piece::Report {
            duration_ms: report_duration(body),
            text: line,
        };
    }
    if let Some(summary) = summary_line(body, line) {
        return summary;
    }
    Piece::User(line)
}

/// `Duration: 116 ms` (not `Billed Duration` nor `Init Duration`).
fn report_duration(s: &str) -> Option<f64> {
    let mut rest = s;
    while let Some(pos) = rest.find("Duration:") {
        let before = rest[..pos].trim_end();
        let prefixed = before.ends_with("Billed") || before.ends_with("Init");
        let after = &rest[pos + "Duration:".len()..];
        if !prefixed {
            let num: String = after
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            return num.parse().ok();
        }
        rest = after;
    }
    None
}

fn summary_line<'a>(body: &'a str, text: &'a str) -> Option<Piece<'a>> {
    let rest = body.strip_prefix('[')?;
    let close = rest.find(']')?;
    let method = &rest[..close];
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut rest = rest[close + 1..].trim_start();
    // Skip bracketed qualifiers such as `[middleware: "middleware"]`.
    while let Some(inner) = rest.strip_prefix('[') {
        let close = inner.find(']')?;
        rest = inner[close + 1..].trim_start();
    }
    let path = rest.split_whitespace().next()?;
    if !path.starts_with('/') {
        return None;
    }
    let status = rest
        .rfind("status=")
        .and_then(|p| {
            rest[p + 7..]
                .split(|c: char| !(c.is_ascii_digit() || c == '-'))
                .next()
        })
        .and_then(|s| s.parse().ok());
    Some(Piece::Summary {
        method,
        path,
        status,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_escaped_summary() {
        let m = "START RequestId: a\\nEND RequestId: a\\nREPORT RequestId: a Duration: 116 ms Billed Duration: 117 ms";
        let p = split_message(m);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], Piece::Framing);
        assert!(matches!(p[2], Piece::Report { duration_ms: Some(d), .. } if d == 116.0));
    }

    #[test]
    fn reads_summary_line() {
        let p = split_message("[POST] /api/subscribe/checkout status=502");
        assert!(matches!(
            p[0],
            Piece::Summary {
                method: "POST",
                path: "/api/subscribe/checkout",
                status: Some(502),
                ..
            }
        ));
        let p = split_message("[GET] [middleware: \"middleware\"] / status=200");
        assert!(matches!(
            p[0],
            Piece::Summary {
                method: "GET",
                path: "/",
                status: Some(200),
                ..
            }
        ));
    }

    #[test]
    fn tab_separated_report_with_init_duration() {
        let m = "REPORT RequestId: x\tInit Duration: 200.5 ms\tDuration: 1472.20 ms\tBilled Duration: 1473 ms";
        assert!(
            matches!(split_message(m)[0], Piece::Report { duration_ms: Some(d), .. } if d == 1472.20)
        );
    }

    #[test]
    fn json_object_is_one_piece_even_with_escaped_newlines() {
        let m = r#"{"level":50,"time":1,"err":{"stack":"Error: x\n    at y"},"msg":"boom"}"#;
        assert_eq!(split_message(m), vec![Piece::User(m)]);
    }

    #[test]
    fn user_lines_split_on_both_newline_forms() {
        let p = split_message("one\ntwo\\nthree");
        assert_eq!(
            p,
            vec![Piece::User("one"), Piece::User("two"), Piece::User("three")]
        );
    }
}
