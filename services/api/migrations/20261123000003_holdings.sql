-- Tickets each buyer holds per event (live orders: pending payment or paid), kept by the
-- statement that writes the orders and by whatever returns tickets to stock. `cap` is the
-- event's max_per_user when the buyer last ordered; the CHECK makes a buyer's limit hold
-- under any concurrency, as event_stock's CHECK does for the stock, so order batches can
-- decide without locking and let these constraints catch a race.
CREATE TABLE holdings (
    user_id   uuid    NOT NULL,
    event_id  uuid    NOT NULL,
    held      integer NOT NULL CHECK (held >= 0),
    cap       integer NOT NULL,
    PRIMARY KEY (user_id, event_id),
    CHECK (held <= cap)
);

INSERT INTO holdings (user_id, event_id, held, cap)
SELECT o.user_id, o.event_id, sum(o.quantity), greatest(sum(o.quantity), max(e.max_per_user))
FROM orders o JOIN events e ON e.id = o.event_id
WHERE o.status IN ('pending_payment', 'paid')
GROUP BY o.user_id, o.event_id;

-- Replaced by holdings.
DROP INDEX orders_user_event_live;
