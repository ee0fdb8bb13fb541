//! `GET /v1/names?ids=1,2,3`: the display names of users, for pages that show bidders and
//! sellers by name. Public (a display name is what other bidders see anyway) and served
//! from the gateway's meta follower ([`crate::follow::MetaFollower::display_names`]), so a
//! page naming a new bidder costs no cluster read.

use std::collections::BTreeMap;

use axum::extract::State;
use martelo_engine::UserId;
use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::http::extract::Query;
use crate::state::AppState;

/// Most ids one request may name.
pub const NAMES_IDS_MAX: usize = 100;

/// The query of `GET /v1/names`.
#[derive(Clone, Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NamesQuery {
    /// Comma-separated user ids, 1 to 100.
    pub ids: String,
}

/// Display names by user id (as a string key). Ids the gateway does not know are left out.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Names {
    pub names: BTreeMap<String, String>,
}

/// Parses `ids`: 1 to [`NAMES_IDS_MAX`] comma-separated user ids.
pub fn parse_ids(text: &str) -> Result<Vec<UserId>, Problem> {
    let ids = text
        .split(',')
        .map(|part| part.trim().parse::<u64>().map(UserId))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Problem::invalid("ids is a comma-separated list of user ids"))?;
    if ids.is_empty() || ids.len() > NAMES_IDS_MAX {
        return Err(Problem::invalid(format!(
            "ids names 1 to {NAMES_IDS_MAX} users"
        )));
    }
    Ok(ids)
}

/// The display names of users.
#[utoipa::path(
    get,
    path = "/v1/names",
    tag = "accounts",
    params(NamesQuery),
    responses(
        (status = 200, body = Names),
        (status = 400, body = Problem, description = "invalid_argument: ids"),
    )
)]
pub async fn names(
    State(state): State<AppState>,
    Query(query): Query<NamesQuery>,
) -> Result<axum::Json<Names>, Problem> {
    let ids = parse_ids(&query.ids)?;
    let names = state
        .meta
        .display_names(ids)
        .into_iter()
        .map(|(user, name)| (user.0.to_string(), name.to_string()))
        .collect();
    Ok(axum::Json(Names { names }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_a_bounded_comma_separated_list() {
        assert_eq!(
            parse_ids("1, 2,3").unwrap(),
            [UserId(1), UserId(2), UserId(3)]
        );
        for bad in ["", "1,,2", "a", "-1"] {
            assert!(parse_ids(bad).is_err(), "{bad}");
        }
        let many = (0..=NAMES_IDS_MAX)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse_ids(&many).is_err());
    }
}
