//! Integration tests of the deals service: identity, the directory and deals on one server (as
//! `cosell serve` mounts them), deals reaching the others only through gRPC, over fresh
//! databases (PostgreSQL when `COSELL_TEST_DATABASE_URL` is set, else in-memory SQLite).

mod harness;

mod authz;
mod candidates;
mod catalog;
mod catalog_index;
mod concurrency;
mod cutover;
mod expiry;
mod faults;
mod feed;
mod import;
mod insights;
mod limits;
mod notifications;
mod registration;
mod rows;
mod rules;
mod story;
