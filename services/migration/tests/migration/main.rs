//! Integration tests of the migration service over fresh databases (PostgreSQL when
//! `COSELL_TEST_DATABASE_URL` is set, else in-memory SQLite).

mod api;
mod crash;
mod import;
