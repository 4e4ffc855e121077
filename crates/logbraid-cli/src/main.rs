//! The `logbraid` command: a thin shell over the library crates.

mod demo;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logbraid: {e:#}");
            ExitCode::from(1)
        }
    }
}
