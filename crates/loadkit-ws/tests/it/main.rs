//! Integration tests of the WebSocket chat client, driven by loadkit's `Runner` against the
//! simulated chat application (`loadkit_testbed::ws_chat`): pacing and token counts measured
//! back, connection reuse, keepalive, and every error class.

mod connections;
mod faults;
mod keepalive;
mod support;
mod timing;
mod tls;
mod transcript;
