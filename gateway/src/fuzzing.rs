//! What the fuzz targets (`fuzz/`, docs/TESTING.md "Fuzzing") need that the gateway keeps
//! private: the sign-up body's role parser. Compiled only with the `fuzzing` feature, which
//! no normal build enables.

use std::collections::BTreeSet;

use martelo_engine::Role;

use crate::error::Problem;

/// The roles a sign-up body (`POST /v1/accounts`, `roles`) asks for, as the handler parses
/// them: bidder and seller only, `[bidder]` when absent.
pub fn signup_roles(names: Option<&[String]>) -> Result<BTreeSet<Role>, Problem> {
    crate::http::accounts::parse_signup_roles(names)
}
