//! The HTTP routes.

pub mod documents;
pub mod embed;
pub mod engines;
pub mod search;
pub mod status;
pub mod text;
