//! Drawing a chart as SVG: a title, a value axis with its unit, time labels, one line per
//! series broken where values are missing, and a legend. Plain text, no external renderer.

use std::fmt::Write;

use super::axis;
use crate::model::utc;

/// One line of a chart.
#[derive(Debug)]
pub struct Series {
    pub name: String,
    /// Times (Unix seconds) and values, oldest first; `None` is missing.
    pub points: Vec<(i64, Option<f64>)>,
    /// The region's line (drawn over the nodes', dashed).
    pub total: bool,
}

impl Series {
    fn known(&self) -> impl Iterator<Item = f64> + '_ {
        self.points.iter().filter_map(|(_, v)| *v)
    }
}

/// What a chart shows.
#[derive(Debug)]
pub struct Plot {
    pub title: String,
    pub unit: &'static str,
    pub from: i64,
    pub to: i64,
    /// The value axis reaches at least this high (100 for a CPU share).
    pub floor: f64,
    pub series: Vec<Series>,
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
];
const TOTAL_COLOUR: &str = "#111111";

/// Text sizes and spacing for a chart `width` pixels wide.
struct Metrics {
    font: f64,
    line: f64,
    pad: f64,
    /// Whether legend entries carry each series' figures (not on the smallest charts).
    figures: bool,
}

impl Metrics {
    fn for_width(width: u32) -> Self {
        let font = if width < 400 { 9.0 } else { 11.0 };
        Metrics {
            font,
            line: font * 1.5,
            pad: 6.0,
            figures: width >= 400,
        }
    }

    /// About how wide `text` is drawn.
    fn width(&self, text: &str) -> f64 {
        text.chars().count() as f64 * self.font * 0.6
    }
}

/// The plot as an SVG document of `width` × `height` pixels.
pub fn draw(plot: &Plot, (width, height): (u32, u32)) -> String {
    let (w, h) = (f64::from(width), f64::from(height));
    let metrics = Metrics::for_width(width);
    let Metrics {
        font, line, pad, ..
    } = metrics;
    let mut svg = String::with_capacity(16 * 1024);
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="{font}">"##
    );
    let _ = write!(
        svg,
        r##"<title>{}</title><desc>Times are UTC, from {} to {}.</desc><rect width="100%" height="100%" fill="#ffffff"/>"##,
        escape(&plot.title),
        utc(plot.from),
        utc(plot.to)
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle" font-weight="bold" font-size="{}">{}</text>"##,
        w / 2.0,
        pad + font,
        font + 1.0,
        escape(&plot.title)
    );
    let highest = (plot.series.iter())
        .flat_map(Series::known)
        .fold(plot.floor, f64::max);
    let (top, gridlines) = axis::values(highest, 4);
    let labels: Vec<String> = gridlines.iter().map(|v| axis::value_label(*v)).collect();
    let label_width = labels.iter().map(|l| metrics.width(l)).fold(0.0, f64::max);
    let legend = Legend::lay_out(plot, &metrics, w - 2.0 * pad, h / 3.0);
    let area = Area {
        left: pad + line + label_width + 4.0,
        right: w - pad - 4.0,
        top: pad + line + 4.0,
        bottom: h - pad - legend.height() - line,
        from: plot.from,
        to: plot.to.max(plot.from + 1),
        highest: top,
    };
    area.draw_axes(&mut svg, plot.unit, gridlines.iter().zip(&labels), &metrics);
    if plot.series.iter().all(|s| s.known().next().is_none()) {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#888888">no statistics for this time</text>"##,
            (area.left + area.right) / 2.0,
            (area.top + area.bottom) / 2.0
        );
    }
    // The lines: the nodes', then the total over them.
    for (i, series) in plot.series.iter().enumerate() {
        let (colour, dash) = style(series, i);
        let _ = write!(
            svg,
            r##"<g class="series" data-name="{}"><path d="{}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round"{dash}/></g>"##,
            escape(&series.name),
            area.path(&series.points)
        );
    }
    legend.draw(&mut svg, plot, &metrics, h - pad - legend.height());
    svg.push_str("</svg>\n");
    svg
}

