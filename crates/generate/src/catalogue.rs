//! What exists in the simulated shop: products, users and the fixed
//! vocabularies sessions draw from (devices, browsers, places, referrers,
//! campaigns, search terms).
//!
//! Everything here is a pure function of constant tables and a fixed internal
//! seed, mixed with integer arithmetic only, so `P00042` has the same name,
//! category and price on every machine, for every `--seed`, in every run.
//! This module must never take randomness from the caller's RNG to *build*
//! anything (it only *samples* with it), and it must never do I/O.

use std::collections::HashSet;
use std::sync::OnceLock;

use rand::Rng;

/// Number of products in the standard catalogue.
#[cfg(test)]
pub const PRODUCT_COUNT: usize = 500;
/// Number of registered users (`U000001` ..= `U020000`).
pub const USER_COUNT: u32 = 20_000;
/// Fixed seed of the catalogue: deliberately independent of `--seed`.
const CATALOGUE_SEED: u64 = 0x5348_4f50_5354_524d; // "SHOPSTRM"

/// A product category, written lower-case snake in the `category` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Electronics,
    Clothing,
    HomeGarden,
    Sports,
    Books,
    Beauty,
    Toys,
    Grocery,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Electronics,
        Category::Clothing,
        Category::HomeGarden,
        Category::Sports,
        Category::Books,
        Category::Beauty,
        Category::Toys,
        Category::Grocery,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Electronics => "electronics",
            Category::Clothing => "clothing",
            Category::HomeGarden => "home_garden",
            Category::Sports => "sports",
            Category::Books => "books",
            Category::Beauty => "beauty",
            Category::Toys => "toys",
            Category::Grocery => "grocery",
        }
    }

    /// The name seed 000 writes in `product_category`: Title Case with `&`.
    pub fn title(self) -> &'static str {
        match self {
            Category::Electronics => "Electronics",
            Category::Clothing => "Clothing",
            Category::HomeGarden => "Home & Garden",
            Category::Sports => "Sports",
            Category::Books => "Books",
            Category::Beauty => "Beauty",
            Category::Toys => "Toys",
            Category::Grocery => "Food & Grocery",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn spec(self) -> &'static CategorySpec {
        &SPECS[self.index()]
    }

    /// Category-wide search terms (besides the product nouns).
    pub fn search_terms(self) -> &'static [&'static str] {
        self.spec().terms
    }
}

/// A product kind inside a category, with its list-price range in whole
/// currency units.
struct Noun {
    display: &'static str,
    query: &'static str,
    min: u32,
    max: u32,
}

const fn n(display: &'static str, query: &'static str, min: u32, max: u32) -> Noun {
    Noun {
        display,
        query,
        min,
        max,
    }
}

struct CategorySpec {
    count: usize,
    adjectives: &'static [&'static str],
    nouns: &'static [Noun],
    terms: &'static [&'static str],
}

/// Brand-like series words shared by all categories.
const SERIES: [&str; 20] = [
    "Aurora", "Nimbus", "Vertex", "Summit", "Lumen", "Atlas", "Nova", "Zephyr", "Orion", "Cedar",
    "Harbor", "Echo", "Pulse", "Terra", "Ember", "Polar", "Vista", "Crest", "Maple", "Willow",
];

