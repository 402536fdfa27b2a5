//! The migration service (`cosell.migration.v1`, SPEC 5): PSC export import, the MPN check, the
//! user and deal migration wizards, cut-over.
//!
//! - [`psc`]: reading a PSC bulk export bundle (`../shared/docs/PSC-EXPORT.md`) into typed
//!   records, with every problem reported by file, line, column, id and reason.
//!
//! Built so far: the export reader. The service itself (its store, runs, wizards, gRPC API and
//! binary) comes next.

pub mod psc;
