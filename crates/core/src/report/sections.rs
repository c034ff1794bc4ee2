//! The report's sections as data: which view each reads, its columns and how
//! each column is typed and shown, and the order its rows are listed in.
//! Every SQL fragment here is a fixed string; nothing comes from the user.

/// One section of `shopstream report`, named on the command line by
/// `--view`. The default report shows all of them in [`Section::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Section {
    /// v_hourly_event_summary: events, users, sessions and revenue per hour and event type.
    Hourly,
    /// v_conversion_funnel_hourly: views → add_to_carts → purchases per hour, with step rates.
    Funnel,
    /// v_category_performance: events, purchases, revenue, average price per category.
    Categories,
    /// v_conversion_funnel_by_category: the funnel per category.
    FunnelByCategory,
    /// v_top_products: products ranked by revenue.
    TopProducts,
    /// v_user_segment_analysis: users, sessions, purchases and revenue per user segment.
    Segments,
    /// v_user_sessions: one row per session, most recent first.
    Sessions,
    /// v_data_quality_dashboard: rows read, loaded, duplicate, rejected per batch.
    Quality,
    /// v_data_quality_summary: the last 24 hours of batches, by hour.
    QualityHourly,
    /// v_dead_letters_by_code: rejected rows per rule code.
    DeadLetters,
}

/// How a column is read from the view and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A count or id: int8, shown as is.
    Int,
    /// An amount of money: float8, shown with 2 decimals.
    Money,
    /// A fraction (0.125): float8, shown as a percentage (`12.50%`).
    Rate,
    /// Any other number: float8, shown with 2 decimals.
    Decimal,
    /// A duration: float8 seconds in JSON and CSV (name the column
    /// `…_seconds`), shown as `H:MM:SS` in tables under the column's
    /// [`Column::table_name`], which says so.
    Seconds,
    /// A timestamp: text in UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    Time,
    /// Text.
    Text,
    /// A jsonb value, kept as JSON.
    Json,
}

impl Kind {
    /// Numbers are right-aligned in tables.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Kind::Int | Kind::Money | Kind::Rate | Kind::Decimal | Kind::Seconds
        )
    }
}

/// One output column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name in the output (JSON key, CSV header, and table header
    /// unless `table_name` is set).
    pub name: &'static str,
    pub kind: Kind,
    /// The view's column it is read from, when it differs from `name`.
    pub source: Option<&'static str>,
    /// Its table header when the table shows the value in another form
    /// than JSON and CSV do (a duration as `H:MM:SS`, not seconds).
    pub table_name: Option<&'static str>,
}

impl Column {
    /// The column's header in table output.
    pub fn table_header(&self) -> &'static str {
        self.table_name.unwrap_or(self.name)
    }

    /// The SELECT-list expression that reads this column as the Rust side
    /// expects it (int8, float8 or text).
    pub fn select_expr(&self) -> String {
        let src = self.source.unwrap_or(self.name);
        let name = self.name;
        match self.kind {
            Kind::Int => format!("{src}::int8 AS {name}"),
            Kind::Money | Kind::Rate | Kind::Decimal => format!("{src}::float8 AS {name}"),
            Kind::Seconds => format!("extract(epoch FROM {src})::float8 AS {name}"),
            Kind::Time => format!(
                "to_char({src} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS {name}"
            ),
            Kind::Text | Kind::Json => format!("{src}::text AS {name}"),
        }
    }
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        source: None,
        table_name: None,
    }
}

use Kind::*;

const HOURLY: &[Column] = &[
    col("event_hour", Time),
    col("event_type", Text),
    col("events", Int),
    col("users", Int),
    col("sessions", Int),
    col("revenue", Money),
];

const FUNNEL_RATES: [Column; 6] = [
    col("views", Int),
    col("add_to_carts", Int),
    col("purchases", Int),
    col("view_to_cart_rate", Rate),
    col("cart_to_purchase_rate", Rate),
    col("view_to_purchase_rate", Rate),
];

const FUNNEL: &[Column] = &[
    col("event_hour", Time),
    FUNNEL_RATES[0],
    FUNNEL_RATES[1],
    FUNNEL_RATES[2],
    FUNNEL_RATES[3],
    FUNNEL_RATES[4],
    FUNNEL_RATES[5],
];

