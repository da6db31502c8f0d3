-- Refresh tokens: opaque, stored as SHA-256; rotated on every use. Reusing a rotated token
-- revokes its whole family (a stolen token is useless once either party uses it).
CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid        NOT NULL,
    token_hash  bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Events and their queue settings.
CREATE TABLE events (
    id               uuid        PRIMARY KEY,
    name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    venue            text        NOT NULL CHECK (length(venue) BETWEEN 1 AND 200),
    starts_at        timestamptz NOT NULL,
    sale_opens_at    timestamptz NOT NULL,
    price_cents      bigint      NOT NULL CHECK (price_cents >= 0),
    currency         text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    inventory        integer     NOT NULL CHECK (inventory >= 0),
    max_per_user     integer     NOT NULL CHECK (max_per_user >= 1),
    admit_per_sec    integer     NOT NULL CHECK (admit_per_sec >= 1),
    max_active       integer     NOT NULL CHECK (max_active >= 1),
    admission_ttl_s  integer     NOT NULL CHECK (admission_ttl_s >= 1),
    -- Set once the gateway has been told the event ended (its start time passed).
    ended_announced  boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_starts_at ON events (starts_at);

-- Stock: the tickets not held by a live order. The CHECK is what makes overselling
-- impossible, whatever the application does.
CREATE TABLE event_stock (
    event_id   uuid    PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    remaining  integer NOT NULL CHECK (remaining >= 0)
);

CREATE TABLE orders (
    id               uuid        PRIMARY KEY,
    event_id         uuid        NOT NULL REFERENCES events (id),
    user_id          uuid        NOT NULL REFERENCES users (id),
    quantity         integer     NOT NULL CHECK (quantity >= 1),
    amount_cents     bigint      NOT NULL CHECK (amount_cents >= 0),
    currency         text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending_payment'
                     CHECK (status IN ('pending_payment', 'paid', 'payment_failed', 'expired')),
    payment_id       uuid        NOT NULL UNIQUE,
    failure_reason   text,
    hold_expires_at  timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user ON orders (user_id, created_at DESC);
CREATE INDEX orders_user_event_live ON orders (user_id, event_id)
    WHERE status IN ('pending_payment', 'paid');
CREATE INDEX orders_pending_hold ON orders (hold_expires_at) WHERE status = 'pending_payment';

-- A gate token buys once. Rows here and in idempotency_keys are written by the same
-- statement as their order, so they carry no foreign keys (each would cost a lookup per
-- order on the hottest path); the primary keys are the invariants.
CREATE TABLE consumed_gate_tokens (
    jti          uuid        PRIMARY KEY,
    order_id     uuid        NOT NULL,
    consumed_at  timestamptz NOT NULL DEFAULT now()
);

-- An idempotency key is unique per user; it remembers the request it answered.
CREATE TABLE idempotency_keys (
    user_id       uuid        NOT NULL,
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_hash  bytea       NOT NULL,
    order_id      uuid        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Messages written in the same transaction as the change they announce; the relay
-- publishes them with confirms and marks them published.
CREATE TABLE outbox (
    id            bigserial   PRIMARY KEY,
    message_id    uuid        NOT NULL UNIQUE,
    -- The exchange without the deployment's name prefix, and the routing key.
    exchange      text        NOT NULL CHECK (exchange IN ('flash.payments', 'flash.events')),
    routing_key   text        NOT NULL,
    message_type  text        NOT NULL,
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Wake the relay as soon as a message commits.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flash_outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Payment outcomes as received (audit, and idempotency of the consumer).
CREATE TABLE payment_results (
    payment_id    uuid        PRIMARY KEY,
    order_id      uuid        NOT NULL REFERENCES orders (id),
    outcome       text        NOT NULL CHECK (outcome IN ('approved', 'declined')),
    reason        text,
    processed_at  timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
