//! A progress bar on stderr: `[#####-----] 45% db/identity`, redrawn in
//! place on a terminal, one line per step otherwise (logs, pipes).

use std::io::{IsTerminal, Write};

pub struct Progress {
    total: usize,
    done: usize,
    shown: bool,
    tty: bool,
}

const WIDTH: usize = 20;

impl Progress {
    /// Drawn on stderr.
    pub fn stderr() -> Self {
        Self {
            total: 1,
            done: 0,
            shown: true,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Draws nothing (tests, library callers with their own display).
    pub fn hidden() -> Self {
        Self {
            shown: false,
            ..Self::stderr()
        }
    }

    pub(super) fn set_total(&mut self, total: usize) {
        self.total = total.max(1);
    }

    /// Back to zero for another attempt.
    pub(super) fn restart(&mut self) {
        self.done = 0;
    }

    /// Starts the step `label`: the bar shows the steps already done.
    pub(super) fn step(&mut self, label: &str) {
        self.draw(label);
        self.done += 1;
    }

    /// A line of its own, kept above the bar.
    pub(super) fn note(&mut self, text: &str) {
        if self.shown {
            let mut e = std::io::stderr();
            let _ = if self.tty {
                writeln!(e, "\r\x1b[2K{text}")
            } else {
                writeln!(e, "{text}")
            };
        }
    }

    pub(super) fn finish(&mut self) {
        self.done = self.total;
        self.draw("ok");
        if self.shown && self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }

    fn draw(&self, label: &str) {
        if !self.shown {
            return;
        }
        let line = bar(self.done, self.total, label);
        let mut e = std::io::stderr();
        let _ = if self.tty {
            write!(e, "\r\x1b[2K{line}")
        } else {
            writeln!(e, "{line}")
        };
        let _ = e.flush();
    }
}

fn bar(done: usize, total: usize, label: &str) -> String {
    let done = done.min(total);
    let filled = done * WIDTH / total;
    format!(
        "[{}{}] {:>3}% {label}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        done * 100 / total
    )
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn the_bar_fills_with_the_steps() {
        assert_eq!(
            bar(0, 4, "db/identity"),
            "[--------------------]   0% db/identity"
        );
        assert_eq!(bar(1, 4, "x"), "[#####---------------]  25% x");
        assert_eq!(bar(9, 9, "ok"), "[####################] 100% ok");
    }
}
