-- Where each input file went once its fate was committed.

ALTER TABLE ingested_files
    ADD COLUMN disposition text
        CHECK (disposition IN ('kept', 'archived', 'deleted', 'quarantined', 'gone', 'changed')),
    ADD COLUMN moved_to text;
COMMENT ON COLUMN ingested_files.disposition IS
    'what shopstream did with the file after the commit: kept, archived, deleted, quarantined (rejected files), gone (already moved by someone else) or changed (a newer version was left in place); NULL until recorded';
COMMENT ON COLUMN ingested_files.moved_to IS 'the archive or quarantine path the file was moved to';
