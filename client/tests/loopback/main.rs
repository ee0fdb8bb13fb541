//! The client and admin operations against scripted fake nodes on 127.0.0.1: real tonic
//! channels, real connection failures, canned answers. What a real node must answer is the
//! lead's end-to-end suite; this checks that the client does the right thing with answers.
//!
//! `fake` holds the scripted node (its client and admin services and how tests start a few
//! of them); `client_ops` and `admin_ops` hold the tests of each side of the library.

mod admin_ops;
mod client_ops;
mod fake;
