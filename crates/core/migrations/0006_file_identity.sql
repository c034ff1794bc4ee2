-- shopstream schema v6: a local file's identity catches content rewritten in
-- place, and every delivery of a file has a ledger row of its own.
--
-- A file was matched on (path, size, mtime) alone, so a file rewritten with
-- the same size and mtime (`cp -p`, `rsync -t`, `tar -x`, `touch -r`) was
-- skipped silently. Local files now also carry their device, inode and
-- ctime (nanoseconds; no user tool can set a ctime back), taken from the
-- listing without reading the file. Rows written before this migration, and
-- objects of an object store (whose identity stays URL, size and
-- last-modified time), have NULL here and still match on path, size and
-- mtime, so an upgrade reloads nothing.

ALTER TABLE ingested_files
    ADD COLUMN device   bigint,
    ADD COLUMN inode    bigint,
    ADD COLUMN ctime_ns bigint;
COMMENT ON COLUMN ingested_files.device IS 'the local file''s device number (st_dev); NULL for objects and for rows written before schema v6';
COMMENT ON COLUMN ingested_files.inode IS 'the local file''s inode number (st_ino); NULL for objects and for rows written before schema v6';
COMMENT ON COLUMN ingested_files.ctime_ns IS 'the local file''s status change time (st_ctime), nanoseconds since the Unix epoch; NULL for objects and for rows written before schema v6';

-- One row per delivery: the same content may come again under the same
-- path (a rejected file delivered again, a file restored in place), and each
-- delivery has its own row, status and disposition. Content is still loaded
-- at most once (ingested_files_loaded_content_idx).
DROP INDEX ingested_files_path_content_idx;
CREATE INDEX ingested_files_content_idx ON ingested_files (content_hash);
CREATE UNIQUE INDEX ingested_files_identity_idx
    ON ingested_files (path, size_bytes, modified_at, device, inode, ctime_ns);
COMMENT ON TABLE ingested_files IS
    'The ledger: one row per delivery of an input file (path, size, mtime and, for local files, device, inode and ctime) shopstream has finished with.';