fn style(series: &Series, index: usize) -> (&'static str, &'static str) {
    match series.total {
        true => (TOTAL_COLOUR, r#" stroke-dasharray="5 3""#),
        false => (PALETTE[index % PALETTE.len()], ""),
    }
}

/// The plotting area and how times and values map onto it.
#[derive(Clone, Copy)]
struct Area {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    from: i64,
    to: i64,
    highest: f64,
}

impl Area {
    /// The unit up the left side, value gridlines with their labels, time labels under the
    /// plot, and its frame.
    fn draw_axes<'l>(
        &self,
        svg: &mut String,
        unit: &str,
        gridlines: impl Iterator<Item = (&'l f64, &'l String)>,
        metrics: &Metrics,
    ) {
        let Area {
            left,
            right,
            top,
            bottom,
            ..
        } = *self;
        let (font, pad) = (metrics.font, metrics.pad);
        let (ux, uy) = (pad + font, (top + bottom) / 2.0);
        let _ = write!(
            svg,
            r##"<text x="{ux}" y="{uy}" text-anchor="middle" transform="rotate(-90 {ux} {uy})" fill="#444444">{}</text>"##,
            escape(unit)
        );
        for (v, label) in gridlines {
            let y = self.y(*v);
            let _ = write!(
                svg,
                r##"<line x1="{left}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="#dddddd"/><text x="{}" y="{:.1}" text-anchor="end" fill="#444444">{label}</text>"##,
                left - 3.0,
                y + font / 3.0
            );
        }
        let most = ((right - left) / (metrics.width("00:00") + 12.0)) as usize;
        for (t, label) in axis::times(self.from, self.to, most) {
            let x = self.x(t);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{bottom}" stroke="#eeeeee"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#444444">{label}</text>"##,
                bottom + font + 2.0
            );
        }
        let _ = write!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{:.1}" height="{:.1}" fill="none" stroke="#999999"/>"##,
            right - left,
            bottom - top
        );
    }

    fn x(&self, t: i64) -> f64 {
        let share = (t - self.from) as f64 / (self.to - self.from) as f64;
        self.left + share.clamp(0.0, 1.0) * (self.right - self.left)
    }

    fn y(&self, v: f64) -> f64 {
        self.bottom - (v / self.highest).clamp(0.0, 1.0) * (self.bottom - self.top)
    }

    /// A path through the known points, lifted where values are missing; a point alone
    /// between gaps is drawn as a dot.
    fn path(&self, points: &[(i64, Option<f64>)]) -> String {
        let mut d = String::new();
        let mut run = 0;
        for (t, v) in points {
            match v {
                Some(v) => {
                    let command = if run == 0 { 'M' } else { 'L' };
                    let _ = write!(d, "{command}{:.1} {:.1}", self.x(*t), self.y(*v));
                    run += 1;
                }
                None => {
                    if run == 1 {
                        d.push_str("h0.1");
                    }
                    run = 0;
                }
            }
        }
        if run == 1 {
            d.push_str("h0.1");
        }
        d
    }
}

/// The legend under the plot: one entry per series, in rows; entries that do not fit are
/// counted in a last "+N more".
struct Legend {
    /// Each entry's text and position, by series.
    entries: Vec<(usize, String, f64, usize)>,
    rows: usize,
    left_out: usize,
    line: f64,
    width: f64,
}

impl Legend {
    fn lay_out(plot: &Plot, metrics: &Metrics, width: f64, most_height: f64) -> Legend {
        let most_rows = ((most_height / metrics.line) as usize).max(1);
        let (mut entries, mut x, mut row) = (Vec::new(), 0.0, 0);
        let mut left_out = 0;
        for (i, series) in plot.series.iter().enumerate() {
            let text = entry_text(series, metrics.figures);
            let needed = 14.0 + metrics.width(&text) + 10.0;
            // The last row keeps room for the "+N more".
            let room = |row| match row + 1 >= most_rows {
                true => width - metrics.width("+000 more"),
                false => width,
            };
            if x > 0.0 && x + needed > room(row) {
                (x, row) = (0.0, row + 1);
            }
            if row >= most_rows {
                left_out = plot.series.len() - i;
                break;
            }
            entries.push((i, text, x, row));
            x += needed;
        }
        Legend {
            rows: row.min(most_rows - 1) + 1,
            entries,
            left_out,
            line: metrics.line,
            width,
        }
    }

    fn height(&self) -> f64 {
        self.rows as f64 * self.line
    }

    fn draw(&self, svg: &mut String, plot: &Plot, metrics: &Metrics, top: f64) {
        let pad = metrics.pad;
        for (i, text, x, row) in &self.entries {
            let (colour, _) = style(&plot.series[*i], *i);
            let (x, y) = (pad + x, top + *row as f64 * self.line + metrics.font);
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{:.1}" width="10" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{y:.1}">{}</text>"##,
                y - metrics.font * 0.8,
                metrics.font * 0.8,
                x + 14.0,
                escape(text)
            );
        }
        if self.left_out > 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444444">+{} more</text>"##,
                pad + self.width,
                top + self.height() - self.line + metrics.font,
                self.left_out
            );
        }
    }
}

/// A legend entry: the series' name, and on larger charts its highest and last value.
fn entry_text(series: &Series, figures: bool) -> String {
    if !figures {
        return series.name.clone();
    }
    let highest = series
        .known()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let last = series.points.iter().rev().find_map(|(_, v)| *v);
    match (highest, last) {
        (Some(highest), Some(last)) => format!(
            "{}: max {}, last {}",
            series.name,
            axis::value_label(highest),
            axis::value_label(last)
        ),
        _ => format!("{}: no data", series.name),
    }
}

/// `text` safe inside XML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
