//! The live view of `berth build` on a terminal: the classic builder's stream turned into a
//! block of lines redrawn in place, in the manner of BuildKit's TTY view.
//!
//! [`Model`] is fed the stream (text, pull progress, the image id, the end) with the time each
//! came at, and tells the lines it would draw; [`View`] draws them with ANSI cursor movement.
//!
//! Steps are grouped by stage: a `Step N/M : FROM ...` starts a stage, and a later step belongs
//! to the stage whose `FROM` step has the greatest number not above its own (stages are numbered
//! in plan order, each a run of consecutive numbers), so steps of stages built in parallel
//! land under their own stage even when their lines interleave. Text that is not a step header
//! belongs to the step berthd names with it (`"berthStep"`, which `berth build` asks for with
//! `stepids=1`), else to the step that started last.

use std::io::{self, Write};
use std::time::Duration;

use crate::fmt::human_size_4;

/// How many output lines of a running (or failed) step are shown under it.
pub const LOG_LINES: usize = 3;
/// How many output lines of a step are kept.
const KEPT_LINES: usize = 50;

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Header,
    Running,
    Done,
    Error,
    Log,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub style: Style,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Done,
    Cached,
    Error,
    Canceled,
}

#[derive(Debug)]
struct Step {
    n: usize,
    total: usize,
    text: String,
    /// The number of the `FROM` step of its stage.
    stage: usize,
    started: Duration,
    ended: Option<Duration>,
    state: State,
    /// The container its RUN runs in (` ---> Running in ID`).
    container: Option<String>,
    /// Output lines, each with the pull progress id it shows, if any (replaced in place).
    logs: Vec<(Option<String>, String)>,
}

impl Step {
    fn end(&mut self, now: Duration, state: State) {
        if self.ended.is_none() {
            self.ended = Some(now);
            self.state = if self.state == State::Cached && state == State::Done {
                State::Cached
            } else {
                state
            };
        }
    }

    fn log(&mut self, key: Option<&str>, text: &str) {
        if let Some(k) = key {
            if let Some(slot) = self
                .logs
                .iter_mut()
                .find(|(id, _)| id.as_deref() == Some(k))
            {
                slot.1 = text.to_string();
                return;
            }
        }
        self.logs.push((key.map(str::to_string), text.to_string()));
        if self.logs.len() > KEPT_LINES {
            self.logs.remove(0);
        }
    }
}

/// What the view knows of a build.
#[derive(Debug, Default)]
pub struct Model {
    steps: Vec<Step>,
    /// `FROM` step number → stage name (from `AS name`).
    stages: std::collections::BTreeMap<usize, Option<String>>,
    /// The step that started last (index in `steps`).
    cursor: Option<usize>,
    /// Text not ended by a newline yet.
    partial: String,
    /// Per step (when the daemon names it), its text not ended by a newline yet.
    step_partials: std::collections::BTreeMap<usize, String>,
    /// Bytes of the context sent and when sending ended.
    context: Option<(u64, Duration)>,
    other: Vec<String>,
    warnings: Vec<String>,
    tags: Vec<String>,
    image_id: Option<String>,
    ended: Option<(Duration, bool)>,
}

/// The stage name of a `FROM` instruction (`FROM img AS name`).
fn stage_name(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let i = words.iter().position(|w| w.eq_ignore_ascii_case("as"))?;
    words.get(i + 1).map(|s| s.to_string())
}

/// `Step N/M : TEXT` → (N, M, TEXT).
fn parse_step(line: &str) -> Option<(usize, usize, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (nums, text) = rest.split_once(" : ")?;
    let (n, m) = nums.split_once('/')?;
    Some((n.parse().ok()?, m.parse().ok()?, text))
}

