-- shopstream schema v2: the layout of origin of every row and file, and the
-- columns of a file that the canonical schema has no place for.

ALTER TABLE ecommerce_events
    ADD COLUMN source_layout text NOT NULL DEFAULT 'v3',
    ADD COLUMN extra jsonb;
-- Rows loaded before this migration keep 'v3'; new rows always name theirs.
ALTER TABLE ecommerce_events ALTER COLUMN source_layout DROP DEFAULT;
COMMENT ON COLUMN ecommerce_events.source_layout IS 'the layout the row was read in: v1, v2, v3 or seed000 … seed004 (see shopstream schema list)';
COMMENT ON COLUMN ecommerce_events.extra IS 'file columns outside the canonical schema, {"name": "value"} (see --unknown-columns)';

ALTER TABLE dead_letter_events ADD COLUMN source_layout text;
COMMENT ON COLUMN dead_letter_events.source_layout IS 'the layout of the file the row came from';

ALTER TABLE ingested_files
    ADD COLUMN layout text,
    ADD COLUMN unknown_columns text[];
COMMENT ON COLUMN ingested_files.layout IS 'the layout detected from the header; NULL when the header matched none';
COMMENT ON COLUMN ingested_files.unknown_columns IS 'header columns the detected layout does not know (kept in extra or dropped, see --unknown-columns)';
