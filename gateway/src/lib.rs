//! # martelo-gateway (not built yet)
//!
//! Will hold the HTTP and WebSocket gateway: authentication, forwarding to group leaders and
//! fan-out of committed events. This crate deliberately contains no code until its issue.
