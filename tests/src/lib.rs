//! A home for cross-service scenarios that need no `cosell` binary (one test binary under
//! `tests/`); the library itself is empty. The scenarios that run the suite as users do, the
//! `cosell` binary with grpcurl, Python and Node.js clients, an OpenID Connect issuer and TLS,
//! live in `services/cosell/tests/` (`e2e.rs`, `clients.rs`, `production.rs`).
