//! The behaviour model: shoppers' sessions and the events they emit.
//!
//! Owns [`Event`] (one row before encoding), the event-type weights and the
//! session pool. Sessions interleave; each keeps one user (or none), device,
//! browser, place, referrer and campaign for its life and ends after its
//! planned number of events or 30 minutes of inactivity on the event clock.
//! Carts make purchases and removals follow additions where possible.
//!
//! Every event this module returns is VALID under the ingester's rules; the
//! anomaly module breaks rows on purpose afterwards. This module must never
//! read the wall clock, use OS randomness or do I/O: all randomness comes from
//! the caller's seeded RNG and all time from the caller's clock value.

use rand::Rng;
use uuid::Uuid;

use super::catalogue::{
    browsers, campaigns, pick_user, pick_weighted, user_segment, Catalogue, Category, Segment,
    COUNTRIES, DEVICES, REFERRERS,
};
use shopstream_core::event::EventType;

/// Inactivity after which a session is over (on the event clock).
pub const SESSION_TIMEOUT_MS: i64 = 30 * 60 * 1000;
/// Share of views and searches made by anonymous visitors.
pub const ANONYMOUS_SHARE: f64 = 0.12;
/// Average time between two events of one session; sizes the pool of
/// concurrently active sessions from the event rate.
const MEAN_SESSION_GAP_SECS: f64 = 6.0;
const MAX_ACTIVE_SESSIONS: usize = 10_000;

/// Overall event-type mix, in percent.
pub const TYPE_WEIGHTS: [(EventType, u32); 6] = [
    (EventType::View, 63),
    (EventType::Search, 12),
    (EventType::AddToCart, 10),
    (EventType::Wishlist, 6),
    (EventType::RemoveFromCart, 5),
    (EventType::Purchase, 4),
];

/// The `event_type` cell: one of the six, or (anomalies only) anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeCell {
    Known(EventType),
    Unknown(&'static str),
}

/// The `event_time` cell: a clock value in ms since the epoch (written as
/// ISO-8601 UTC), or (anomalies only) free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeCell {
    Millis(i64),
    Text(String),
}

/// `s-` followed by 16 lower-case hex digits.
pub type SessionId = [u8; 18];

/// A session id in a seed layout's own form, fixed before any anomaly is
/// injected (so a broken row keeps the session its event had).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedSession {
    /// The layout uses the model's `session_id` (or has no session column).
    Model,
    /// Seed 003, signed in: `<user>-<bucket>` (bucket = unix seconds / 1800).
    Bucket { user: u32, bucket: i64 },
    /// Seed 003, anonymous: `guest-<bucket>-<n>`, n in 10000..=99999.
    Guest { bucket: i64, n: u32 },
    /// Seed 004: a fresh UUID per event.
    Uuid(Uuid),
}

/// One event, before it is encoded as a CSV row.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `None` only for the `missing_event_id` anomaly.
    pub event_id: Option<Uuid>,
    /// User number (`U000123` is 123); `None` for anonymous visitors.
    pub user: Option<u32>,
    pub segment: Segment,
    pub session_id: SessionId,
    pub event_type: TypeCell,
    /// Index into the catalogue.
    pub product: u32,
    /// Price in cents; may be negative or huge only in anomalies.
    pub price_cents: Option<i64>,
    pub quantity: u32,
    pub search_query: Option<&'static str>,
    pub time: TimeCell,
    pub device: &'static str,
    pub browser: &'static str,
    pub country: &'static str,
    pub city: &'static str,
    pub referrer: &'static str,
    pub campaign: Option<&'static str>,
    /// Set by the layout (`layout::dress`); `Model` for the model's own.
    pub seed_session: SeedSession,
}

impl Event {
    #[cfg(test)]
    pub fn known_type(&self) -> Option<EventType> {
        match self.event_type {
            TypeCell::Known(t) => Some(t),
            TypeCell::Unknown(_) => None,
        }
    }

    pub fn millis(&self) -> Option<i64> {
        match self.time {
            TimeCell::Millis(ms) => Some(ms),
            TimeCell::Text(_) => None,
        }
    }
}

/// What kind of base event a caller needs (broken rows need a suitable base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The natural mix.
    Any,
    /// The natural mix, but always from a logged-in session.
    LoggedIn,
    /// A login-only type (add_to_cart, remove_from_cart, wishlist, purchase).
    LoginOnly,
}

