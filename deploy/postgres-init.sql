-- Rasa's tracker store keeps its events table in a schema of its own (PAYBOT_TRACKER_STORE_URL
-- ?schema=rasa); Rasa creates the table, not the schema.
CREATE SCHEMA IF NOT EXISTS rasa AUTHORIZATION paybot;
