//! Manifest parsing: media type resolution, validation and references.
//!
//! Known kinds are OCI image manifests and Docker v2 schema 2 manifests
//! ("image" manifests: a config and layers) and OCI image indexes and Docker
//! manifest lists ("indexes": child manifests). Any other media type is stored
//! as long as the body is a JSON object; its references are whatever
//! `config`/`layers`/`manifests` it has. Docker schema 1 is rejected.

use std::collections::BTreeMap;
use std::fmt;

use registry_notify::{Descriptor, Platform};
use serde::Deserialize;

use super::reference::Digest;

/// OCI image manifest.
pub const OCI_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (unsigned), not accepted.
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 (signed), not accepted.
pub const DOCKER_MANIFEST_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Largest manifest accepted, in bytes (Distribution's default limit).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// The structural kind of a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// OCI image manifest or Docker v2 schema 2: a config and layers.
    Image,
    /// OCI image index or Docker manifest list: child manifests.
    Index,
    /// Any other media type.
    Other,
}

impl ManifestKind {
    /// The kind a media type denotes.
    pub fn of(media_type: &str) -> ManifestKind {
        match media_type {
            OCI_IMAGE_MANIFEST | DOCKER_MANIFEST_V2 => ManifestKind::Image,
            OCI_IMAGE_INDEX | DOCKER_MANIFEST_LIST => ManifestKind::Index,
            _ => ManifestKind::Other,
        }
    }
}

/// A parsed, validated manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Effective media type (Content-Type, else the body's `mediaType`, else inferred).
    pub media_type: String,
    /// Structural kind.
    pub kind: ManifestKind,
    /// `artifactType`, if any.
    pub artifact_type: Option<String>,
    /// The config descriptor (image manifests).
    pub config: Option<Descriptor>,
    /// Layer descriptors (image manifests).
    pub layers: Vec<Descriptor>,
    /// Child manifest descriptors (indexes).
    pub manifests: Vec<Descriptor>,
    /// The `subject` descriptor (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Why a manifest was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError(pub String);

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ManifestError {}

fn invalid(message: impl Into<String>) -> ManifestError {
    ManifestError(message.into())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    urls: Option<Vec<String>>,
    annotations: Option<BTreeMap<String, String>>,
    data: Option<String>,
    platform: Option<RawPlatform>,
    artifact_type: Option<String>,
}

#[derive(Deserialize)]
struct RawPlatform {
    architecture: Option<String>,
    os: Option<String>,
    #[serde(rename = "os.version")]
    os_version: Option<String>,
    #[serde(rename = "os.features")]
    os_features: Option<Vec<String>>,
    variant: Option<String>,
}

impl RawDescriptor {
    fn validate(self, what: &str) -> Result<Descriptor, ManifestError> {
        let digest = self
            .digest
            .ok_or_else(|| invalid(format!("{what}: missing digest")))?;
        Digest::parse(&digest).map_err(|e| invalid(format!("{what}: {e}: {digest:?}")))?;
        let size = self.size.unwrap_or(0);
        if size < 0 {
            return Err(invalid(format!("{what}: negative size")));
        }
        let mut descriptor = Descriptor::new(self.media_type.unwrap_or_default(), digest, size);
        descriptor.urls = self.urls.unwrap_or_default();
        descriptor.annotations = self.annotations.unwrap_or_default();
        descriptor.data = self.data;
        descriptor.artifact_type = self.artifact_type;
        descriptor.platform = self.platform.map(|p| {
            Box::new(Platform {
                architecture: p.architecture.unwrap_or_default(),
                os: p.os.unwrap_or_default(),
                os_version: p.os_version.unwrap_or_default(),
                os_features: p.os_features.unwrap_or_default(),
                variant: p.variant.unwrap_or_default(),
            })
        });
        Ok(descriptor)
    }
}

/// The media type part of a `Content-Type` value (parameters dropped, trimmed).
fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

fn is_schema1(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST_V1 || media_type == DOCKER_MANIFEST_V1_SIGNED
}

/// Content types that say nothing about the manifest, so the body decides.
fn is_generic(media_type: &str) -> bool {
    matches!(
        media_type,
        "" | "application/json" | "application/octet-stream" | "text/plain"
    )
}

