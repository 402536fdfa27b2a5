//! Integration tests of the directory: identity and directory on one server (as `cosell serve`
//! mounts them), the directory reaching identity only through gRPC, over fresh databases.

mod harness;

mod limits;
mod load;
mod matching;
mod replicas;
mod restart;
mod search;
