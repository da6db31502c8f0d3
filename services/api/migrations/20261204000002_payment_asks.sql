-- How often payment was asked for again: each re-ask waits twice as long as the one before,
-- and an order stops being asked after PAYMENT_REASK_MAX of them (its hold still expires).
ALTER TABLE orders ADD COLUMN payment_asks integer NOT NULL DEFAULT 0;
