//! The HTML report's charts as inline SVG, drawn with plotters' SVG backend: Kaplan–Meier
//! curves of time to first human reply per channel (claimed time marked), the 7 × 24
//! hour-of-week grid (off-hours shaded), and first acknowledgement vs first human reply.
//!
//! Charts only draw figures the scored model holds; labels are our own words and numbers
//! (plotters escapes text anyway). A chart that cannot be drawn becomes a short note instead
//! of failing the report.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

use crate::config::WeeklyHours;
use crate::model::ChannelKind;
use crate::score::stats::KaplanMeier;

use super::fmt;

/// The colour of a channel in every chart (colour-blind safe: blue, orange, purple).
pub fn channel_color(c: ChannelKind) -> RGBColor {
    match c {
        ChannelKind::Email => RGBColor(0, 114, 178),
        ChannelKind::Ticket => RGBColor(230, 159, 0),
        ChannelKind::Chat => RGBColor(204, 121, 167),
    }
}

/// CSS hex of a channel's colour (for the HTML legend).
pub fn channel_hex(c: ChannelKind) -> String {
    let RGBColor(r, g, b) = channel_color(c);
    format!("#{r:02x}{g:02x}{b:02x}")
}

const FONT: &str = "sans-serif";

/// Time axes are log10(seconds), labelled at durations a reader knows.
const TICKS_S: &[f64] = &[
    1.0,
    10.0,
    60.0,
    600.0,
    3600.0,
    6.0 * 3600.0,
    86_400.0,
    7.0 * 86_400.0,
    30.0 * 86_400.0,
    365.0 * 86_400.0,
];

/// Seconds → axis position.
fn lg(s: f64) -> f64 {
    s.max(1.0).log10()
}

/// The axis from 1 s to a little past `max_s`.
fn time_axis(max_s: f64) -> TimeAxis {
    let end = lg(max_s) + 0.15;
    let ticks = TICKS_S
        .iter()
        .map(|&t| lg(t))
        .filter(|&t| t <= end)
        .collect();
    TimeAxis { end, ticks }
}

/// A time axis in log10(seconds) whose labels sit at [`TICKS_S`], not at powers of ten.
struct TimeAxis {
    end: f64,
    ticks: Vec<f64>,
}

impl Ranged for TimeAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let share = (v / self.end).clamp(0.0, 1.0);
        limit.0 + ((limit.1 - limit.0) as f64 * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.end
    }
}

/// Axis position → label.
fn time_label(v: &f64) -> String {
    fmt::duration(10f64.powf(*v))
}
const GRID: RGBColor = RGBColor(225, 225, 225);

fn draw<F>(size: (u32, u32), what: &str, f: F) -> String
where
    F: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
{
    let mut buf = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let r = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| f(&root));
        r.and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match result {
        Ok(()) => buf,
        Err(e) => {
            tracing::warn!(chart = what, error = %e, "cannot draw chart");
            format!(
                "<p class=\"note\">The {what} chart could not be drawn ({}).</p>",
                e.replace(['<', '>', '&', '"'], " ")
            )
        }
    }
}

/// One Kaplan–Meier curve.
pub struct KmSeries<'a> {
    /// Channel (name and colour).
    pub channel: ChannelKind,
    /// The curve.
    pub curve: &'a KaplanMeier,
    /// The claimed first-response time, seconds.
    pub claim_s: Option<f64>,
    /// Where the curve ends: the longest observation (event or censoring), seconds.
    pub end_s: f64,
}

/// Share of probes still without a human reply over time since sending (log time axis), one
/// step curve per channel, each claimed time a dashed vertical line.
pub fn km(series: &[KmSeries<'_>]) -> String {
    let x_max = series
        .iter()
        .flat_map(|s| [Some(s.end_s), s.claim_s.map(|c| c * 2.0)])
        .flatten()
        .fold(120.0_f64, f64::max);
    let axis = time_axis(x_max);
    draw((660, 300), "Kaplan–Meier", |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .caption(
                "Share of probes still without a human reply",
                (FONT, 15).into_font(),
            )
            .build_cartesian_2d(axis, 0.0_f64..1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .light_line_style(GRID)
            .bold_line_style(GRID)
            .x_desc("time since the probe was sent (log scale)")
            .x_label_formatter(&time_label)
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .y_labels(6)
            .max_light_lines(0)
            .draw()
            .map_err(|e| e.to_string())?;
        for s in series {
            let color = channel_color(s.channel);
            let mut points = vec![(0.0, 1.0)];
            let mut level = 1.0;
            for &(t, surv) in &s.curve.steps {
                points.push((lg(t), level));
                points.push((lg(t), surv));
                level = surv;
            }
            points.push((lg(s.end_s), level));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(format!("{} (n = {})", s.channel, s.curve.n))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            if let Some(c) = s.claim_s.filter(|c| *c >= 1.0) {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(lg(c), 0.0), (lg(c), 1.05)],
                        6,
                        4,
                        color.stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{} claim {}", s.channel, fmt::duration(c)),
                        (lg(c) + 0.03, 0.03),
                        (FONT, 11).into_font().color(&color),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .border_style(BLACK.mix(0.3))
            .background_style(WHITE.mix(0.9))
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 12))
            .draw()
            .map_err(|e| e.to_string())
    })
}

