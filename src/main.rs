//! The `switchboard` binary: load configuration (flags, environment, `--config` file), set
//! up logging and metrics, serve, and drain on SIGTERM/SIGINT.

use std::process::ExitCode;

use switchboard::config::{Action, Config, LogFormat, TokenArgs};
use switchboard::config_file::ConfigError;
use switchboard::server::Server;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Exit status when a second signal cuts a drain short (128 + SIGINT, as shells report).
const INTERRUPTED: i32 = 130;

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        // --help, --version and usage errors print and exit as clap does.
        Err(ConfigError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    if config.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    if let Some(Action::Token(t)) = &config.command {
        return mint_token(&config, t);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    let prometheus = match switchboard::metrics::install() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("switchboard: cannot install metrics recorder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let drain_timeout = config.drain_timeout;
    let result = runtime.block_on(async {
        let server = Server::bind(&config, prometheus).await?;
        let drain = server.drain_handle();
        server
            .serve(async move {
                shutdown_signal().await;
                drain.start();
                info!(
                    rooms = drain.rooms(),
                    timeout = %humantime::format_duration(drain_timeout),
                    "draining: /readyz is 503 and no new room opens here; live sessions \
                     continue (a second signal exits at once)"
                );
                tokio::spawn(async {
                    shutdown_signal().await;
                    warn!("second signal: exiting without waiting for sessions");
                    std::process::exit(INTERRUPTED);
                });
                tokio::select! {
                    _ = drain.wait_empty() => info!("drained: no session left"),
                    _ = tokio::time::sleep(drain_timeout) => warn!(
                        rooms = drain.rooms(),
                        "drain timeout reached; closing the remaining sessions"
                    ),
                }
            })
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `switchboard token`: print a signed access token.
fn mint_token(config: &Config, t: &TokenArgs) -> ExitCode {
    let Some(key) = &config.auth_key else {
        eprintln!("switchboard token: needs the signing key: --auth-key or SWITCHBOARD_AUTH_KEY");
        return ExitCode::from(2);
    };
    if !(t.publish || t.subscribe || t.admin) {
        eprintln!("switchboard token: grant something: --publish, --subscribe or --admin");
        return ExitCode::from(2);
    }
    let grants = switchboard::auth::Grants {
        publish: t.publish,
        subscribe: t.subscribe,
        admin: t.admin,
    };
    match switchboard::auth::mint(key, &t.room, &t.identity, t.name.clone(), grants, t.ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard token: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes and `docker stop` send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
