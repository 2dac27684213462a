//! Upload progress on stderr: a redrawn bar on a terminal, plain periodic lines otherwise
//! (CI logs, pipes), so neither floods a log nor leaves a terminal silent.

use crate::platform::units::format_bytes;
use std::io::Write;
use std::time::{Duration, Instant};

/// Redraws of the bar: often enough to look live, rarely enough to cost nothing.
const BAR_REDRAW: Duration = Duration::from_millis(100);
/// One plain line per interval when stderr is not a terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(2);
const BAR_WIDTH: usize = 30;

pub struct Progress {
    total: u64,
    terminal: bool,
    started: Instant,
    last_shown: Option<Instant>,
    finished: bool,
    out: Box<dyn Write>,
}

impl Progress {
    /// Progress for `total` bytes on stderr, drawn as a bar when stderr is a terminal.
    pub fn stderr(total: u64) -> Progress {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        Progress::new(total, terminal, Box::new(std::io::stderr()))
    }

    pub fn new(total: u64, terminal: bool, out: Box<dyn Write>) -> Progress {
        Progress {
            total,
            terminal,
            started: Instant::now(),
            last_shown: None,
            finished: false,
            out,
        }
    }

    /// Called with the running total after each write to the server.
    pub fn update(&mut self, sent: u64) {
        if sent >= self.total {
            self.finish(sent);
            return;
        }
        let now = Instant::now();
        let interval = if self.terminal {
            BAR_REDRAW
        } else {
            LINE_INTERVAL
        };
        // Plain mode waits a full interval before its first line: a quick upload gets just
        // the final one.
        let since = self.last_shown.unwrap_or(self.started);
        if self.finished || now.duration_since(since) < interval {
            return;
        }
        self.last_shown = Some(now);
        let elapsed = now.duration_since(self.started);
        let line = if self.terminal {
            format!("\r{}", bar_line(sent, self.total, elapsed))
        } else {
            format!("{}\n", plain_line(sent, self.total, elapsed))
        };
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    /// The closing line (once), whether or not the whole body went out.
    pub fn finish(&mut self, sent: u64) {
        if self.finished {
            return;
        }
        self.finished = true;
        let elapsed = self.started.elapsed();
        let mut line = if self.terminal {
            format!("\r{}\n", bar_line(sent, self.total, elapsed))
        } else {
            format!("{}\n", done_line(sent, self.total, elapsed))
        };
        if sent >= self.total {
            line.push_str("waiting for the server to validate and apply it\n");
        }
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    /// After the request: closes the display of an upload that stopped part-way, and says
    /// nothing about one that never started (the server refused it up front).
    pub fn finish_partial(&mut self, sent: u64) {
        if sent > 0 {
            self.finish(sent);
        }
    }
}

fn rate(sent: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    format!("{}/s", format_bytes((sent as f64 / secs) as u64))
}

fn percent(sent: u64, total: u64) -> u64 {
    (sent.min(total) * 100).checked_div(total).unwrap_or(100)
}

/// `[=========>          ]  45%  45.0 MiB / 100.0 MiB  12.3 MiB/s`, padded so a
/// shorter redraw fully covers a longer one.
pub fn bar_line(sent: u64, total: u64, elapsed: Duration) -> String {
    let pct = percent(sent, total);
    let filled = (pct as usize * BAR_WIDTH) / 100;
    let mut bar = "=".repeat(filled);
    if filled < BAR_WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(BAR_WIDTH - filled - 1));
    }
    let line = format!(
        "[{bar}] {pct:>3}%  {} / {}  {}",
        format_bytes(sent),
        format_bytes(total),
        rate(sent, elapsed)
    );
    format!("{line:<78}")
}

/// `upload: 45.0 MiB of 100.0 MiB (45%), 12.3 MiB/s`
pub fn plain_line(sent: u64, total: u64, elapsed: Duration) -> String {
    format!(
        "upload: {} of {} ({}%), {}",
        format_bytes(sent),
        format_bytes(total),
        percent(sent, total),
        rate(sent, elapsed)
    )
}

/// `upload: 100.0 MiB sent in 8.1 s (12.3 MiB/s)`, or what was sent of what.
pub fn done_line(sent: u64, total: u64, elapsed: Duration) -> String {
    let what = if sent >= total {
        format_bytes(sent)
    } else {
        format!("{} of {}", format_bytes(sent), format_bytes(total))
    };
    format!(
        "upload: {what} sent in {:.1} s ({})",
        elapsed.as_secs_f64(),
        rate(sent, elapsed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_show_bytes_percent_and_rate() {
        let s = Duration::from_secs(2);
        assert_eq!(
            plain_line(50 << 20, 100 << 20, s),
            "upload: 50.0 MiB of 100.0 MiB (50%), 25.0 MiB/s"
        );
        assert_eq!(
            done_line(100 << 20, 100 << 20, s),
            "upload: 100.0 MiB sent in 2.0 s (50.0 MiB/s)"
        );
        assert_eq!(
            done_line(10, 100, s),
            "upload: 10 B of 100 B sent in 2.0 s (5 B/s)"
        );
        let bar = bar_line(50, 100, s);
        assert!(
            bar.starts_with(&format!("[{}>{}]  50%", "=".repeat(15), " ".repeat(14))),
            "{bar}"
        );
        assert!(bar_line(100, 100, s).starts_with(&format!("[{}] 100%", "=".repeat(30))));
        assert_eq!(
            bar_line(0, 0, s).len(),
            bar.len(),
            "an empty upload counts as done"
        );
    }

    #[test]
    fn plain_mode_prints_only_the_final_line_for_a_quick_upload() {
        let out = Captured::default();
        let mut progress = Progress::new(1000, false, Box::new(out.clone()));
        for sent in (100..=1000).step_by(100) {
            progress.update(sent);
        }
        progress.finish(1000);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.ends_with("waiting for the server to validate and apply it\n"),
            "{text}"
        );
        assert!(text.starts_with("upload: 1000 B sent in "), "{text}");
    }

    #[test]
    fn plain_mode_prints_a_line_per_interval_of_a_slow_upload() {
        let out = Captured::default();
        let mut progress = Progress::new(1000, false, Box::new(out.clone()));
        progress.started -= LINE_INTERVAL * 2;
        progress.update(300);
        progress.update(400); // within the interval of the line just printed
        progress.finish_partial(500);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("upload: 300 B of 1000 B (30%), "),
            "{text}"
        );
        assert!(
            lines[1].starts_with("upload: 500 B of 1000 B sent in "),
            "{text}"
        );
    }

    #[test]
    fn terminal_mode_redraws_in_place() {
        let out = Captured::default();
        let mut progress = Progress::new(1000, true, Box::new(out.clone()));
        progress.started -= Duration::from_secs(1);
        progress.update(500);
        progress.finish(1000);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\r').count(), 2, "{text:?}");
        assert!(text.ends_with('\n') && text.contains(" 50%") && text.contains("100%"));
    }
}
