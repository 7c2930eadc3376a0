//! Decides which probes are due: the pure scheduler behind `deskprobe run` and `deskprobe tick`.
//!
//! This module owns the expansion of `[[schedule]]` cron firings into planned probes, their send
//! times (jitter or hour-of-week stratification), the rotation of scripts and personas, the
//! missed-run policy and the ethics caps of `[limits]`. It must not do I/O, read a clock, sleep
//! or draw randomness: `now`, the history and a `seed` are parameters, so the same inputs always
//! give the same plan and every decision is unit-tested with a fixed clock. The store persists
//! what [`plan`] returns; the daemon sleeps until [`next_due`].
//!
//! # Decisions
//!
//! - A **slot** is one cron firing of one schedule, in UTC milliseconds. Cron expressions are the
//!   `cron` crate's (6 or 7 fields, seconds first) and are evaluated **in UTC**: one schedule spans
//!   targets in several zones, and stratification handles local time.
//! - Each slot expands to one [`Planned`] probe per (target × channel) of the schedule, in config
//!   order. Targets with `verified = false` and disabled channels are left out: they are never
//!   probed. All probes of a slot share one (script, persona) pair, so targets are compared on the
//!   same question; the pair rotates through every compatible pair of the schedule (script-major
//!   order, pairs whose persona writes none of the script's languages left out) by the slot's
//!   position within its UTC day, starting each day at a hashed offset.
//! - **Send time**. Without stratification, `send_at = slot + offset` with the offset a hash of
//!   (seed, schedule, slot, target, channel) spread over `[0, jitter)` (whole seconds when the
//!   jitter is at least a second). With `stratify = "hour-of-week"` the jitter is ignored: the
//!   window from the slot to the next slot of the schedule (at most a week) is cut at the
//!   target's local hour boundaries, each piece gets a hashed minute (moved to the next allowed
//!   minute when a limit forbids it), and the piece whose hour-of-week bucket has the fewest
//!   earlier probes wins. Ranking, in order: not within `min-gap` of an earlier probe; fewest
//!   earlier probes over this channel in the bucket, then over all channels; no day cap broken;
//!   not crowding the hour the next slot will most want; a hash. Counts use the target's probes
//!   of the last [`STRATIFY_LOOKBACK`] before the slot plus the probes of the same slot placed
//!   before this one — never anything after the slot — so re-planning a waiting slot later gives
//!   the same minute.
//! - **History** ([`History`]) is built by the caller: past probe times per target, and what is
//!   already *handled* (sent, failed or skipped). A handled probe is never planned again, which
//!   makes `tick` idempotent. Probes of one slot become due at different times, so handling is
//!   recorded per probe ([`ProbeKey`]); whole slots can be marked too.
//! - [`plan`] considers every slot in `(since, now]` plus the earlier slots whose probes may still
//!   be waiting (those less than `jitter` before `since`, or the slot just before `since` when
//!   stratified). A probe whose `send_at` is still after `now` is neither due nor skipped: it
//!   comes back in a later plan once `now` has passed it.
//! - **Missed runs**. A probe more than `grace` ([`DEFAULT_GRACE`], 15 min) late is missed. Under
//!   `missed = "skip"` every missed probe is skipped. Under `"latest"` only the probes of the most
//!   recent missed slot of each schedule are kept, rescheduled to `now` — and not even those when
//!   a later slot of the schedule is already on time or waiting. Never a burst.
//! - **Ethics caps** are checked at `send_at`, in time order, against the history plus the probes
//!   already accepted by the same plan: at most `per-target-per-day` probes to a target in any
//!   24 h window, at most `per-channel-per-day` per (target, channel) in any 24 h window, and no
//!   two probes to one target less than `min-gap` apart. A probe that breaks one is skipped with
//!   the first reason in that order. Skipped probes are returned so the caller records them
//!   (handled, with the reason); nothing is silently dropped. Slots older than
//!   [`MISSED_HORIZON`] (plus the schedule's longest offset) are no longer looked at.
//!
//! See `docs/scheduling.md` for the researcher-facing version, with examples.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use crate::config::{Config, Limits, MissedPolicy, Schedule, Stratify, Target};
use crate::model::{ChannelKind, Millis};

/// How late a probe may become due and still be sent: 15 minutes.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15 * 60);

/// How far back hour-of-week stratification counts earlier probes: 8 weeks.
pub const STRATIFY_LOOKBACK: Duration = Duration::from_secs(8 * 7 * 24 * 3600);

/// Slots whose probes became due longer ago than this are no longer looked at, not even to be
/// reported missed: 7 days.
pub const MISSED_HORIZON: Duration = Duration::from_secs(7 * 24 * 3600);

const SECOND: Millis = 1000;
const MINUTE: Millis = 60 * SECOND;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;
const WEEK: Millis = 7 * DAY;

/// Upper bound on future slots looked at per schedule by [`next_due`].
const MAX_FUTURE_SLOTS: usize = 10_000;

/// One probe the scheduler wants sent: a slot expanded for one target and channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Planned {
    /// The schedule id.
    pub schedule: String,
    /// The cron firing this probe belongs to (UTC ms).
    pub slot: Millis,
    /// The target id.
    pub target: String,
    /// The channel to probe.
    pub channel: ChannelKind,
    /// The script id.
    pub script: String,
    /// The persona id (writes a language the script has).
    pub persona: String,
    /// When to send it (UTC ms): `slot` plus jitter or the stratified offset, or the plan's
    /// `now` for the one missed slot kept under `missed = "latest"`.
    pub send_at: Millis,
}

impl Planned {
    /// What identifies this probe among all planned ones.
    pub fn key(&self) -> ProbeKey {
        ProbeKey {
            schedule: self.schedule.clone(),
            slot: self.slot,
            target: self.target.clone(),
            channel: self.channel,
        }
    }
}

/// Identifies one planned probe: a slot of a schedule, for one target and channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeKey {
    /// The schedule id.
    pub schedule: String,
    /// The slot (UTC ms).
    pub slot: Millis,
    /// The target id.
    pub target: String,
    /// The channel.
    pub channel: ChannelKind,
}

/// Why a planned probe is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// More than the grace period late, and the missed policy does not keep it.
    Missed,
    /// The target already had `per-target-per-day` probes in a 24 h window.
    PerTargetDayCap,
    /// The target already had `per-channel-per-day` probes over this channel in a 24 h window.
    PerChannelDayCap,
    /// Another probe to the target is less than `min-gap` away.
    MinGap,
}

impl SkipReason {
    /// Every reason.
    pub const ALL: &'static [SkipReason] = &[
        SkipReason::Missed,
        SkipReason::PerTargetDayCap,
        SkipReason::PerChannelDayCap,
        SkipReason::MinGap,
    ];

    /// The stable string form (for the store and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Missed => "missed",
            SkipReason::PerTargetDayCap => "per_target_day_cap",
            SkipReason::PerChannelDayCap => "per_channel_day_cap",
            SkipReason::MinGap => "min_gap",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A planned probe that will not be sent, and why. The caller records it as handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The probe as it was planned.
    pub planned: Planned,
    /// Why it is not sent.
    pub reason: SkipReason,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Probes to send now, by `send_at`.
    pub due: Vec<Planned>,
    /// Probes that will not be sent, by slot.
    pub skipped: Vec<Skipped>,
}

