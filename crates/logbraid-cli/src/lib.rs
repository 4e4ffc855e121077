//! The `logbraid` command's subcommands that other front ends run too:
//! `python -m logbraid serve` calls [`serve_main`], so it takes exactly
//! the flags of `logbraid serve`.

pub mod serve;

use std::ffi::OsString;

use clap::Parser;

/// `logbraid serve` as a program of its own.
#[derive(Parser, Debug)]
#[command(
    name = "logbraid serve",
    version,
    about = "Collect records from other processes and hosts into one rotated file: native protocol, Python SocketHandler/DatagramHandler, syslog."
)]
struct ServeCommand {
    #[command(flatten)]
    args: serve::Args,
}

/// Runs `logbraid serve` with `args` (the flags, without the program and
/// subcommand names) and returns its exit code: 0 after a clean stop, 2
/// for bad flags or settings, 1 when the collector cannot run. `--help`
/// and `--version` print and return 0.
pub fn serve_main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let argv = std::iter::once(OsString::from("logbraid serve")).chain(args);
    let cmd = match ServeCommand::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match serve::run(&cmd.args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logbraid serve: {e:#}");
            1
        }
    }
}
