//! Where state comes from: a file, or an object in an S3-compatible store read with `object_store`
//! (path-style requests, static credentials, plain HTTP allowed for `http://` endpoints).

use crate::InventoryError;
use object_store::aws::AmazonS3Builder;
use object_store::{path::Path as ObjPath, ObjectStore};
use std::path::PathBuf;

/// An S3 location of a workspace's state.
#[derive(Debug, Clone)]
pub struct S3Location {
    /// Endpoint URL (`https://minio.example.net:9000`).
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// State key (`terraform.tfstate`).
    pub key: String,
    /// Workspace key prefix (`env:`).
    pub workspace_key_prefix: String,
    /// Region the requests are signed for.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// Where to read a workspace's state.
#[derive(Debug, Clone)]
pub enum StateSource {
    /// A local file (`terraform state pull > FILE`).
    File(PathBuf),
    /// An S3 bucket.
    S3(S3Location),
}

/// The object key of `workspace`'s state, as Terraform's S3 backend names it: `<prefix>/<workspace>/<key>`,
/// or `<key>` for the `default` workspace.
pub fn object_key(prefix: &str, workspace: &str, key: &str) -> String {
    if workspace == "default" {
        key.to_string()
    } else {
        format!("{}/{workspace}/{key}", prefix.trim_end_matches('/'))
    }
}

/// Reads the raw state of `workspace`.
pub fn fetch(src: &StateSource, workspace: &str) -> Result<Vec<u8>, InventoryError> {
    match src {
        StateSource::File(p) => std::fs::read(p).map_err(|source| InventoryError::Io {
            path: p.display().to_string(),
            source,
        }),
        StateSource::S3(loc) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| InventoryError::Io {
                    path: "tokio runtime".into(),
                    source,
                })?;
            rt.block_on(fetch_s3(loc, workspace))
        }
    }
}

async fn fetch_s3(loc: &S3Location, workspace: &str) -> Result<Vec<u8>, InventoryError> {
    let key = object_key(&loc.workspace_key_prefix, workspace, &loc.key);
    let s3err = |message: String| InventoryError::S3 {
        endpoint: loc.endpoint.clone(),
        bucket: loc.bucket.clone(),
        key: key.clone(),
        message,
    };
    if loc.access_key_id.is_empty() || loc.secret_access_key.is_empty() {
        return Err(InventoryError::NoCredentials(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the variables the spec names)".into(),
        ));
    }
    let store = AmazonS3Builder::new()
        .with_endpoint(loc.endpoint.trim_end_matches('/'))
        .with_bucket_name(&loc.bucket)
        .with_region(&loc.region)
        .with_access_key_id(&loc.access_key_id)
        .with_secret_access_key(&loc.secret_access_key)
        .with_virtual_hosted_style_request(false)
        .with_allow_http(loc.endpoint.starts_with("http://"))
        .with_retry(object_store::RetryConfig {
            max_retries: 1,
            retry_timeout: std::time::Duration::from_secs(10),
            ..Default::default()
        })
        .build()
        .map_err(|e| s3err(e.to_string()))?;
    let path = ObjPath::from(key.as_str());
    let classify = |e: object_store::Error| -> InventoryError {
        let text = e.to_string();
        if text.contains("NoSuchBucket") {
            return InventoryError::NoBucket {
                bucket: loc.bucket.clone(),
                endpoint: loc.endpoint.clone(),
            };
        }
        match e {
            object_store::Error::NotFound { .. } => InventoryError::NoKey {
                bucket: loc.bucket.clone(),
                key: key.clone(),
                workspace: workspace.to_string(),
                endpoint: loc.endpoint.clone(),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => InventoryError::Denied {
                endpoint: loc.endpoint.clone(),
                bucket: loc.bucket.clone(),
                key: key.clone(),
                message: short(&text),
            },
            _ if text.contains("403")
                || text.contains("AccessDenied")
                || text.contains("SignatureDoesNotMatch")
                || text.contains("InvalidAccessKeyId") =>
            {
                InventoryError::Denied {
                    endpoint: loc.endpoint.clone(),
                    bucket: loc.bucket.clone(),
                    key: key.clone(),
                    message: short(&text),
                }
            }
            _ => s3err(text),
        }
    };
    match store.get(&path).await {
        Ok(r) => r.bytes().await.map(|b| b.to_vec()).map_err(classify),
        Err(e @ object_store::Error::NotFound { .. }) => {
            // Tell a missing bucket from a missing key: listing a missing bucket fails too.
            use futures_util::StreamExt as _;
            let mut l = store.list(None);
            match l.next().await {
                Some(Err(le))
                    if !matches!(le, object_store::Error::PermissionDenied { .. })
                        && (le.to_string().contains("NoSuchBucket")
                            || matches!(le, object_store::Error::NotFound { .. })) =>
                {
                    Err(InventoryError::NoBucket {
                        bucket: loc.bucket.clone(),
                        endpoint: loc.endpoint.clone(),
                    })
                }
                _ => Err(classify(e)),
            }
        }
        Err(e) => Err(classify(e)),
    }
}

fn short(s: &str) -> String {
    let s = s.lines().next().unwrap_or(s);
    s.chars().take(300).collect()
}
