/// A path glob over `/`-separated segments: `*` matches one segment, `**` any number (even none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGlob {
    pattern: String,
    segments: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Star,
    DoubleStar,
}

impl PathGlob {
    pub fn new(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err(format!("path `{pattern}` must start with `/`"));
        }
        let segments = split(pattern)
            .map(|s| match s {
                "*" => Ok(Seg::Star),
                "**" => Ok(Seg::DoubleStar),
                s if s.contains('*') => Err(format!(
                    "path `{pattern}`: `*` must be a whole segment (`/*/` or `/**/`)"
                )),
                s => Ok(Seg::Lit(s.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(PathGlob {
            pattern: pattern.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, path: &str) -> bool {
        with_segments(path, |segs| self.matches_segments(segs))
    }

    /// Matches a path already split into its non-empty segments (see [`with_segments`]), so
    /// that a path tested against many globs is split once.
    pub fn matches_segments(&self, path: &[&str]) -> bool {
        match_from(&self.segments, path)
    }

    /// Whether some path matches both globs.
    pub fn overlaps(&self, other: &PathGlob) -> bool {
        overlap(&self.segments, &other.segments)
    }
}

/// Calls `f` with the non-empty segments of `path`, without allocating for paths of up to 16
/// segments (the hot path of request matching).
pub fn with_segments<R>(path: &str, f: impl FnOnce(&[&str]) -> R) -> R {
    let mut buf: [&str; 16] = [""; 16];
    let mut n = 0;
    for s in split(path) {
        if n == buf.len() {
            let all: Vec<&str> = split(path).collect();
            return f(&all);
        }
        buf[n] = s;
        n += 1;
    }
    f(&buf[..n])
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn match_from(pat: &[Seg], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((Seg::DoubleStar, rest)) => (0..=path.len()).any(|i| match_from(rest, &path[i..])),
        Some((seg, rest)) => match path.split_first() {
            None => false,
            Some((p, prest)) => {
                (matches!(seg, Seg::Star) || matches!(seg, Seg::Lit(l) if l == p))
                    && match_from(rest, prest)
            }
        },
    }
}

fn overlap(a: &[Seg], b: &[Seg]) -> bool {
    match (a.split_first(), b.split_first()) {
        (None, None) => true,
        (Some((Seg::DoubleStar, ar)), _) => {
            overlap(ar, b)
                || (!b.is_empty() && overlap(a, &b[1..]))
                || (b.first() == Some(&Seg::DoubleStar) && overlap(ar, b))
        }
        (_, Some((Seg::DoubleStar, br))) => {
            overlap(a, br) || (!a.is_empty() && overlap(&a[1..], b))
        }
        (None, _) | (_, None) => false,
        (Some((x, ar)), Some((y, br))) => {
            let seg_ok = match (x, y) {
                (Seg::Lit(l), Seg::Lit(m)) => l == m,
                _ => true,
            };
            seg_ok && overlap(ar, br)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn g(s: &str) -> PathGlob {
        PathGlob::new(s).unwrap()
    }
    #[test]
    fn matching() {
        assert!(g("/api/articles/*").matches("/api/articles/hello"));
        assert!(!g("/api/articles/*").matches("/api/articles/hello/publish"));
        assert!(!g("/api/articles/*").matches("/api/articles"));
        assert!(g("/api/articles/*/publish").matches("/api/articles/x/publish"));
        assert!(g("/api/**").matches("/api"));
        assert!(g("/api/**/publish").matches("/api/a/b/publish"));
        assert!(g("/api/auth/signin/email").matches("/api/auth/signin/email/"));
        assert!(PathGlob::new("/api/a*").is_err() && PathGlob::new("api").is_err());
    }
    #[test]
    fn overlapping() {
        assert!(g("/api/articles/*").overlaps(&g("/api/**")));
        assert!(g("/api/*/publish").overlaps(&g("/api/articles/*")));
        assert!(!g("/api/articles/*").overlaps(&g("/api/articles/*/publish")));
        assert!(g("/**/x").overlaps(&g("/a/**")));
        assert!(!g("/a/*").overlaps(&g("/b/*")));
    }
}
