//! The claim clock: how much time a claim counts between two instants, and when a promised
//! response time runs out.
//!
//! A 24/7 claim counts calendar time. A calendar claim counts only the time inside the
//! calendar's weekly hours, in its own time zone, skipping its holidays — like Zendesk or Zammad
//! business hours. Opening hours are turned into real instants day by day through `jiff`, so
//! midnight, weekends and DST changes come out right without hand-written time-zone rules: a
//! day that is open `00:00-24:00` lasts 23 h on the day clocks spring forward.
//!
//! This module owns the clock arithmetic only. It must not read the config file, the store or
//! the system clock: every instant is a parameter.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;

use crate::config::{Availability, Config, WeeklyHours};
use crate::model::Millis;

/// How far ahead [`ClaimClock::deadline`] looks for opening hours before it gives up (a
/// calendar whose every day is a holiday never reaches a deadline).
const MAX_SCAN_DAYS: i32 = 3660;

/// A support team's business hours, ready for clock arithmetic.
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    /// The calendar's id in the config (shown as the SLA clock in reports).
    pub id: String,
    /// The zone the hours are written in.
    pub tz: TimeZone,
    /// Opening hours per weekday.
    pub hours: WeeklyHours,
    /// Days closed all day, in the calendar's zone.
    pub holidays: BTreeSet<Date>,
}

/// The clock a claim is measured on.
#[derive(Debug, Clone)]
pub enum ClaimClock {
    /// A 24/7 claim: every millisecond counts.
    Continuous,
    /// A calendar claim: only time inside business hours counts.
    Business(Box<BusinessCalendar>),
}

impl ClaimClock {
    /// The clock of a target's availability claim; `None` when the target makes no
    /// availability claim or names a calendar the config does not have.
    pub fn for_availability(config: &Config, availability: &Availability) -> Option<ClaimClock> {
        match availability {
            Availability::AlwaysOn => Some(ClaimClock::Continuous),
            Availability::Calendar(id) => {
                let c = config.calendar(id)?;
                Some(ClaimClock::Business(Box::new(BusinessCalendar {
                    id: c.id.clone(),
                    tz: c.timezone.clone(),
                    hours: c.hours.clone(),
                    holidays: c.holidays.iter().copied().collect(),
                })))
            }
        }
    }

    /// The report's name of the clock: `calendar` for 24/7, else the calendar id.
    pub fn label(&self) -> &str {
        match self {
            ClaimClock::Continuous => "calendar",
            ClaimClock::Business(c) => &c.id,
        }
    }

    /// Milliseconds the claim counts between `from` and `to` (0 when `to <= from`).
    pub fn elapsed(&self, from: Millis, to: Millis) -> i64 {
        if to <= from {
            return 0;
        }
        match self {
            ClaimClock::Continuous => to - from,
            ClaimClock::Business(cal) => {
                let (Some(first), Some(last)) = (cal.local_date(from), cal.local_date(to)) else {
                    return 0;
                };
                let mut total = 0;
                // The day before `from` too: its last interval may end at 24:00, i.e. on `first`.
                let mut day = first.yesterday().unwrap_or(first);
                while day <= last {
                    for (start, end) in cal.open_intervals(day) {
                        let (s, e) = (start.max(from), end.min(to));
                        if e > s {
                            total += e - s;
                        }
                    }
                    match day.tomorrow() {
                        Ok(next) => day = next,
                        Err(_) => break,
                    }
                }
                total
            }
        }
    }

    /// The earliest instant at which the claim has counted `duration` ms since `t0`:
    /// "t0 + T on the claim clock". `None` when the calendar has no opening hours within
    /// ten years, or the instant is out of range.
    pub fn deadline(&self, t0: Millis, duration: i64) -> Option<Millis> {
        let duration = duration.max(0);
        if duration == 0 {
            return Some(t0);
        }
        match self {
            ClaimClock::Continuous => t0.checked_add(duration),
            ClaimClock::Business(cal) => {
                let mut remaining = duration;
                let first = cal.local_date(t0)?;
                let mut day = first.yesterday().unwrap_or(first);
                for _ in 0..MAX_SCAN_DAYS {
                    for (start, end) in cal.open_intervals(day) {
                        if end <= t0 {
                            continue;
                        }
                        let s = start.max(t0);
                        if remaining <= end - s {
                            return Some(s + remaining);
                        }
                        remaining -= end - s;
                    }
                    day = day.tomorrow().ok()?;
                }
                None
            }
        }
    }
}