const FUNNEL_BY_CATEGORY: &[Column] = &[
    col("category", Text),
    FUNNEL_RATES[0],
    FUNNEL_RATES[1],
    FUNNEL_RATES[2],
    FUNNEL_RATES[3],
    FUNNEL_RATES[4],
    FUNNEL_RATES[5],
];

const CATEGORIES: &[Column] = &[
    col("category", Text),
    col("events", Int),
    col("views", Int),
    col("add_to_carts", Int),
    col("purchases", Int),
    col("revenue", Money),
    col("avg_price", Money),
    col("view_to_purchase_rate", Rate),
];

const TOP_PRODUCTS: &[Column] = &[
    col("revenue_rank", Int),
    col("product_id", Text),
    col("product_name", Text),
    col("category", Text),
    col("views", Int),
    col("add_to_carts", Int),
    col("purchases", Int),
    col("units_sold", Int),
    col("revenue", Money),
];

const SEGMENTS: &[Column] = &[
    col("user_segment", Text),
    col("users", Int),
    col("sessions", Int),
    col("events", Int),
    col("purchases", Int),
    col("revenue", Money),
    col("revenue_per_user", Money),
    col("purchases_per_user", Decimal),
];

const SESSIONS: &[Column] = &[
    col("user_id", Text),
    col("session_id", Text),
    col("user_segment", Text),
    col("events", Int),
    col("views", Int),
    col("add_to_carts", Int),
    col("purchases", Int),
    col("revenue", Money),
    col("first_event", Time),
    col("last_event", Time),
    Column {
        name: "duration_seconds",
        kind: Seconds,
        source: Some("duration"),
        table_name: Some("duration (h:mm:ss)"),
    },
];

const QUALITY: &[Column] = &[
    col("batch_id", Int),
    col("committed_at", Time),
    col("files", Int),
    col("rows_read", Int),
    col("rows_loaded", Int),
    col("rows_duplicate", Int),
    col("rows_rejected", Int),
    col("validity_rate", Rate),
    col("late_arrivals", Int),
    col("rejects_by_code", Json),
];

const QUALITY_HOURLY: &[Column] = &[
    col("hour", Time),
    col("batches", Int),
    col("rows_read", Int),
    col("rows_valid", Int),
    col("rows_rejected", Int),
    col("avg_validity_rate", Rate),
    col("late_arrivals", Int),
];

const DEAD_LETTERS: &[Column] = &[
    col("error_code", Text),
    col("dead_letters", Int),
    col("files", Int),
    col("first_seen", Time),
    col("last_seen", Time),
];

impl Section {
    /// Every section, in the order of the default report.
    pub const ALL: [Section; 10] = [
        Section::Hourly,
        Section::Funnel,
        Section::Categories,
        Section::FunnelByCategory,
        Section::TopProducts,
        Section::Segments,
        Section::Sessions,
        Section::Quality,
        Section::QualityHourly,
        Section::DeadLetters,
    ];

