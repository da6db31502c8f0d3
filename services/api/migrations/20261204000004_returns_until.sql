-- Tickets that come back (a failed or lapsed payment) go to the people still in line until
-- `returns_until` (NULL: until the event starts); a sold-out queue is told to close when it
-- passes, once (`returns_closed_announced`, reset when the cut-off changes).
ALTER TABLE events
    ADD COLUMN returns_until timestamptz,
    ADD COLUMN returns_closed_announced boolean NOT NULL DEFAULT false;