fn is_short_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A line without its end; of a progress bar redrawn with `\r`, its last state.
fn last_state(line: &str) -> &str {
    let line = line.trim_end_matches(['\n', '\r']);
    line.rsplit('\r').next().unwrap_or(line)
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// The context was sent: `bytes` of it, at `now`.
    pub fn context_sent(&mut self, bytes: u64, now: Duration) {
        self.context = Some((bytes, now));
    }

    /// A `{"stream": ...}` text, of step number `step` when the daemon says.
    pub fn stream(&mut self, text: &str, step: Option<usize>, now: Duration) {
        if let Some(n) = step {
            // Each step's text is joined into lines on its own.
            let mut buf = self.step_partials.remove(&n).unwrap_or_default();
            buf.push_str(text);
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                if let Some(i) = self.steps.iter().rposition(|s| s.n == n) {
                    self.cursor = Some(i);
                }
                self.line(last_state(&line), now);
            }
            if !buf.is_empty() {
                self.step_partials.insert(n, buf);
            }
            return;
        }
        // A step header comes as its text, then "\n" on its own: text of another stage that
        // slips in between must not be glued to it.
        if !self.partial.is_empty()
            && parse_step(&self.partial).is_some()
            && !text.starts_with('\n')
        {
            let header = std::mem::take(&mut self.partial);
            self.line(&header, now);
        }
        self.partial.push_str(text);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.line(last_state(&line), now);
        }
    }

    /// A pull progress line (`{"status": ..., "id": ...}`).
    pub fn progress(&mut self, id: &str, text: &str, now: Duration) {
        let _ = now;
        let shown = if id.is_empty() {
            text.to_string()
        } else {
            format!("{id}: {text}")
        };
        match self.cursor.and_then(|c| self.steps.get_mut(c)) {
            Some(step) => step.log((!id.is_empty()).then_some(id), &shown),
            None => self.other.push(shown),
        }
    }

    /// The image id of `{"aux": {"ID": ...}}`.
    pub fn image_id(&mut self, id: &str) {
        self.image_id = Some(id.to_string());
    }

    fn line(&mut self, line: &str, now: Duration) {
        if let Some((n, total, text)) = parse_step(line) {
            let is_from = text
                .split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("from"));
            if is_from {
                self.stages.insert(n, stage_name(text));
            }
            let stage = self.stages.range(..=n).next_back().map_or(0, |(k, _)| *k);
            for s in self.steps.iter_mut().filter(|s| s.stage == stage) {
                s.end(now, State::Done);
            }
            self.steps.push(Step {
                n,
                total,
                text: text.to_string(),
                stage,
                started: now,
                ended: None,
                state: State::Running,
                container: None,
                logs: Vec::new(),
            });
            self.cursor = Some(self.steps.len() - 1);
            return;
        }
        if line.trim().is_empty() {
            return;
        }
        // The container of a RUN names its step again when it is removed, just before the
        // step's ` ---> id`: the lines of another stage may have come in between.
        if let Some(id) = line.strip_prefix("Removing intermediate container ") {
            if let Some(i) = self
                .steps
                .iter()
                .rposition(|s| s.container.as_deref() == Some(id.trim()))
            {
                self.cursor = Some(i);
            }
            return;
        }
        let cursor = self.cursor.and_then(|c| self.steps.get_mut(c));
        if let Some(arrow) = line.strip_prefix(" ---> ") {
            if let Some(step) = cursor {
                if arrow == "Using cache" {
                    step.state = State::Cached;
                } else if let Some(id) = arrow.strip_prefix("Running in ") {
                    step.container = Some(id.trim().to_string());
                } else if is_short_id(arrow) {
                    step.end(now, State::Done);
                }
            }
            return;
        }
        if line.starts_with("Successfully built ") {
            return;
        }
        if let Some(tag) = line.strip_prefix("Successfully tagged ") {
            self.tags.push(tag.to_string());
            return;
        }
        if line.starts_with("[Warning]") {
            self.warnings.push(line.to_string());
            return;
        }
        match cursor {
            Some(step) => step.log(None, line),
            None => self.other.push(line.to_string()),
        }
    }

    /// The text not ended by a newline, as last lines.
    fn flush_partials(&mut self, now: Duration) {
        for (n, rest) in std::mem::take(&mut self.step_partials) {
            if let Some(i) = self.steps.iter().rposition(|s| s.n == n) {
                self.cursor = Some(i);
            }
            self.line(&rest, now);
        }
        let rest = std::mem::take(&mut self.partial);
        self.line(&rest, now);
    }

    /// The build succeeded at `now`.
    pub fn finish(&mut self, now: Duration) {
        self.flush_partials(now);
        for s in &mut self.steps {
            s.end(now, State::Done);
        }
        self.ended = Some((now, true));
    }

    /// The build failed at `now` with `message`: the step it failed in is marked, the
    /// others still running are canceled.
    pub fn fail(&mut self, message: &str, now: Duration) {
        self.flush_partials(now);
        let running = |s: &&mut Step| s.ended.is_none();
        let by_command = self.steps.iter().position(|s| {
            s.ended.is_none()
                && s.text
                    .strip_prefix("RUN ")
                    .is_some_and(|cmd| message.contains(cmd.trim()))
        });
        let failed = by_command
            .or(self
                .cursor
                .filter(|&c| self.steps.get(c).is_some_and(|s| s.ended.is_none())))
            .or_else(|| self.steps.iter().rposition(|s| s.ended.is_none()));
        if let Some(step) = failed.and_then(|f| self.steps.get_mut(f)) {
            step.end(now, State::Error);
        }
        for s in self.steps.iter_mut().filter(running) {
            s.end(now, State::Canceled);
        }
        self.ended = Some((now, false));
    }

    fn label(&self, s: &Step) -> String {
        let name = self.stages.get(&s.stage).cloned().flatten();
        match name {
            Some(n) => format!("[{n} {}/{}]", s.n, s.total),
            None => format!("[{}/{}]", s.n, s.total),
        }
    }

    /// Steps in stage order, then step order.
    fn ordered(&self) -> Vec<&Step> {
        let mut v: Vec<&Step> = self.steps.iter().collect();
        v.sort_by_key(|s| (s.stage, s.n));
        v
    }

    /// The lines of the block at `now`, fitted to `width` columns and `height` rows.
    pub fn lines(&self, now: Duration, width: usize, height: usize) -> Vec<Line> {
        let end = self.ended.map_or(now, |(t, _)| t);
        let done = self
            .steps
            .iter()
            .filter(|s| matches!(s.state, State::Done | State::Cached))
            .count();
        let total = self.steps.iter().map(|s| s.total).max().unwrap_or(0);
        let mut header = format!("[+] Building {} ({done}/{total})", secs(end));
        if matches!(self.ended, Some((_, true))) {
            header.push_str(" FINISHED");
        }
        let mut groups: Vec<(bool, Vec<Line>)> = Vec::new();
        if let Some((bytes, at)) = self.context {
            groups.push((
                true,
                vec![
                    pad(
                        " => [internal] load build context",
                        &secs(at),
                        width,
                        Style::Done,
                    ),
                    plain(
                        &format!(
                            " => => transferring context: {}",
                            human_size_4(bytes as f64)
                        ),
                        Style::Log,
                    ),
                ],
            ));
        }
        for s in self.ordered() {
            let (prefix, style) = match s.state {
                State::Running => ("", Style::Running),
                State::Done => ("", Style::Done),
                State::Cached => ("CACHED ", Style::Done),
                State::Error => ("ERROR ", Style::Error),
                State::Canceled => ("CANCELED ", Style::Error),
            };
            let took = s.ended.unwrap_or(now).saturating_sub(s.started);
            let left = format!(" => {prefix}{} {}", self.label(s), s.text);
            let mut lines = vec![pad(&left, &secs(took), width, style)];
            if matches!(s.state, State::Running | State::Error) {
                let start = s.logs.len().saturating_sub(LOG_LINES);
                for (_, l) in &s.logs[start..] {
                    lines.push(plain(&format!(" => => # {l}"), Style::Log));
                }
            }
            groups.push((s.ended.is_some(), lines));
        }
        if self.ended.is_some_and(|(_, ok)| ok) {
            let mut lines = vec![pad(" => exporting to image", "0.0s", width, Style::Done)];
            if let Some(id) = &self.image_id {
                lines.push(plain(&format!(" => => writing image {id}"), Style::Log));
            }
            for t in &self.tags {
                lines.push(plain(&format!(" => => naming to {t}"), Style::Log));
            }
            groups.push((true, lines));
        }
        // Too tall: finished steps go first, oldest first; then whatever is at the top.
        let room = height.saturating_sub(2).max(1);
        let mut count: usize = groups.iter().map(|(_, l)| l.len()).sum();
        let mut i = 0;
        while count > room && i < groups.len() {
            if groups[i].0 {
                count -= groups[i].1.len();
                groups.remove(i);
            } else {
                i += 1;
            }
        }
        let mut out = vec![plain(&header, Style::Header)];
        let body: Vec<Line> = groups.into_iter().flat_map(|(_, l)| l).collect();
        let skip = body.len().saturating_sub(room);
        out.extend(body.into_iter().skip(skip));
        for l in &mut out {
            l.text = fit(&l.text, width);
        }
        out
    }

    /// After a success: what the block leaves below it.
    pub fn summary(&self) -> Vec<String> {
        let (end, _) = self.ended.unwrap_or_default();
        let cached = self
            .steps
            .iter()
            .filter(|s| s.state == State::Cached)
            .count();
        let mut out = self.other.clone();
        out.push(format!(
            "Built {} in {} ({} steps, {cached} cached)",
            self.image_id.as_deref().unwrap_or("an image"),
            secs(end),
            self.steps.len()
        ));
        out.extend(self.warnings.iter().cloned());
        out
    }

    /// After a failure: the failed step's last output, as BuildKit frames it.
    pub fn failure(&self) -> Vec<String> {
        let mut out = self.other.clone();
        if let Some(s) = self.steps.iter().find(|s| s.state == State::Error) {
            out.push("------".into());
            out.push(format!(" > {} {}:", self.label(s), s.text));
            let start = s.logs.len().saturating_sub(10);
            for (_, l) in &s.logs[start..] {
                out.push(l.clone());
            }
            out.push("------".into());
        }
        out
    }
}

