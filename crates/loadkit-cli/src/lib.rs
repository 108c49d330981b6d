//! The `loadkit` binary's pure parts, as a library so the fuzz targets (`fuzz/`) reach them:
//! the scenario-file parser. Everything else of the CLI is the binary's own (`main.rs`).

pub mod scenario;
