-- shopstream schema v7: v_category_performance.avg_price averages the prices
-- of the events that carry one, as its comment always said.
--
-- It averaged price over every event of a category, so layouts that write
-- 0.0 as "no price" on views, searches and wishlists (seed 003) pulled the
-- average down to a fraction of the prices paid. Only purchases and
-- add-to-carts carry a price in every layout that has one: validation
-- requires it above 0 for them (missing_price) and for no other type.
-- Other types keep whatever the file gave them (a real price on seed 001
-- and seed 004 views, 0.0 on seed 003's, nothing on searches), so counting
-- them would make the average mean something else for each layout. The
-- average is therefore over purchases and add-to-carts with a price above
-- 0 (a NULL price, from a layout without a price column like seed 002, is
-- left out too); a category without any such event has a NULL avg_price.
-- Same columns in the same order: older binaries and queries keep working.

CREATE OR REPLACE VIEW v_category_performance AS
WITH per_category AS (
    SELECT coalesce(category, 'unknown')                                AS category,
           count(*)                                                     AS events,
           count(*) FILTER (WHERE event_type = 'view')                  AS views,
           count(*) FILTER (WHERE event_type = 'add_to_cart')           AS add_to_carts,
           count(*) FILTER (WHERE event_type = 'purchase')              AS purchases,
           coalesce(sum(total_amount) FILTER (WHERE event_type = 'purchase'), 0)
                                                                        AS revenue,
           avg(price) FILTER (WHERE event_type IN ('purchase', 'add_to_cart')
                                AND price > 0)                          AS avg_price
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
    'Per category (NULL = unknown): events, views, add-to-carts, purchases, revenue, average price of the purchases and add-to-carts with a price above 0 (NULL without one; other event types are left out, their price is 0 or missing in some layouts), purchases per view.';
