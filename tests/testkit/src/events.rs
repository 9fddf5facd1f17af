//! Test events, recognisable by id (`event-<i>`) or realistic in size.

use registry_notify::{Action, Descriptor, Event, RequestRecord, SourceRecord, Target};

/// A push event with id `event-<i>` in `repository`, and nothing else set.
pub fn bare(i: usize, repository: &str) -> Event {
    let mut e = Event::new(Action::Push, Target::default());
    e.id = format!("event-{i}").into();
    e.target.repository = repository.to_owned().into();
    e
}

/// [`bare`] as a manifest `PUT`: with an OCI manifest media type and the request method.
pub fn event(i: usize, repository: &str) -> Event {
    let mut e = bare(i, repository);
    e.target.descriptor.media_type = "application/vnd.oci.image.manifest.v1+json".into();
    e.request.method = "PUT".into();
    e
}

/// [`bare`] events `event-<from>` .. `event-<to - 1>` in `library/test`.
pub fn events(from: usize, to: usize) -> Vec<Event> {
    (from..to).map(|i| bare(i, "library/test")).collect()
}

/// The ids of [`events`]`(from, to)`.
pub fn ids(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("event-{i}")).collect()
}

/// A realistic blob push event (about 700 bytes of JSON), as skopeo's push of a layer of
/// 1234 bytes with digest `sha256:<i as 64 hex digits>` makes it, from a registry on
/// 127.0.0.1:5000. Its id is random (as [`Event::new`] makes it); its request id is `i`.
pub fn blob_push(i: usize, repository: &str) -> Event {
    let digest = format!("sha256:{i:064x}");
    let mut e = Event::new(
        Action::Push,
        Target {
            descriptor: Descriptor::new("application/vnd.oci.image.layer.v1.tar+gzip", &digest, 1234),
            length: 1234,
            repository: repository.to_owned().into(),
            url: format!("http://127.0.0.1:5000/v2/{repository}/blobs/{digest}").into(),
            ..Target::default()
        },
    );
    e.request = RequestRecord {
        id: format!("0190f3c2-7d1e-7a4b-9c1d-{i:012}").into(),
        addr: "127.0.0.1:40000".into(),
        host: "127.0.0.1:5000".into(),
        method: "PUT".into(),
        useragent: "skopeo/1.9.3".into(),
        ..RequestRecord::default()
    };
    e.source = SourceRecord::local("127.0.0.1:5000");
    e
}
