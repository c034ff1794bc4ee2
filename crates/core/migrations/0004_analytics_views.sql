-- shopstream schema v4: analytics views over the loaded events and the
-- loader's own bookkeeping. `shopstream report` prints them.
--
-- Conventions shared by every view:
--   * revenue is the sum of total_amount over purchases only (add_to_cart
--     rows carry a total_amount too, but nothing was sold yet);
--   * counts are counts of events (rows of ecommerce_events), not of users;
--   * rates are numeric fractions (0.125 = 12.5 %) rounded to 4 decimals,
--     and NULL when their denominator is 0;
--   * a NULL category or user_segment is reported as 'unknown';
--   * no view orders its rows: ORDER BY in the query that reads it.
-- The v_ names of seed 003 are kept, so queries written for it still work.

CREATE VIEW v_hourly_event_summary AS
SELECT date_trunc('hour', event_time)                                   AS event_hour,
       event_type,
       count(*)                                                         AS events,
       count(DISTINCT user_id)                                          AS users,
       count(DISTINCT session_id)                                       AS sessions,
       coalesce(sum(total_amount) FILTER (WHERE event_type = 'purchase'), 0)
                                                                        AS revenue
  FROM ecommerce_events
 GROUP BY 1, 2;
COMMENT ON VIEW v_hourly_event_summary IS
    'Per hour of event_time and event type: events, distinct users and sessions, revenue (purchases'' total_amount; 0 for other types).';

CREATE VIEW v_category_performance AS
WITH per_category AS (
    SELECT coalesce(category, 'unknown')                                AS category,
           count(*)                                                     AS events,
           count(*) FILTER (WHERE event_type = 'view')                  AS views,
           count(*) FILTER (WHERE event_type = 'add_to_cart')           AS add_to_carts,
           count(*) FILTER (WHERE event_type = 'purchase')              AS purchases,
           coalesce(sum(total_amount) FILTER (WHERE event_type = 'purchase'), 0)
                                                                        AS revenue,
           avg(price)                                                   AS avg_price
      FROM ecommerce_events
     GROUP BY 1
)
SELECT category,
       events,
       views,
       add_to_carts,
       purchases,
       revenue,
       round(avg_price, 2)                                              AS avg_price,
       round(purchases::numeric / nullif(views, 0), 4)                  AS view_to_purchase_rate
  FROM per_category;
COMMENT ON VIEW v_category_performance IS
    'Per category (NULL = unknown): events, views, add-to-carts, purchases, revenue, average price of the events that have one, purchases per view.';

CREATE VIEW v_user_sessions AS
SELECT user_id,
       session_id,
       user_segment,
       count(*)                                                         AS events,
       count(*) FILTER (WHERE event_type = 'view')                      AS views,
       count(*) FILTER (WHERE event_type = 'add_to_cart')               AS add_to_carts,
       count(*) FILTER (WHERE event_type = 'purchase')                  AS purchases,
       coalesce(sum(total_amount) FILTER (WHERE event_type = 'purchase'), 0)
                                                                        AS revenue,
       min(event_time)                                                  AS first_event,
       max(event_time)                                                  AS last_event,
       max(event_time) - min(event_time)                                AS duration
  FROM ecommerce_events
 WHERE session_id IS NOT NULL
 GROUP BY user_id, session_id, user_segment;
COMMENT ON VIEW v_user_sessions IS
    'Per (user_id, session_id, user_segment) of the events that have a session: counts by type, revenue, first and last event_time and the time between them.';

CREATE VIEW v_user_segment_analysis AS
WITH per_segment AS (
    SELECT coalesce(user_segment, 'unknown')                            AS user_segment,
           count(DISTINCT user_id)                                      AS users,
           count(DISTINCT session_id)                                   AS sessions,
           count(*)                                                     AS events,
           count(*) FILTER (WHERE event_type = 'purchase')              AS purchases,
           coalesce(sum(total_amount) FILTER (WHERE event_type = 'purchase'), 0)
                                                                        AS revenue
      FROM ecommerce_events
     GROUP BY 1
)
SELECT user_segment,
       users,
       sessions,
       events,
       purchases,
       revenue,
       round(revenue / nullif(users, 0), 2)                             AS revenue_per_user,
       round(purchases::numeric / nullif(users, 0), 4)                  AS purchases_per_user
  FROM per_segment;
COMMENT ON VIEW v_user_segment_analysis IS
    'Per user_segment (NULL = unknown): distinct users and sessions, events, purchases, revenue, and revenue and purchases per user (NULL without users).';