impl BusinessCalendar {
    fn local_date(&self, ms: Millis) -> Option<Date> {
        let ts = Timestamp::from_millisecond(ms).ok()?;
        Some(ts.to_zoned(self.tz.clone()).date())
    }

    /// The open intervals of one local day as `[start, end)` UTC milliseconds, in order.
    /// A civil time that does not exist (inside a DST gap) maps to the instant after the gap,
    /// jiff's "compatible" rule, as RFC 5545 does.
    fn open_intervals(&self, day: Date) -> Vec<(Millis, Millis)> {
        if self.holidays.contains(&day) {
            return Vec::new();
        }
        let weekday = day.weekday().to_monday_zero_offset() as usize;
        let Some(spans) = self.hours.days.get(weekday) else {
            return Vec::new();
        };
        spans
            .iter()
            .filter_map(|&(s, e)| {
                let start = self.instant(day, s)?;
                let end = self.instant(day, e)?;
                (end > start).then_some((start, end))
            })
            .collect()
    }

    /// The instant of `minute` minutes after local midnight of `day` (1440 = next midnight).
    fn instant(&self, day: Date, minute: u16) -> Option<Millis> {
        let (day, minute) = if minute >= 1440 {
            (day.tomorrow().ok()?, minute - 1440)
        } else {
            (day, minute)
        };
        let hour = i8::try_from(minute / 60).ok()?;
        let min = i8::try_from(minute % 60).ok()?;
        let time = Time::new(hour, min, 0, 0).ok()?;
        let ts = self
            .tz
            .to_ambiguous_timestamp(DateTime::from_parts(day, time))
            .compatible()
            .ok()?;
        Some(ts.as_millisecond())
    }
}

