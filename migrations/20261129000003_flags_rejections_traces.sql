-- What the event log records since storage format 3 (issue #13's schema, completed):
-- a bid's proxy and raise flags, the commands rejected through the log, and trace ids.
--
-- Ids (auction_id, user ids) in these and the earlier tables are the engine's u64 values
-- stored as the BIGINT with the same 64 bits: an id above i64::MAX is a negative BIGINT
-- here (martelo_sink::ids; docs/QUERIES.md, "Ids"). The first migration's comment that the
-- sink refuses such ids predates that mapping.

-- `proxy`: the bid set a maximum above its amount (the maximum itself is never stored).
-- `raise`: the bidder already led and raised their own maximum. Rows written before this
-- migration (from events without the flags) hold FALSE.
ALTER TABLE bids
    ADD COLUMN proxy BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN raise BOOLEAN NOT NULL DEFAULT FALSE;

-- The trace id (32 hex digits of the entry's W3C traceparent) of the command whose entry
-- emitted the event; NULL for untraced commands, the leader's own, and older records.
ALTER TABLE events
    ADD COLUMN trace_id TEXT CHECK (trace_id ~ '^[0-9a-f]{32}$');

-- Commands that went through the log and were rejected by the state machine (a bid too low
-- that the leader could not decide early, a close before the end, ...), with the stable
-- reject code (RejectCode::as_str). (group_id, log_index, position) is the rejection's
-- identity, as for events, so a replayed batch inserts nothing twice. Bids that the leader
-- rejects from a lease read never reach the log and are not here (docs/SINK.md).
-- Each rejection is also an `events` row of kind 'rejected' (seq NULL), so that the audit
-- search covers it; this table is its typed form.
CREATE TABLE rejections (
    group_id    BIGINT NOT NULL,
    log_index   BIGINT NOT NULL,
    position    INTEGER NOT NULL,
    at          timestamptz NOT NULL,
    -- The auction the command named, if any.
    auction_id  BIGINT,
    -- The user who sent the command (NULL for the leader's close and operator commands).
    actor_id    BIGINT,
    code        TEXT NOT NULL CHECK (code ~ '^[a-z_]{1,64}$'),
    trace_id    TEXT CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    PRIMARY KEY (group_id, log_index, position)
);
CREATE INDEX rejections_by_auction ON rejections (auction_id, at, group_id, log_index, position)
    WHERE auction_id IS NOT NULL;
CREATE INDEX rejections_by_actor ON rejections (actor_id, at, group_id, log_index, position)
    WHERE actor_id IS NOT NULL;
CREATE INDEX rejections_by_time ON rejections (at, group_id, log_index, position);
