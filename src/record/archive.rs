//! The object store recordings move to when `recording_store` names one (`s3://BUCKET/PREFIX`,
//! any S3-compatible service): each segment is uploaded once written, and its file on disk
//! deleted once the store has it; the finished playlist follows at the end of the show.
//!
//! The store is reached through `object_store`, with the credentials and endpoint of the usual
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for
//! a service that is not AWS, `AWS_ALLOW_HTTP=true` for one without TLS). A recording's files
//! are `PREFIX/RECORDING_ID/FILE`, the same names as on disk.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};

/// How long one upload, download or deletion may retry before it fails: an upload that fails
/// leaves its file on disk, where it is served from.
const RETRY_FOR: Duration = Duration::from_secs(20);

pub struct Archive {
    store: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    /// What the operator configured, for logs and errors.
    url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("recording_store must look like s3://BUCKET or s3://BUCKET/PREFIX, not {0:?}")]
    Url(String),
    #[error("the object store {url}: {source}")]
    Store {
        url: String,
        source: object_store::Error,
    },
}

impl Archive {
    /// The store `url` names, with the environment's credentials. Nothing is sent yet.
    pub fn open(url: &str) -> Result<Self, ArchiveError> {
        let bad = || ArchiveError::Url(url.to_string());
        let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(bad());
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(Path::parse(prefix).map_err(|_| bad())?)
        };
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                retry_timeout: RETRY_FOR,
                max_retries: 4,
                ..RetryConfig::default()
            })
            .build()
            .map_err(|source| ArchiveError::Store {
                url: url.to_string(),
                source,
            })?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn folder(&self, recording_id: &str) -> Path {
        match &self.prefix {
            Some(prefix) => prefix.clone().join(recording_id),
            None => Path::from(recording_id),
        }
    }

    fn key(&self, recording_id: &str, name: &str) -> Path {
        self.folder(recording_id).join(name)
    }

    fn error(&self, source: object_store::Error) -> ArchiveError {
        ArchiveError::Store {
            url: self.url.clone(),
            source,
        }
    }

    /// Whether the store answers with these credentials: one listing of the prefix.
    pub async fn check(&self) -> Result<(), ArchiveError> {
        let mut listing = self.store.list(self.prefix.as_ref());
        match listing.next().await {
            Some(Err(e)) => Err(self.error(e)),
            _ => Ok(()),
        }
    }

    pub async fn put(
        &self,
        recording_id: &str,
        name: &str,
        bytes: Bytes,
    ) -> Result<(), ArchiveError> {
        self.store
            .put(&self.key(recording_id, name), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// A file of a recording, or None when the store has no such file.
    pub async fn get(&self, recording_id: &str, name: &str) -> Result<Option<Bytes>, ArchiveError> {
        match self.store.get(&self.key(recording_id, name)).await {
            Ok(found) => found.bytes().await.map(Some).map_err(|e| self.error(e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Deletes every file of a recording; the number deleted.
    pub async fn delete(&self, recording_id: &str) -> Result<usize, ArchiveError> {
        let folder = self.folder(recording_id);
        let keys = self
            .store
            .list(Some(&folder))
            .map_ok(|meta| meta.location)
            .boxed();
        let deleted = self
            .store
            .delete_stream(keys)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| self.error(e))?;
        Ok(deleted.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_named_by_an_s3_url_with_an_optional_prefix() {
        let a = Archive::open("s3://shows-archive/farm/2026/").unwrap();
        assert_eq!(
            a.key("ab12", "index.m3u8").as_ref(),
            "farm/2026/ab12/index.m3u8"
        );
        let a = Archive::open("s3://shows-archive").unwrap();
        assert_eq!(a.key("ab12", "seg000000.ts").as_ref(), "ab12/seg000000.ts");
        for bad in [
            "",
            "shows-archive",
            "http://shows-archive/x",
            "s3://",
            "s3://Upper",
            "s3://ab",
            "s3://shows archive/x",
            "s3://shows-archive/../x",
        ] {
            assert!(Archive::open(bad).is_err(), "{bad:?}");
        }
    }
}
