//! How figures read in the human formats (HTML, Markdown): durations, rates, intervals,
//! verdict words. One place, so every format says the same thing the same way.

use crate::score::stats::KmQuantile;
use crate::score::{Split, Verdict};

/// A duration in seconds for a reader: `45s`, `12m 30s`, `3h 05m`, `2d 04h`.
pub fn duration(s: f64) -> String {
    if !s.is_finite() {
        return "—".into();
    }
    let total = s.round().max(0.0) as u64;
    let (d, h, m, sec) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    if total < 60 {
        format!("{sec}s")
    } else if total < 3600 {
        if sec == 0 {
            format!("{m}m")
        } else {
            format!("{m}m {sec:02}s")
        }
    } else if total < 86_400 {
        if m == 0 {
            format!("{h}h")
        } else {
            format!("{h}h {m:02}m")
        }
    } else if h == 0 {
        format!("{d}d")
    } else {
        format!("{d}d {h:02}h")
    }
}

/// An optional duration; `—` when not defined.
pub fn opt_duration(s: Option<f64>) -> String {
    s.map_or_else(|| "—".into(), duration)
}

/// A Kaplan–Meier quantile: the time, `not reached`, or `—` without probes.
pub fn km(q: KmQuantile) -> String {
    match q {
        KmQuantile::Reached(t) => duration(t),
        KmQuantile::NotReached => "not reached".into(),
        KmQuantile::NoData => "—".into(),
    }
}

/// A rate as a whole percentage (`75%`); `—` when not defined.
pub fn pct(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".into(), |r| format!("{:.0}%", r * 100.0))
}

/// A 95 % interval as percentages (`30–95%`); `—` when not defined.
pub fn ci(ci: Option<(f64, f64)>) -> String {
    ci.map_or_else(
        || "—".into(),
        |(lo, hi)| format!("{:.0}–{:.0}%", lo * 100.0, hi * 100.0),
    )
}

/// `met/eligible = rate (95% CI lo–hi%)`, the way every rate is shown.
pub fn split(s: &Split) -> String {
    if s.eligible == 0 {
        return "0/0".into();
    }
    format!(
        "{}/{} = {} (95% CI {})",
        s.met,
        s.eligible,
        pct(s.rate()),
        ci(s.ci95())
    )
}

/// The verdict in words (`insufficient evidence`, not the JSON token).
pub fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Supported => "supported",
        Verdict::Contradicted => "contradicted",
        Verdict::Inconclusive => "inconclusive",
        Verdict::InsufficientEvidence => "insufficient evidence",
    }
}

/// A p-value: 3 significant digits, `<0.001` below that.
pub fn p_value(p: Option<f64>) -> String {
    match p {
        None => "—".into(),
        Some(p) if p < 0.001 => "<0.001".into(),
        Some(p) => format!("{p:.3}"),
    }
}

/// Weekday names, Monday first, as the hour-of-week grid rows.
pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Opening hours per weekday as `Mon–Fri 09:00–18:00`, grouping equal consecutive days;
/// `closed` when there are none.
pub fn weekly_hours(h: &crate::config::WeeklyHours) -> String {
    let day = |d: &[(u16, u16)]| {
        d.iter()
            .map(|&(s, e)| format!("{:02}:{:02}–{:02}:{:02}", s / 60, s % 60, e / 60, e % 60))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    let mut i = 0;
    while i < 7 {
        let mut j = i;
        while j + 1 < 7 && h.days[j + 1] == h.days[i] {
            j += 1;
        }
        if !h.days[i].is_empty() {
            let days = if i == j {
                WEEKDAYS[i].to_owned()
            } else {
                format!("{}–{}", WEEKDAYS[i], WEEKDAYS[j])
            };
            parts.push(format!("{days} {}", day(&h.days[i])));
        }
        i = j + 1;
    }
    if parts.is_empty() {
        "closed".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(45.0), "45s");
        assert_eq!(duration(60.0), "1m");
        assert_eq!(duration(750.0), "12m 30s");
        assert_eq!(duration(3600.0), "1h");
        assert_eq!(duration(11_100.0), "3h 05m");
        assert_eq!(duration(231_300.0), "2d 16h");
        assert_eq!(duration(604_800.0), "7d");
        assert_eq!(opt_duration(None), "—");
    }

    #[test]
    fn rates_and_hours() {
        let s = Split {
            eligible: 4,
            met: 3,
        };
        assert_eq!(split(&s), "3/4 = 75% (95% CI 30–95%)");
        assert_eq!(split(&Split::default()), "0/0");
        assert_eq!(
            weekly_hours(&crate::config::WeeklyHours::office_default()),
            "Mon–Fri 09:00–18:00"
        );
        assert_eq!(
            weekly_hours(&crate::config::WeeklyHours::default()),
            "closed"
        );
        assert_eq!(p_value(Some(1.0)), "1.000");
        assert_eq!(p_value(Some(0.0001)), "<0.001");
    }
}
