#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use pullcheck::ci;
use pullcheck::config::{Cli, Command, EXIT_OK, EXIT_USAGE};

/// mimalloc rather than glibc's malloc: a review allocates a few hundred small objects on
/// one worker thread and frees many of them on another; glibc's arenas make that the
/// largest single cost of a warm review (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if !matches!(cli.command, Command::Serve(_)) {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("PULLCHECK_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .init();
    }
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_USAGE
        }
    };
    ExitCode::from(code)
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match cli.command {
        Command::Reference(args) => Ok(ci::run_reference(&args, &mut out)?),
        Command::Check(args) => {
            let mut err = std::io::stderr();
            let mut stdin = std::io::stdin().lock();
            Ok(runtime()?.block_on(ci::run_check(&args, &mut stdin, &mut out, &mut err))?)
        }
        Command::Serve(args) => {
            runtime()?.block_on(pullcheck::webhook::serve::run(*args))?;
            Ok(EXIT_OK)
        }
        Command::Certs(args) => Ok(pullcheck::webhook::certs::run_certs(&args, &mut out)?),
        Command::Scan(args) => {
            let mut err = std::io::stderr();
            Ok(runtime()?.block_on(ci::run_scan(&args, &mut out, &mut err))?)
        }
    }
}
