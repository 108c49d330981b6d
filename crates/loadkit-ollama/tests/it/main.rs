//! Integration tests of the Ollama client, driven by loadkit's `Runner` against the simulated
//! Ollama server: pacing measured back, the server's statistics, cold loads, the model check,
//! and every error class.

mod ollama;
mod samples;
