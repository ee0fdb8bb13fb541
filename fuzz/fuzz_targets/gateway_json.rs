//! The gateway's request bodies and query strings, through the gateway's own extractors
//! (`http::extract::Json` and `Query`: axum's, with every rejection mapped to a problem),
//! then through the parsers each handler applies before it proposes anything (`to_spec`,
//! `amount_from_json`, `parse_username`, the role and reason parsers, `list_filter`,
//! `parse_ids`).
//!
//! Contract: every refusal is a problem+json `Problem` with a 4xx status and one of the
//! gateway's stable codes, whose `detail` stays small and never quotes the password or the
//! refresh token of the body; whatever the parsers accept becomes an engine request that
//! the node takes: it encodes within the node's decode limit and decodes back to itself.
#![no_main]

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{Request as HttpRequest, header};
use libfuzzer_sys::fuzz_target;
use martelo_engine::codec::wire::{self, ClientPayload, WireVersion};
use martelo_engine::meta::{DisplayName, PasswordHash, Username};
use martelo_engine::{
    Action, Actor, AuctionId, MetaAction, MetaActor, MetaCommand, Reason, Request, RequestId,
    Role, UserId,
};
use martelo_fuzz::assert_bounded_message;
use martelo_gateway::Problem;
use martelo_gateway::auth::password::check_new_password;
use martelo_gateway::auth::refresh::RefreshToken;
use martelo_gateway::http::accounts::{RegisterBody, parse_username};
use martelo_gateway::http::auctions::{
    self, AuctionInput, CancelBody, ListQuery, ReadQuery, VoidBody, derive_auction_id, to_spec,
};
use martelo_gateway::http::bids::{BidBody, amount_from_json};
use martelo_gateway::http::extract::{Json, Query};
use martelo_gateway::http::history::{AuditParams, BidHistoryParams, ClosedParams, MineParams};
use martelo_gateway::http::names::{NAMES_IDS_MAX, NamesQuery, parse_ids};
use martelo_gateway::http::sessions::{LoginBody, RefreshBody};
use martelo_gateway::http::users::{SuspendBody, UsersQuery};
use serde::de::DeserializeOwned;

/// Every code a body or query parser may answer with.
const CODES: &[&str] = &[
    "malformed_json",
    "invalid_argument",
    "invalid_amount",
    "invalid_password",
    "payload_too_large",
    "forbidden",
];

/// Asserts the problem contract.
fn assert_problem(what: &str, problem: &Problem, input: &[u8]) {
    assert!(
        (400..500).contains(&problem.status),
        "{what}: status {} ({problem:?})",
        problem.status
    );
    assert!(CODES.contains(&&*problem.code), "{what}: code {:?}", problem.code);
    assert_bounded_message(what, &problem.detail, input.len());
    let json = serde_json::to_value(problem).expect("a problem serializes");
    assert_eq!(json["code"], *problem.code);
    assert_eq!(json["status"], problem.status);
}

/// A character no fixed message holds: the canary that stands in for a secret.
const CANARY: char = '\u{E000}';

/// The body with its secrets (`password`, `refresh_token`) replaced by canaries of the same
/// number of characters, when it is a JSON object holding some and no canary yet.
fn with_canaries(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    if text.contains(CANARY) {
        return None;
    }
    let serde_json::Value::Object(mut fields) = serde_json::from_str(text).ok()? else {
        return None;
    };
    let mut replaced = false;
    for name in ["password", "refresh_token"] {
        if let Some(serde_json::Value::String(secret)) = fields.get_mut(name) {
            *secret = std::iter::repeat_n(CANARY, secret.chars().count()).collect();
            replaced = true;
        }
    }
    replaced.then(|| serde_json::to_vec(&fields).expect("JSON"))
}

/// Runs the gateway's JSON extractor on `body`.
fn extract<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let request = HttpRequest::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    futures::executor::block_on(Json::<T>::from_request(request, &())).map(|Json(value)| value)
}

