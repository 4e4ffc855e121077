//! The `logbraid` command: a thin shell over the library crates.

mod cat;
mod demo;
mod demo_threads;
mod tally;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use logbraid_cli::{serve, write};

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
    /// Start a collector, let several worker processes (Rust, and Python's
    /// stock SocketHandler when python3 is there) log into it, then check
    /// that every record is in the one rotated file exactly once.
    Demo(demo::Args),
    /// Log from several threads of this process at full speed into a
    /// rotating, compressed file, then check every record.
    DemoThreads(demo_threads::Args),
    /// One worker of `logbraid demo`.
    #[command(hide = true)]
    DemoWorker(demo::WorkerArgs),
    /// Read log sets (the active file and its rotated, compressed backups)
    /// as one stream, oldest first; several sets merged by timestamp;
    /// --follow keeps reading across rotations.
    Cat(cat::Args),
    /// Collect records from other processes and hosts into one rotated
    /// file: native protocol, Python SocketHandler/DatagramHandler, syslog.
    Serve(Box<serve::Args>),
    /// Write the records that collectors published to a NATS JetStream
    /// stream (serve --publish) into rotated files, each exactly once.
    Write(Box<write::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cat(args) => cat::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::DemoThreads(args) => demo_threads::run(&args),
        Command::DemoWorker(args) => demo::worker(&args),
        Command::Serve(args) => serve::run(&args).map(ExitCode::from),
        Command::Write(args) => write::run(&args).map(ExitCode::from),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logbraid: {e:#}");
            ExitCode::from(1)
        }
    }
}
