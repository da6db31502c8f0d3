-- A payment approved after its order stopped waiting (the hold expired) is given back: the
-- order records the refund's status and when it reached it. Absent (NULL) when there was none.
ALTER TABLE orders
    ADD COLUMN refund_status text CHECK (refund_status IN ('pending', 'refunded', 'failed')),
    ADD COLUMN refund_at timestamptz,
    ADD CONSTRAINT orders_refund_has_a_time CHECK ((refund_status IS NULL) = (refund_at IS NULL));

-- Refunds still waiting for the provider, oldest first (the refund gauges read it often).
CREATE INDEX orders_refunds_pending ON orders (refund_at) WHERE refund_status = 'pending';
