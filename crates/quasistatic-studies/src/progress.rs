//! The terminal progress bar of a run: the core engine reports completed trajectory-steps to
//! a [`Progress`] callback, which this draws with `indicatif` on stderr.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use quasistatic::simulate::Progress;

/// A progress bar over `total` trajectory-steps, drawn on stderr; `None` when `enabled` is
/// false or stderr is not a terminal. Call [`ProgressBar::finish_and_clear`] on the returned
/// bar when the run is done.
pub fn terminal_bar(enabled: bool, total: u64) -> Option<(ProgressBar, Progress)> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {percent}% ({eta} left)")
            .expect("valid template"),
    );
    let handle = bar.clone();
    Some((bar, Progress(Arc::new(move |done| handle.inc(done)))))
}

/// Run `f` with a terminal bar over `total` trajectory-steps when `enabled` (see
/// [`terminal_bar`]), clearing the bar afterwards.
pub fn with_bar<T>(enabled: bool, total: u64, f: impl FnOnce(Option<Progress>) -> T) -> T {
    match terminal_bar(enabled, total) {
        Some((bar, progress)) => {
            let out = f(Some(progress));
            bar.finish_and_clear();
            out
        }
        None => f(None),
    }
}