/// Indexed by `Category as usize`; the counts add up to [`PRODUCT_COUNT`].
static SPECS: [CategorySpec; 8] = [
    CategorySpec {
        count: 90,
        adjectives: &[
            "Wireless",
            "Smart",
            "Portable",
            "Ultra",
            "Pro",
            "Compact",
            "Digital",
            "Bluetooth",
        ],
        nouns: &[
            n("Headphones", "headphones", 29, 399),
            n("Earbuds", "earbuds", 19, 299),
            n("Laptop", "laptop", 449, 2999),
            n("Smartphone", "smartphone", 149, 1499),
            n("Smartwatch", "smartwatch", 79, 799),
            n("Speaker", "speaker", 25, 499),
            n("Monitor", "monitor", 119, 1299),
            n("Keyboard", "keyboard", 19, 249),
            n("Mouse", "mouse", 9, 129),
            n("Tablet", "tablet", 129, 1299),
            n("Camera", "camera", 199, 4999),
            n("Charger", "charger", 9, 79),
        ],
        terms: &[
            "bluetooth",
            "gaming",
            "4k",
            "usb-c",
            "noise cancelling",
            "gift for dad",
        ],
    },
    CategorySpec {
        count: 80,
        adjectives: &[
            "Classic",
            "Slim-Fit",
            "Organic",
            "Vintage",
            "Cozy",
            "Lightweight",
            "Waterproof",
            "Essential",
        ],
        nouns: &[
            n("T-Shirt", "t-shirt", 9, 49),
            n("Jeans", "jeans", 29, 149),
            n("Hoodie", "hoodie", 25, 99),
            n("Jacket", "jacket", 49, 349),
            n("Sneakers", "sneakers", 39, 219),
            n("Dress", "dress", 29, 199),
            n("Sweater", "sweater", 29, 159),
            n("Shorts", "shorts", 14, 69),
            n("Socks", "socks", 5, 29),
            n("Cap", "cap", 9, 39),
        ],
        terms: &[
            "summer dress",
            "running shoes",
            "winter coat",
            "cotton",
            "size m",
            "black",
        ],
    },
    CategorySpec {
        count: 70,
        adjectives: &[
            "Ceramic",
            "Bamboo",
            "Stainless",
            "Rustic",
            "Modern",
            "Foldable",
            "Solar",
            "Handcrafted",
        ],
        nouns: &[
            n("Planter", "planter", 9, 89),
            n("Lamp", "lamp", 19, 249),
            n("Cookware Set", "cookware", 49, 499),
            n("Garden Hose", "garden hose", 19, 89),
            n("Cushion", "cushion", 9, 59),
            n("Rug", "rug", 39, 599),
            n("Blender", "blender", 29, 299),
            n("Tool Kit", "garden tools", 24, 199),
            n("Bedsheet Set", "bedding", 25, 179),
            n("Patio Chair", "patio chair", 49, 449),
        ],
        terms: &[
            "garden tools",
            "kitchen",
            "led lamp",
            "outdoor",
            "storage",
            "decor",
        ],
    },
    CategorySpec {
        count: 60,
        adjectives: &[
            "Pro",
            "Lightweight",
            "Adjustable",
            "Trail",
            "Performance",
            "Carbon",
            "Training",
            "All-Weather",
        ],
        nouns: &[
            n("Yoga Mat", "yoga mat", 15, 89),
            n("Dumbbell Set", "dumbbells", 29, 399),
            n("Running Shoes", "running shoes", 49, 229),
            n("Tennis Racket", "tennis racket", 29, 299),
            n("Bicycle Helmet", "bike helmet", 29, 179),
            n("Football", "football", 12, 59),
            n("Water Bottle", "water bottle", 7, 45),
            n("Backpack", "backpack", 25, 189),
            n("Fitness Tracker", "fitness tracker", 39, 299),
            n("Tent", "tent", 59, 699),
        ],
        terms: &["yoga", "camping", "gym", "cycling", "running", "outdoor"],
    },
    CategorySpec {
        count: 70,
        adjectives: &[
            "Illustrated",
            "Collected",
            "Complete",
            "Pocket",
            "Annotated",
            "Hardcover",
            "Modern",
            "Essential",
        ],
        nouns: &[
            n("Cookbook", "cookbook", 12, 49),
            n("Novel", "novel", 8, 29),
            n("Field Guide", "field guide", 12, 39),
            n("Atlas", "atlas", 19, 69),
            n("Biography", "biography", 12, 39),
            n("Workbook", "workbook", 9, 29),
            n("Poetry Collection", "poetry", 9, 29),
            n("Programming Guide", "programming book", 29, 79),
            n("Travel Guide", "travel guide", 12, 35),
            n("Children's Book", "children's book", 5, 24),
        ],
        terms: &[
            "bestseller",
            "fantasy",
            "python",
            "history",
            "kids",
            "recipes",
        ],
    },
    CategorySpec {
        count: 50,
        adjectives: &[
            "Hydrating",
            "Organic",
            "Revitalizing",
            "Gentle",
            "Matte",
            "Radiant",
            "Herbal",
            "Sensitive",
        ],
        nouns: &[
            n("Face Cream", "face cream", 9, 89),
            n("Serum", "serum", 12, 119),
            n("Shampoo", "shampoo", 5, 39),
            n("Lipstick", "lipstick", 6, 49),
            n("Perfume", "perfume", 29, 199),
            n("Sunscreen", "sunscreen", 7, 39),
            n("Hair Dryer", "hair dryer", 25, 299),
            n("Nail Polish", "nail polish", 4, 19),
            n("Cleanser", "cleanser", 6, 39),
            n("Body Lotion", "body lotion", 5, 35),
        ],
        terms: &[
            "skincare",
            "vegan",
            "spf 50",
            "fragrance",
            "moisturizer",
            "makeup",
        ],
    },
    CategorySpec {
        count: 40,
        adjectives: &[
            "Wooden",
            "Magnetic",
            "Interactive",
            "Glow-in-the-Dark",
            "Plush",
            "Remote-Control",
            "Educational",
            "Giant",
        ],
        nouns: &[
            n("Building Blocks", "building blocks", 14, 149),
            n("Puzzle", "puzzle", 9, 49),
            n("Teddy Bear", "teddy bear", 12, 79),
            n("Race Car", "rc car", 24, 199),
            n("Board Game", "board game", 14, 79),
            n("Doll House", "doll house", 39, 249),
            n("Train Set", "train set", 29, 229),
            n("Robot Kit", "robot kit", 29, 249),
            n("Kite", "kite", 9, 39),
            n("Art Set", "art set", 9, 59),
        ],
        terms: &[
            "lego",
            "gift for kids",
            "age 6+",
            "stem",
            "outdoor toys",
            "puzzle",
        ],
    },
    CategorySpec {
        count: 40,
        adjectives: &[
            "Organic",
            "Fair-Trade",
            "Roasted",
            "Gluten-Free",
            "Premium",
            "Family-Size",
            "Wholegrain",
            "Cold-Pressed",
        ],
        nouns: &[
            n("Coffee Beans", "coffee", 6, 39),
            n("Green Tea", "tea", 3, 24),
            n("Olive Oil", "olive oil", 6, 35),
            n("Pasta", "pasta", 1, 9),
            n("Granola", "granola", 3, 14),
            n("Honey", "honey", 4, 29),
            n("Chocolate", "chocolate", 2, 15),
            n("Almonds", "almonds", 5, 25),
            n("Rice", "rice", 2, 19),
            n("Juice", "juice", 2, 12),
        ],
        terms: &[
            "organic",
            "snacks",
            "breakfast",
            "vegan",
            "coffee",
            "gluten free",
        ],
    },
];

