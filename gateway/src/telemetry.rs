//! The `martelo_gateway_*` metric names: one constant each, used by every module that
//! records them, so a name is never spelled twice.

/// Counter: HTTP requests, labels `route` (the matched path template) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "martelo_gateway_http_requests_total";
/// Histogram, seconds: HTTP request latency, label `route`.
pub const HTTP_REQUEST_SECONDS: &str = "martelo_gateway_http_request_seconds";
/// Counter: requests refused by a rate limit, label `limit` (`ip`, `user`, `login`).
pub const RATE_LIMITED_TOTAL: &str = "martelo_gateway_rate_limited_total";
/// Gauge: open WebSocket connections.
pub const WS_CONNECTIONS: &str = "martelo_gateway_ws_connections";
/// Gauge: auction subscriptions over all open WebSocket connections.
pub const WS_SUBSCRIPTIONS: &str = "martelo_gateway_ws_subscriptions";
/// Counter: WebSocket messages sent, label `kind`.
pub const WS_MESSAGES_SENT_TOTAL: &str = "martelo_gateway_ws_messages_sent_total";
/// Counter: WebSocket connections closed, label `reason`.
pub const WS_CLOSED_TOTAL: &str = "martelo_gateway_ws_closed_total";
/// Histogram, seconds: from an event's commit timestamp to the moment it is handed to a
/// client's socket (fan-out lag).
pub const FANOUT_LAG_SECONDS: &str = "martelo_gateway_fanout_lag_seconds";
/// Counter: snapshots sent instead of a backlog, label `reason` (`slow_client`,
/// `replay_gone`).
pub const FANOUT_CONFLATED_TOTAL: &str = "martelo_gateway_fanout_conflated_total";
/// Counter: group subscriptions (re)opened, label `group`.
pub const FANOUT_RESUBSCRIBES_TOTAL: &str = "martelo_gateway_fanout_resubscribes_total";
/// Gauge: the last meta-group log index the gateway has applied from its event stream.
pub const META_APPLIED_INDEX: &str = "martelo_gateway_meta_applied_index";
/// Gauge: password hashes being computed or waiting for the hashing semaphore.
pub const PASSWORD_HASHES_IN_FLIGHT: &str = "martelo_gateway_password_hashes_in_flight";
/// Counter: sign-ins, label `result` (`ok`, `bad_credentials`, `suspended`, `throttled`).
pub const LOGINS_TOTAL: &str = "martelo_gateway_logins_total";
/// Histogram, seconds: one history or audit query against Postgres, label `query`
/// (`bid_history`, `closed_auctions`, `user_bids`, `user_wins`, `audit`).
pub const HISTORY_QUERY_SECONDS: &str = "martelo_gateway_history_query_seconds";
/// Counter: history or audit queries that failed, labels `query` and `code` (the query
/// error's code: `invalid_cursor`, `invalid_limit`, `invalid_filter`, `database`; or
/// `history_unavailable` when the gateway has no Postgres).
pub const HISTORY_QUERY_ERRORS_TOTAL: &str = "martelo_gateway_history_query_errors_total";
