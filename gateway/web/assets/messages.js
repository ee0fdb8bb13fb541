// Plain words for the API's stable problem codes (docs/API.md). The UI matches on `code`,
// never on `detail`; `detail` is shown only where the code is generic and the detail names
// a field (invalid_argument).

const MESSAGES = {
  // Network and sessions
  network: 'The server could not be reached. Check your connection and try again.',
  bad_credentials: 'The username or the password is wrong.',
  unauthorized: 'Your session has expired. Sign in again.',
  token_expired: 'Your session has expired. Sign in again.',
  invalid_refresh_token: 'Your session has expired. Sign in again.',
  session_expired: 'Your session has expired. Sign in again.',
  account_suspended: 'This account is suspended.',
  actor_suspended: 'Your account is suspended.',
  user_suspended: 'This account is suspended.',
  csrf_failed: 'Your session needs refreshing: reload the page and try again.',
  forbidden: 'Your account is not allowed to do this.',
  permission_denied: 'Your account is not allowed to do this.',
  rate_limited: 'Too many attempts. Wait a moment and try again.',
  busy: 'The server is busy. Try again in a moment.',
  username_taken: 'That username is taken. Choose another one.',
  invalid_password: 'The password must have 8 to 128 characters.',
  user_not_found: 'No such account.',
  // Bids
  bid_too_low: 'Your bid is below the minimum bid.',
  auction_closed: 'The auction has closed: no more bids.',
  auction_not_open: 'Bidding has not opened yet.',
  own_auction: 'You cannot bid on your own auction.',
  bidder_suspended: 'Your account is suspended: your bids are refused.',
  max_below_amount: 'Your maximum must be at least your bid.',
  max_not_raised: 'You are already winning: a new maximum must be higher than your current one.',
  buy_now_unavailable: 'Buy it now is no longer available for this auction.',
  invalid_amount: 'Enter an amount above zero.',
  amount_out_of_range: 'That amount is out of range.',
  bid_limit_reached: 'This auction has taken the most bids it can hold.',
  request_id_reused: 'This request was already used for something else. Try again.',
  // Auctions
  auction_not_found: 'No such auction.',
  has_bids: 'The auction already has bids, so it can no longer be changed.',
  not_seller: 'Only the seller (or an admin) can do this.',
  not_owner: 'Only the seller (or an admin) can do this.',
  invalid_window: 'Check the times: the end must be after the start, within 90 days.',
  invalid_prices: 'Check the prices: the reserve and buy-it-now price must not be below the starting price.',
  invalid_increment_policy: 'Check the bid increment.',
  invalid_soft_close: 'Check the soft close: window and extension are at most one hour.',
  reason_required: 'Give a reason.',
  auction_exists: 'This auction was already created.',
  auction_limit_reached: 'This shard holds the most auctions it can.',
  // Infrastructure
  outcome_unknown: 'We could not confirm the result yet. Retrying is safe: it cannot happen twice.',
  timeout: 'The server took too long. Retrying is safe: it cannot happen twice.',
  unavailable: 'The auction service is unavailable right now. Try again shortly.',
  not_leader: 'The auction service is changing leaders. Try again shortly.',
  history_unavailable: 'The history is not available right now. Try again in a moment.',
  bid_not_found: 'No such bid.',
  bid_already_voided: 'That bid is already voided.',
  internal: 'Something went wrong on the server.',
  payload_too_large: 'That is too long.',
  malformed_json: 'The request was malformed.',
};

/** A sentence for an ApiError (or any { code, detail }). */
export function describe(error) {
  if (!error) return '';
  const code = error.code;
  if (code === 'invalid_argument' && error.detail) return capitalise(error.detail);
  return MESSAGES[code] ?? (error.detail ? capitalise(error.detail) : 'Something went wrong.');
}

/** Whether a retry with the same idempotency key may learn the outcome. */
export function isUncertain(error) {
  return ['network', 'outcome_unknown', 'timeout', 'unavailable', 'not_leader', 'busy']
    .includes(error?.code);
}

function capitalise(text) {
  const sentence = String(text);
  const first = sentence.charAt(0).toUpperCase() + sentence.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}
