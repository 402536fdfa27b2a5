//! Cross-service end-to-end scenarios live in `tests/` of this crate (one test binary); the
//! library itself is empty. Identity is the only service so far: its end-to-end test, which runs
//! the `cosell` binary, is in `services/cosell/tests/e2e.rs`.
