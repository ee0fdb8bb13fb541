//! # martelo-jepsen (not built yet)
//!
//! Will hold the fault suite: real `martelo node` processes, nemeses, history checkers and a
//! report. Tracked by the jepsen issue; this crate deliberately contains no code until then.
