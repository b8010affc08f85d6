//! splade-engines against the engines: Milvus live (milvus-lite), Qdrant's REST bodies
//! against its OpenAPI schema and its points file in Qdrant's own engine (qdrant-edge-py),
//! OpenSearch and Elasticsearch bodies against their documented shapes. One test binary.

#[path = "../../../../tests/support/engine_servers.rs"]
mod engine_servers;

mod corpus;
mod http;
mod lucene;
mod milvus;
mod openapi;
mod qdrant;
mod qdrant_rest;
