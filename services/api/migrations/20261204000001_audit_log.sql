-- The operators' audit log: every change to a sale, who made it and what it changed, in the
-- order it was recorded. Append-only: the services only insert, and the database refuses to
-- change or delete a record (the trigger below), whoever asks.
CREATE TABLE audit_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    -- The operator's user id and e-mail when they acted through a service; null for the
    -- command line (`flash-api admin grant`).
    actor       uuid,
    actor_email text,
    action      text        NOT NULL CHECK (action ~ '^[a-z]+\.[a-z]+$'),
    event_id    uuid,
    -- {"field": [before, after], ...}: only what changed.
    changes     jsonb       NOT NULL CHECK (jsonb_typeof(changes) = 'object'),
    -- Set for a record relayed from another service: the same change recorded once.
    dedup_id    text        UNIQUE
);

CREATE INDEX audit_log_event ON audit_log (event_id, id DESC);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
