//! Integration tests of the simulated servers, spoken to over raw TCP so that what is checked is
//! exactly what goes on the wire.

mod lifecycle;
mod support;
mod wire;