/// What has happened so far, as the caller knows it from the store.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Per target id: send time (or planned time, when the send is still in flight) and channel
    /// of each earlier probe, in any order. Manual `deskprobe send` probes belong here too: the
    /// caps count them.
    pub probes: HashMap<String, Vec<(Millis, ChannelKind)>>,
    /// Planned probes already handled (sent, failed, or skipped).
    pub handled: HashSet<ProbeKey>,
    /// Whole slots already handled, as (schedule id, slot).
    pub handled_slots: HashSet<(String, Millis)>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Records a probe to `target` at `at` over `channel`.
    pub fn add_probe(&mut self, target: &str, at: Millis, channel: ChannelKind) {
        self.probes
            .entry(target.to_owned())
            .or_default()
            .push((at, channel));
    }

    /// Marks one planned probe as handled.
    pub fn mark_handled(&mut self, planned: &Planned) {
        self.handled.insert(planned.key());
    }

    /// Marks every probe of a slot as handled.
    pub fn mark_slot_handled(&mut self, schedule: &str, slot: Millis) {
        self.handled_slots.insert((schedule.to_owned(), slot));
    }

    /// Whether this planned probe, or its whole slot, is handled.
    pub fn is_handled(&self, planned: &Planned) -> bool {
        self.handled.contains(&planned.key())
            || self
                .handled_slots
                .contains(&(planned.schedule.clone(), planned.slot))
    }

    /// A history from the store's rows: handled probes, and (target, channel, time) of past
    /// probes.
    pub fn from_parts<K: Into<ProbeKey>>(
        handled: impl IntoIterator<Item = K>,
        times: impl IntoIterator<Item = (String, ChannelKind, Millis)>,
    ) -> History {
        let mut history = History::new();
        history.handled = handled.into_iter().map(Into::into).collect();
        for (target, channel, at) in times {
            history
                .probes
                .entry(target)
                .or_default()
                .push((at, channel));
        }
        history
    }

    /// Records a plan as the caller would after acting on it: due probes become past probes at
    /// their `send_at`, and every due or skipped probe becomes handled.
    pub fn record(&mut self, plan: &Plan) {
        for p in &plan.due {
            self.add_probe(&p.target, p.send_at, p.channel);
            self.mark_handled(p);
        }
        for s in &plan.skipped {
            self.mark_handled(&s.planned);
        }
    }
}

/// Every not-yet-handled probe of the slots in `(since, now]` (and of earlier slots whose probes
/// may still have been waiting at `since`) whose `send_at` has come, split into due and skipped.
///
/// `since` is the `now` of the caller's previous plan; `None` on a first run (then it is `now`).
/// Slots more than [`MISSED_HORIZON`] (plus the longest offset) behind `now` are ignored. Probes
/// whose `send_at` is after `now` are left out and come back in a later plan. A probe more than
/// `grace` ([`DEFAULT_GRACE`] unless the caller has reason) late is missed; see the module doc
/// for the missed policy. `history` must cover at least [`lookback`] before `now`.
pub fn plan(
    config: &Config,
    history: &History,
    since: Option<Millis>,
    now: Millis,
    seed: u64,
    grace: Duration,
) -> Plan {
    let mut sweep = Sweep::new(config, history, seed, now, grace);
    sweep.run(since.unwrap_or(now));
    sweep.finish()
}

/// How much history [`plan`] and [`next_due`] need before `now`: past probe times and handled
/// probes from `now - lookback` on. Covers the oldest slot still looked at
/// ([`MISSED_HORIZON`] plus the longest offset), and before it a day for the caps, `min-gap`,
/// and [`STRATIFY_LOOKBACK`] when a schedule stratifies.
pub fn lookback(config: &Config) -> Duration {
    let span = config.schedules.iter().map(span).max().unwrap_or(0);
    let mut before = DAY.max(millis_of(config.limits.min_gap));
    if config.schedules.iter().any(|s| s.stratify.is_some()) {
        before = before.max(millis_of(STRATIFY_LOOKBACK));
    }
    let total = millis_of(MISSED_HORIZON)
        .saturating_add(span)
        .saturating_add(before);
    Duration::from_millis(u64::try_from(total).unwrap_or(u64::MAX))
}

/// The script and persona of every probe of a schedule's `slot`: the schedule's compatible
/// (script, persona) pairs, in script-major order, rotated by the slot's position among the
/// schedule's firings of its UTC day, from a start hashed from the schedule id and the day.
/// Independent of the seed, so a retry of a slot chooses the same pair. `None` when no persona
/// of the schedule writes a language of any of its scripts (validation forbids that).
pub fn choose(config: &Config, schedule: &Schedule, slot: Millis) -> Option<(String, String)> {
    let fires = day_fires(&schedule.cron, slot.div_euclid(DAY));
    choose_among(config, schedule, slot, &fires)
}

/// The longest time from a slot of `sched` to one of its send times.
fn span(sched: &Schedule) -> Millis {
    match sched.stratify {
        Some(Stratify::HourOfWeek) => WEEK,
        None => millis_of(sched.jitter),
    }
}

/// The firings of `cron` on UTC day number `day`.
fn day_fires(cron: &cron::Schedule, day: i64) -> Vec<Millis> {
    fires_after(cron, day * DAY - 1)
        .take_while(|&f| f < (day + 1) * DAY)
        .collect()
}

fn choose_among(
    config: &Config,
    sched: &Schedule,
    slot: Millis,
    day_fires: &[Millis],
) -> Option<(String, String)> {
    let pairs: Vec<(&String, &String)> = sched
        .scripts
        .iter()
        .flat_map(|s| sched.personas.iter().map(move |p| (s, p)))
        .filter(|(s, p)| compatible(config, s, p))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as u64;
    let position = day_fires.partition_point(|&f| f < slot) as u64;
    let start = Mix::new(0, "rotation")
        .str(&sched.id)
        .i64(slot.div_euclid(DAY))
        .finish();
    let (s, p) = pairs[((start % n + position) % n) as usize];
    Some((s.clone(), p.clone()))
}

/// The earliest `send_at` after `now` of a probe not handled yet, from a slot already fired or a
/// future one; `None` when no schedule will ever fire again.
///
/// Probes already due at `now` are [`plan`]'s business: call it first and record the result.
/// The answer is exact for the given history; after a probe outside the schedules (a manual
/// send), ask again.
pub fn next_due(config: &Config, history: &History, now: Millis, seed: u64) -> Option<Millis> {
    let mut sweep = Sweep::new(config, history, seed, now, DEFAULT_GRACE);
    sweep.run(now);
    let mut best = sweep.pending_min;
    for (si, sched) in config.schedules.iter().enumerate() {
        if eligible(config, sched).next().is_none() {
            continue;
        }
        for (n, slot) in fires_after(&sched.cron, now).enumerate() {
            if n >= MAX_FUTURE_SLOTS || best.is_some_and(|b| slot >= b) {
                break;
            }
            for p in sweep.expand(si, slot) {
                if p.send_at > now && !history.is_handled(&p) {
                    best = Some(best.map_or(p.send_at, |b| b.min(p.send_at)));
                }
            }
        }
    }
    best
}

/// The hour-of-week bucket of `ts` in `tz`: 0 is Monday 00:00–00:59, 167 is Sunday 23:00–23:59.
pub fn hour_of_week(ts: Millis, tz: &jiff::tz::TimeZone) -> u8 {
    let z = timestamp(ts).to_zoned(tz.clone());
    let day = z.weekday().to_monday_zero_offset();
    // Both are small and non-negative: weekday 0..7, hour 0..24.
    (day as u8) * 24 + z.hour() as u8
}

fn timestamp(ms: Millis) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

fn millis_of(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Cron firings strictly after `t`, as UTC ms. Firings fall on whole seconds.
fn fires_after(cron: &cron::Schedule, t: Millis) -> impl Iterator<Item = Millis> + '_ {
    let start = chrono::DateTime::from_timestamp(t.div_euclid(SECOND), 0);
    start
        .into_iter()
        .flat_map(move |dt| cron.after(&dt))
        .map(|dt| dt.timestamp_millis())
        .filter(move |&f| f > t)
}

/// The latest cron firing at or before `t`.
fn last_fire_at_or_before(cron: &cron::Schedule, t: Millis) -> Option<Millis> {
    // `after(x).next_back()` steps back from x; start one second past `t`'s second so a firing
    // at exactly that second is found, then drop anything past `t`.
    let from = chrono::DateTime::from_timestamp(t.div_euclid(SECOND) + 1, 0)?;
    let mut it = cron.after(&from);
    (0..3)
        .map_while(|_| it.next_back())
        .map(|dt| dt.timestamp_millis())
        .find(|&f| f <= t)
}

