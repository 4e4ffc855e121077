//! The `logbraid` command: a thin shell over the library crates.

mod demo;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "logbraid",
    version,
    about = "Lossless, rotated, non-blocking logging"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Log from several threads at full speed into a rotating, compressed
    /// file, then check that every record is in the files exactly once.
    Demo(demo::Args),
    /// Collect records from other processes and hosts into one rotated
    /// file: native protocol, Python SocketHandler/DatagramHandler, syslog.
    Serve(serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Serve(args) => serve::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logbraid: {e:#}");
            ExitCode::from(1)
        }
    }
}
