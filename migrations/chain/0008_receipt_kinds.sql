-- Typed refusals (issue 19): a failed system call's receipt keeps the refusal's kind
-- (invalid | retryable | insufficient-funds | already-done) and its stable reason code
-- beside the message in `error`.
ALTER TABLE receipts ADD COLUMN kind TEXT;
ALTER TABLE receipts ADD COLUMN code TEXT;