/// The (target, channel) pairs a schedule's slots expand to, in config order.
fn eligible<'c>(
    config: &'c Config,
    sched: &'c Schedule,
) -> impl Iterator<Item = (&'c Target, ChannelKind)> + 'c {
    sched
        .targets
        .iter()
        .filter_map(|id| config.target(id))
        .filter(|t| t.verified)
        .flat_map(move |t| {
            sched
                .channels
                .iter()
                .filter(move |&&k| t.channel(k).is_some_and(|c| c.enabled))
                .map(move |&k| (t, k))
        })
}

/// Deterministic mixing of inputs into a 64-bit value: SplitMix64 steps over FNV-1a string
/// digests. Not cryptographic; only spreads send times reproducibly under a seed.
#[derive(Clone, Copy)]
struct Mix(u64);

impl Mix {
    fn new(seed: u64, domain: &str) -> Mix {
        Mix(splitmix64(seed)).str(domain)
    }

    fn u64(self, v: u64) -> Mix {
        Mix(splitmix64(self.0 ^ splitmix64(v)))
    }

    fn i64(self, v: i64) -> Mix {
        self.u64(v as u64)
    }

    fn str(self, s: &str) -> Mix {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.u64(h).u64(s.len() as u64)
    }

    fn finish(self) -> u64 {
        splitmix64(self.0)
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A value in `[0, n)` from a hash (multiply-shift); 0 when `n` is 0.
fn below(h: u64, n: u64) -> u64 {
    ((u128::from(h) * u128::from(n)) >> 64) as u64
}

/// The jitter offset in `[0, jitter)` of one probe.
fn jitter_offset(
    seed: u64,
    schedule: &str,
    slot: Millis,
    target: &str,
    channel: ChannelKind,
    jitter: Millis,
) -> Millis {
    if jitter <= 0 {
        return 0;
    }
    let h = Mix::new(seed, "jitter")
        .str(schedule)
        .i64(slot)
        .str(target)
        .str(channel.as_str())
        .finish();
    if jitter >= SECOND {
        below(h, (jitter / SECOND) as u64) as Millis * SECOND
    } else {
        below(h, jitter as u64) as Millis
    }
}

/// One stretch of time inside a single local hour: `[start, end)` in hour-of-week `bucket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: Millis,
    end: Millis,
    bucket: u8,
}

/// Cuts `[start, end)` at the local hour boundaries of `tz`. Around a DST change a bucket may
/// be missing (spring forward) or appear twice (fall back).
fn hour_segments(start: Millis, end: Millis, tz: &jiff::tz::TimeZone) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut cur = start;
    while cur < end {
        let z = timestamp(cur).to_zoned(tz.clone());
        let into_hour = i64::from(z.minute()) * MINUTE
            + i64::from(z.second()) * SECOND
            + i64::from(z.millisecond());
        let bucket = (z.weekday().to_monday_zero_offset() as u8) * 24 + z.hour() as u8;
        let seg_end = (cur - into_hour + HOUR).min(end).max(cur + 1);
        out.push(Segment {
            start: cur,
            end: seg_end,
            bucket,
        });
        cur = seg_end;
    }
    out
}

/// Probe times of one target, sorted by time.
type Times = Vec<(Millis, ChannelKind)>;

fn insert_sorted(times: &mut Times, entry: (Millis, ChannelKind)) {
    let at = times.partition_point(|e| e <= &entry);
    times.insert(at, entry);
}

/// Whether adding a probe at `t` makes some 24 h window `[a, a + 24h)` hold more than `cap` of
/// the given sorted times.
fn exceeds_daily(sorted: &[Millis], t: Millis, cap: u32) -> bool {
    let lo = sorted.partition_point(|&x| x <= t - DAY);
    let hi = sorted.partition_point(|&x| x < t + DAY);
    let mut v: Vec<Millis> = sorted[lo..hi].to_vec();
    let at = v.partition_point(|&x| x <= t);
    v.insert(at, t);
    let cap = cap as usize;
    for (i, &a) in v.iter().enumerate() {
        if a > t {
            break;
        }
        if i > 0 && v[i - 1] == a {
            continue;
        }
        let n = v[i..].partition_point(|&x| x < a + DAY);
        if n > cap {
            return true;
        }
    }
    false
}

/// The first limit a probe over `channel` at `t` would break, given the target's other probes
/// (sorted by time): the per-target cap, the per-channel cap, then the minimum gap.
fn violation(
    limits: &Limits,
    known: &[(Millis, ChannelKind)],
    channel: ChannelKind,
    t: Millis,
) -> Option<SkipReason> {
    cap_violation(limits, known, channel, t).or_else(|| gap_violation(limits, known, t))
}

/// The per-day cap a probe at `t` would break.
fn cap_violation(
    limits: &Limits,
    known: &[(Millis, ChannelKind)],
    channel: ChannelKind,
    t: Millis,
) -> Option<SkipReason> {
    let lo = known.partition_point(|&(x, _)| x <= t - DAY);
    let hi = known.partition_point(|&(x, _)| x < t + DAY);
    let near = &known[lo..hi];
    let all: Vec<Millis> = near.iter().map(|&(x, _)| x).collect();
    if exceeds_daily(&all, t, limits.per_target_per_day) {
        return Some(SkipReason::PerTargetDayCap);
    }
    if let Some(cap) = *limits.per_channel_per_day.get(channel) {
        let same: Vec<Millis> = near
            .iter()
            .filter(|&&(_, c)| c == channel)
            .map(|&(x, _)| x)
            .collect();
        if exceeds_daily(&same, t, cap) {
            return Some(SkipReason::PerChannelDayCap);
        }
    }
    None
}

/// Whether another probe is less than `min-gap` from `t`.
fn gap_violation(
    limits: &Limits,
    known: &[(Millis, ChannelKind)],
    t: Millis,
) -> Option<SkipReason> {
    let gap = millis_of(limits.min_gap);
    if gap <= 0 {
        return None;
    }
    let lo = known.partition_point(|&(x, _)| x <= t - gap);
    known
        .get(lo)
        .is_some_and(|&(x, _)| x < t + gap)
        .then_some(SkipReason::MinGap)
}

/// One pass over the slots of a plan, in time order.
struct Sweep<'a> {
    config: &'a Config,
    history: &'a History,
    seed: u64,
    now: Millis,
    grace: Millis,
    /// Per target: history plus the probes accepted so far, sorted.
    known: HashMap<&'a str, Times>,
    /// Firings of (schedule index, UTC day number), for the script/persona rotation.
    day_fires: HashMap<(usize, i64), Vec<Millis>>,
    /// Every probe expanded so far, addressed by index from `queue`.
    probes: Vec<Planned>,
    /// Probes that came due more than `grace` ago, per schedule.
    late: Vec<Vec<usize>>,
    /// Per schedule, the latest slot with a probe that is on time or still waiting.
    current: Vec<Option<Millis>>,
    pending_min: Option<Millis>,
    due: Vec<Planned>,
    skipped: Vec<Skipped>,
}

