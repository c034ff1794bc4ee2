-- shopstream schema v1: the canonical events, dead letters, the file ledger
-- and per-batch data-quality metrics.

CREATE SEQUENCE shopstream_batch_id_seq;

CREATE TABLE ecommerce_events (
    event_id        uuid PRIMARY KEY,
    user_id         text,
    session_id      text,
    event_type      text NOT NULL
        CHECK (event_type IN ('view', 'search', 'add_to_cart', 'remove_from_cart', 'wishlist', 'purchase')),
    product_id      text NOT NULL,
    product_name    text,
    category        text,
    price           numeric(12,2) CHECK (price >= 0),
    quantity        integer NOT NULL CHECK (quantity >= 0),
    user_segment    text,
    search_query    text,
    event_time      timestamptz NOT NULL,
    device_type     text,
    browser         text,
    geo_country     text,
    geo_city        text,
    referrer        text,
    campaign_id     text,
    total_amount    numeric(18,2) NOT NULL DEFAULT 0,
    is_late_arrival boolean NOT NULL DEFAULT false,
    source_file     text NOT NULL,
    source_line     bigint NOT NULL,
    batch_id        bigint NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_required_for_login_only_events
        CHECK (event_type IN ('view', 'search') OR user_id IS NOT NULL)
);
COMMENT ON TABLE ecommerce_events IS 'One row per distinct event_id that passed validation (shopstream).';
COMMENT ON COLUMN ecommerce_events.total_amount IS 'price x quantity for purchase and add_to_cart, else 0';
COMMENT ON COLUMN ecommerce_events.is_late_arrival IS 'event_time was older than the late threshold (default 5 min) when processed';

CREATE INDEX ecommerce_events_time_idx ON ecommerce_events (event_time);
CREATE INDEX ecommerce_events_user_idx ON ecommerce_events (user_id, event_time);
CREATE INDEX ecommerce_events_type_idx ON ecommerce_events (event_type, event_time);
CREATE INDEX ecommerce_events_category_idx ON ecommerce_events (category, event_time);

CREATE TABLE dead_letter_events (
    id           bigserial PRIMARY KEY,
    batch_id     bigint NOT NULL,
    source_file  text NOT NULL,
    source_line  bigint NOT NULL,
    raw_line     text NOT NULL,
    event_id     text,
    error_codes  text[] NOT NULL,
    errors       jsonb NOT NULL,
    rejected_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN dead_letter_events.raw_line IS 'the CSV record exactly as read (invalid UTF-8 and NUL bytes replaced by U+FFFD)';
COMMENT ON COLUMN dead_letter_events.errors IS 'every failed rule: [{code, column, value, message}]';
CREATE INDEX dead_letter_events_codes_idx ON dead_letter_events USING gin (error_codes);
CREATE INDEX dead_letter_events_time_idx ON dead_letter_events (rejected_at);
CREATE INDEX dead_letter_events_file_idx ON dead_letter_events (source_file, source_line);

CREATE TABLE ingested_files (
    id             bigserial PRIMARY KEY,
    path           text NOT NULL,
    size_bytes     bigint NOT NULL,
    modified_at    timestamptz NOT NULL,
    content_hash   text,
    status         text NOT NULL CHECK (status IN ('loaded', 'duplicate', 'rejected')),
    reason         text,
    duplicate_of   text,
    rows_read      bigint NOT NULL,
    rows_loaded    bigint NOT NULL,
    rows_duplicate bigint NOT NULL,
    rows_rejected  bigint NOT NULL,
    late_arrivals  bigint NOT NULL DEFAULT 0,
    batch_id       bigint NOT NULL,
    committed_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rows_accounted CHECK (rows_read = rows_loaded + rows_duplicate + rows_rejected)
);
COMMENT ON TABLE ingested_files IS 'The ledger: one row per input file version (path + content) shopstream has finished with.';
-- A file's content is loaded at most once, whatever its name.
CREATE UNIQUE INDEX ingested_files_loaded_content_idx ON ingested_files (content_hash) WHERE status = 'loaded';
CREATE UNIQUE INDEX ingested_files_path_content_idx ON ingested_files (path, content_hash);
CREATE INDEX ingested_files_path_idx ON ingested_files (path);

CREATE TABLE data_quality_metrics (
    batch_id        bigint PRIMARY KEY,
    started_at      timestamptz NOT NULL,
    committed_at    timestamptz NOT NULL DEFAULT now(),
    files           integer NOT NULL,
    rows_read       bigint NOT NULL,
    rows_valid      bigint NOT NULL,
    rows_loaded     bigint NOT NULL,
    rows_duplicate  bigint NOT NULL,
    rows_rejected   bigint NOT NULL,
    validity_rate   numeric(7,6),
    late_arrivals   bigint NOT NULL,
    rejects_by_code jsonb NOT NULL,
    CONSTRAINT rows_accounted CHECK (rows_read = rows_valid + rows_rejected
                                     AND rows_valid = rows_loaded + rows_duplicate)
);
CREATE INDEX data_quality_metrics_time_idx ON data_quality_metrics (committed_at);
