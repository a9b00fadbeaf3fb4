//! Images: content addressed by digest, references as Docker parses them, layers applied into
//! snapshot directories, and the snapshotters that stack them for containers.
//!
//! The image store knows nothing of containers; the engine ties the two together.

pub mod archive;
pub mod commit;
pub mod content;
pub mod digest;
pub mod driver;
pub mod export;
pub mod gc;
pub mod import;
pub mod inside;
pub mod layer;
pub mod layout;
pub mod manifest;
pub mod metadata;
pub mod reference;
pub mod snapshot;
pub mod sweep;
pub mod unpack;