#[derive(Debug, Clone)]
struct Session {
    id: SessionId,
    user: Option<u32>,
    segment: Segment,
    device: &'static str,
    browser: &'static str,
    country: &'static str,
    city: &'static str,
    referrer: &'static str,
    campaign: Option<&'static str>,
    focus: Category,
    remaining: u32,
    last_ms: i64,
    /// Recently viewed products (ring buffer).
    viewed: [u32; 6],
    viewed_len: usize,
    viewed_next: usize,
    /// Products in the cart with their quantity.
    cart: Vec<(u32, u32)>,
}

/// The session pool and the rules that turn a session into events.
#[derive(Debug)]
pub struct Model {
    catalogue: &'static Catalogue,
    /// The event-type mix.
    mix: &'static [(EventType, u32)],
    /// The login-only part of `mix` (used when a broken row needs one).
    login_only: Vec<(EventType, u32)>,
    /// Whether views and searches may come from anonymous visitors.
    anonymous_allowed: bool,
    anonymous: Vec<Session>,
    logged_in: Vec<Session>,
    anonymous_target: usize,
    logged_in_target: usize,
}

impl Model {
    /// A model whose pool of concurrent sessions suits `events_per_sec`,
    /// with the standard mix ([`TYPE_WEIGHTS`]) and anonymous visitors.
    #[cfg(test)]
    pub fn new(catalogue: &'static Catalogue, events_per_sec: f64) -> Model {
        Model::with_mix(catalogue, events_per_sec, &TYPE_WEIGHTS, true)
    }

    /// A model emitting only the types of `mix` (weights in any unit, at
    /// least one above 0), with anonymous views and searches only if
    /// `anonymous_allowed`.
    pub fn with_mix(
        catalogue: &'static Catalogue,
        events_per_sec: f64,
        mix: &'static [(EventType, u32)],
        anonymous_allowed: bool,
    ) -> Model {
        let total = if events_per_sec.is_finite() && events_per_sec > 0.0 {
            (events_per_sec * MEAN_SESSION_GAP_SECS).round() as usize
        } else {
            1
        }
        .clamp(4, MAX_ACTIVE_SESSIONS);
        // Anonymous sessions emit views and searches only; their share of
        // all events is ANONYMOUS_SHARE of the view+search share.
        let weight = |keep: &dyn Fn(EventType) -> bool| -> u32 {
            mix.iter().filter(|(t, _)| keep(*t)).map(|(_, w)| w).sum()
        };
        let all = weight(&|_| true).max(1);
        let view_search = weight(&|t| !t.needs_user());
        let anonymous_target = if anonymous_allowed {
            let anon_fraction = ANONYMOUS_SHARE * f64::from(view_search) / f64::from(all);
            ((total as f64 * anon_fraction).round() as usize).max(1)
        } else {
            0
        };
        Model {
            catalogue,
            mix,
            login_only: mix
                .iter()
                .copied()
                .filter(|(t, w)| t.needs_user() && *w > 0)
                .collect(),
            anonymous_allowed,
            anonymous: Vec::new(),
            logged_in: Vec::new(),
            anonymous_target,
            logged_in_target: total.saturating_sub(anonymous_target).max(2),
        }
    }

    /// The next valid event at clock time `clock_ms`. With `late_by_ms`, the
    /// event is written that much earlier than the clock and comes from a
    /// one-off session of its own (so no session has an inactivity gap).
    pub fn next_event<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        clock_ms: i64,
        need: Need,
        late_by_ms: Option<i64>,
    ) -> Event {
        let etype = match need {
            Need::LoginOnly if !self.login_only.is_empty() => *pick_weighted(&self.login_only, rng),
            _ => *pick_weighted(self.mix, rng),
        };
        let anonymous = self.anonymous_allowed
            && need == Need::Any
            && !etype.needs_user()
            && rng.random_bool(ANONYMOUS_SHARE);
        let time = clock_ms - late_by_ms.unwrap_or(0);
        let catalogue = self.catalogue;

        let event_id = Some(random_uuid(rng));
        if late_by_ms.is_some() {
            let mut session = new_session(catalogue, rng, anonymous, time);
            return session.act(catalogue, rng, etype, time, event_id);
        }

        let wants_cart = matches!(etype, EventType::Purchase | EventType::RemoveFromCart);
        let (pool, target) = if anonymous {
            (&mut self.anonymous, self.anonymous_target)
        } else {
            (&mut self.logged_in, self.logged_in_target)
        };
        let idx = if pool.len() < target {
            pool.push(new_session(catalogue, rng, anonymous, time));
            pool.len() - 1
        } else {
            let mut idx = rng.random_range(0..pool.len());
            if wants_cart {
                // Prefer a session with something in its cart.
                for _ in 0..8 {
                    if !pool[idx].cart.is_empty() {
                        break;
                    }
                    idx = rng.random_range(0..pool.len());
                }
            }
            if time - pool[idx].last_ms > SESSION_TIMEOUT_MS {
                pool[idx] = new_session(catalogue, rng, anonymous, time);
            }
            idx
        };
        let session = &mut pool[idx];
        let event = session.act(catalogue, rng, etype, time, event_id);
        session.last_ms = session.last_ms.max(time);
        session.remaining = session.remaining.saturating_sub(1);
        if session.remaining == 0 {
            pool.swap_remove(idx);
        }
        event
    }

    #[cfg(test)]
    pub fn active_sessions(&self) -> usize {
        self.anonymous.len() + self.logged_in.len()
    }
}