    /// The section's key in JSON and CSV output: its `--view` name with `_`
    /// for `-` (`top_products`), so `jq .top_products` works.
    pub fn key(self) -> &'static str {
        match self {
            Section::Hourly => "hourly",
            Section::Funnel => "funnel",
            Section::Categories => "categories",
            Section::FunnelByCategory => "funnel_by_category",
            Section::TopProducts => "top_products",
            Section::Segments => "segments",
            Section::Sessions => "sessions",
            Section::Quality => "quality",
            Section::QualityHourly => "quality_hourly",
            Section::DeadLetters => "dead_letters",
        }
    }

    /// The view the section reads.
    pub fn view(self) -> &'static str {
        match self {
            Section::Hourly => "v_hourly_event_summary",
            Section::Funnel => "v_conversion_funnel_hourly",
            Section::Categories => "v_category_performance",
            Section::FunnelByCategory => "v_conversion_funnel_by_category",
            Section::TopProducts => "v_top_products",
            Section::Segments => "v_user_segment_analysis",
            Section::Sessions => "v_user_sessions",
            Section::Quality => "v_data_quality_dashboard",
            Section::QualityHourly => "v_data_quality_summary",
            Section::DeadLetters => "v_dead_letters_by_code",
        }
    }

    /// The title line of the section in table output.
    pub fn title(self) -> &'static str {
        match self {
            Section::Hourly => "Events by hour and type, newest hour first",
            Section::Funnel => "Conversion funnel (view → add_to_cart → purchase), by hour",
            Section::Categories => "Category performance, by revenue",
            Section::FunnelByCategory => {
                "Conversion funnel (view → add_to_cart → purchase), by category"
            }
            Section::TopProducts => "Top products by revenue",
            Section::Segments => "User segments, by revenue",
            Section::Sessions => "Sessions, most recent first",
            Section::Quality => "Data quality per batch, newest first",
            Section::QualityHourly => "Data quality by hour of commit, last 24 hours",
            Section::DeadLetters => "Dead letters by rule code",
        }
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Section::Hourly => HOURLY,
            Section::Funnel => FUNNEL,
            Section::Categories => CATEGORIES,
            Section::FunnelByCategory => FUNNEL_BY_CATEGORY,
            Section::TopProducts => TOP_PRODUCTS,
            Section::Segments => SEGMENTS,
            Section::Sessions => SESSIONS,
            Section::Quality => QUALITY,
            Section::QualityHourly => QUALITY_HOURLY,
            Section::DeadLetters => DEAD_LETTERS,
        }
    }

    /// ORDER BY of the section over the view's own columns (`v.`, not the
    /// converted output columns), ending in a unique key so that `--limit`
    /// cuts the same rows every time.
    fn order_by(self) -> &'static str {
        match self {
            Section::Hourly => "v.event_hour DESC, v.event_type",
            Section::Funnel => "v.event_hour DESC",
            Section::Categories => "v.revenue DESC, v.events DESC, v.category",
            Section::FunnelByCategory => "v.purchases DESC, v.views DESC, v.category",
            Section::TopProducts => "v.revenue_rank, v.views DESC, v.product_id, v.category",
            Section::Segments => "v.revenue DESC, v.events DESC, v.user_segment",
            Section::Sessions => "v.last_event DESC, v.user_id, v.session_id, v.user_segment",
            Section::Quality => "v.batch_id DESC",
            Section::QualityHourly => "v.hour DESC",
            Section::DeadLetters => "v.dead_letters DESC, v.error_code",
        }
    }

    /// The section's query: `$1` is the row limit (an int8, NULL for all).
    pub fn sql(self) -> String {
        let exprs: Vec<String> = self.columns().iter().map(Column::select_expr).collect();
        format!(
            "SELECT {} FROM {} AS v ORDER BY {} LIMIT $1",
            exprs.join(", "),
            self.view(),
            self.order_by()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_funnels_say_funnel() {
        let mut keys: Vec<_> = Section::ALL.iter().map(|s| s.key()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), Section::ALL.len());
        for s in [Section::Funnel, Section::FunnelByCategory] {
            assert!(s.title().to_lowercase().contains("funnel"), "{s:?}");
        }
    }

    #[test]
    fn durations_say_their_unit_in_every_format() {
        let mut found = 0;
        for s in Section::ALL {
            for c in s.columns().iter().filter(|c| c.kind == Kind::Seconds) {
                assert!(c.name.ends_with("_seconds"), "{}", c.name);
                assert!(c.table_header().ends_with("(h:mm:ss)"), "{}", c.name);
                found += 1;
            }
        }
        assert_eq!(found, 1, "the sessions' duration");
    }

    #[test]
    fn sql_reads_only_its_view_with_a_bound_limit() {
        let sql = Section::Sessions.sql();
        assert!(
            sql.starts_with("SELECT user_id::text AS user_id, "),
            "{sql}"
        );
        assert!(sql.contains("extract(epoch FROM duration)::float8 AS duration_seconds"));
        assert!(sql.contains(" FROM v_user_sessions AS v ORDER BY v.last_event DESC"));
        assert!(sql.ends_with("LIMIT $1"), "{sql}");
    }
}
