//! Where a Milvus collection lives: `--uri http://HOST:PORT --collection NAME [--db DB]
//! [--token T]` for `splade export milvus`, or one address `milvus://HOST:PORT/COLLECTION`
//! (`milvus://HOST:PORT/DB/COLLECTION` for a database other than `default`) for
//! `splade search --engine` and `splade eval ir --engine`.

use crate::error::{EngineError, Result};

/// A Milvus server and one collection in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilvusTarget {
    /// The gRPC endpoint, `http://HOST:PORT` (or `https://`).
    pub uri: String,
    /// The collection.
    pub collection: String,
    /// The database (`None`: the server's `default`).
    pub database: Option<String>,
    /// An API key or `user:password` (`None`: no authentication).
    pub token: Option<String>,
}

impl MilvusTarget {
    /// A target from a URI and a collection name, both checked.
    pub fn new(uri: &str, collection: &str) -> Result<Self> {
        let uri = uri.trim_end_matches('/');
        let rest = uri
            .strip_prefix("http://")
            .or_else(|| uri.strip_prefix("https://"))
            .ok_or_else(|| address_error(uri, "a Milvus URI starts with http:// or https://"))?;
        check_host_port(uri, rest)?;
        check_name(uri, "collection", collection)?;
        Ok(Self {
            uri: uri.to_string(),
            collection: collection.to_string(),
            database: None,
            token: None,
        })
    }

    /// Parses `milvus://HOST:PORT/COLLECTION` or `milvus://HOST:PORT/DB/COLLECTION`.
    pub fn parse(address: &str) -> Result<Self> {
        let rest = address.strip_prefix("milvus://").ok_or_else(|| {
            address_error(
                address,
                "an engine address is milvus://HOST:PORT/COLLECTION (the only engine searched live)",
            )
        })?;
        let mut parts = rest.split('/');
        let host_port = parts.next().unwrap_or_default();
        let path: Vec<&str> = parts.collect();
        check_host_port(address, host_port)?;
        let (database, collection) =
            match path.as_slice() {
                [collection] => (None, *collection),
                [db, collection] => {
                    check_name(address, "database", db)?;
                    (Some(db.to_string()), *collection)
                }
                _ => return Err(address_error(
                    address,
                    "expected milvus://HOST:PORT/COLLECTION or milvus://HOST:PORT/DB/COLLECTION",
                )),
            };
        check_name(address, "collection", collection)?;
        Ok(Self {
            uri: format!("http://{host_port}"),
            collection: collection.to_string(),
            database,
            token: None,
        })
    }
}

fn address_error(address: &str, message: &str) -> EngineError {
    EngineError::Address {
        address: address.to_string(),
        message: message.to_string(),
    }
}

/// `HOST:PORT` with a non-empty host and a port in 1..=65535.
fn check_host_port(address: &str, host_port: &str) -> Result<()> {
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| address_error(address, "the server is HOST:PORT (a port is required)"))?;
    if host.is_empty() {
        return Err(address_error(address, "the host is empty"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(address_error(
            address,
            &format!("{port:?} is not a port (1-65535)"),
        )),
    }
}

/// Milvus's rule for collection and database names: 1-255 characters, letters, digits and
/// underscores, not starting with a digit.
fn check_name(address: &str, what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(address_error(
            address,
            &format!(
                "{what} name {name:?}: Milvus names are 1-255 letters, digits and underscores, not starting with a digit"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_addresses() {
        let t = MilvusTarget::parse("milvus://127.0.0.1:19530/scifact").unwrap();
        assert_eq!(t.uri, "http://127.0.0.1:19530");
        assert_eq!(t.collection, "scifact");
        assert_eq!(t.database, None);
        let t = MilvusTarget::parse("milvus://db.example:19530/prod/docs_v2").unwrap();
        assert_eq!(t.database.as_deref(), Some("prod"));
        assert_eq!(t.collection, "docs_v2");
        for bad in [
            "http://h:1/c",
            "milvus://h/c",
            "milvus://h:0/c",
            "milvus://h:1/",
            "milvus://h:1/a/b/c",
            "milvus://h:1/9lives",
            "milvus://h:1/has-dash",
            "milvus://:1/c",
        ] {
            let err = MilvusTarget::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        assert!(MilvusTarget::new("http://localhost:19530/", "c").is_ok());
        assert!(MilvusTarget::new("localhost:19530", "c").is_err());
    }
}
