-- shopstream schema v10: a lean index set on dead_letter_events.
--
-- Every dead letter is written in the batch's transaction, so each index
-- on the table is maintained on the load path. Measured on the project's
-- machine (BENCHMARKS.md), 20,000 dead letters took 300-360 ms to insert
-- with the five indexes of v8 and 90-145 ms with the primary key alone.
--
-- * (source_file, source_line) served no query: `deadletters --file`
--   matches a whole path or its last components, which no B-tree on the
--   path can answer, and the batch's own deletes go by batch id (the
--   pending index).
-- * rejected_at grows with the insert order, which BRIN summarises for a
--   fraction of a B-tree's upkeep; retention deletes and `--since` ranges
--   still use it.
--
-- The primary key, the GIN index on error_codes (`--code`) and the partial
-- index of letters not yet replayed stay.

DROP INDEX IF EXISTS dead_letter_events_file_idx;
DROP INDEX IF EXISTS dead_letter_events_time_idx;
CREATE INDEX dead_letter_events_time_brin ON dead_letter_events USING brin (rejected_at);