/// One catalogue entry. Prices are list prices in cents: > 0 and ≤ 500000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub category: Category,
    pub price_cents: u32,
    /// The search term that naturally leads to this product ("headphones").
    pub query: &'static str,
}

/// The fixed product catalogue plus popularity tables for sampling.
#[derive(Debug)]
pub struct Catalogue {
    products: Vec<Product>,
    /// Cumulative popularity over all products (Zipf-like).
    all_cum: Vec<u64>,
    /// Per category: product indices and their cumulative popularity.
    by_category: Vec<(Vec<u32>, Vec<u64>)>,
}

/// A tiny, explicitly specified integer RNG (SplitMix64) used only to *build*
/// the catalogue, so its output can never change with a dependency upgrade.
struct Stable(u64);

impl Stable {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        // n is a small table length or price range: modulo bias is irrelevant.
        self.next() % n.max(1)
    }
}

fn mix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Catalogue {
    /// The standard catalogue, built once per process.
    pub fn standard() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(Catalogue::build)
    }

    fn build() -> Catalogue {
        let mut rng = Stable(CATALOGUE_SEED);

        // Which category each product id gets: counts per category, shuffled
        // so ids do not reveal the category.
        let mut cats: Vec<Category> = Category::ALL
            .iter()
            .flat_map(|c| std::iter::repeat_n(*c, c.spec().count))
            .collect();
        for i in (1..cats.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            cats.swap(i, j);
        }

        let mut names = HashSet::with_capacity(cats.len());
        let mut products = Vec::with_capacity(cats.len());
        for (i, &category) in cats.iter().enumerate() {
            let spec = category.spec();
            let noun = &spec.nouns[rng.below(spec.nouns.len() as u64) as usize];
            // Redraw series and adjective until the name is unique. 1600
            // combinations per noun family make this terminate quickly.
            let mut name = String::new();
            for _ in 0..64 {
                let series = SERIES[rng.below(SERIES.len() as u64) as usize];
                let adj = spec.adjectives[rng.below(spec.adjectives.len() as u64) as usize];
                name = format!("{series} {adj} {}", noun.display);
                if !names.contains(&name) {
                    break;
                }
            }
            names.insert(name.clone());

            // Skewed towards the cheap end of the range: the minimum of two
            // uniform draws. Endings .99 / .49 / .95 / .00 like a real shop.
            let span = u64::from(noun.max - noun.min) + 1;
            let whole = u64::from(noun.min) + rng.below(span).min(rng.below(span));
            let ending = match rng.below(10) {
                0..=5 => 99,
                6 | 7 => 49,
                8 => 95,
                _ => 0,
            };
            let cents = if ending == 0 {
                whole * 100
            } else {
                whole * 100 - (100 - ending)
            };
            products.push(Product {
                id: format!("P{:05}", i + 1),
                name,
                category,
                // Bounded by the tables: at most 4999 * 100.
                price_cents: u32::try_from(cents).unwrap_or(u32::MAX).min(500_000),
                query: noun.query,
            });
        }

        // Popularity: a fixed random ranking, weight ~ 1 / (rank + 8).
        let mut order: Vec<usize> = (0..products.len()).collect();
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut weight = vec![0u64; products.len()];
        for (rank, &p) in order.iter().enumerate() {
            weight[p] = 1_000_000 / (rank as u64 + 8);
        }
        let mut all_cum = Vec::with_capacity(products.len());
        let mut total = 0u64;
        for w in &weight {
            total += w;
            all_cum.push(total);
        }
        let mut by_category: Vec<(Vec<u32>, Vec<u64>)> = Category::ALL
            .iter()
            .map(|_| (Vec::new(), Vec::new()))
            .collect();
        for (i, p) in products.iter().enumerate() {
            let (ids, cum) = &mut by_category[p.category.index()];
            let prev = cum.last().copied().unwrap_or(0);
            ids.push(i as u32);
            cum.push(prev + weight[i]);
        }

        Catalogue {
            products,
            all_cum,
            by_category,
        }
    }

    #[cfg(test)]
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The product at `idx` (an index returned by one of the `pick` methods).
    pub fn product(&self, idx: u32) -> &Product {
        &self.products[idx as usize]
    }

    /// A product index, weighted by popularity.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        pick_cumulative(&self.all_cum, rng) as u32
    }

    /// A product index within `category`, weighted by popularity.
    pub fn pick_in<R: Rng + ?Sized>(&self, category: Category, rng: &mut R) -> u32 {
        let (ids, cum) = &self.by_category[category.index()];
        ids[pick_cumulative(cum, rng)]
    }

    /// A category, weighted by the popularity of its products.
    pub fn pick_category<R: Rng + ?Sized>(&self, rng: &mut R) -> Category {
        let p = self.pick(rng);
        self.product(p).category
    }
}