/// A version-4 UUID from the seeded RNG.
pub fn random_uuid<R: Rng + ?Sized>(rng: &mut R) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn new_session<R: Rng + ?Sized>(
    catalogue: &Catalogue,
    rng: &mut R,
    anonymous: bool,
    now_ms: i64,
) -> Session {
    let mut id = [0u8; 18];
    id[0] = b's';
    id[1] = b'-';
    let bits: u64 = rng.random();
    for (i, slot) in id[2..].iter_mut().enumerate() {
        let nibble = (bits >> (60 - 4 * i)) & 0xf;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    let user = if anonymous {
        None
    } else {
        Some(pick_user(rng))
    };
    let segment = user.map_or(Segment::Anonymous, user_segment);
    let device = *pick_weighted(&DEVICES, rng);
    let browser = *pick_weighted(browsers(device), rng);
    let country = pick_weighted(&COUNTRIES, rng);
    let city = country.cities[rng.random_range(0..country.cities.len())];
    let referrer = *pick_weighted(&REFERRERS, rng);
    let (pct, list) = campaigns(referrer);
    let campaign = if !list.is_empty() && rng.random_range(0..100) < pct {
        Some(list[rng.random_range(0..list.len())])
    } else {
        None
    };
    // Geometric length with mean 12, capped (integer draws only, so the
    // stream is identical on every platform).
    let mut remaining = 1u32;
    while remaining < 200 && rng.random_range(0..12u32) != 0 {
        remaining += 1;
    }
    Session {
        id,
        user,
        segment,
        device,
        browser,
        country: country.code,
        city,
        referrer,
        campaign,
        focus: catalogue.pick_category(rng),
        remaining,
        last_ms: now_ms,
        viewed: [0; 6],
        viewed_len: 0,
        viewed_next: 0,
        cart: Vec::new(),
    }
}

impl Session {
    fn remember_view(&mut self, product: u32) {
        self.viewed[self.viewed_next] = product;
        self.viewed_next = (self.viewed_next + 1) % self.viewed.len();
        self.viewed_len = (self.viewed_len + 1).min(self.viewed.len());
    }

    /// A recently viewed product with probability `p`, else a popular one
    /// from the session's focus category.
    fn interesting<R: Rng + ?Sized>(&self, catalogue: &Catalogue, rng: &mut R, p: f64) -> u32 {
        if self.viewed_len > 0 && rng.random_bool(p) {
            self.viewed[rng.random_range(0..self.viewed_len)]
        } else {
            catalogue.pick_in(self.focus, rng)
        }
    }

    fn take_from_cart<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<(u32, u32)> {
        if self.cart.is_empty() {
            return None;
        }
        let i = rng.random_range(0..self.cart.len());
        Some(self.cart.swap_remove(i))
    }

    fn act<R: Rng + ?Sized>(
        &mut self,
        catalogue: &Catalogue,
        rng: &mut R,
        etype: EventType,
        time: i64,
        event_id: Option<Uuid>,
    ) -> Event {
        let mut search_query = None;
        let (product, price_shown, quantity) = match etype {
            EventType::View => {
                let p = if rng.random_bool(0.7) {
                    catalogue.pick_in(self.focus, rng)
                } else {
                    catalogue.pick(rng)
                };
                self.remember_view(p);
                (p, rng.random_bool(0.95), 0)
            }
            EventType::Search => {
                if rng.random_bool(0.2) {
                    self.focus = catalogue.pick_category(rng);
                }
                let p = catalogue.pick_in(self.focus, rng);
                search_query = Some(if rng.random_bool(0.6) {
                    catalogue.product(p).query
                } else {
                    let terms = self.focus.search_terms();
                    terms[rng.random_range(0..terms.len())]
                });
                (p, false, 0)
            }
            EventType::AddToCart => {
                let p = self.interesting(catalogue, rng, 0.8);
                let q = if rng.random_bool(0.85) { 1 } else { 2 };
                if self.cart.len() < 12 {
                    self.cart.push((p, q));
                }
                (p, true, q)
            }
            EventType::Wishlist => (
                self.interesting(catalogue, rng, 0.7),
                rng.random_bool(0.8),
                0,
            ),
            EventType::RemoveFromCart => {
                let p = match self.take_from_cart(rng) {
                    Some((p, _)) => p,
                    None => self.interesting(catalogue, rng, 0.7),
                };
                (p, rng.random_bool(0.7), 1)
            }
            EventType::Purchase => match self.take_from_cart(rng) {
                Some((p, q)) => {
                    let q = if rng.random_bool(0.05) {
                        (q + 1).min(3)
                    } else {
                        q
                    };
                    (p, true, q)
                }
                None => {
                    let p = self.interesting(catalogue, rng, 0.8);
                    let q = match rng.random_range(0..100) {
                        0..=79 => 1,
                        80..=94 => 2,
                        _ => 3,
                    };
                    (p, true, q)
                }
            },
        };
        let price_cents = price_shown.then(|| i64::from(catalogue.product(product).price_cents));
        Event {
            event_id,
            user: self.user,
            segment: self.segment,
            session_id: self.id,
            event_type: TypeCell::Known(etype),
            product,
            price_cents,
            quantity,
            search_query,
            time: TimeCell::Millis(time),
            device: self.device,
            browser: self.browser,
            country: self.country,
            city: self.city,
            referrer: self.referrer,
            campaign: self.campaign,
            seed_session: SeedSession::Model,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::{HashMap, HashSet};

    fn run(n: usize, need: Need) -> Vec<Event> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut model = Model::new(Catalogue::standard(), 100.0);
        (0..n)
            .map(|i| model.next_event(&mut rng, 1_700_000_000_000 + i as i64 * 10, need, None))
            .collect()
    }

    #[test]
    fn type_weights_are_sane() {
        assert_eq!(TYPE_WEIGHTS.iter().map(|(_, w)| w).sum::<u32>(), 100);
        let events = run(100_000, Need::Any);
        let mut counts: HashMap<EventType, usize> = HashMap::new();
        for e in &events {
            *counts.entry(e.known_type().unwrap()).or_default() += 1;
        }
        for (t, w) in TYPE_WEIGHTS {
            let share = counts[&t] as f64 / events.len() as f64 * 100.0;
            assert!(
                (share - f64::from(w)).abs() < 1.0,
                "{t}: {share:.2}% vs {w}%"
            );
        }
        let view = counts[&EventType::View];
        let purchase = counts[&EventType::Purchase];
        assert!(view > 10 * purchase);
    }

    #[test]
    fn every_event_is_valid() {
        let c = Catalogue::standard();
        for e in run(50_000, Need::Any) {
            let t = e.known_type().unwrap();
            assert!(e.event_id.is_some());
            if t.needs_user() {
                assert!(e.user.is_some(), "{e:?}");
            }
            assert_eq!(e.user.is_none(), e.segment == Segment::Anonymous);
            if let Some(p) = e.price_cents {
                assert_eq!(p, i64::from(c.product(e.product).price_cents));
                assert!(p > 0 && p <= 1_000_000);
            }
            if t.needs_price() {
                assert!(e.price_cents.is_some());
            }
            match t {
                EventType::Purchase => assert!((1..=3).contains(&e.quantity)),
                EventType::AddToCart => assert!((1..=2).contains(&e.quantity)),
                EventType::RemoveFromCart => assert_eq!(e.quantity, 1),
                _ => assert_eq!(e.quantity, 0),
            }
            assert_eq!(e.search_query.is_some(), t == EventType::Search);
            assert!(e.time == TimeCell::Millis(e.millis().unwrap()));
        }
    }

    #[test]
    fn anonymous_share_of_views_and_searches() {
        let events = run(100_000, Need::Any);
        let vs: Vec<&Event> = events
            .iter()
            .filter(|e| !e.known_type().unwrap().needs_user())
            .collect();
        let anon = vs.iter().filter(|e| e.user.is_none()).count() as f64 / vs.len() as f64;
        assert!((anon - ANONYMOUS_SHARE).abs() < 0.01, "{anon}");
    }

    #[test]
    fn sessions_are_consistent_and_interleave() {
        let events = run(20_000, Need::Any);
        let mut seen: HashMap<SessionId, &Event> = HashMap::new();
        let mut switches = 0;
        for w in events.windows(2) {
            if w[0].session_id != w[1].session_id {
                switches += 1;
            }
        }
        assert!(switches > 15_000, "sessions should interleave");
        for e in &events {
            assert!(e.session_id.starts_with(b"s-"));
            if let Some(first) = seen.get(&e.session_id) {
                assert_eq!(first.user, e.user);
                assert_eq!(first.device, e.device);
                assert_eq!(first.browser, e.browser);
                assert_eq!(first.country, e.country);
                assert_eq!(first.city, e.city);
                assert_eq!(first.referrer, e.referrer);
                assert_eq!(first.campaign, e.campaign);
            } else {
                seen.insert(e.session_id, e);
            }
            let country = COUNTRIES.iter().find(|(c, _)| c.code == e.country).unwrap();
            assert!(country.0.cities.contains(&e.city));
        }
        let multi = {
            let mut n: HashMap<SessionId, usize> = HashMap::new();
            for e in &events {
                *n.entry(e.session_id).or_default() += 1;
            }
            n.values().filter(|&&k| k > 3).count()
        };
        assert!(multi > 100, "sessions should have several events");
    }

    #[test]
    fn purchases_mostly_follow_carts() {
        let events = run(50_000, Need::Any);
        let mut carted: HashSet<(SessionId, u32)> = HashSet::new();
        let (mut purchases, mut followed) = (0, 0);
        for e in &events {
            match e.known_type().unwrap() {
                EventType::AddToCart => {
                    carted.insert((e.session_id, e.product));
                }
                EventType::Purchase => {
                    purchases += 1;
                    if carted.contains(&(e.session_id, e.product)) {
                        followed += 1;
                    }
                }
                _ => {}
            }
        }
        assert!(followed * 2 > purchases, "{followed} of {purchases}");
    }

    #[test]
    fn sessions_time_out_after_inactivity() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut model = Model::new(Catalogue::standard(), 0.5);
        let t0 = 1_700_000_000_000;
        let a: HashSet<SessionId> = (0..20)
            .map(|i| {
                model
                    .next_event(&mut rng, t0 + i, Need::LoggedIn, None)
                    .session_id
            })
            .collect();
        let later = t0 + SESSION_TIMEOUT_MS + 1_000;
        let b: HashSet<SessionId> = (0..20)
            .map(|i| {
                model
                    .next_event(&mut rng, later + i, Need::LoggedIn, None)
                    .session_id
            })
            .collect();
        assert!(a.is_disjoint(&b));
        assert!(model.active_sessions() <= MAX_ACTIVE_SESSIONS);
    }

    #[test]
    fn needs_are_honoured() {
        for e in run(2_000, Need::LoginOnly) {
            assert!(e.known_type().unwrap().needs_user());
            assert!(e.user.is_some());
        }
        for e in run(2_000, Need::LoggedIn) {
            assert!(e.user.is_some());
        }
    }

    #[test]
    fn a_restricted_mix_is_honoured() {
        static VIEW_PURCHASE: [(EventType, u32); 2] =
            [(EventType::View, 70), (EventType::Purchase, 30)];
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut model = Model::with_mix(Catalogue::standard(), 100.0, &VIEW_PURCHASE, false);
        let mut purchases = 0;
        for i in 0..20_000 {
            let e = model.next_event(&mut rng, 1_700_000_000_000 + i * 10, Need::Any, None);
            let t = e.known_type().unwrap();
            assert!(matches!(t, EventType::View | EventType::Purchase), "{t}");
            assert!(e.user.is_some(), "no anonymous visitors");
            purchases += usize::from(t == EventType::Purchase);
        }
        assert!((5_400..6_600).contains(&purchases), "{purchases}");
        for i in 0..500 {
            let e = model.next_event(&mut rng, 1_700_000_300_000 + i, Need::LoginOnly, None);
            assert_eq!(e.known_type(), Some(EventType::Purchase));
        }
    }

    #[test]
    fn late_events_are_back_dated_in_their_own_session() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut model = Model::new(Catalogue::standard(), 10.0);
        let e = model.next_event(&mut rng, 10_000_000, Need::Any, Some(600_000));
        assert_eq!(e.millis(), Some(9_400_000));
        assert_eq!(model.active_sessions(), 0);
    }
}