/// Hour-of-week (0 = Monday 00:00–00:59 … 167 = Sunday 23:00) and minute of the day of an
/// instant in `tz`.
pub fn hour_of_week(tz: &TimeZone, ms: Millis) -> Option<(usize, u16)> {
    let z = Timestamp::from_millisecond(ms).ok()?.to_zoned(tz.clone());
    let weekday = z.weekday().to_monday_zero_offset() as usize;
    let hour = usize::try_from(z.hour()).ok()?;
    let minute = u16::try_from(z.hour()).ok()? * 60 + u16::try_from(z.minute()).ok()?;
    Some((weekday * 24 + hour, minute))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn at(tz: &str, civil: &str) -> Millis {
        let dt: DateTime = civil.parse().unwrap();
        TimeZone::get(tz)
            .unwrap()
            .to_ambiguous_timestamp(dt)
            .compatible()
            .unwrap()
            .as_millisecond()
    }

    fn office(tz: &str, holidays: &[&str]) -> ClaimClock {
        ClaimClock::Business(Box::new(BusinessCalendar {
            id: "office".into(),
            tz: TimeZone::get(tz).unwrap(),
            hours: WeeklyHours::office_default(),
            holidays: holidays.iter().map(|d| d.parse().unwrap()).collect(),
        }))
    }

    fn always_open(tz: &str) -> ClaimClock {
        let mut hours = WeeklyHours::default();
        for d in &mut hours.days {
            d.push((0, 1440));
        }
        ClaimClock::Business(Box::new(BusinessCalendar {
            id: "all-day".into(),
            tz: TimeZone::get(tz).unwrap(),
            hours,
            holidays: BTreeSet::new(),
        }))
    }

    #[test]
    fn friday_evening_to_monday_morning_in_singapore_is_75_minutes() {
        let clock = office("Asia/Singapore", &[]);
        // 2026-11-20 is a Friday.
        let from = at("Asia/Singapore", "2026-11-20T17:30");
        let to = at("Asia/Singapore", "2026-11-23T09:45");
        assert_eq!(clock.elapsed(from, to), 75 * MIN);
        // And the other way round: 75 minutes after Friday 17:30 is Monday 09:45.
        assert_eq!(clock.deadline(from, 75 * MIN), Some(to));
        assert_eq!(clock.label(), "office");
    }

    #[test]
    fn a_holiday_inside_the_span_does_not_count() {
        // Thu 2026-12-24 17:00 → Mon 2026-12-28 10:00, Fri 25 Dec closed: 1 h + 1 h.
        let from = at("Asia/Singapore", "2026-12-24T17:00");
        let to = at("Asia/Singapore", "2026-12-28T10:00");
        assert_eq!(
            office("Asia/Singapore", &["2026-12-25"]).elapsed(from, to),
            2 * HOUR
        );
        assert_eq!(office("Asia/Singapore", &[]).elapsed(from, to), 11 * HOUR);
        // 24 business hours from Thu 17:00 with the holiday: 1 h Thu, 9 h Mon, 9 h Tue,
        // 5 h Wed → Wed 2026-12-30 14:00.
        assert_eq!(
            office("Asia/Singapore", &["2026-12-25"]).deadline(from, 24 * HOUR),
            Some(at("Asia/Singapore", "2026-12-30T14:00"))
        );
    }

    #[test]
    fn new_york_across_dst_transitions() {
        // Spring forward on Sun 2026-03-08: that day has 23 hours.
        let clock = always_open("America/New_York");
        let from = at("America/New_York", "2026-03-07T12:00");
        let to = at("America/New_York", "2026-03-09T12:00");
        assert_eq!(clock.elapsed(from, to), 47 * HOUR);
        // Fall back on Sun 2026-11-01: that day has 25 hours.
        let from = at("America/New_York", "2026-10-31T12:00");
        let to = at("America/New_York", "2026-11-02T12:00");
        assert_eq!(clock.elapsed(from, to), 49 * HOUR);
        assert_eq!(to - from, 49 * HOUR);
        // Office hours across the fall-back weekend: Fri 17:00 EDT → Mon 10:00 EST = 2 h,
        // though 66 real hours pass.
        let office = office("America/New_York", &[]);
        let from = at("America/New_York", "2026-10-30T17:00");
        let to = at("America/New_York", "2026-11-02T10:00");
        assert_eq!(office.elapsed(from, to), 2 * HOUR);
        assert_eq!(to - from, 66 * HOUR);
        assert_eq!(office.deadline(from, 2 * HOUR), Some(to));
    }

    #[test]
    fn continuous_clock_counts_everything() {
        let c = ClaimClock::Continuous;
        assert_eq!(c.elapsed(1000, 5000), 4000);
        assert_eq!(c.elapsed(5000, 1000), 0);
        assert_eq!(c.deadline(1000, 500), Some(1500));
        assert_eq!(c.label(), "calendar");
    }

    #[test]
    fn a_calendar_that_never_opens_has_no_deadline() {
        let clock = ClaimClock::Business(Box::new(BusinessCalendar {
            id: "closed".into(),
            tz: TimeZone::UTC,
            hours: WeeklyHours::default(),
            holidays: BTreeSet::new(),
        }));
        assert_eq!(clock.deadline(0, HOUR), None);
        assert_eq!(clock.elapsed(0, 30 * 24 * HOUR), 0);
        assert_eq!(clock.deadline(0, 0), Some(0));
    }

    #[test]
    fn inside_hours_counts_real_time_and_deadline_inside_the_day() {
        let clock = office("Asia/Singapore", &[]);
        let from = at("Asia/Singapore", "2026-11-18T10:00");
        assert_eq!(
            clock.elapsed(from, at("Asia/Singapore", "2026-11-18T10:05")),
            5 * MIN
        );
        assert_eq!(
            clock.deadline(from, 5 * MIN),
            Some(at("Asia/Singapore", "2026-11-18T10:05"))
        );
        // Sent at 20:00: the clock starts at 09:00 the next day.
        let evening = at("Asia/Singapore", "2026-11-18T20:00");
        assert_eq!(
            clock.deadline(evening, 5 * MIN),
            Some(at("Asia/Singapore", "2026-11-19T09:05"))
        );
    }

    #[test]
    fn hour_of_week_is_local() {
        let tz = TimeZone::get("Asia/Singapore").unwrap();
        // Monday 2026-11-23 00:30 SGT.
        let (how, minute) = hour_of_week(&tz, at("Asia/Singapore", "2026-11-23T00:30")).unwrap();
        assert_eq!((how, minute), (0, 30));
        let (how, minute) = hour_of_week(&tz, at("Asia/Singapore", "2026-11-22T23:10")).unwrap();
        assert_eq!((how, minute), (167, 23 * 60 + 10));
    }
}
