-- Webhook deliveries already handled: by delivery id, and by content, because a
-- manual redelivery in Forgejo sends the same body under a new delivery id.
CREATE TABLE webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    content_key TEXT NOT NULL UNIQUE,
    event       TEXT NOT NULL,
    received_at TEXT NOT NULL
);
