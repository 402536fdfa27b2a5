//! Demo data for `cosell serve --demo`.