fn plain(text: &str, style: Style) -> Line {
    Line {
        text: text.to_string(),
        style,
    }
}

/// `left`, then `right` at the right edge of `width` columns.
fn pad(left: &str, right: &str, width: usize, style: Style) -> Line {
    let room = width.saturating_sub(right.chars().count() + 2);
    let left = fit(left, room.max(10));
    let gap = room.saturating_sub(left.chars().count()) + 1;
    plain(&format!("{left}{}{right}", " ".repeat(gap)), style)
}

/// `text` cut to `width - 1` columns (the last column is left free so nothing wraps).
fn fit(text: &str, width: usize) -> String {
    let max = width.saturating_sub(1).max(1);
    if text.chars().count() <= max {
        return text.to_string();
    }
    text.chars().take(max).collect()
}

/// Draws a [`Model`] on a terminal, redrawing its block in place.
pub struct View<W: Write> {
    out: W,
    drawn: usize,
}

impl<W: Write> View<W> {
    pub fn new(out: W) -> View<W> {
        View { out, drawn: 0 }
    }

    /// Replaces the block drawn last with `lines`.
    pub fn draw(&mut self, lines: &[Line]) -> io::Result<()> {
        let mut buf = String::new();
        if self.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in lines {
            let (on, off) = match l.style {
                Style::Header => ("\x1b[1m", "\x1b[0m"),
                Style::Running => ("", ""),
                Style::Done => ("\x1b[34m", "\x1b[0m"),
                Style::Error => ("\x1b[31m", "\x1b[0m"),
                Style::Log => ("\x1b[2m", "\x1b[0m"),
            };
            buf.push_str(&format!("\r\x1b[2K{on}{}{off}\n", l.text));
        }
        if lines.len() < self.drawn {
            buf.push_str("\x1b[J");
        }
        self.drawn = lines.len();
        self.out.write_all(buf.as_bytes())?;
        self.out.flush()
    }

    /// Lines below the block, left as they are.
    pub fn println(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{text}")?;
        self.drawn = 0;
        self.out.flush()
    }
}

#[cfg(test)]
#[path = "tty_tests.rs"]
mod tests;