impl<'a> Sweep<'a> {
    fn new(
        config: &'a Config,
        history: &'a History,
        seed: u64,
        now: Millis,
        grace: Duration,
    ) -> Sweep<'a> {
        let mut known: HashMap<&'a str, Times> = HashMap::new();
        for (target, times) in &history.probes {
            let mut times = times.clone();
            times.sort_unstable();
            known.insert(target.as_str(), times);
        }
        Sweep {
            config,
            history,
            seed,
            now,
            grace: millis_of(grace),
            known,
            day_fires: HashMap::new(),
            probes: Vec::new(),
            late: vec![Vec::new(); config.schedules.len()],
            current: vec![None; config.schedules.len()],
            pending_min: None,
            due: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// The slots of schedule `si` to look at: those in `(since, now]` and the earlier ones whose
    /// probes may still have been waiting at `since`; fully handled slots left out.
    fn slots(&self, si: usize, since: Millis) -> Vec<Millis> {
        let sched = &self.config.schedules[si];
        let from = match sched.stratify {
            Some(Stratify::HourOfWeek) => {
                last_fire_at_or_before(&sched.cron, since).map_or(since, |s| s - 1)
            }
            None => since.saturating_sub(millis_of(sched.jitter)),
        };
        let oldest = self
            .now
            .saturating_sub(millis_of(MISSED_HORIZON))
            .saturating_sub(span(sched));
        let from = from.max(oldest);
        fires_after(&sched.cron, from)
            .take_while(|&f| f <= self.now)
            .filter(|&f| !self.history.handled_slots.contains(&(sched.id.clone(), f)))
            .collect()
    }

    fn run(&mut self, since: Millis) {
        // Events: (time, 0 = decide probe / 1 = slot fires, schedule index, probe index or slot).
        // Decisions at a time come before slots at the same time; ties keep creation order.
        let mut queue: BinaryHeap<Reverse<(Millis, u8, usize, usize)>> = BinaryHeap::new();
        let mut slots: Vec<Millis> = Vec::new();
        for (si, sched) in self.config.schedules.iter().enumerate() {
            if eligible(self.config, sched).next().is_none() {
                continue;
            }
            for slot in self.slots(si, since) {
                queue.push(Reverse((slot, 1, si, slots.len())));
                slots.push(slot);
            }
        }
        while let Some(Reverse((_, kind, si, index))) = queue.pop() {
            if kind == 0 {
                self.decide(si, index);
                continue;
            }
            let slot = slots[index];
            for p in self.expand(si, slot) {
                if self.history.is_handled(&p) {
                    continue;
                }
                if p.send_at > self.now {
                    self.current[si] = self.current[si].max(Some(slot));
                    self.pending_min =
                        Some(self.pending_min.map_or(p.send_at, |m| m.min(p.send_at)));
                    continue;
                }
                queue.push(Reverse((p.send_at, 0, si, self.probes.len())));
                self.probes.push(p);
            }
        }
        self.settle_late();
    }

    /// Decides a probe whose `send_at` has come: late, skipped by a cap, or due.
    fn decide(&mut self, si: usize, index: usize) {
        let p = &self.probes[index];
        if self.now - p.send_at > self.grace {
            self.late[si].push(index);
            return;
        }
        self.current[si] = self.current[si].max(Some(p.slot));
        let p = p.clone();
        self.accept_or_skip(p);
    }

    fn accept_or_skip(&mut self, p: Planned) {
        let known = self.known.get(p.target.as_str()).map_or(&[][..], |v| v);
        match violation(&self.config.limits, known, p.channel, p.send_at) {
            Some(reason) => self.skipped.push(Skipped { planned: p, reason }),
            None => {
                if let Some(target) = self.config.target(&p.target) {
                    let times = self.known.entry(target.id.as_str()).or_default();
                    insert_sorted(times, (p.send_at, p.channel));
                }
                self.due.push(p);
            }
        }
    }

    /// Applies the missed policy to the late probes of each schedule.
    fn settle_late(&mut self) {
        for si in 0..self.late.len() {
            let late = std::mem::take(&mut self.late[si]);
            let Some(latest) = late.iter().map(|&i| self.probes[i].slot).max() else {
                continue;
            };
            let keep = match self.config.schedules[si].missed {
                MissedPolicy::Skip => None,
                MissedPolicy::Latest if self.current[si].is_some_and(|c| c > latest) => None,
                MissedPolicy::Latest => Some(latest),
            };
            for i in late {
                let mut p = self.probes[i].clone();
                if Some(p.slot) == keep {
                    p.send_at = self.now;
                    self.accept_or_skip(p);
                } else {
                    self.skipped.push(Skipped {
                        planned: p,
                        reason: SkipReason::Missed,
                    });
                }
            }
        }
    }

    fn finish(mut self) -> Plan {
        self.due.sort_by_key(|p| p.send_at);
        self.skipped
            .sort_by_key(|s| (s.planned.slot, s.planned.send_at));
        Plan {
            due: self.due,
            skipped: self.skipped,
        }
    }

    /// The probes of one slot, with their send times. Depends only on the config, the seed and
    /// the probes known before the slot, so the same slot always expands the same way.
    fn expand(&mut self, si: usize, slot: Millis) -> Vec<Planned> {
        let config = self.config;
        let sched = &config.schedules[si];
        let Some((script, persona)) = self.rotation(si, slot) else {
            return Vec::new();
        };
        let window = |from: Millis| {
            let end = fires_after(&sched.cron, from)
                .next()
                .map_or(from + WEEK, |next| next.min(from + WEEK));
            (from, end)
        };
        let (this, next) = match sched.stratify {
            Some(Stratify::HourOfWeek) => {
                let this = window(slot);
                (this, window(this.1))
            }
            None => ((slot, slot), (slot, slot)),
        };
        let lookback = slot.saturating_sub(millis_of(STRATIFY_LOOKBACK));
        let mut out = Vec::new();
        let mut placed: HashMap<&str, Times> = HashMap::new();
        for (target, channel) in eligible(config, sched) {
            let send_at = match sched.stratify {
                None => {
                    let j = millis_of(sched.jitter);
                    slot + jitter_offset(self.seed, &sched.id, slot, &target.id, channel, j)
                }
                Some(Stratify::HourOfWeek) => {
                    let before = placed.entry(target.id.as_str()).or_insert_with(|| {
                        let known = self.known.get(target.id.as_str()).map_or(&[][..], |v| v);
                        let lo = known.partition_point(|&(x, _)| x < lookback);
                        let hi = known.partition_point(|&(x, _)| x < slot);
                        known[lo..hi].to_vec()
                    });
                    let t = self.stratified(sched, this, next, target, channel, before);
                    insert_sorted(before, (t, channel));
                    t
                }
            };
            out.push(Planned {
                schedule: sched.id.clone(),
                slot,
                target: target.id.clone(),
                channel,
                script: script.clone(),
                persona: persona.clone(),
                send_at,
            });
        }
        out
    }

    /// The stratified send time of one probe in the slot's `window`, given the target's probes
    /// placed before it (`placed`, sorted) and the `next` slot's window.
    fn stratified(
        &self,
        sched: &Schedule,
        window: (Millis, Millis),
        next: (Millis, Millis),
        target: &Target,
        channel: ChannelKind,
        placed: &[(Millis, ChannelKind)],
    ) -> Millis {
        let tz = &target.timezone;
        let mut by_channel = [0u32; 168];
        let mut by_target = [0u32; 168];
        for &(t, c) in placed {
            let b = usize::from(hour_of_week(t, tz));
            by_target[b] += 1;
            if c == channel {
                by_channel[b] += 1;
            }
        }
        let (slot, end) = window;
        let limits = &self.config.limits;
        let gap_ms = millis_of(limits.min_gap);
        // Where the next slot will most want to send (its least-probed hour, earliest first): a
        // send closer to it than min-gap would push the next slot elsewhere.
        let wanted_next = hour_segments(next.0, next.1, tz)
            .into_iter()
            .map(|s| {
                let b = usize::from(s.bucket);
                ((by_channel[b], by_target[b]), s.start)
            })
            .min()
            .map_or(Millis::MAX, |(_, start)| start);
        let base = Mix::new(self.seed, "stratify")
            .str(&sched.id)
            .i64(slot)
            .str(&target.id)
            .str(channel.as_str());
        let mut best: Option<(Rank, Millis)> = None;
        for seg in hour_segments(slot, end, tz) {
            let h = base.i64(seg.start);
            // A hashed minute of the piece; if a limit forbids it, the next minute that does not
            // (wrapping around), preferring a minute that breaks no limit over one that breaks
            // only a day cap.
            let minutes = (seg.end - seg.start - 1) / MINUTE + 1;
            let first = below(h.u64(0).finish(), minutes as u64) as Millis;
            let mut pick: Option<(bool, bool, Millis)> = None;
            for i in 0..minutes {
                let t = seg.start + (first + i) % minutes * MINUTE;
                let gap = gap_violation(limits, placed, t).is_some();
                let cap = cap_violation(limits, placed, channel, t).is_some();
                if pick.is_none_or(|(g, c, _)| (gap, cap) < (g, c)) {
                    pick = Some((gap, cap, t));
                }
                if !gap && !cap {
                    break;
                }
            }
            let Some((breaks_gap, breaks_cap, t)) = pick else {
                continue;
            };
            let b = usize::from(seg.bucket);
            let rank = Rank {
                breaks_gap,
                channel_count: by_channel[b],
                target_count: by_target[b],
                breaks_cap,
                crowds_next: gap_ms > 0 && t.saturating_add(gap_ms) > wanted_next,
                tie: h.u64(1).finish(),
            };
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((rank, t));
            }
        }
        best.map_or(slot, |(_, t)| t)
    }

