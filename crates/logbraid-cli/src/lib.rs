//! The `logbraid` command's subcommands that other front ends run too:
//! `python -m logbraid serve` calls [`serve_main`], so it takes exactly
//! the flags of `logbraid serve`.

pub mod serve;
pub mod write;

use std::ffi::OsString;

use clap::{Args as _, FromArgMatches as _};

/// `logbraid serve` as a program of its own: the subcommand's flags on a
/// command named after it.
fn serve_command() -> clap::Command {
    // The summary after the flags: `augment_args` sets the flags' own
    // doc comment as the about, which is not meant for users.
    serve::Args::augment_args(clap::Command::new("logbraid serve"))
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Collect records from other processes and hosts into one rotated file: \
             native protocol, Python SocketHandler/DatagramHandler, syslog.",
        )
}

/// Runs `logbraid serve` with `args` (the flags, without the program and
/// subcommand names) and returns its exit code: 0 after a clean stop, 2
/// for bad flags or settings, 1 when the collector cannot run. `--help`
/// and `--version` print and return 0.
pub fn serve_main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let argv = std::iter::once(OsString::from("logbraid serve")).chain(args);
    let parsed = serve_command()
        .try_get_matches_from(argv)
        .and_then(|m| serve::Args::from_arg_matches(&m));
    let args = match parsed {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match serve::run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logbraid serve: {e:#}");
            1
        }
    }
}