/// Index `i` with probability proportional to `cum[i] - cum[i-1]`.
fn pick_cumulative<R: Rng + ?Sized>(cum: &[u64], rng: &mut R) -> usize {
    let total = cum.last().copied().unwrap_or(0);
    if total == 0 {
        return 0;
    }
    let x = rng.random_range(0..total);
    cum.partition_point(|&c| c <= x)
}

/// One of `items`, chosen with probability proportional to its weight.
/// `items` are the static tables below, never empty.
pub fn pick_weighted<'a, T, R: Rng + ?Sized>(items: &'a [(T, u32)], rng: &mut R) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

// ---------------------------------------------------------------- users ---

/// A user's fixed segment; `Anonymous` is for events without a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    New,
    Returning,
    Premium,
    Inactive,
    Anonymous,
}

impl Segment {
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::New => "new",
            Segment::Returning => "returning",
            Segment::Premium => "premium",
            Segment::Inactive => "inactive",
            Segment::Anonymous => "anonymous",
        }
    }
}

/// The fixed segment of user number `user` (1-based), the same in every run.
pub fn user_segment(user: u32) -> Segment {
    match mix64(CATALOGUE_SEED ^ u64::from(user).wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 100 {
        0..=19 => Segment::New,
        20..=64 => Segment::Returning,
        65..=79 => Segment::Premium,
        _ => Segment::Inactive,
    }
}

/// A user number in `1..=USER_COUNT`; inactive users show up less often.
pub fn pick_user<R: Rng + ?Sized>(rng: &mut R) -> u32 {
    let user = rng.random_range(1..=USER_COUNT);
    if user_segment(user) == Segment::Inactive && rng.random_bool(0.75) {
        return rng.random_range(1..=USER_COUNT);
    }
    user
}

// --------------------------------------------------------- vocabularies ---

pub static DEVICES: [(&str, u32); 3] = [("desktop", 45), ("mobile", 45), ("tablet", 10)];

/// Browsers by device type (same order as [`DEVICES`]).
pub fn browsers(device: &str) -> &'static [(&'static str, u32)] {
    match device {
        "desktop" => &[
            ("chrome", 60),
            ("edge", 14),
            ("safari", 12),
            ("firefox", 12),
            ("opera", 2),
        ],
        "mobile" => &[("chrome", 55), ("safari", 38), ("samsung_internet", 7)],
        _ => &[("safari", 60), ("chrome", 40)],
    }
}