/// Colour of a cell answered within the claim at `share` (0 = red, 1 = green).
fn share_color(share: f64) -> RGBColor {
    let s = share.clamp(0.0, 1.0);
    let (r0, g0, b0) = (213.0, 94.0, 0.0);
    let (r1, g1, b1) = (0.0, 158.0, 115.0);
    let mix = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
    RGBColor(mix(r0, r1), mix(g0, g1), mix(b0, b1))
}

/// The hour-of-week grid: rows Monday … Sunday, columns local hour; off-hours cells shaded
/// grey; a square in each hour with probes, coloured by the share answered within the claim
/// (blue when there is no claim), with the number sent.
pub fn heatmap(
    sent: &[[u64; 24]; 7],
    met: Option<&[[u64; 24]; 7]>,
    business: &WeeklyHours,
) -> String {
    draw((660, 230), "hour-of-week", |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(
                (0u32..23u32).into_segmented(),
                (0u32..6u32).into_segmented(),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(24)
            .y_labels(7)
            .x_desc("local hour (target's time zone)")
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(h) | SegmentValue::Exact(h) => format!("{h:02}"),
                SegmentValue::Last => String::new(),
            })
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(r) | SegmentValue::Exact(r) => fmt::WEEKDAYS
                    .get(6usize.saturating_sub(*r as usize))
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        let cell = |d: usize, h: usize| {
            let row = 6 - d as u32;
            [
                (SegmentValue::Exact(h as u32), SegmentValue::Exact(row)),
                (
                    SegmentValue::Exact(h as u32 + 1),
                    SegmentValue::Exact(row + 1),
                ),
            ]
        };
        let mut shading = Vec::new();
        let mut marks = Vec::new();
        for (d, row) in sent.iter().enumerate() {
            for (h, &n) in row.iter().enumerate() {
                let inside = business.contains(d, (h * 60) as u16);
                let bg = if inside {
                    WHITE
                } else {
                    RGBColor(218, 218, 218)
                };
                shading.push(Rectangle::new(cell(d, h), bg.filled()));
                shading.push(Rectangle::new(
                    cell(d, h),
                    RGBColor(245, 245, 245).stroke_width(1),
                ));
                if n == 0 {
                    continue;
                }
                let color = match met {
                    Some(m) => share_color(m[d][h] as f64 / n as f64),
                    None => RGBColor(86, 180, 233),
                };
                let center = (
                    SegmentValue::CenterOf(h as u32),
                    SegmentValue::CenterOf(6 - d as u32),
                );
                marks.push(
                    EmptyElement::at(center)
                        + Rectangle::new([(-9, -8), (9, 8)], color.filled())
                        + Text::new(
                            n.to_string(),
                            (-3 * n.to_string().len() as i32, -5),
                            (FONT, 10).into_font().color(&WHITE),
                        ),
                );
            }
        }
        chart.draw_series(shading).map_err(|e| e.to_string())?;
        chart.draw_series(marks).map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// First acknowledgement vs first human reply of one channel (medians among those that got
/// one), seconds.
pub struct AckHuman {
    /// Channel.
    pub channel: ChannelKind,
    /// Median time to the first auto-ack/bot message, among acknowledged probes.
    pub ack_p50: Option<f64>,
    /// Median time to the first human reply, among responders.
    pub human_p50: Option<f64>,
    /// The claimed first-response time.
    pub claim_s: Option<f64>,
}

/// Horizontal bars per channel on a log time axis: light = first acknowledgement, dark =
/// first human reply; the claimed time as a dashed line.
pub fn ack_vs_human(rows: &[AckHuman]) -> String {
    let x_max = rows
        .iter()
        .flat_map(|r| [r.ack_p50, r.human_p50, r.claim_s])
        .flatten()
        .fold(120.0_f64, f64::max)
        * 2.0;
    let axis = time_axis(x_max);
    let n = rows.len().max(1) as f64;
    let height = 110 + 60 * rows.len() as u32;
    draw((660, height), "acknowledgement vs human reply", |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(10)
            .caption(
                "Median time to first acknowledgement vs first human reply",
                (FONT, 15).into_font(),
            )
            .build_cartesian_2d(axis, 0.0_f64..n)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .light_line_style(GRID)
            .bold_line_style(GRID)
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("time since the probe was sent (log scale)")
            .x_label_formatter(&time_label)
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, r) in rows.iter().enumerate() {
            let y = n - 1.0 - i as f64;
            let color = channel_color(r.channel);
            if let Some(a) = r.ack_p50 {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(0.0, y + 0.52), (lg(a), y + 0.8)],
                        color.mix(0.35).filled(),
                    )))
                    .map_err(|e| e.to_string())?;
            }
            if let Some(h) = r.human_p50 {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(0.0, y + 0.18), (lg(h), y + 0.46)],
                        color.filled(),
                    )))
                    .map_err(|e| e.to_string())?;
            }
            let label = format!(
                "{}: ack {} · human {}",
                r.channel,
                fmt::opt_duration(r.ack_p50),
                fmt::opt_duration(r.human_p50)
            );
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (0.05, y + 0.98),
                    (FONT, 12).into_font(),
                )))
                .map_err(|e| e.to_string())?;
            if let Some(c) = r.claim_s.filter(|c| *c >= 1.0) {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(lg(c), y + 0.1), (lg(c), y + 0.9)],
                        4,
                        3,
                        BLACK.stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}
