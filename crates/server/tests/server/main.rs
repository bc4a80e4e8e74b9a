//! The server's integration tests, in one test binary (one link instead of
//! four: each binary carries the whole engine).

mod catalogue;
mod common;
mod runs;
mod security;
mod story;
