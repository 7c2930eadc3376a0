//! The statistics behind the verdicts: Wilson score intervals for proportions, the
//! Kaplan–Meier estimator for censored response times, the two-sided Fisher exact test for
//! 2×2 tables, and sample quantiles.
//!
//! Every function takes plain numbers and returns plain numbers; the tests compare them with
//! values from reference implementations (R, statsmodels) and textbooks. This module must not
//! know about probes, claims, SQL or the clock.

use statrs::function::factorial::ln_binomial;

/// The 97.5 % quantile of the standard normal distribution (R `qnorm(0.975)`), for 95 %
/// two-sided intervals.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The 95 % Wilson score interval of `successes` out of `trials`, clamped to [0, 1];
/// `None` when there are no trials.
pub fn wilson(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let x = successes.min(trials);
    let n = trials as f64;
    let p = x as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 and n successes the bound is exactly 0 or 1; rounding would leave ±1e-17.
    let lo = if x == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if x == trials {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some((lo, hi))
}

/// A Kaplan–Meier survival curve: the share of probes still without a human response.
#[derive(Debug, Clone, PartialEq)]
pub struct KaplanMeier {
    /// `(event time, survival just after it)`, one step per distinct event time, in order.
    pub steps: Vec<(f64, f64)>,
    /// How many observations (events and censored) the curve was built from.
    pub n: usize,
}

/// A quantile of a Kaplan–Meier curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KmQuantile {
    /// The curve reaches the level at this time.
    Reached(f64),
    /// The curve never drops that far within the observations.
    NotReached,
    /// There are no observations at all.
    NoData,
}

impl KmQuantile {
    /// The time, when reached.
    pub fn value(self) -> Option<f64> {
        match self {
            KmQuantile::Reached(t) => Some(t),
            _ => None,
        }
    }
}

/// The Kaplan–Meier estimator over `(time, event)` pairs (`event = false`: censored at
/// `time`). At tied times events are counted before censorings, the usual convention (R
/// `survival::survfit`). Non-finite times are ignored.
pub fn kaplan_meier(observations: &[(f64, bool)]) -> KaplanMeier {
    let mut obs: Vec<(f64, bool)> = observations
        .iter()
        .copied()
        .filter(|(t, _)| t.is_finite())
        .collect();
    obs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = obs.len();
    let mut steps = Vec::new();
    let mut survival = 1.0;
    let mut i = 0;
    while i < obs.len() {
        let t = obs[i].0;
        let at_risk = obs.len() - i;
        let mut deaths = 0usize;
        let mut j = i;
        while j < obs.len() && obs[j].0 == t {
            if obs[j].1 {
                deaths += 1;
            }
            j += 1;
        }
        if deaths > 0 {
            survival *= 1.0 - deaths as f64 / at_risk as f64;
            steps.push((t, survival));
        }
        i = j;
    }
    KaplanMeier { steps, n }
}

impl KaplanMeier {
    /// S(t): the estimated share still without a response after time `t`.
    pub fn survival_at(&self, t: f64) -> f64 {
        self.steps
            .iter()
            .take_while(|(time, _)| *time <= t)
            .last()
            .map_or(1.0, |&(_, s)| s)
    }

    /// The time by which a share `p` has been answered: the smallest event time t with
    /// S(t) ≤ 1 − p (Brookmeyer–Crowley; R `quantile.survfit` outside exact ties).
    pub fn quantile(&self, p: f64) -> KmQuantile {
        if self.n == 0 {
            return KmQuantile::NoData;
        }
        let level = 1.0 - p;
        self.steps
            .iter()
            .find(|(_, s)| *s <= level + 1e-12)
            .map_or(KmQuantile::NotReached, |&(t, _)| KmQuantile::Reached(t))
    }
}

/// Two-sided p-value of Fisher's exact test on the 2×2 table `[[a, b], [c, d]]`: the
/// probability, under independence with fixed margins, of a table at most as likely as the
/// observed one (R `fisher.test`, with its relative tolerance of 1e-7).
pub fn fisher_two_sided(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let r1 = a + b;
    let r2 = c + d;
    let c1 = a + c;
    let n = r1 + r2;
    if n == 0 {
        return 1.0;
    }
    let ln_p = |x: u64| ln_binomial(r1, x) + ln_binomial(r2, c1 - x) - ln_binomial(n, c1);
    let observed = ln_p(a);
    let lo = c1.saturating_sub(r2);
    let hi = r1.min(c1);
    let threshold = observed + (1.0f64 + 1e-7).ln();
    let p: f64 = (lo..=hi)
        .map(ln_p)
        .filter(|&lp| lp <= threshold)
        .map(f64::exp)
        .sum();
    p.clamp(0.0, 1.0)
}