/// A country (ISO 3166-1 alpha-2) and cities that belong to it.
pub struct Country {
    pub code: &'static str,
    pub cities: &'static [&'static str],
}

pub static COUNTRIES: [(Country, u32); 12] = [
    (
        Country {
            code: "US",
            cities: &[
                "New York",
                "Los Angeles",
                "Chicago",
                "Houston",
                "Seattle",
                "Austin",
                "Washington, D.C.",
            ],
        },
        30,
    ),
    (
        Country {
            code: "GB",
            cities: &["London", "Manchester", "Birmingham", "Edinburgh", "Bristol"],
        },
        10,
    ),
    (
        Country {
            code: "DE",
            cities: &["Berlin", "Munich", "Hamburg", "Cologne", "Frankfurt"],
        },
        9,
    ),
    (
        Country {
            code: "IN",
            cities: &["Mumbai", "Delhi", "Bengaluru", "Hyderabad", "Chennai"],
        },
        8,
    ),
    (
        Country {
            code: "FR",
            cities: &["Paris", "Lyon", "Marseille", "Toulouse", "Lille"],
        },
        7,
    ),
    (
        Country {
            code: "CA",
            cities: &["Toronto", "Vancouver", "Montreal", "Calgary"],
        },
        6,
    ),
    (
        Country {
            code: "BR",
            cities: &["São Paulo", "Rio de Janeiro", "Belo Horizonte"],
        },
        5,
    ),
    (
        Country {
            code: "GH",
            cities: &["Accra", "Kumasi", "Tamale"],
        },
        4,
    ),
    (
        Country {
            code: "NG",
            cities: &["Lagos", "Abuja", "Ibadan"],
        },
        4,
    ),
    (
        Country {
            code: "AU",
            cities: &["Sydney", "Melbourne", "Brisbane", "Perth"],
        },
        4,
    ),
    (
        Country {
            code: "JP",
            cities: &["Tokyo", "Osaka", "Yokohama"],
        },
        4,
    ),
    (
        Country {
            code: "ES",
            cities: &["Madrid", "Barcelona", "Valencia"],
        },
        3,
    ),
];

pub static REFERRERS: [(&str, u32); 10] = [
    ("direct", 34),
    ("google", 28),
    ("email", 8),
    ("facebook", 8),
    ("instagram", 6),
    ("bing", 4),
    ("tiktok", 4),
    ("affiliate", 4),
    ("pinterest", 2),
    ("twitter", 2),
];

