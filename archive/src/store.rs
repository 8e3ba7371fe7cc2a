//! Where the archive lives: `file:///path` or `s3://bucket/prefix`, as an `object_store` rooted at
//! the archive (every path the archive uses is relative to that root).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

use crate::ArchiveError;

/// A parsed archive location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveUrl {
    File(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
}

impl ArchiveUrl {
    pub fn parse(text: &str) -> Result<Self, ArchiveError> {
        let bad = |why: &str| ArchiveError::Config(format!("archive URL `{text}`: {why}"));
        if let Some(rest) = text.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad(
                    "a file:// URL needs an absolute path (file:///var/lib/slowburn/archive)",
                ));
            }
            return Ok(ArchiveUrl::File(rest.into()));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("an s3:// URL needs a bucket (s3://bucket/prefix)"));
            }
            return Ok(ArchiveUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        Err(bad("use file:///path or s3://bucket/prefix"))
    }
}

impl std::fmt::Display for ArchiveUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveUrl::File(p) => write!(f, "file://{}", p.display()),
            ArchiveUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            ArchiveUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Opens the store. S3 takes the standard AWS environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...);
/// `allow_http` also permits a plain-http endpoint (S3-compatible servers on a private network).
pub fn open_store(
    url: &ArchiveUrl,
    allow_http: bool,
) -> Result<Arc<dyn ObjectStore>, ArchiveError> {
    match url {
        ArchiveUrl::File(path) => {
            std::fs::create_dir_all(path).map_err(|e| {
                ArchiveError::Config(format!(
                    "cannot create archive directory {}: {e}",
                    path.display()
                ))
            })?;
            let fs = LocalFileSystem::new_with_prefix(path).map_err(|e| {
                ArchiveError::Config(format!("archive directory {}: {e}", path.display()))
            })?;
            Ok(Arc::new(fs))
        }
        ArchiveUrl::S3 { bucket, prefix } => {
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if allow_http {
                b = b.with_allow_http(true);
            }
            if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                b = b.with_region("us-east-1");
            }
            let s3 = b
                .build()
                .map_err(|e| ArchiveError::Config(format!("S3 archive s3://{bucket}: {e}")))?;
            if prefix.is_empty() {
                Ok(Arc::new(s3))
            } else {
                Ok(Arc::new(PrefixStore::new(s3, prefix.as_str())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            ArchiveUrl::parse("s3://b/p/q/").unwrap(),
            ArchiveUrl::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(
            ArchiveUrl::parse("s3://b").unwrap(),
            ArchiveUrl::S3 {
                bucket: "b".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            ArchiveUrl::parse("file:///x/y").unwrap(),
            ArchiveUrl::File("/x/y".into())
        );
        assert!(
            ArchiveUrl::parse("file://rel")
                .unwrap_err()
                .to_string()
                .contains("absolute path")
        );
        assert!(
            ArchiveUrl::parse("gs://x")
                .unwrap_err()
                .to_string()
                .contains("use file:///path or s3://")
        );
    }
}
