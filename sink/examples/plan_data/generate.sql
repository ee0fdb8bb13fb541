-- Synthetic read-model rows for the query plans (docs/QUERIES.md, sink/tests/query.rs):
-- {BIDS} bids over {AUCTIONS} auctions (20 bids each), {USERS} accounts, one event per bid
-- plus each auction's creation and close, and a suspension by user 1 of every 100th user.
-- Four auctions in five are closed: sold, sold, unsold, cancelled (by their seller).
-- Placeholders in braces are replaced before the script runs; every statement is plain SQL.
INSERT INTO accounts (user_id, username, display_name, roles, registered_at, updated_at, seq)
SELECT u, 'user' || u, 'User ' || u, ARRAY['bidder'],
       timestamptz '2027-01-01 00:00:00+00', timestamptz '2027-01-01 00:00:00+00', u
FROM generate_series(1, {USERS}) AS u;

INSERT INTO auctions (auction_id, group_id, seller_id, title, description, currency,
    starting_price, has_reserve, increment, starts_at, ends_at, effective_end_at, status,
    current_price, leader_id, reserve_met, created_at, closed_at, seq)
SELECT a, a % 4 + 1, a % {USERS} + 1, 'Lot ' || a, '', 'EUR', 100, false, '"ebay"'::jsonb,
       timestamptz '2027-01-01 00:00:00+00' + a * interval '20 seconds',
       timestamptz '2027-01-01 00:00:00+00' + (a + 1) * interval '20 seconds',
       timestamptz '2027-01-01 00:00:00+00' + (a + 1) * interval '20 seconds',
       CASE a % 5 WHEN 0 THEN 'open' WHEN 1 THEN 'sold' WHEN 2 THEN 'sold'
                  WHEN 3 THEN 'unsold' ELSE 'cancelled' END,
       290, (a * 7) % {USERS} + 1, true,
       timestamptz '2027-01-01 00:00:00+00' + a * interval '20 seconds',
       CASE WHEN a % 5 = 0 THEN NULL
            ELSE timestamptz '2027-01-01 00:00:00+00' + (a + 1) * interval '20 seconds' END,
       42
FROM generate_series(1, {AUCTIONS}) AS a;

INSERT INTO outcomes (auction_id, group_id, log_index, seq, at, result, winner_id, price,
    sale_kind, unsold_reason, cancelled_by)
SELECT auction_id, group_id, {BIDS} + {AUCTIONS} + auction_id, 42, closed_at, status,
       CASE WHEN status = 'sold' THEN leader_id END,
       CASE WHEN status = 'sold' THEN current_price END,
       CASE WHEN status = 'sold' THEN 'bidding' END,
       CASE WHEN status = 'unsold' THEN 'reserve_not_met' END,
       CASE WHEN status = 'cancelled' THEN seller_id END
FROM auctions WHERE status <> 'open';

INSERT INTO bids (auction_id, bid_id, group_id, log_index, position, seq, bidder_id, amount,
    price_after, leader_after, at)
SELECT (i - 1) / 20 + 1, (i - 1) % 20, ((i - 1) / 20 + 1) % 4 + 1, i, 0,
       (i - 1) % 20 * 2 + 2, (i * 7919) % {USERS} + 1, 100 + (i - 1) % 20 * 10,
       100 + (i - 1) % 20 * 10, (i * 7919) % {USERS} + 1,
       timestamptz '2027-01-01 00:00:00+00' + ((i - 1) / 20 + 1) * interval '20 seconds'
           + (i - 1) % 20 * interval '1 second'
FROM generate_series(1::bigint, {BIDS}) AS i;

INSERT INTO events (group_id, log_index, position, at, kind, seq, auction_id, user_id,
    actor_id, payload)
SELECT group_id, log_index, position, at, 'bid_accepted', seq, auction_id, bidder_id, NULL,
       jsonb_build_object('bid_id', bid_id, 'bidder', bidder_id, 'amount', amount)
FROM bids;

INSERT INTO events (group_id, log_index, position, at, kind, seq, auction_id, user_id,
    actor_id, payload)
SELECT group_id, {BIDS} + auction_id, 0, created_at, 'auction_created', 1, auction_id,
       seller_id, NULL, jsonb_build_object('seller', seller_id)
FROM auctions;

INSERT INTO events (group_id, log_index, position, at, kind, seq, auction_id, user_id,
    actor_id, payload)
SELECT group_id, log_index, 0, at, 'auction_closed', seq, auction_id, winner_id,
       cancelled_by, jsonb_build_object('result', result)
FROM outcomes;

INSERT INTO events (group_id, log_index, position, at, kind, seq, auction_id, user_id,
    actor_id, payload)
SELECT 0, u, 0, timestamptz '2027-01-01 00:00:00+00' + u * interval '1 minute',
       'user_suspended', u, NULL, u, 1, jsonb_build_object('reason', 'spam')
FROM generate_series(100, {USERS}, 100) AS u;

ANALYZE;
