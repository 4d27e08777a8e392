//! `rnfs`: a user-space NFS stack: the server, and tools that speak NFS.
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

mod mount;
mod serve;
mod stats;
mod tools;

#[derive(Parser)]
#[command(name = "rnfs", version, about = "A user-space NFS stack")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Export a directory (or memory, or an exports file) over NFSv3 and MOUNT v3.
    Serve(Box<serve::ServeArgs>),
    /// Show a running server's statistics (like nfsstat -s).
    Stats(stats::StatsArgs),
    /// Mount an NFS export with FUSE: rnfs mount nfs://host/export DIR [-o OPTIONS] [-f].
    Mount(mount::MountArgs),
    /// Unmount an rnfs FUSE mount.
    Umount(mount::UmountArgs),
    /// Client commands over nfs:// URLs (ls, cat, cp, mkdir, rm, mv, stat, df, ln).
    #[command(flatten)]
    Tools(tools::ToolCmd),
}

/// Runs the command; a failure is one line on stderr, `rnfs: what failed: why`, with the
/// whole chain of causes and never a backtrace (whatever RUST_BACKTRACE says), and exit
/// status 1. Log lines are coloured only when stderr is a terminal: a file or the journal
/// gets plain text, with no escape codes.
fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Serve(a) => serve::serve(*a),
        Cmd::Stats(a) => stats::stats(a),
        Cmd::Mount(a) => mount::mount(a),
        Cmd::Umount(a) => mount::umount(a),
        Cmd::Tools(t) => tools::run(t),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rnfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
