//! Integration tests of the identity service: a real server on 127.0.0.1:0 over a fresh
//! database (PostgreSQL when COSELL_TEST_DATABASE_URL is set, else in-memory SQLite), called
//! through the generated clients.

mod harness;

mod authn;
mod faults;
mod limits;
mod matrix;
mod oidc;
mod operators;
mod rules;
mod seed;
mod server;
