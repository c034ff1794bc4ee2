-- shopstream schema v8: dead letters can be replayed and quarantined files
-- requeued, and both keep their history.
--
-- Replay (`shopstream dead-letters replay`) validates dead letters again
-- under the rules, layouts and options of the moment and, in ONE
-- transaction under the loaders' writer lock, moves the rows that now pass
-- into ecommerce_events (batch_id = the replay's id, drawn from
-- shopstream_batch_id_seq) and marks their dead letters with that replay
-- and the outcome: 'loaded', or 'duplicate' when the id was already in
-- ecommerce_events (or came twice among the replayed rows). A dead letter
-- that is still invalid is left exactly as it was (its reasons are those of
-- its rejection). Each replay has a row in dead_letter_replays, and one in
-- data_quality_metrics when it moved rows (a batch without files), which
-- is what tells running loaders to read the table's ids again.
--
-- Re-validation maps a dead letter's raw line with its file's header, which
-- the ledger now records for every file it loads (ingested_files.header).
-- Rows of layouts without an event id keep the id derived when they were
-- read (dead_letter_events.event_id), since it depends on the rows before
-- them in the file.
--
-- Requeue (`shopstream requeue`) moves a quarantined file back into the
-- input: its rejected ledger rows stay and are marked requeued, and rows so
-- marked no longer make the file "known", so the next run reads it again.
--
-- Additive: older binaries write exactly as before (they leave the new
-- columns NULL), but they do not know the requeue mark and would take a
-- requeued file for the rejected one again.

ALTER TABLE ingested_files
    ADD COLUMN header      text[],
    ADD COLUMN requeued_at timestamptz,
    ADD COLUMN requeued_to text;
COMMENT ON COLUMN ingested_files.header IS 'the header row''s column names as written (loaded files, schema v8 on); dead-letter replay maps raw lines with it';
COMMENT ON COLUMN ingested_files.requeued_at IS 'when `shopstream requeue` moved this rejected file back into the input; a requeued row no longer makes the file known, so it is read again';
COMMENT ON COLUMN ingested_files.requeued_to IS 'the input path `shopstream requeue` moved the file back to';

ALTER TABLE dead_letter_events
    ADD COLUMN replay_id         bigint,
    ADD COLUMN replay_outcome    text CHECK (replay_outcome IN ('loaded', 'duplicate')),
    ADD COLUMN replayed_event_id uuid;
COMMENT ON COLUMN dead_letter_events.event_id IS 'the row''s event id as written; for layouts without one (seed002), the id derived when it was read (schema v8 on)';
COMMENT ON COLUMN dead_letter_events.replay_id IS 'the replay (dead_letter_replays) that moved the row out of the dead letters; NULL while it is one';
COMMENT ON COLUMN dead_letter_events.replay_outcome IS 'loaded (now in ecommerce_events with batch_id = replay_id) or duplicate (its id was loaded already)';
COMMENT ON COLUMN dead_letter_events.replayed_event_id IS 'the event id the row had when it was replayed';
-- Replays read the dead letters still pending, file by file.
CREATE INDEX dead_letter_events_pending_idx ON dead_letter_events (batch_id, source_file, source_line)
    WHERE replay_id IS NULL;

CREATE TABLE dead_letter_replays (
    replay_id         bigint PRIMARY KEY,
    started_at        timestamptz NOT NULL,
    committed_at      timestamptz NOT NULL DEFAULT now(),
    filters           jsonb NOT NULL,
    settings          jsonb NOT NULL,
    considered        bigint NOT NULL,
    loaded            bigint NOT NULL,
    duplicate         bigint NOT NULL,
    still_invalid     bigint NOT NULL,
    still_invalid_by_code jsonb NOT NULL,
    CONSTRAINT rows_accounted CHECK (considered = loaded + duplicate + still_invalid)
);
COMMENT ON TABLE dead_letter_replays IS 'One row per committed `shopstream dead-letters replay`: its filters, the validation settings it used and what became of the dead letters it considered.';
COMMENT ON COLUMN dead_letter_replays.replay_id IS 'a batch id (shopstream_batch_id_seq): the batch_id of the events it loaded and of its data_quality_metrics row';
COMMENT ON COLUMN dead_letter_replays.still_invalid_by_code IS 'the rules the dead letters left failed under this replay''s settings, {"code": count} (a row failing two rules counts in both)';

-- Replayed dead letters are no longer dead letters.
CREATE OR REPLACE VIEW v_dead_letters_by_code AS
SELECT code                                                             AS error_code,
       count(*)                                                         AS dead_letters,
       count(DISTINCT d.source_file)                                    AS files,
       min(d.rejected_at)                                               AS first_seen,
       max(d.rejected_at)                                               AS last_seen
  FROM dead_letter_events d
 CROSS JOIN LATERAL unnest(d.error_codes) AS code
 WHERE d.replay_id IS NULL
 GROUP BY code;
COMMENT ON VIEW v_dead_letters_by_code IS
    'Per rule code: dead letters not replayed yet that failed it (a row failing several rules counts under each), distinct source files, first and last rejection time.';
