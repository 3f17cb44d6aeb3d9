-- Trust (issue 12): how each conversation's owner was vouched for, the claim that was not believed,
-- and later events for a conversation that already has another owner (kept aside, counted).

-- token | telephony | operator | claimed; null: no owner (or stored before this migration).
ALTER TABLE conversations ADD COLUMN vouched_by TEXT;
-- An app user id the event claimed without proof (the conversation is then not theirs), and why.
ALTER TABLE conversations ADD COLUMN claimed_user_id TEXT;
ALTER TABLE conversations ADD COLUMN unverified_reason TEXT;

-- The operator's list of conversations no one owns (GET /v1/conversations?unattributed=true).
CREATE INDEX conversations_unattributed ON conversations (received_at DESC, conversation_id DESC) WHERE user_id IS NULL;
-- Erasing a user also erases the conversations that claimed them without proof.
CREATE INDEX conversations_by_claim ON conversations (claimed_user_id) WHERE claimed_user_id IS NOT NULL;

-- A later event for a conversation with another owner: its raw body in R2 (r2_key, under quarantine/),
-- the owner it named, and the owner that keeps the conversation.
CREATE TABLE conversation_conflicts (
  conversation_id TEXT NOT NULL,
  r2_key TEXT NOT NULL,
  claimed_user_id TEXT,
  owner_user_id TEXT,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, r2_key)
);

CREATE INDEX conversation_conflicts_by_claimant ON conversation_conflicts (claimed_user_id);
