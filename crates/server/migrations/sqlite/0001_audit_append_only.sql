-- The audit log is append-only: the database itself refuses changes, so a
-- bug in the server cannot rewrite history; the hash chain detects anyone who
-- removes these triggers first.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
