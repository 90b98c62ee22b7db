//! Progress bars of the long offline jobs (testnet, simulate).

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar of `len` steps, hidden when `progress` is off (tests, logs).
pub(crate) fn bar(progress: bool, len: u64, message: &'static str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} {elapsed_precise} {wide_msg:.dim}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}