/// The `p` quantile of `values` by linear interpolation between order statistics (R
/// `quantile(type = 7)`, numpy's default); `None` when empty.
pub fn quantile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let h = (v.len() - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    // The lo-th and hi-th order statistics without sorting everything (a report takes
    // quantiles of millions of values): select the lo-th, then the hi-th is the smallest
    // of what lies above it.
    let (_, &mut lo_v, above) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let hi_v = if hi == lo {
        lo_v
    } else {
        above.iter().copied().min_by(f64::total_cmp).unwrap_or(lo_v)
    };
    Some(lo_v + (h - lo as f64) * (hi_v - lo_v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} != {b} (±{tol})");
    }

    /// Reference: R `binom::binom.wilson(x, n)` and statsmodels
    /// `proportion_confint(x, n, method="wilson")`, which agree to 7 digits:
    ///   0/10   → [0,         0.2775328]
    ///   7/10   → [0.3967781, 0.8922087]
    ///   10/10  → [0.7224672, 1        ]
    ///   95/100 → [0.8882495, 0.9784563]
    #[test]
    fn wilson_matches_reference_values() {
        let cases = [
            (0, 10, 0.0, 0.277_532_8),
            (7, 10, 0.396_778_1, 0.892_208_7),
            (10, 10, 0.722_467_2, 1.0),
            (95, 100, 0.888_249_5, 0.978_456_3),
        ];
        for (x, n, lo, hi) in cases {
            let (l, h) = wilson(x, n).unwrap();
            close(l, lo, 5e-8);
            close(h, hi, 5e-8);
        }
        assert_eq!(wilson(0, 10).unwrap().0, 0.0);
        assert_eq!(wilson(10, 10).unwrap().1, 1.0);
        assert_eq!(wilson(0, 0), None);
    }

    /// The 6-MP arm of Freireich et al. (1963), the textbook Kaplan–Meier example (Kleinbaum &
    /// Klein, "Survival Analysis", ch. 2; R `survfit(Surv(time, status) ~ 1)` on
    /// `MASS::gehan[gehan$treat == "6-MP", ]`). Weeks of remission, `+` = censored:
    /// 6 6 6 6+ 7 9+ 10 10+ 11+ 13 16 17+ 19+ 20+ 22 23 25+ 32+ 32+ 34+ 35+.
    /// By hand, S(t) = Π (1 − d/n):
    ///   t=6  n=21 d=3 → 18/21            = 0.8571
    ///   t=7  n=17 d=1 → ·16/17 = 96/119  = 0.8067
    ///   t=10 n=15 d=1 → ·14/15 = 64/85   = 0.7529
    ///   t=13 n=12 d=1 → ·11/12 = 176/255 = 0.6902
    ///   t=16 n=11 d=1 → ·10/11 = 32/51   = 0.6275
    ///   t=22 n=7  d=1 → ·6/7   = 64/119  = 0.5378
    ///   t=23 n=6  d=1 → ·5/6   = 160/357 = 0.4482
    /// Median 23 (first S ≤ 0.5, as survfit prints); the 90 % quantile is never reached.
    #[test]
    fn kaplan_meier_on_the_freireich_6mp_arm() {
        let data = [
            (6, true),
            (6, true),
            (6, true),
            (6, false),
            (7, true),
            (9, false),
            (10, true),
            (10, false),
            (11, false),
            (13, true),
            (16, true),
            (17, false),
            (19, false),
            (20, false),
            (22, true),
            (23, true),
            (25, false),
            (32, false),
            (32, false),
            (34, false),
            (35, false),
        ];
        let obs: Vec<(f64, bool)> = data.iter().map(|&(t, e)| (t as f64, e)).collect();
        let km = kaplan_meier(&obs);
        let expected = [
            (6.0, 18.0 / 21.0),
            (7.0, 96.0 / 119.0),
            (10.0, 64.0 / 85.0),
            (13.0, 176.0 / 255.0),
            (16.0, 32.0 / 51.0),
            (22.0, 64.0 / 119.0),
            (23.0, 160.0 / 357.0),
        ];
        assert_eq!(km.steps.len(), expected.len());
        for ((t, s), (et, es)) in km.steps.iter().zip(expected) {
            assert_eq!(*t, et);
            close(*s, es, 1e-12);
        }
        close(km.survival_at(12.0), 64.0 / 85.0, 1e-12);
        assert_eq!(km.survival_at(5.9), 1.0);
        assert_eq!(km.quantile(0.5), KmQuantile::Reached(23.0));
        assert_eq!(km.quantile(0.9), KmQuantile::NotReached);
        assert_eq!(km.quantile(0.1), KmQuantile::Reached(6.0));
        assert_eq!(kaplan_meier(&[]).quantile(0.5), KmQuantile::NoData);
    }

    #[test]
    fn kaplan_meier_without_censoring_is_the_empirical_curve() {
        let km = kaplan_meier(&[(1.0, true), (2.0, true), (3.0, true), (4.0, true)]);
        assert_eq!(km.quantile(0.5), KmQuantile::Reached(2.0));
        assert_eq!(km.quantile(0.9), KmQuantile::Reached(4.0));
        assert_eq!(km.survival_at(4.0), 0.0);
    }

    /// Reference: R `fisher.test(matrix(c(3, 1, 1, 3), 2))` — Fisher's tea-tasting table —
    /// p = 0.4857 (= 34/70); `fisher.test(matrix(c(1, 11, 9, 3), 2))` (the dieting example of
    /// Wikipedia's "Fisher's exact test") p = 0.002759; scipy.stats.fisher_exact agrees.
    #[test]
    fn fisher_matches_reference_values() {
        close(fisher_two_sided(3, 1, 1, 3), 34.0 / 70.0, 1e-12);
        close(fisher_two_sided(1, 9, 11, 3), 0.002_759_456, 1e-9);
        // The transposed table gives the same p.
        close(
            fisher_two_sided(1, 11, 9, 3),
            fisher_two_sided(1, 9, 11, 3),
            1e-12,
        );
        close(fisher_two_sided(20, 0, 10, 10), 0.000_435_919_8, 1e-10);
        assert_eq!(fisher_two_sided(5, 5, 5, 5), 1.0);
        assert_eq!(fisher_two_sided(0, 0, 0, 0), 1.0);
    }

    /// Reference: R `quantile(c(1, 2, 3, 4, 10), c(0.5, 0.9))` = 3, 7.6 (type 7).
    #[test]
    fn quantile_type_7() {
        let v = [10.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        close(quantile(&v, 0.9).unwrap(), 7.6, 1e-12);
        assert_eq!(quantile(&[5.0], 0.9), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
