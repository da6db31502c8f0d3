-- When payment was last asked for again (NULL: only when the order was taken). An order
-- still pending long after its request (a message lost with a broker's restart) is asked
-- again with the same payment id, which the pay worker and the results consumer treat
-- idempotently.
ALTER TABLE orders ADD COLUMN payment_asked_at timestamptz;
