-- The sink's read and audit model: what the Raft groups committed, copied by martelo-sink.
--
-- Rules for every table here:
-- - Money is BIGINT in the currency's minor units (the engine's Amount).
-- - Time is timestamptz taken from the event's cluster timestamp (the group leader's hybrid
--   clock, carried in the Raft entry), never now().
-- - Ids are the engine's: auction_id, user_id (u64 values, stored as BIGINT; the sink refuses
--   a value above i64::MAX rather than wrapping it).
-- - Every row the sink inserts has a natural key, so a replayed batch inserts nothing twice;
--   the per-group cursor's compare-and-set keeps a batch from committing twice at all.
-- - Nothing here holds a password hash or a token hash: the events do not carry them.

-- One row per Raft group: the highest log index whose events are in this database. A batch of
-- rows and the move of this cursor commit in one transaction, and the move is a
-- compare-and-set on the previous value (martelo-sink's write_batch).
CREATE TABLE sink_cursor (
    group_id       BIGINT PRIMARY KEY CHECK (group_id >= 0),
    applied_index  BIGINT NOT NULL CHECK (applied_index >= 0),
    -- Cluster time of the last event written for the group (NULL before the first).
    last_event_at  timestamptz
);

-- The raw committed event stream, one row per event, in log order per group.
-- (group_id, log_index, position) is the event's identity: position is its index within the
-- entry's events. Trace ids are not recorded: the event log does not carry them (see
-- docs/SINK.md).
CREATE TABLE events (
    group_id    BIGINT NOT NULL,
    log_index   BIGINT NOT NULL,
    position    INTEGER NOT NULL,
    at          timestamptz NOT NULL,
    kind        TEXT NOT NULL,
    -- The auction's seq for auction events, the meta seq for meta events, NULL for the
    -- shard-level bidder suspension events (they have no seq).
    seq         BIGINT,
    auction_id  BIGINT,
    -- The user the event is about (bidder, seller, account), when there is one.
    user_id     BIGINT,
    -- The user who did it, when the event names one (admin actions, cancellations).
    actor_id    BIGINT,
    payload     JSONB NOT NULL,
    PRIMARY KEY (group_id, log_index, position)
);
-- Audit search with keyset pagination on (at, group_id, log_index, position).
CREATE INDEX events_by_time ON events (at, group_id, log_index, position);
CREATE INDEX events_by_auction ON events (auction_id, at, group_id, log_index, position)
    WHERE auction_id IS NOT NULL;
CREATE INDEX events_by_user ON events (user_id, at, group_id, log_index, position)
    WHERE user_id IS NOT NULL;
CREATE INDEX events_by_actor ON events (actor_id, at, group_id, log_index, position)
    WHERE actor_id IS NOT NULL;
CREATE INDEX events_by_kind ON events (kind, at, group_id, log_index, position);

-- One row per auction: the listing (public: the reserve amount is never in an event) and
-- its current state. `seq` is the auction's last event seq applied here; updates only move
-- it forward, so applying an older event again changes nothing.
CREATE TABLE auctions (
    auction_id         BIGINT PRIMARY KEY,
    group_id           BIGINT NOT NULL,
    seller_id          BIGINT NOT NULL,
    title              TEXT NOT NULL,
    description        TEXT NOT NULL,
    currency           TEXT NOT NULL,
    starting_price     BIGINT NOT NULL,
    has_reserve        BOOLEAN NOT NULL,
    buy_now_price      BIGINT,
    increment          JSONB NOT NULL,
    soft_close         JSONB,
    starts_at          timestamptz NOT NULL,
    -- The end in the listing, and the end after soft-close extensions.
    ends_at            timestamptz NOT NULL,
    effective_end_at   timestamptz NOT NULL,
    -- 'open' until the Closed event, then 'sold', 'unsold' or 'cancelled'.
    status             TEXT NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'sold', 'unsold', 'cancelled')),
    current_price      BIGINT,
    leader_id          BIGINT,
    reserve_met        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         timestamptz NOT NULL,
    closed_at          timestamptz,
    seq                BIGINT NOT NULL
);
CREATE INDEX auctions_closed_by_time ON auctions (closed_at DESC, auction_id)
    WHERE status <> 'open';
