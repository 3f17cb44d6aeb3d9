-- postcall D1 schema, version 2: indexes for erasure by phone number and for retention by age.
-- docs/storage.md explains every table.

-- DELETE /v1/users/:userId removes call failures recorded for the user's phone numbers.
CREATE INDEX call_failures_by_from_number ON call_failures (from_number);
CREATE INDEX call_failures_by_to_number ON call_failures (to_number);
CREATE INDEX call_failures_by_received ON call_failures (received_at);

-- The retention sweep finds expired conversations of every owner, including unattributed ones.
CREATE INDEX conversations_by_start ON conversations (started_at);
