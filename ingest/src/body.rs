//! Request bodies: gzip with a decompressed-size cap, and JSON-array vs NDJSON framing.

use std::borrow::Cow;
use std::io::Read;

use serde_json::value::RawValue;

use crate::IngestError;

/// Decompresses a `Content-Encoding: gzip` body, refusing to inflate past `max_bytes`.
pub fn decompress<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    max_bytes: usize,
) -> Result<Cow<'a, [u8]>, IngestError> {
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(Cow::Borrowed(body)),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max_bytes));
            let mut reader = flate2::read::MultiGzDecoder::new(body).take(max_bytes as u64 + 1);
            reader
                .read_to_end(&mut out)
                .map_err(|e| IngestError::BadGzip(e.to_string()))?;
            if out.len() > max_bytes {
                return Err(IngestError::DecompressedTooLarge {
                    limit_bytes: max_bytes,
                });
            }
            Ok(Cow::Owned(out))
        }
        Some(other) => Err(IngestError::UnsupportedEncoding(other.to_owned())),
    }
}

/// True for Vercel's verification and test pings: an empty body, `{}` or `[]`.
pub fn is_empty_ping(body: &[u8]) -> bool {
    let t = body.trim_ascii();
    if t.is_empty() {
        return true;
    }
    if t.len() > 64 || !(t.starts_with(b"{") || t.starts_with(b"[")) {
        return false;
    }
    let inner = t[1..t.len() - 1].trim_ascii();
    inner.is_empty() && matches!((t[0], t[t.len() - 1]), (b'{', b'}') | (b'[', b']'))
}

/// One framed item of a body: its index and its JSON text, or why it could not be framed.
pub type Framed<'a> = (usize, Result<&'a str, String>);

/// Splits a body into entries. The first non-blank byte decides: `[` is a JSON array, anything
/// else NDJSON (one value per line, blank lines skipped). Content-Type is not consulted.
pub fn frame(body: &[u8]) -> Result<Vec<Framed<'_>>, IngestError> {
    let text = std::str::from_utf8(body).map_err(|e| IngestError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        Ok(frame_array(rest))
    } else {
        Ok(text
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| (i, Ok(l)))
            .collect())
    }
}

/// Reads array elements one at a time so that a truncated or broken tail keeps the entries
/// before it.
fn frame_array(mut rest: &str) -> Vec<Framed<'_>> {
    let mut out = Vec::new();
    let mut index = 0;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            out.push((index, Err("truncated JSON array: missing `]`".to_owned())));
            return out;
        }
        if let Some(after) = rest.strip_prefix(']') {
            if !after.trim().is_empty() {
                out.push((
                    index,
                    Err("unexpected data after the closing `]`".to_owned()),
                ));
            }
            return out;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
        match stream.next() {
            Some(Ok(value)) => {
                out.push((index, Ok(value.get())));
                rest = rest[stream.byte_offset()..].trim_start();
                index += 1;
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else if !rest.starts_with(']') {
                    let why = if rest.is_empty() {
                        "truncated JSON array: missing `]`"
                    } else {
                        "expected `,` or `]` between entries"
                    };
                    out.push((index, Err(why.to_owned())));
                    return out;
                }
            }
            Some(Err(e)) => {
                let what = if e.is_eof() {
                    "truncated JSON"
                } else {
                    "invalid JSON"
                };
                out.push((
                    index,
                    Err(format!("{what}: {e}; entries after this one were not read")),
                ));
                return out;
            }
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_with_truncated_tail_keeps_prefix() {
        let f = frame(br#"[{"a":1}, {"b":2}, {"c":"#).unwrap();
        assert_eq!(f.len(), 3);
        assert!(f[0].1.is_ok() && f[1].1.is_ok() && f[2].1.is_err());
    }

    #[test]
    fn ndjson_skips_blank_lines() {
        let f = frame(b"\n{\"a\":1}\r\n\n  \n{\"b\":2}").unwrap();
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn gzip_bomb_is_capped() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 10 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(matches!(
            decompress(&gz, Some("gzip"), 1 << 20),
            Err(IngestError::DecompressedTooLarge { .. })
        ));
    }
}