CREATE INDEX auctions_by_seller ON auctions (seller_id, created_at DESC);

-- Every accepted bid. `amount` is the bid's amount (never the bidder's private proxy maximum:
-- events do not carry it); `price_after` is the visible price once the bid was folded in,
-- with any proxy response; `leader_after` who led then. Proxy and raise flags are not in the
-- events, so they are not here (docs/SINK.md).
CREATE TABLE bids (
    auction_id     BIGINT NOT NULL,
    bid_id         INTEGER NOT NULL,
    group_id       BIGINT NOT NULL,
    log_index      BIGINT NOT NULL,
    position       INTEGER NOT NULL,
    seq            BIGINT NOT NULL,
    bidder_id      BIGINT NOT NULL,
    amount         BIGINT NOT NULL,
    price_after    BIGINT NOT NULL,
    leader_after   BIGINT NOT NULL,
    at             timestamptz NOT NULL,
    voided         BOOLEAN NOT NULL DEFAULT FALSE,
    void_reason    TEXT,
    voided_at      timestamptz,
    PRIMARY KEY (auction_id, bid_id),
    UNIQUE (group_id, log_index, position)
);
CREATE INDEX bids_by_auction_seq ON bids (auction_id, seq);
CREATE INDEX bids_by_bidder ON bids (bidder_id, at DESC, auction_id, bid_id);

-- How each auction ended: exactly one row per closed auction.
CREATE TABLE outcomes (
    auction_id     BIGINT PRIMARY KEY,
    group_id       BIGINT NOT NULL,
    log_index      BIGINT NOT NULL,
    seq            BIGINT NOT NULL,
    at             timestamptz NOT NULL,
    result         TEXT NOT NULL CHECK (result IN ('sold', 'unsold', 'cancelled')),
    winner_id      BIGINT,
    price          BIGINT,
    -- 'bidding' or 'buy_now' when sold.
    sale_kind      TEXT,
    -- 'no_bids' or 'reserve_not_met' when unsold.
    unsold_reason  TEXT,
    cancelled_by   BIGINT,
    cancel_reason  TEXT
);
CREATE INDEX outcomes_by_winner ON outcomes (winner_id, at DESC) WHERE winner_id IS NOT NULL;
CREATE INDEX outcomes_by_time ON outcomes (at DESC, auction_id);

-- Accounts from the meta group (group 0): public profile and status only.
CREATE TABLE accounts (
    user_id           BIGINT PRIMARY KEY,
    username          TEXT NOT NULL,
    display_name      TEXT NOT NULL,
    roles             TEXT[] NOT NULL,
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    suspended_reason  TEXT,
    registered_at     timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    -- The meta seq of the last event applied to this row; updates only move it forward.
    seq               BIGINT NOT NULL
);
CREATE INDEX accounts_by_username ON accounts (username);

-- Admin and moderation actions, with actor and reason where the events carry them:
-- account suspension, reinstatement and role changes (meta group, actor known), a shard's
-- bidder suspension and reinstatement (actor not in the event), bid voids (actor not in the
-- event) and auction cancellations (actor known; seller or admin).
CREATE TABLE admin_actions (
    group_id     BIGINT NOT NULL,
    log_index    BIGINT NOT NULL,
    position     INTEGER NOT NULL,
    at           timestamptz NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN (
        'user_suspended', 'user_reinstated', 'roles_changed', 'password_changed',
        'bidder_suspended', 'bidder_reinstated', 'bid_voided', 'auction_cancelled')),
    actor_id     BIGINT,
    subject_id   BIGINT,
    auction_id   BIGINT,
    bid_id       INTEGER,
    reason       TEXT,
    details      JSONB,
    PRIMARY KEY (group_id, log_index, position)
);
CREATE INDEX admin_actions_by_time ON admin_actions (at, group_id, log_index, position);
CREATE INDEX admin_actions_by_actor ON admin_actions (actor_id, at)
    WHERE actor_id IS NOT NULL;
CREATE INDEX admin_actions_by_subject ON admin_actions (subject_id, at)
    WHERE subject_id IS NOT NULL;
CREATE INDEX admin_actions_by_auction ON admin_actions (auction_id, at)
    WHERE auction_id IS NOT NULL;
CREATE INDEX admin_actions_by_kind ON admin_actions (kind, at);