/// Runs the gateway's JSON extractor on `body`, and checks that no refusal quotes the body's
/// secrets (the same body with canaries for secrets must give no canary back).
fn json<T: DeserializeOwned>(what: &str, body: &[u8]) -> Option<T> {
    if let Some(canaried) = with_canaries(body) {
        if let Err(problem) = extract::<T>(&canaried) {
            assert!(
                !problem.detail.contains(CANARY),
                "{what}: the problem quotes a secret of the body: {problem:?}"
            );
        }
    }
    match extract::<T>(body) {
        Ok(value) => Some(value),
        Err(problem) => {
            assert_problem(what, &problem, body);
            None
        }
    }
}

/// Checks that a parser's refusal keeps the problem contract.
fn refused<T>(what: &str, result: Result<T, Problem>, input: &[u8]) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(problem) => {
            assert_problem(what, &problem, input);
            None
        }
    }
}

/// What the gateway would propose: it must fit the node's limit and survive the wire.
fn assert_proposable<T, const BYTES_MAX: usize>(what: &'static str, value: &T, version: WireVersion)
where
    T: ClientPayload + PartialEq + std::fmt::Debug,
{
    let bytes = wire::encode(what, value, version).expect("an accepted input encodes");
    assert!(
        bytes.len() <= BYTES_MAX,
        "{what}: the gateway accepts an input the node refuses: {} bytes over {BYTES_MAX}",
        bytes.len()
    );
    let back = wire::decode::<T, BYTES_MAX>(what, &bytes).expect("an accepted input decodes");
    assert_eq!(&back, value);
}

fn request(role: Role, action: Action) -> Request {
    Request {
        actor: Actor {
            user: UserId(7),
            role,
        },
        request_id: RequestId::try_from("fuzz-request").expect("a request id"),
        action,
    }
}

fn proposal(request: &Request) {
    assert_proposable::<Request, { martelo_proto::PROPOSAL_COMMAND_BYTES_MAX }>(
        "command",
        request,
        WireVersion::CURRENT,
    );
}

fn register(body: &[u8]) {
    let Some(input) = json::<RegisterBody>("register", body) else {
        return;
    };
    let username = refused("username", parse_username(&input.username), body);
    let display_name = refused(
        "display name",
        DisplayName::try_from(input.display_name.as_str()).map_err(|e| Problem::invalid_field(&e)),
        body,
    );
    let password = refused("password", check_new_password(&input.password), body);
    let roles = refused(
        "roles",
        martelo_gateway::fuzzing::signup_roles(input.roles.as_deref()),
        body,
    );
    if let (Some(username), Some(display_name), Some(()), Some(roles)) =
        (username, display_name, password, roles)
    {
        assert!(!roles.is_empty() && !roles.contains(&Role::Admin));
        // What argon2id's defaults give: a 22-character salt and a 43-character hash.
        let phc = format!("$argon2id$v=19$m=19456,t=2,p=1${}${}", "s".repeat(22), "h".repeat(43));
        let hash = PasswordHash::try_from(phc).expect("an argon2 PHC string");
        let command = MetaCommand {
            actor: MetaActor::Anonymous,
            request_id: RequestId::try_from("fuzz-register").expect("a request id"),
            action: MetaAction::RegisterUser {
                username,
                display_name,
                password_hash: hash,
                roles,
            },
        };
        assert_proposable::<MetaCommand, { martelo_proto::META_COMMAND_BYTES_MAX }>(
            "meta command",
            &command,
            WireVersion::CURRENT,
        );
    }
}

fn auction(body: &[u8]) {
    let Some(input) = json::<AuctionInput>("auction", body) else {
        return;
    };
    let Some(spec) = refused("auction", to_spec(&input), body) else {
        return;
    };
    let auction_id = derive_auction_id(UserId(7), "fuzz-request");
    assert!((1..=auctions::AUCTION_ID_MAX).contains(&auction_id.0));
    proposal(&request(
        Role::Seller,
        Action::CreateAuction {
            auction_id,
            spec: spec.clone(),
        },
    ));
    proposal(&request(Role::Seller, Action::EditAuction { auction_id, spec }));
}

fn bid(body: &[u8]) {
    let Some(input) = json::<BidBody>("bid", body) else {
        return;
    };
    let amount = refused("amount", amount_from_json("amount", &input.amount), body);
    let max = input
        .max
        .as_ref()
        .map(|max| refused("max", amount_from_json("max", max), body));
    let Some(amount) = amount else {
        return;
    };
    let max = match max {
        None => None,
        Some(Some(max)) => Some(max),
        Some(None) => return,
    };
    for value in std::iter::once(amount).chain(max) {
        assert!((1..=martelo_engine::limits::AMOUNT_MAX).contains(&value));
    }
    proposal(&request(
        Role::Bidder,
        Action::PlaceBid {
            auction_id: AuctionId(1),
            amount: martelo_engine::Amount(amount),
            max: max.map(martelo_engine::Amount),
        },
    ));
}

fn reason(what: &str, text: &str, body: &[u8]) -> Option<Reason> {
    refused(what, Reason::try_from(text).map_err(|e| Problem::invalid_field(&e)), body)
}

/// `raw` as a URI query: kept as sent where RFC 3986 allows the byte in a query (and `%`,
/// so that the fuzzer writes its own escapes), percent-encoded where not (hyper would refuse
/// such a request line before any extractor ran).
fn query_uri(raw: &[u8]) -> String {
    let mut uri = String::from("/v1/x?");
    for &byte in raw {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

fn query<T: DeserializeOwned>(what: &str, raw: &[u8]) -> Option<T> {
    let Ok(request) = HttpRequest::builder().uri(query_uri(raw)).body(()) else {
        // Not a URI hyper would parse either.
        return None;
    };
    let (mut parts, ()) = request.into_parts();
    let result = futures::executor::block_on(Query::<T>::from_request_parts(&mut parts, &()));
    refused(what, result.map(|Query(value)| value), raw)
}

const KINDS: u8 = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % KINDS {
        0 => register(body),
        1 => {
            if let Some(login) = json::<LoginBody>("login", body) {
                let _ = Username::fold(&login.username);
            }
        }
        2 => {
            if let Some(refresh) = json::<RefreshBody>("refresh", body) {
                if let Some(token) = refresh.refresh_token.as_deref().and_then(RefreshToken::parse) {
                    assert_eq!(Some(token.expose()), refresh.refresh_token.as_deref());
                }
            }
        }
        3 => auction(body),
        4 => bid(body),
        5 => {
            if let Some(cancel) = json::<CancelBody>("cancel", body) {
                if let Some(text) = cancel.reason.as_deref() {
                    if let Some(reason) = reason("cancel reason", text, body) {
                        proposal(&request(
                            Role::Seller,
                            Action::CancelAuction {
                                auction_id: AuctionId(1),
                                reason: Some(reason),
                            },
                        ));
                    }
                }
            }
        }
        6 => {
            if let Some(void) = json::<VoidBody>("void", body) {
                let _ = reason("void reason", &void.reason, body);
            }
        }
        7 => {
            if let Some(suspend) = json::<SuspendBody>("suspend", body) {
                if let Some(reason) = reason("suspension reason", &suspend.reason, body) {
                    proposal(&request(
                        Role::Admin,
                        Action::SuspendBidder {
                            user: UserId(9),
                            reason,
                        },
                    ));
                }
            }
        }
        // Query strings.
        8 => {
            if let Some(list) = query::<ListQuery>("list query", body) {
                let _ = refused(
                    "list filter",
                    auctions::list_filter(list.filter.as_deref(), list.within_secs),
                    body,
                );
            }
        }
        9 => drop(query::<ReadQuery>("read query", body)),
        10 => drop(query::<BidHistoryParams>("bid history query", body)),
        11 => drop(query::<ClosedParams>("closed query", body)),
        12 => drop(query::<MineParams>("mine query", body)),
        13 => drop(query::<AuditParams>("audit query", body)),
        14 => drop(query::<UsersQuery>("users query", body)),
        _ => {
            if let Some(names) = query::<NamesQuery>("names query", body) {
                if let Some(ids) = refused("names ids", parse_ids(&names.ids), body) {
                    assert!((1..=NAMES_IDS_MAX).contains(&ids.len()));
                }
            }
        }
    }
});
