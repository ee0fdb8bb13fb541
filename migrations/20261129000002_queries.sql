-- Indexes for the read queries of martelo-sink's `query` module (docs/QUERIES.md shows each
-- query's SQL and plan). The first migration's indexes serve the rest.

-- Closed auctions filtered by seller or by result, newest first: the same order and keyset
-- as `auctions_closed_by_time` (closed_at DESC, auction_id), after the filter's column.
CREATE INDEX auctions_closed_by_seller ON auctions (seller_id, closed_at DESC, auction_id)
    WHERE status <> 'open';
CREATE INDEX auctions_closed_by_status ON auctions (status, closed_at DESC, auction_id)
    WHERE status <> 'open';

-- A user's wins, newest first, with the auction id as the keyset's tie-break (the first
-- migration's `outcomes_by_winner` has no auction id, so a page would need a sort).
CREATE INDEX outcomes_by_winner_time ON outcomes (winner_id, at DESC, auction_id)
    WHERE winner_id IS NOT NULL;
