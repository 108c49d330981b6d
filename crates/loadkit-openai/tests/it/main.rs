//! Integration tests of the OpenAI client: driven by loadkit's `Runner` against the simulated
//! server (timing accuracy, token accounting, every error class) and against replayed captures
//! of real servers.

mod errors;
mod linger;
mod samples;
mod speech;
mod stale;
mod support;
mod timing;
mod tools;