    /// [`choose`], with the firings of each day computed once per sweep.
    fn rotation(&mut self, si: usize, slot: Millis) -> Option<(String, String)> {
        let sched = &self.config.schedules[si];
        let day = slot.div_euclid(DAY);
        let fires = self
            .day_fires
            .entry((si, day))
            .or_insert_with(|| day_fires(&sched.cron, day));
        choose_among(self.config, sched, slot, fires)
    }
}

/// How good a stratified send time is: smaller is better, compared field by field.
///
/// The bucket counts come before the day caps on purpose. When a schedule fires exactly
/// `per-target-per-day` times a day, a rolling 24 h window admits a send only if it is no
/// earlier in its slot window than the send 24 h before; putting the caps first would let every
/// send drift to the last hour of its window and stay there (stratification frozen). Counts
/// first keeps spreading, at the price of an occasional capped probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// Closer than `min-gap` to an earlier probe of the target.
    breaks_gap: bool,
    /// Earlier probes over this channel in the bucket.
    channel_count: u32,
    /// Earlier probes over any channel in the bucket.
    target_count: u32,
    /// Would break a per-day cap given the earlier probes.
    breaks_cap: bool,
    /// Within `min-gap` of the hour the next slot will most want, so it would push it away.
    crowds_next: bool,
    /// Hash of the seed and the probe: the deterministic tie-break.
    tie: u64,
}