/// The chance (percent) that a session from `referrer` carries a campaign id,
/// and the campaigns it can carry.
pub fn campaigns(referrer: &str) -> (u32, &'static [&'static str]) {
    match referrer {
        "email" => (
            100,
            &[
                "cmp_newsletter_weekly",
                "cmp_back_in_stock",
                "cmp_loyalty_premium",
                "cmp_black_friday_2026",
            ],
        ),
        "affiliate" => (100, &["aff_techradar", "aff_couponclub", "aff_wirecutter"]),
        "facebook" | "instagram" | "tiktok" | "pinterest" => (
            70,
            &[
                "cmp_winter_sale",
                "cmp_new_arrivals",
                "cmp_black_friday_2026",
                "cmp_free_shipping",
            ],
        ),
        "google" | "bing" => (25, &["cmp_search_brand", "cmp_search_generic"]),
        _ => (0, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn catalogue_is_stable_and_well_formed() {
        let a = Catalogue::build();
        let b = Catalogue::standard();
        assert_eq!(a.products(), b.products());
        assert_eq!(a.products().len(), PRODUCT_COUNT);
        let mut names = HashSet::new();
        for (i, p) in a.products().iter().enumerate() {
            assert_eq!(p.id, format!("P{:05}", i + 1));
            assert!(p.price_cents > 0 && p.price_cents <= 500_000, "{p:?}");
            assert!(names.insert(p.name.clone()), "duplicate name {}", p.name);
            assert!(p.name.split(' ').count() >= 3, "{}", p.name);
        }
        for c in Category::ALL {
            let n = a.products().iter().filter(|p| p.category == c).count();
            assert_eq!(n, c.spec().count, "{}", c.as_str());
        }
        assert_eq!(SPECS.iter().map(|s| s.count).sum::<usize>(), PRODUCT_COUNT);
    }

    /// Pins a few entries: a change here silently changes every data set
    /// and dashboard built on the generator's products.
    #[test]
    fn catalogue_entries_are_pinned() {
        let c = Catalogue::standard();
        let got: Vec<String> = [0usize, 41, 499]
            .iter()
            .map(|&i| {
                let p = &c.products()[i];
                format!(
                    "{}|{}|{}|{}",
                    p.id,
                    p.name,
                    p.category.as_str(),
                    p.price_cents
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "P00001|Crest Classic Jeans|clothing|9699",
                "P00042|Polar Pro Smartphone|electronics|21800",
                "P00500|Nimbus All-Weather Backpack|sports|3999",
            ]
        );
    }

    #[test]
    fn sampling_respects_categories_and_popularity() {
        let c = Catalogue::standard();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for cat in Category::ALL {
            for _ in 0..200 {
                let p = c.pick_in(cat, &mut rng);
                assert_eq!(c.product(p).category, cat);
            }
        }
        let mut hits = vec![0u32; PRODUCT_COUNT];
        for _ in 0..100_000 {
            hits[c.pick(&mut rng) as usize] += 1;
        }
        let max = hits.iter().max().copied().unwrap_or(0);
        let min = hits.iter().min().copied().unwrap_or(0);
        assert!(max > 5 * min.max(1), "popularity should be skewed");
    }

    #[test]
    fn users_have_fixed_segments() {
        let segs: Vec<Segment> = (1..=USER_COUNT).map(user_segment).collect();
        let again: Vec<Segment> = (1..=USER_COUNT).map(user_segment).collect();
        assert_eq!(segs, again);
        for s in [
            Segment::New,
            Segment::Returning,
            Segment::Premium,
            Segment::Inactive,
        ] {
            let share = segs.iter().filter(|x| **x == s).count() as f64 / segs.len() as f64;
            assert!(share > 0.1 && share < 0.55, "{s:?} {share}");
        }
        assert!(!segs.contains(&Segment::Anonymous));
    }

    #[test]
    fn vocabularies_are_usable() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let d = *pick_weighted(&DEVICES, &mut rng);
            assert!(!browsers(d).is_empty());
            let c = pick_weighted(&COUNTRIES, &mut rng);
            assert!(!c.cities.is_empty() && c.code.len() == 2);
        }
        for (r, _) in REFERRERS {
            let (pct, list) = campaigns(r);
            assert!(pct == 0 || !list.is_empty());
        }
        for c in Category::ALL {
            assert!(!c.search_terms().is_empty());
        }
    }
}