/// Whether `s` is `type/subtype` per RFC 6838 (so it is also a valid header value).
fn is_valid_media_type(s: &str) -> bool {
    let part = |p: &str| {
        let mut bytes = p.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
            && p.len() <= 127
            && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    s.split_once('/').is_some_and(|(t, sub)| part(t) && part(sub))
}

/// Parses and validates a manifest body as pushed with `content_type`.
pub fn parse(content: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    let raw: RawManifest =
        serde_json::from_slice(content).map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    let header_type = content_type.map(essence).filter(|t| !is_generic(t));
    let body_type = raw.media_type.as_deref().filter(|t| !t.is_empty());
    if header_type.is_some_and(is_schema1)
        || body_type.is_some_and(is_schema1)
        || raw.schema_version == Some(1)
    {
        return Err(invalid("schema 1 manifests are not supported"));
    }
    let media_type = match (header_type, body_type) {
        (Some(h), Some(b)) if h != b => {
            return Err(invalid(format!(
                "Content-Type {h:?} does not match the manifest's mediaType {b:?}"
            )))
        }
        (Some(t), _) | (None, Some(t)) => t.to_owned(),
        (None, None) if raw.manifests.is_some() => OCI_IMAGE_INDEX.to_owned(),
        (None, None) if raw.config.is_some() => OCI_IMAGE_MANIFEST.to_owned(),
        (None, None) => return Err(invalid("cannot determine the manifest's media type")),
    };
    if !is_valid_media_type(&media_type) {
        return Err(invalid(format!("invalid media type {media_type:?}")));
    }
    let kind = ManifestKind::of(&media_type);
    if kind != ManifestKind::Other && raw.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    match kind {
        ManifestKind::Image if raw.config.is_none() => return Err(invalid("image manifest without config")),
        ManifestKind::Image if media_type == DOCKER_MANIFEST_V2 && raw.layers.is_none() => {
            return Err(invalid("image manifest without layers"))
        }
        ManifestKind::Index if raw.manifests.is_none() => return Err(invalid("index without manifests")),
        _ => {}
    }
    let config = raw.config.map(|d| d.validate("config")).transpose()?;
    let layers = validate_all(raw.layers, "layer")?;
    let manifests = validate_all(raw.manifests, "manifest")?;
    let subject = raw.subject.map(|d| d.validate("subject")).transpose()?;
    Ok(Manifest {
        media_type,
        kind,
        artifact_type: raw.artifact_type,
        config,
        layers,
        manifests,
        subject,
        annotations: raw.annotations.unwrap_or_default(),
    })
}

fn validate_all(list: Option<Vec<RawDescriptor>>, what: &str) -> Result<Vec<Descriptor>, ManifestError> {
    list.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.validate(&format!("{what} {i}")))
        .collect()
}

impl Manifest {
    /// The descriptors a notification's `references` lists: the config then the
    /// layers for an image manifest, the children (with `platform`) for an index.
    pub fn references(&self) -> Vec<Descriptor> {
        let mut references = Vec::with_capacity(1 + self.layers.len() + self.manifests.len());
        references.extend(self.config.iter().cloned());
        references.extend(self.layers.iter().cloned());
        references.extend(self.manifests.iter().cloned());
        references
    }

    /// Blobs that must exist in the repository before this manifest is accepted:
    /// the config and every layer that has no external `urls` (image manifests only).
    pub fn required_blobs(&self) -> Vec<&Descriptor> {
        if self.kind != ManifestKind::Image {
            return Vec::new();
        }
        self.config
            .iter()
            .chain(self.layers.iter().filter(|l| l.urls.is_empty()))
            .collect()
    }

    /// Manifests that must exist in the repository before this one is accepted
    /// (the children of an index).
    pub fn required_manifests(&self) -> Vec<&Descriptor> {
        if self.kind != ManifestKind::Index {
            return Vec::new();
        }
        self.manifests.iter().collect()
    }

    /// The artifact type reported by the referrers API: `artifactType`, else the
    /// config media type of an image manifest.
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.to_string()))
            .filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:ae40c5188662bc7902612ed0ceb103e138a8f36d041b758626c5d5b71f517e05";
    const D2: &str = "sha256:3c7120d4ec851ba7a497efcaf1b06f6b698adde2c81484ca7443c9274c629813";

    #[test]
    fn image_references_config_first() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":3}},
            "layers":[{{"mediaType":"l","digest":"{D2}","size":5,"urls":["http://x"],"annotations":{{"k":"v"}}}}]}}"#
        );
        let m = parse(body.as_bytes(), Some(OCI_IMAGE_MANIFEST)).expect("valid");
        assert_eq!(m.kind, ManifestKind::Image);
        let refs = m.references();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].digest, D1);
        assert_eq!(refs[1].urls, vec!["http://x".to_owned()]);
        assert_eq!(refs[1].annotations.get("k").map(String::as_str), Some("v"));
        // The foreign layer (with urls) is not required locally.
        assert_eq!(m.required_blobs().len(), 1);
    }

    #[test]
    fn index_children_keep_platform() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_IMAGE_MANIFEST}","digest":"{D1}","size":3,
            "platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#
        );
        let m = parse(body.as_bytes(), None).expect("valid");
        assert_eq!(m.media_type, OCI_IMAGE_INDEX);
        let platform = m.references()[0].platform.clone().expect("platform");
        assert_eq!(
            (platform.architecture.as_str(), platform.variant.as_str()),
            ("arm64", "v8")
        );
    }

    #[test]
    fn rejections() {
        assert!(parse(b"not json", None).is_err());
        assert!(parse(b"[]", None).is_err());
        assert!(parse(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(parse(br#"{"schemaVersion":2,"config":{"digest":"sha256:zz"}}"#, None).is_err());
        let mismatch = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_INDEX}","manifests":[]}}"#);
        assert!(parse(mismatch.as_bytes(), Some(OCI_IMAGE_MANIFEST)).is_err());
        assert!(parse(br#"{"schemaVersion":2}"#, Some(OCI_IMAGE_MANIFEST)).is_err());
        assert!(parse(br#"{"schemaVersion":2,"mediaType":"a\nb","config":{}}"#, None).is_err());
        // Unknown media types are stored as is.
        assert!(parse(br#"{"anything":1}"#, Some("application/vnd.example+json")).is_ok());
    }
}
