//! `rnfs-hostile MODE [--listen ADDR]`: serves one mode of the scripted hostile NFSv3
//! server (see the `rnfs_hostile` library) until killed, for shell scripts.
use clap::Parser;
use rnfs_hostile::{serve, Mode, Stats};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "rnfs-hostile",
    about = "A scripted hostile NFSv3 server (for tests)"
)]
struct Args {
    /// What to do wrong (`--list` shows the modes).
    #[arg(required_unless_present = "list")]
    mode: Option<Mode>,
    /// Address to listen on (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// List the modes and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if a.list {
        for m in Mode::ALL {
            println!("{m}");
        }
        return ExitCode::SUCCESS;
    }
    let Some(mode) = a.mode else {
        return ExitCode::FAILURE;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rnfs-hostile: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let l = match tokio::net::TcpListener::bind(a.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rnfs-hostile: cannot listen on {}: {e}", a.listen);
                return ExitCode::FAILURE;
            }
        };
        let Ok(addr) = l.local_addr() else {
            return ExitCode::FAILURE;
        };
        let p = addr.port();
        // One line a script can read: the URL of /top.
        println!(
            "nfs://{}:{p}/top?version=3&nfsport={p}&mountport={p}",
            addr.ip()
        );
        let _ = std::io::stdout().flush();
        eprintln!("rnfs-hostile: serving mode {mode} on {addr}");
        serve(l, mode, Arc::new(Stats::default()), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        ExitCode::SUCCESS
    })
}
