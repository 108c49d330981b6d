//! Integration tests of the HTTP plumbing against the simulated server: milestones, pooling,
//! every deadline and every broken-connection case, classified.

mod generic;
mod http;
