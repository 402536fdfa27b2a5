//! The migration service (`cosell.migration.v1`, SPEC 5): PSC export import, the MPN check, the
//! user and deal migration wizards, cut-over.
//!
//! - [`psc`]: reading a PSC bulk export bundle (`../shared/docs/PSC-EXPORT.md`) into typed
//!   records, with every problem reported by file, line, column, id and reason.
//! - [`store`]: the database: each organization's imported snapshot and its import history.
//!
//! Built so far: the export reader and the snapshot import. The wizards, runs, gRPC API and
//! binary come next.

pub mod psc;
pub mod store;