/// Whether `persona` writes a language `script` has text in (a script without texts fits all).
fn compatible(config: &Config, script: &str, persona: &str) -> bool {
    let (Some(s), Some(p)) = (config.script(script), config.persona(persona)) else {
        return false;
    };
    s.texts.is_empty() || s.languages().any(|l| p.languages.iter().any(|pl| pl == l))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;

    const MAILBOX_AND_SCRIPTS: &str = r#"
[[mailbox]]
id = "mb"
smtp = "smtps://mail.example.org"
imap = "imaps://mail.example.org"
username = "u@example.org"
password-env = "PW"

[[persona]]
id = "lin"
name = "Lin"
email = "u@example.org"
mailbox = "mb"
languages = ["zh", "en"]

[[persona]]
id = "max"
name = "Max"
email = "u@example.org"
mailbox = "mb"
languages = ["en"]

[[script]]
id = "pending"
[script.text.en]
subject = "Withdrawal pending"
body = "Hello"

[[script]]
id = "kyc"
[script.text.en]
subject = "KYC"
body = "Hello"
[script.text.zh]
subject = "KYC"
body = "你好"
"#;

    fn target(id: &str, tz: &str) -> String {
        format!(
            r#"
[[target]]
id = "{id}"
name = "{id}"
timezone = "{tz}"
verified = true
[target.claims]
source = "https://{id}.example/help"
captured = "2026-01-01"
availability = "24/7"
[[target.channel]]
kind = "email"
address = "help@{id}.example"
[[target.channel]]
kind = "chat"
driver = "livechat"
organization-id = "org-{id}"
"#
        )
    }

    /// A config with the shared mailbox, personas and scripts plus `rest` (targets, schedules,
    /// limits), parsed like a real `probes.toml`.
    fn config(rest: &str) -> Config {
        let text = format!("{MAILBOX_AND_SCRIPTS}{rest}");
        match crate::config::parse(&text, Path::new("test.toml")) {
            Ok(c) => c,
            Err(e) => panic!("test config is invalid:\n{e}"),
        }
    }

    fn at(text: &str) -> Millis {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn ny() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("America/New_York").unwrap()
    }

    /// Everything a run of ticks decided.
    #[derive(Debug, Default)]
    struct Run {
        due: Vec<Planned>,
        skipped: Vec<Skipped>,
    }

    /// Ticks every `step` from `from` to `to` (inclusive), recording each plan into `history`
    /// as the daemon would.
    fn simulate(
        config: &Config,
        history: &mut History,
        from: Millis,
        to: Millis,
        step: Millis,
        seed: u64,
    ) -> Run {
        let mut run = Run::default();
        let mut since = from;
        while since < to {
            let now = (since + step).min(to);
            let plan = plan(config, history, Some(since), now, seed, DEFAULT_GRACE);
            for p in &plan.due {
                assert!(p.send_at <= now, "due before its time: {p:?} at {now}");
                assert!(
                    now - p.send_at <= millis_of(DEFAULT_GRACE),
                    "sent late: {p:?} at {now}"
                );
            }
            history.record(&plan);
            run.due.extend(plan.due);
            run.skipped.extend(plan.skipped);
            since = now;
        }
        run
    }

    fn rfc3339_(ms: Millis) -> String {
        crate::model::rfc3339(ms)
    }

    fn reasons(skipped: &[Skipped]) -> BTreeMap<SkipReason, usize> {
        let mut out = BTreeMap::new();
        for s in skipped {
            *out.entry(s.reason).or_default() += 1;
        }
        out
    }

    #[test]
    fn cron_firings_are_strictly_after_and_at_or_before() {
        let cron: cron::Schedule = "0 0 */4 * * *".parse().unwrap();
        let t = at("2026-03-02T04:00:00Z");
        let next: Vec<Millis> = fires_after(&cron, t).take(2).collect();
        assert_eq!(
            next,
            [at("2026-03-02T08:00:00Z"), at("2026-03-02T12:00:00Z")]
        );
        assert_eq!(fires_after(&cron, t - 1).next(), Some(t));
        assert_eq!(last_fire_at_or_before(&cron, t), Some(t));
        assert_eq!(last_fire_at_or_before(&cron, t + 500), Some(t));
        assert_eq!(
            last_fire_at_or_before(&cron, t - 1),
            Some(at("2026-03-02T00:00:00Z"))
        );
        assert_eq!(day_fires(&cron, t.div_euclid(DAY)).len(), 6);
    }

    #[test]
    fn cron_day_of_week_numbers_start_at_sunday() {
        // The cron crate counts 1 = Sunday … 7 = Saturday (Unix cron: 0 = Sunday); names are
        // unambiguous. docs/scheduling.md warns about this.
        let monday = at("2026-03-02T00:00:00Z");
        let first = |expr: &str| {
            let cron: cron::Schedule = expr.parse().unwrap();
            fires_after(&cron, monday - 1).next().unwrap()
        };
        assert_eq!(first("0 0 9 * * Mon"), monday + 9 * HOUR);
        assert_eq!(first("0 0 9 * * 2"), monday + 9 * HOUR);
        assert_eq!(first("0 0 9 * * 1"), monday + 6 * DAY + 9 * HOUR);
        assert_eq!(first("@hourly"), monday);
    }

    #[test]
    fn hour_of_week_starts_monday_midnight_in_the_targets_zone() {
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(hour_of_week(at("2026-03-02T00:00:00Z"), &utc), 0);
        assert_eq!(hour_of_week(at("2026-03-08T23:59:59Z"), &utc), 167);
        // New York is UTC-5 in winter: its Monday 00:30 is 05:30 UTC.
        assert_eq!(hour_of_week(at("2026-03-02T05:30:00Z"), &ny()), 0);
        assert_eq!(hour_of_week(at("2026-03-02T04:59:00Z"), &ny()), 167);
        let sg = jiff::tz::TimeZone::get("Asia/Singapore").unwrap();
        assert_eq!(hour_of_week(at("2026-03-01T16:00:00Z"), &sg), 0);
    }

    #[test]
    fn new_york_dst_changes_skip_and_repeat_an_hour_bucket() {
        let tz = ny();
        // Spring forward, Sunday 2026-03-08: 01:59:59 EST is followed by 03:00 EDT.
        assert_eq!(hour_of_week(at("2026-03-08T06:30:00Z"), &tz), 6 * 24 + 1);
        assert_eq!(hour_of_week(at("2026-03-08T07:30:00Z"), &tz), 6 * 24 + 3);
        let spring = hour_segments(at("2026-03-08T05:00:00Z"), at("2026-03-08T09:00:00Z"), &tz);
        let buckets: Vec<u8> = spring.iter().map(|s| s.bucket).collect();
        assert_eq!(buckets, [144, 145, 147, 148], "{spring:?}");
        // Fall back, Sunday 2026-11-01: 01:00–02:00 local happens twice (EDT, then EST).
        let fall = hour_segments(at("2026-11-01T04:00:00Z"), at("2026-11-01T08:00:00Z"), &tz);
        let buckets: Vec<u8> = fall.iter().map(|s| s.bucket).collect();
        assert_eq!(buckets, [144, 145, 145, 146], "{fall:?}");
        // Pieces are contiguous, each inside one local hour.
        for w in fall.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert!(fall.iter().all(|s| s.end - s.start == HOUR));
        // A window starting mid-hour gets a short first piece.
        let odd = hour_segments(at("2026-03-02T05:20:00Z"), at("2026-03-02T07:00:00Z"), &tz);
        assert_eq!(odd[0].end - odd[0].start, 40 * MINUTE);
        assert_eq!(odd.len(), 2);
    }

    #[test]
    fn a_half_hour_zone_cuts_hours_at_half_past_utc() {
        let tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
        let segs = hour_segments(at("2026-03-02T00:00:00Z"), at("2026-03-02T02:00:00Z"), &tz);
        let starts: Vec<Millis> = segs.iter().map(|s| s.start).collect();
        assert_eq!(
            starts,
            [
                at("2026-03-02T00:00:00Z"),
                at("2026-03-02T00:30:00Z"),
                at("2026-03-02T01:30:00Z")
            ]
        );
    }

    fn jitter_config() -> Config {
        config(&format!(
            r#"{}{}
[[schedule]]
id = "j"
cron = "0 0 */4 * * *"
jitter = "30m"
targets = ["a", "b"]
channels = ["email", "chat"]
scripts = ["pending"]
personas = ["lin"]

[limits]
per-target-per-day = 100
min-gap = "0s"
"#,
            target("a", "UTC"),
            target("b", "Asia/Singapore")
        ))
    }

    #[test]
    fn jitter_is_deterministic_under_a_seed() {
        let config = jitter_config();
        let from = at("2026-03-02T00:00:00Z");
        let to = from + 2 * DAY;
        let run = |seed| {
            let mut history = History::new();
            simulate(&config, &mut history, from, to, 5 * MINUTE, seed).due
        };
        let first = run(7);
        let again = run(7);
        let other = run(8);
        // 12 slots × 2 targets × 2 channels, the last slot's probes possibly still waiting.
        assert!(first.len() >= 44, "{}", first.len());
        assert_eq!(first, again, "same seed, same plan");
        let jitter = 30 * MINUTE;
        let offsets = |due: &[Planned]| -> BTreeMap<ProbeKey, Millis> {
            due.iter().map(|p| (p.key(), p.send_at - p.slot)).collect()
        };
        let (a, b) = (offsets(&first), offsets(&other));
        for off in a.values().chain(b.values()) {
            assert!((0..jitter).contains(off), "offset {off} outside [0, 30m)");
            assert_eq!(off % SECOND, 0, "offsets are whole seconds");
        }
        let common: Vec<&ProbeKey> = a.keys().filter(|k| b.contains_key(*k)).collect();
        let differing = common.iter().filter(|k| a[**k] != b[**k]).count();
        assert!(
            differing * 10 >= common.len() * 9,
            "another seed moves (nearly) every offset: {differing} of {}",
            common.len()
        );
        let distinct: BTreeSet<Millis> = a.values().copied().collect();
        assert!(distinct.len() * 10 >= a.len() * 9, "offsets are spread");
        // The offset itself is a pure function of its inputs.
        let o = |seed| jitter_offset(seed, "j", from, "a", ChannelKind::Email, jitter);
        assert_eq!(o(1), o(1));
        assert_ne!(o(1), o(2));
        assert_eq!(jitter_offset(1, "j", from, "a", ChannelKind::Email, 0), 0);
    }

    fn stratified_config(tz: &str, per_day: u32) -> Config {
        config(&format!(
            r#"{}
[[schedule]]
id = "round-the-clock"
cron = "0 0 */4 * * *"
targets = ["t"]
channels = ["email"]
scripts = ["pending", "kyc"]
personas = ["lin", "max"]
stratify = "hour-of-week"

[limits]
per-target-per-day = {per_day}
"#,
            target("t", tz)
        ))
    }

    /// Simulates `weeks` weeks of 10-minute ticks of a stratified 4-hourly schedule to one New
    /// York target from Monday 2026-02-23 (summer time starts in week 2). Returns the number of
    /// hour-of-week buckets covered after each week, the final counts, and all skips.
    fn stratify_weeks(per_day: u32, weeks: i64) -> (Vec<usize>, [u32; 168], Vec<Skipped>) {
        let config = stratified_config("America/New_York", per_day);
        let tz = ny();
        let start = at("2026-02-23T05:00:00Z"); // Monday 00:00 in New York
        let mut history = History::new();
        let mut counts = [0u32; 168];
        let mut covered = Vec::new();
        let mut skipped = Vec::new();
        for week in 0..weeks {
            let from = start + week * WEEK;
            let run = simulate(&config, &mut history, from, from + WEEK, 10 * MINUTE, 3);
            for p in &run.due {
                counts[usize::from(hour_of_week(p.send_at, &tz))] += 1;
            }
            covered.push(counts.iter().filter(|&&c| c > 0).count());
            skipped.extend(run.skipped);
        }
        (covered, counts, skipped)
    }

    #[test]
    fn stratification_covers_all_168_hours_of_the_week() {
        // A 4 h cron fires 42 times a week and each firing reaches 4 hour buckets, so 168
        // buckets need 4 weeks when perfectly balanced; the switch to summer time shifts every
        // window by an hour, so allow one more. The day cap (7) is above the firing rate (6):
        // see the next test for a cap equal to it.
        let ideal = 168usize.div_ceil(42);
        let (covered, counts, skipped) = stratify_weeks(7, 8);
        assert!(skipped.is_empty(), "{:?}", reasons(&skipped));
        assert_eq!(covered[0], 42, "week 1: every probe in a new bucket");
        let weeks = covered.iter().position(|&c| c == 168).map(|w| w + 1);
        assert!(
            weeks.is_some_and(|w| w <= ideal + 1),
            "all 168 buckets covered after {weeks:?} weeks: {covered:?}"
        );
        // And it stays balanced: 8 weeks put 2 probes in each bucket on average.
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(hi - lo <= 2, "{counts:?}");
    }

    #[test]
    fn stratification_does_not_freeze_when_the_day_cap_equals_the_firing_rate() {
        // With the default cap of 6 a day and 6 firings a day, a rolling 24 h window only
        // admits a send no earlier in its window than the send 24 h before. Avoiding the cap
        // before balancing buckets would drift every send to the last hour of its window and
        // stay there; balancing first costs a few capped probes instead.
        let (covered, _, skipped) = stratify_weeks(6, 10);
        assert!(covered.last() == Some(&168), "{covered:?}");
        assert!(
            skipped
                .iter()
                .all(|s| s.reason == SkipReason::PerTargetDayCap),
            "{:?}",
            reasons(&skipped)
        );
        assert!(skipped.len() < 42, "{} of 420 skipped", skipped.len());
    }

    #[test]
    fn stratified_send_times_stay_inside_their_slot_window() {
        let config = stratified_config("Asia/Singapore", 6);
        let start = at("2026-03-02T00:00:00Z");
        let mut history = History::new();
        let run = simulate(&config, &mut history, start, start + WEEK, 10 * MINUTE, 11);
        for p in &run.due {
            assert!(
                p.slot <= p.send_at && p.send_at < p.slot + 4 * HOUR,
                "{p:?}"
            );
            assert_eq!((p.send_at - p.slot) % MINUTE, 0, "whole minutes: {p:?}");
        }
        let sends: Vec<Millis> = run.due.iter().map(|p| p.send_at).collect();
        for w in sends.windows(2) {
            assert!(w[1] - w[0] >= 2 * HOUR, "default min-gap kept");
        }
    }

    #[test]
    fn caps_and_min_gap_hold_over_a_month() {
        let config = config(&format!(
            r#"{}{}
[[schedule]]
id = "hourly"
cron = "0 0 * * * *"
jitter = "59m"
targets = ["a", "b"]
channels = ["email", "chat"]
scripts = ["pending", "kyc"]
personas = ["lin"]

[[schedule]]
id = "spread"
cron = "0 30 */2 * * *"
targets = ["a"]
channels = ["chat"]
scripts = ["kyc"]
personas = ["max"]
stratify = "hour-of-week"

[limits]
per-target-per-day = 5
min-gap = "3h"
per-channel-per-day = {{ chat = 2 }}
"#,
            target("a", "Europe/Berlin"),
            target("b", "UTC")
        ));
        let start = at("2026-03-02T00:00:00Z");
        let mut history = History::new();
        let run = simulate(
            &config,
            &mut history,
            start,
            start + 30 * DAY,
            5 * MINUTE,
            5,
        );
        let skips = reasons(&run.skipped);
        for s in &run.skipped {
            if s.reason == SkipReason::Missed {
                eprintln!(
                    "MISSED {:?} {} {}",
                    s,
                    rfc3339_(s.planned.slot),
                    rfc3339_(s.planned.send_at)
                );
            }
        }
        assert!(
            skips.get(&SkipReason::MinGap).is_some_and(|&n| n > 0),
            "{skips:?}"
        );
        assert!(
            skips
                .get(&SkipReason::PerChannelDayCap)
                .is_some_and(|&n| n > 0),
            "{skips:?}"
        );
        // Only the slot before the first tick, already past when the simulation starts.
        assert!(
            run.skipped
                .iter()
                .all(|s| s.reason != SkipReason::Missed || s.planned.send_at < start),
            "{skips:?}"
        );
        for target in ["a", "b"] {
            let sends: Vec<(Millis, ChannelKind)> = run
                .due
                .iter()
                .filter(|p| p.target == target)
                .map(|p| (p.send_at, p.channel))
                .collect();
            // Guards limit, they do not starve: min-gap 3 h allows 8 a day, the cap 5.
            assert!(sends.len() >= 30 * 4, "{target}: {} sends", sends.len());
            for w in sends.windows(2) {
                assert!(
                    w[1].0 - w[0].0 >= 3 * HOUR,
                    "{target}: min-gap broken: {w:?}"
                );
            }
            for (i, &(a, _)) in sends.iter().enumerate() {
                let day = &sends[i..];
                let in_day = day.iter().take_while(|&&(t, _)| t < a + DAY).count();
                assert!(
                    in_day <= 5,
                    "{target}: {in_day} probes in the 24 h from {a}"
                );
                let chats = day
                    .iter()
                    .take_while(|&&(t, _)| t < a + DAY)
                    .filter(|&&(_, c)| c == ChannelKind::Chat)
                    .count();
                assert!(chats <= 2, "{target}: {chats} chats in the 24 h from {a}");
            }
        }
    }

    fn downtime_config(jitter: &str) -> Config {
        config(&format!(
            r#"{}{}
[[schedule]]
id = "skipper"
cron = "0 0 */4 * * *"
jitter = "{jitter}"
targets = ["a"]
channels = ["email"]
scripts = ["pending"]
personas = ["lin"]
missed = "skip"

[[schedule]]
id = "catcher"
cron = "0 0 */4 * * *"
jitter = "{jitter}"
targets = ["b"]
channels = ["email"]
scripts = ["pending"]
personas = ["lin"]
missed = "latest"
"#,
            target("a", "UTC"),
            target("b", "UTC")
        ))
    }

    #[test]
    fn no_burst_after_three_days_down() {
        let config = downtime_config("30m");
        let start = at("2026-03-02T00:00:00Z");
        let mut history = History::new();
        simulate(&config, &mut history, start, start + DAY, 5 * MINUTE, 9);
        // Down for three days; back at 01:00, when even the 00:00 slot (sent by 00:30 at the
        // latest) is more than the 15 min grace late.
        let last_tick = start + DAY;
        let now = last_tick + 3 * DAY + HOUR;
        let plan = plan(&config, &history, Some(last_tick), now, 9, DEFAULT_GRACE);

        let due_of =
            |id: &str| -> Vec<&Planned> { plan.due.iter().filter(|p| p.schedule == id).collect() };
        assert!(due_of("skipper").is_empty(), "skip: nothing sent");
        let caught = due_of("catcher");
        assert_eq!(caught.len(), 1, "latest: exactly one probe: {caught:?}");
        assert_eq!(caught[0].slot, now - HOUR, "the most recent missed slot");
        assert_eq!(caught[0].send_at, now, "sent now, not at its stale time");

        // Every other slot of the downtime is reported missed, so it is recorded as handled.
        assert!(plan.skipped.iter().all(|s| s.reason == SkipReason::Missed));
        let missed = |id: &str| {
            plan.skipped
                .iter()
                .filter(|s| s.planned.schedule == id)
                .count()
        };
        assert!(missed("skipper") >= 3 * 6, "{}", missed("skipper"));
        assert_eq!(missed("catcher") + 1, missed("skipper"));

        history.record(&plan);
        let again = super::plan(
            &config,
            &history,
            Some(now),
            now + 5 * MINUTE,
            9,
            DEFAULT_GRACE,
        );
        assert_eq!(again, Plan::default(), "nothing left over");
    }

    #[test]
    fn latest_keeps_nothing_when_a_newer_slot_is_on_time() {
        let config = downtime_config("0s");
        let start = at("2026-03-02T00:00:00Z");
        let mut history = History::new();
        simulate(&config, &mut history, start, start + DAY, 5 * MINUTE, 9);
        let last_tick = start + DAY;
        let now = last_tick + 3 * DAY + 5 * MINUTE; // the 00:00 slot is 5 min late: on time
        let plan = plan(&config, &history, Some(last_tick), now, 9, DEFAULT_GRACE);
        let slots: Vec<(&str, Millis)> = plan
            .due
            .iter()
            .map(|p| (p.schedule.as_str(), p.slot))
            .collect();
        assert_eq!(
            slots,
            [("skipper", now - 5 * MINUTE), ("catcher", now - 5 * MINUTE)]
        );
        assert!(plan.skipped.iter().all(|s| s.reason == SkipReason::Missed));
    }

    #[test]
    fn a_very_long_outage_only_reports_the_last_week() {
        let config = downtime_config("0s");
        let now = at("2026-06-01T01:00:00Z");
        let plan = plan(
            &config,
            &History::new(),
            Some(now - 90 * DAY),
            now,
            1,
            DEFAULT_GRACE,
        );
        assert!(
            plan.skipped.len() <= 2 * (7 * 6 + 1),
            "{}",
            plan.skipped.len()
        );
        assert_eq!(plan.due.len(), 1, "latest: one");
    }

    #[test]
    fn handled_probes_are_never_planned_again() {
        let config = jitter_config();
        let start = at("2026-03-02T00:00:00Z");
        let end = start + DAY;
        let mut history = History::new();
        let run = simulate(&config, &mut history, start, end, 5 * MINUTE, 4);
        assert!(!run.due.is_empty());
        // The same window again, as a crashed-and-restarted tick would ask, and a wider one.
        for since in [end - 5 * MINUTE, start] {
            let plan = plan(&config, &history, Some(since), end, 4, DEFAULT_GRACE);
            assert_eq!(plan, Plan::default(), "since {since}");
        }
        // Recording the same plan twice changes nothing either.
        let now = end + 5 * HOUR;
        let plan1 = plan(
            &config,
            &history,
            Some(end),
            now,
            4,
            Duration::from_secs(6 * 3600),
        );
        assert!(!plan1.due.is_empty());
        history.record(&plan1);
        history.record(&plan1);
        assert_eq!(
            plan(&config, &history, Some(end), now, 4, DEFAULT_GRACE),
            Plan::default()
        );
        // History built from store rows works the same.
        let rebuilt = History::from_parts(
            history.handled.iter().cloned(),
            history
                .probes
                .iter()
                .flat_map(|(t, v)| v.iter().map(move |&(at, c)| (t.clone(), c, at))),
        );
        assert_eq!(
            plan(&config, &rebuilt, Some(start), now, 4, DEFAULT_GRACE),
            Plan::default()
        );
        // Whole slots can be marked too.
        let mut fresh = History::new();
        for slot in fires_after(&config.schedules[0].cron, start - 1).take_while(|&s| s <= now) {
            fresh.mark_slot_handled("j", slot);
        }
        assert_eq!(
            plan(&config, &fresh, Some(start), now, 4, DEFAULT_GRACE),
            Plan::default()
        );
    }

    #[test]
    fn waiting_probes_come_due_in_a_later_plan() {
        let config = jitter_config();
        let slot = at("2026-03-02T04:00:00Z");
        let history = History::new();
        let full = plan(
            &config,
            &history,
            Some(slot - 1),
            slot + HOUR,
            2,
            Duration::from_secs(7200),
        );
        let mut wanted: Vec<Planned> = full
            .due
            .iter()
            .filter(|p| p.slot == slot)
            .cloned()
            .collect();
        assert_eq!(wanted.len(), 4);
        wanted.sort_by_key(|p| p.send_at);
        // Ask one second after the first send time: only that one is due.
        let mut history = History::new();
        let first = wanted[0].send_at;
        let early = plan(&config, &history, Some(slot - 1), first, 2, DEFAULT_GRACE);
        assert_eq!(early.due, wanted[..1]);
        assert!(early.skipped.is_empty());
        history.record(&early);
        // The next tick starts after the slot: the waiting probes still come.
        let mut seen = early.due.clone();
        let mut since = first;
        while since < slot + 30 * MINUTE {
            let now = since + MINUTE;
            let p = plan(&config, &history, Some(since), now, 2, DEFAULT_GRACE);
            history.record(&p);
            seen.extend(p.due);
            since = now;
        }
        assert_eq!(seen, wanted);
    }

    #[test]
    fn the_tick_interval_does_not_change_the_plan() {
        let config = config(&format!(
            r#"{}{}
[[schedule]]
id = "jittered"
cron = "0 0 */3 * * *"
jitter = "50m"
targets = ["a", "b"]
channels = ["email", "chat"]
scripts = ["pending", "kyc"]
personas = ["lin", "max"]

[[schedule]]
id = "spread"
cron = "0 20 */4 * * *"
targets = ["a"]
channels = ["email", "chat"]
scripts = ["kyc"]
personas = ["lin"]
stratify = "hour-of-week"

[limits]
per-target-per-day = 6
min-gap = "1h"
per-channel-per-day = {{ email = 4 }}
"#,
            target("a", "America/New_York"),
            target("b", "Asia/Kolkata")
        ));
        let start = at("2026-03-06T00:00:00Z"); // over New York's switch to summer time
        let end = start + 4 * DAY;
        let outcome = |step| {
            let mut history = History::new();
            let run = simulate(&config, &mut history, start, end, step, 21);
            let due: BTreeSet<(ProbeKey, Millis)> =
                run.due.iter().map(|p| (p.key(), p.send_at)).collect();
            let skipped: BTreeSet<(ProbeKey, SkipReason)> = run
                .skipped
                .iter()
                .map(|s| (s.planned.key(), s.reason))
                .collect();
            (due, skipped)
        };
        let often = outcome(2 * MINUTE);
        assert!(often.0.len() > 40 && !often.1.is_empty(), "{often:?}");
        assert_eq!(outcome(7 * MINUTE), often);
        assert_eq!(outcome(13 * MINUTE), often);
    }

    #[test]
    fn next_due_is_the_earliest_waiting_send() {
        let config = jitter_config();
        let start = at("2026-03-02T00:00:00Z");
        let mut history = History::new();
        simulate(
            &config,
            &mut history,
            start,
            start + 3 * HOUR,
            5 * MINUTE,
            6,
        );
        let now = start + 3 * HOUR;
        let next = next_due(&config, &history, now, 6).unwrap();
        assert!(next >= start + 4 * HOUR && next < start + 4 * HOUR + 30 * MINUTE);
        let before = plan(&config, &history, Some(now), next - 1, 6, DEFAULT_GRACE);
        assert!(before.due.is_empty());
        history.record(&before);
        let then = plan(&config, &history, Some(next - 1), next, 6, DEFAULT_GRACE);
        assert_eq!(then.due.len(), 1);
        assert_eq!(then.due[0].send_at, next);
        history.record(&then);
        // With part of the slot sent, the next answer is a later probe of the same slot.
        let after = next_due(&config, &history, next, 6).unwrap();
        assert!(after > next && after < start + 4 * HOUR + 30 * MINUTE);
    }

    #[test]
    fn scripts_and_personas_rotate_per_slot() {
        let config = stratified_config("UTC", 6);
        let sched = &config.schedules[0];
        let day = at("2026-03-02T00:00:00Z");
        let picks: Vec<(String, String)> = (0..6)
            .map(|i| choose(&config, sched, day + i * 4 * HOUR).unwrap())
            .collect();
        let distinct: BTreeSet<&(String, String)> = picks.iter().collect();
        assert_eq!(distinct.len(), 4, "all four pairs within a day: {picks:?}");
        assert_eq!(picks[0], picks[4], "then round again");
        // Plans use the same choice as `choose` (which a retry calls).
        let mut history = History::new();
        let run = simulate(&config, &mut history, day, day + DAY, 10 * MINUTE, 1);
        for p in &run.due {
            assert_eq!(
                choose(&config, sched, p.slot),
                Some((p.script.clone(), p.persona.clone()))
            );
        }
    }

    #[test]
    fn channels_of_one_slot_are_spread_by_stratification_not_by_jitter() {
        let schedule = |extra: &str| {
            config(&format!(
                r#"{}
[[schedule]]
id = "both"
cron = "0 0 */4 * * *"
targets = ["t"]
channels = ["email", "chat"]
scripts = ["pending"]
personas = ["lin"]
{extra}

[limits]
per-target-per-day = 20
"#,
                target("t", "Europe/Berlin")
            ))
        };
        let start = at("2026-03-02T00:00:00Z");
        let run_of = |config: &Config| {
            simulate(
                config,
                &mut History::new(),
                start,
                start + 3 * DAY,
                10 * MINUTE,
                8,
            )
        };
        // Stratified: both channels of every slot go out, at least min-gap (2 h) apart.
        let run = run_of(&schedule(r#"stratify = "hour-of-week""#));
        assert!(run.skipped.is_empty(), "{:?}", reasons(&run.skipped));
        assert!(run.due.len() >= 2 * 17, "{}", run.due.len());
        let sends: Vec<Millis> = run.due.iter().map(|p| p.send_at).collect();
        assert!(sends.windows(2).all(|w| w[1] - w[0] >= 2 * HOUR));
        // Jittered by less than min-gap: the second channel of a slot is always too close.
        let run = run_of(&schedule(r#"jitter = "30m""#));
        assert_eq!(reasons(&run.skipped).get(&SkipReason::MinGap), Some(&18));
        assert_eq!(run.due.len(), 18);
    }

    #[test]
    fn unverified_targets_and_disabled_channels_are_never_planned() {
        let mut off = target("off", "UTC").replace("verified = true", "verified = false");
        off.push_str(&target("half", "UTC").replace(
            "organization-id = \"org-half\"",
            "organization-id = \"org-half\"\nenabled = false",
        ));
        let config = config(&format!(
            r#"{off}
[[schedule]]
id = "s"
cron = "0 0 * * * *"
targets = ["off", "half"]
channels = ["email", "chat"]
scripts = ["pending"]
personas = ["lin"]

[limits]
min-gap = "0s"
per-target-per-day = 100
"#
        ));
        let start = at("2026-03-02T00:00:00Z");
        let run = simulate(
            &config,
            &mut History::new(),
            start,
            start + 3 * HOUR,
            MINUTE,
            1,
        );
        let got: BTreeSet<(String, ChannelKind)> = run
            .due
            .iter()
            .map(|p| (p.target.clone(), p.channel))
            .collect();
        assert_eq!(
            got,
            BTreeSet::from([("half".to_owned(), ChannelKind::Email)])
        );
    }

    #[test]
    fn daily_windows_are_rolling() {
        let times = [0, 6 * HOUR, 12 * HOUR];
        assert!(!exceeds_daily(&times, 18 * HOUR, 4));
        assert!(exceeds_daily(&times, 18 * HOUR, 3));
        // 24 h after the first, it no longer counts.
        assert!(!exceeds_daily(&times, DAY, 3));
        assert!(exceeds_daily(&times, DAY - 1, 3));
        // A later probe counts too (history may hold a manual send after `t`).
        assert!(exceeds_daily(&[10 * HOUR, 20 * HOUR], 0, 2));
        assert!(exceeds_daily(&[], 0, 0));
    }
}