CREATE VIEW v_conversion_funnel_hourly AS
WITH per_hour AS (
    SELECT date_trunc('hour', event_time)                               AS event_hour,
           count(*) FILTER (WHERE event_type = 'view')                  AS views,
           count(*) FILTER (WHERE event_type = 'add_to_cart')           AS add_to_carts,
           count(*) FILTER (WHERE event_type = 'purchase')              AS purchases
      FROM ecommerce_events
     GROUP BY 1
)
SELECT event_hour,
       views,
       add_to_carts,
       purchases,
       round(add_to_carts::numeric / nullif(views, 0), 4)               AS view_to_cart_rate,
       round(purchases::numeric / nullif(add_to_carts, 0), 4)           AS cart_to_purchase_rate,
       round(purchases::numeric / nullif(views, 0), 4)                  AS view_to_purchase_rate
  FROM per_hour;
COMMENT ON VIEW v_conversion_funnel_hourly IS
    'Per hour of event_time: views, add-to-carts, purchases and the step rates between them (event counts; NULL when the denominator is 0).';

CREATE VIEW v_conversion_funnel_by_category AS
WITH per_category AS (
    SELECT coalesce(category, 'unknown')                                AS category,
           count(*) FILTER (WHERE event_type = 'view')                  AS views,
           count(*) FILTER (WHERE event_type = 'add_to_cart')           AS add_to_carts,
           count(*) FILTER (WHERE event_type = 'purchase')              AS purchases
      FROM ecommerce_events
     GROUP BY 1
)
SELECT category,
       views,
       add_to_carts,
       purchases,
       round(add_to_carts::numeric / nullif(views, 0), 4)               AS view_to_cart_rate,
       round(purchases::numeric / nullif(add_to_carts, 0), 4)           AS cart_to_purchase_rate,
       round(purchases::numeric / nullif(views, 0), 4)                  AS view_to_purchase_rate
  FROM per_category;
COMMENT ON VIEW v_conversion_funnel_by_category IS
    'Per category (NULL = unknown): views, add-to-carts, purchases and the step rates between them (event counts; NULL when the denominator is 0).';

CREATE VIEW v_top_products AS
WITH per_product AS (
    SELECT product_id,
           max(product_name)                                            AS product_name,
           coalesce(category, 'unknown')                                AS category,
           count(*) FILTER (WHERE event_type = 'view')                  AS views,
           count(*) FILTER (WHERE event_type = 'add_to_cart')           AS add_to_carts,
           count(*) FILTER (WHERE event_type = 'purchase')              AS purchases,
           coalesce(sum(quantity) FILTER (WHERE event_type = 'purchase'), 0)
                                                                        AS units_sold,
           coalesce(sum(total_amount) FILTER (WHERE event_type = 'purchase'), 0)
                                                                        AS revenue
      FROM ecommerce_events
     GROUP BY product_id, coalesce(category, 'unknown')
)
SELECT product_id,
       product_name,
       category,
       views,
       add_to_carts,
       purchases,
       units_sold,
       revenue,
       rank() OVER (ORDER BY revenue DESC)                              AS revenue_rank
  FROM per_product;
COMMENT ON VIEW v_top_products IS
    'Per (product_id, category): a product name, views, add-to-carts, purchases, units sold (purchased quantity), revenue and its rank by revenue (1 = highest; ties share a rank).';

CREATE VIEW v_data_quality_dashboard AS
SELECT batch_id,
       started_at,
       committed_at,
       files,
       rows_read,
       rows_valid,
       rows_loaded,
       rows_duplicate,
       rows_rejected,
       round(validity_rate, 4)                                          AS validity_rate,
       late_arrivals,
       rejects_by_code
  FROM data_quality_metrics;
COMMENT ON VIEW v_data_quality_dashboard IS
    'Per committed batch: files, rows read / valid / loaded / duplicate / rejected, validity rate (valid / read; NULL for a batch without rows), late arrivals and rejects by rule code.';

CREATE VIEW v_data_quality_summary AS
SELECT date_trunc('hour', committed_at)                                 AS hour,
       count(*)                                                         AS batches,
       sum(rows_read)                                                   AS rows_read,
       sum(rows_valid)                                                  AS rows_valid,
       sum(rows_rejected)                                               AS rows_rejected,
       round(avg(validity_rate), 4)                                     AS avg_validity_rate,
       sum(late_arrivals)                                               AS late_arrivals
  FROM data_quality_metrics
 WHERE committed_at >= now() - interval '24 hours'
 GROUP BY 1;
COMMENT ON VIEW v_data_quality_summary IS
    'The last 24 hours of data_quality_metrics by hour of commit: batches, rows read / valid / rejected, average batch validity rate, late arrivals.';

CREATE VIEW v_dead_letters_by_code AS
SELECT code                                                             AS error_code,
       count(*)                                                         AS dead_letters,
       count(DISTINCT d.source_file)                                    AS files,
       min(d.rejected_at)                                               AS first_seen,
       max(d.rejected_at)                                               AS last_seen
  FROM dead_letter_events d
 CROSS JOIN LATERAL unnest(d.error_codes) AS code
 GROUP BY code;
COMMENT ON VIEW v_dead_letters_by_code IS
    'Per rule code: dead letters that failed it (a row failing several rules counts under each), distinct source files, first and last rejection time.';
