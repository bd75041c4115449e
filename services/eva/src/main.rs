//! `eva`: the all-in-one box (`eva up`), one service alone for the central
//! deployment (`eva serve <service>`), migrations, the first operator's
//! token, operators' accounts (`eva operator invite`), and a box's backup
//! and restore (`eva backup`, `eva restore`).

mod backup_cli;
mod local_nats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use eva_platform::db::{Db, Migrations};
use eva_platform::service::bind;
use eva_platform::{Config, Shutdown, telemetry};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[derive(Parser)]
#[command(
    name = "eva",
    version,
    about = "EVA — diagnostic partagé de l'insertion / shared insertion diagnostic"
)]
struct Cli {
    /// TOML configuration file (then `EVA__SECTION__KEY` variables override it).
    #[arg(long, short, global = true, env = "EVA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything on this machine: every service, the gateway, and a
    /// local nats-server when no bus URL is configured.
    Up {
        /// Address of the local nats-server `eva up` starts.
        #[arg(long, default_value = "127.0.0.1:4222")]
        nats_listen: SocketAddr,
    },
    /// Run one service alone (central deployment).
    Serve { service: Service },
    /// Apply database migrations, then exit.
    Migrate {
        /// One service; all when absent.
        service: Option<Service>,
    },
    /// Print an operator access token signed with identity's key, for the
    /// first operator of a new installation.
    Token {
        #[arg(long, default_value = "operator")]
        subject: String,
        #[arg(long, default_value_t = 60)]
        ttl_minutes: u64,
    },
    /// Check the configuration and print it (secrets hidden).
    CheckConfig,
    /// Operators' accounts.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Back up the running box (every SQLite database and the JetStream
    /// streams, consistent) into a new directory.
    Backup {
        dir: PathBuf,
        /// The nats-server `eva up` started, when `bus.url` is not set.
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
    /// Restore a backup into the configured (empty) data directory and bus;
    /// then `eva up`.
    Restore {
        dir: PathBuf,
        /// Where the local nats-server listens during the restore, when
        /// `bus.url` is not set.
        #[arg(long, default_value = "127.0.0.1:4222")]
        nats_listen: SocketAddr,
    },
    /// NATS users (services, partners) as nats-server configuration: see
    /// deploy/nats/README.md.
    Nats {
        #[command(subcommand)]
        command: NatsCommand,
    },
}

#[derive(Subcommand)]
enum NatsCommand {
    /// Print one partner's NATS user block (bcrypt hash), to add to the `users` of
    /// account EVA. Without --password-file, a password is generated and printed once
    /// on stderr.
    PartnerUser {
        /// The partner structure's id (UUID).
        #[arg(long)]
        structure_id: String,
        /// File whose first line is the password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// bcrypt cost.
        #[arg(long, default_value_t = eva_platform::nats_auth::DEFAULT_BCRYPT_COST)]
        cost: u32,
    },
    /// Print the whole `accounts` block (account EVA: JetStream, the services' user,
    /// one user per partner). Passwords generated here are printed once on stderr.
    Accounts {
        /// File with one partner a line: `<structure id> [<password>]`; `#` comments.
        #[arg(long)]
        partners: PathBuf,
        /// The services' user.
        #[arg(long, default_value = eva_platform::nats_auth::SERVICES_USER)]
        services_user: String,
        /// File whose first line is the services' password; generated when absent.
        #[arg(long)]
        services_password_file: Option<PathBuf>,
        /// bcrypt cost.
        #[arg(long, default_value_t = eva_platform::nats_auth::DEFAULT_BCRYPT_COST)]
        cost: u32,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Create an operator account (or give the operator role to an existing
    /// account) and print its one-time invitation code, valid 7 days. The
    /// operator accepts it with a password: POST /api/v1/auth/invitations/accept.
    Invite {
        /// The operator's login e-mail.
        #[arg(long)]
        email: String,
        /// The name shown to others; may also be given when accepting.
        #[arg(long, default_value = "")]
        display_name: String,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Service {
    Identity,
    Diagnostics,
    Referrals,
    Community,
    Statistics,
    Gateway,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eva: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("eva: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eva: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::CheckConfig => {
            println!("{config:#?}");
            Ok(())
        }
        Command::Token {
            subject,
            ttl_minutes,
        } => {
            let token = eva_identity::issue_token(
                &config,
                &subject,
                vec![eva_platform::auth::Role::Operator],
                Vec::new(),
                Duration::from_secs(ttl_minutes * 60),
            )
            .await?;
            println!("{token}");
            Ok(())
        }
        Command::Operator {
            command:
                OperatorCommand::Invite {
                    email,
                    display_name,
                },
        } => {
            let invitation = eva_identity::invite_operator(&config, &email, &display_name).await?;
            let until = invitation.expires_at.date();
            println!(
                "Code d'invitation, à usage unique, valable jusqu'au {until} / one-time invitation code, valid until {until}:"
            );
            println!("{}", invitation.code);
            // Without a name given here, accepting asks for one.
            let name = if display_name.is_empty() {
                ", \"display_name\": \"…\""
            } else {
                ""
            };
            println!(
                "Choisissez votre mot de passe avec : POST /api/v1/auth/invitations/accept {{\"code\": \"…\", \"password\": \"…\"{name}}} / set your password with that request."
            );
            Ok(())
        }
        Command::Nats { command } => nats(command).await,
        Command::Backup { dir, nats_url } => backup_cli::backup(&config, &dir, &nats_url).await,
        Command::Restore { dir, nats_listen } => {
            backup_cli::restore(&config, &dir, nats_listen).await
        }
        Command::Migrate { service } => migrate(&config, service).await,
        Command::Serve { service } => {
            let _telemetry = telemetry::init(&config.telemetry, service_name(service))?;
            if config.bus.url.is_none() {
                anyhow::bail!("bus.url is not set: eva serve needs the NATS URL (EVA__BUS__URL)");
            }
            let shutdown = Shutdown::new();
            shutdown.trigger_on_signal();
            let mut set = JoinSet::new();
            spawn_metrics(&config, &shutdown, &mut set).await?;
            spawn_service(service, Arc::new(config), &shutdown, &mut set).await?;
            supervise(set, &shutdown).await
        }
        Command::Up { nats_listen } => {
            let _telemetry = telemetry::init(&config.telemetry, "eva")?;
            let nats = match config.bus.url {
                Some(_) => None,
                None => {
                    let binary = local_nats::find_binary(config.bus.nats_server.as_deref())?;
                    let nats = local_nats::LocalNats::start(&binary, &config.data_dir, nats_listen)
                        .await
                        .context("local nats-server")?;
                    tracing::info!(url = %nats.url, "local nats-server started");
                    config.bus.url = Some(nats.url.clone());
                    Some(nats)
                }
            };
            let shutdown = Shutdown::new();
            shutdown.trigger_on_signal();
            let gateway_addr = config.gateway.listen;
            let config = Arc::new(config);
            let mut set = JoinSet::new();
            let started = async {
                spawn_metrics(&config, &shutdown, &mut set).await?;
                for s in [
                    Service::Identity,
                    Service::Diagnostics,
                    Service::Referrals,
                    Service::Community,
                    Service::Statistics,
                    Service::Gateway,
                ] {
                    spawn_service(s, config.clone(), &shutdown, &mut set).await?;
                }
                anyhow::Ok(())
            }
            .await;
            // A part that fails while starting (a bad référentiel file, a
            // port taken) stops everything at once, not after the wait.
            // `Ok(None)`: a stop was asked while starting; it is not a failure.
            let started = match started {
                Ok(()) => tokio::select! {
                    ready = wait_ready(gateway_addr, Duration::from_secs(30)) => Ok(Some(ready)),
                    _ = shutdown.cancelled() => Ok(None),
                    Some(first) = set.join_next() => match first {
                        Ok(Ok(())) if shutdown.is_triggered() => Ok(None),
                        Ok(Ok(())) => Err(anyhow::anyhow!("a part of EVA stopped unexpectedly")),
                        Ok(Err(e)) => Err(e),
                        Err(e) => Err(anyhow::anyhow!("a part of EVA crashed: {e}")),
                    },
                },
                Err(e) => Err(e),
            };
            let result = match started {
                Ok(None) => supervise(set, &shutdown).await,
                Ok(Some(ready)) => {
                    if ready {
                        println!(
                            "EVA est prêt : ouvrez http://{gateway_addr}/ dans votre navigateur (API : http://{gateway_addr}/api/v1)."
                        );
                        println!(
                            "EVA is ready: open http://{gateway_addr}/ in your browser (API: http://{gateway_addr}/api/v1)."
                        );
                    } else {
                        println!(
                            "EVA n'est pas encore prêt : voir http://{gateway_addr}/readyz / EVA is not ready yet: see http://{gateway_addr}/readyz"
                        );
                    }
                    println!("Arrêt / stop : Ctrl+C");
                    supervise(set, &shutdown).await
                }
                Err(e) => {
                    shutdown.trigger();
                    while set.join_next().await.is_some() {}
                    Err(e)
                }
            };
            if let Some(n) = nats {
                n.stop().await;
            }
            result
        }
    }
}

fn service_name(s: Service) -> &'static str {
    match s {
        Service::Identity => "identity",
        Service::Diagnostics => "diagnostics",
        Service::Referrals => "referrals",
        Service::Community => "community",
        Service::Statistics => "statistics",
        Service::Gateway => "gateway",
    }
}

type Tasks = JoinSet<anyhow::Result<()>>;

async fn spawn_service(
    s: Service,
    config: Arc<Config>,
    shutdown: &Shutdown,
    set: &mut Tasks,
) -> anyhow::Result<()> {
    let sd = shutdown.clone();
    match s {
        Service::Identity => {
            let l = bind("identity", &config.identity).await?;
            set.spawn(async move { Ok(eva_identity::run(config, l, sd).await?) });
        }
        Service::Diagnostics => {
            let l = bind("diagnostics", &config.diagnostics.service()).await?;
            set.spawn(async move { Ok(eva_diagnostics::run(config, l, sd).await?) });
        }
        Service::Referrals => {
            let l = bind("referrals", &config.referrals.service()).await?;
            set.spawn(async move { Ok(eva_referrals::run(config, l, sd).await?) });
        }
        Service::Community => {
            let l = bind("community", &config.community).await?;
            set.spawn(async move { Ok(eva_community::run(config, l, sd).await?) });
        }
        Service::Statistics => {
            let l = bind("statistics", &config.statistics.service()).await?;
            set.spawn(async move { Ok(eva_statistics::run(config, l, sd).await?) });
        }
        Service::Gateway => {
            let addr = config.gateway.listen;
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("gateway: cannot listen on {addr}"))?;
            set.spawn(async move { Ok(eva_gateway::run(config, l, sd).await?) });
        }
    }
    Ok(())
}

async fn spawn_metrics(
    config: &Config,
    shutdown: &Shutdown,
    set: &mut Tasks,
) -> anyhow::Result<()> {
    let Some(addr) = config.metrics.address() else {
        return Ok(());
    };
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics: cannot listen on {addr}"))?;
    let sd = shutdown.clone();
    set.spawn(async move {
        axum::serve(l, telemetry::metrics_router())
            .with_graceful_shutdown(sd.cancelled())
            .await?;
        Ok(())
    });
    Ok(())
}

/// Polls the gateway's `/readyz` until it answers 200.
async fn wait_ready(addr: SocketAddr, within: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let mut answer = Vec::new();
            if s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await
                .is_ok()
                && s.read_to_end(&mut answer).await.is_ok()
                && answer.starts_with(b"HTTP/1.0 200")
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Runs until a signal or until one part stops; then everything drains.
async fn supervise(mut set: Tasks, shutdown: &Shutdown) -> anyhow::Result<()> {
    let mut failure = None;
    tokio::select! {
        _ = shutdown.cancelled() => {}
        Some(first) = set.join_next() => {
            // A part that ends on its own, before any stop was asked, is a failure.
            if !shutdown.is_triggered() {
                failure = Some(match first {
                    Ok(Ok(())) => anyhow::anyhow!("a part of EVA stopped unexpectedly"),
                    Ok(Err(e)) => e,
                    Err(e) => anyhow::anyhow!("a part of EVA crashed: {e}"),
                });
            }
            shutdown.trigger();
        }
    }
    let drain = async {
        while let Some(r) = set.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "stopped with an error");
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), drain)
        .await
        .is_err()
    {
        tracing::warn!("some parts did not stop within 20 s");
    }
    let _ = shutdown.drain(Duration::from_secs(5)).await;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn migrate(config: &Config, only: Option<Service>) -> anyhow::Result<()> {
    let diagnostics = config.diagnostics.service();
    let referrals = config.referrals.service();
    let statistics = config.statistics.service();
    let all: [(
        Service,
        &str,
        &eva_platform::config::ServiceConfig,
        &Migrations,
    ); 5] = [
        (
            Service::Identity,
            "identity",
            &config.identity,
            &eva_identity::store::MIGRATIONS,
        ),
        (
            Service::Diagnostics,
            "diagnostics",
            &diagnostics,
            &eva_diagnostics::store::MIGRATIONS,
        ),
        (
            Service::Referrals,
            "referrals",
            &referrals,
            &eva_referrals::store::MIGRATIONS,
        ),
        (
            Service::Community,
            "community",
            &config.community,
            &eva_community::store::MIGRATIONS,
        ),
        (
            Service::Statistics,
            "statistics",
            &statistics,
            &eva_statistics::store::MIGRATIONS,
        ),
    ];
    for (s, name, svc, migrations) in all {
        if only.is_some_and(|o| o != s) {
            continue;
        }
        let url = svc.database_url(&config.data_dir, name);
        if url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.data_dir)?;
        }
        let db = Db::connect(&url, 1)
            .await
            .with_context(|| name.to_owned())?;
        db.migrate(migrations)
            .await
            .with_context(|| name.to_owned())?;
        db.close().await;
        println!("{name}: migrations appliquées / migrations applied");
    }
    Ok(())
}

/// `eva nats …`: configuration text on stdout, generated passwords on stderr (once).
async fn nats(command: NatsCommand) -> anyhow::Result<()> {
    use eva_platform::nats_auth::{
        self, PartnerId, PartnerUser, PasswordHash, ServicesUser, generate_password,
    };

    fn read_password(path: &std::path::Path) -> anyhow::Result<String> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let password = text.lines().next().unwrap_or_default().trim().to_owned();
        anyhow::ensure!(
            !password.is_empty(),
            "{}: mot de passe vide / empty password",
            path.display()
        );
        Ok(password)
    }
    // bcrypt is slow on purpose: off the async threads.
    async fn hash(password: String, cost: u32) -> anyhow::Result<PasswordHash> {
        Ok(tokio::task::spawn_blocking(move || PasswordHash::hash(&password, cost)).await??)
    }

    match command {
        NatsCommand::PartnerUser {
            structure_id,
            password_file,
            cost,
        } => {
            let id: PartnerId = structure_id.parse()?;
            let password = match &password_file {
                Some(path) => read_password(path)?,
                None => {
                    let password = generate_password();
                    eprintln!(
                        "Mot de passe NATS de {user}, affiché une seule fois / NATS password of {user}, shown once:\n{password}",
                        user = id.user()
                    );
                    password
                }
            };
            let user = PartnerUser {
                id,
                password: hash(password, cost).await?,
            };
            print!("{}", nats_auth::render_partner_user(&user));
            Ok(())
        }
        NatsCommand::Accounts {
            partners,
            services_user,
            services_password_file,
            cost,
        } => {
            let text = std::fs::read_to_string(&partners)
                .with_context(|| format!("reading {}", partners.display()))?;
            let mut generated = Vec::new();
            let services_password = match &services_password_file {
                Some(path) => read_password(path)?,
                None => {
                    let password = generate_password();
                    generated.push((services_user.clone(), password.clone()));
                    password
                }
            };
            let services = ServicesUser::new(&services_user, hash(services_password, cost).await?)?;
            let mut users = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let parsed = nats_auth::parse_partner_line(line)
                    .with_context(|| format!("{}:{}", partners.display(), n + 1))?;
                let Some((id, password)) = parsed else {
                    continue;
                };
                let password = match password {
                    Some(p) => p,
                    None => {
                        let password = generate_password();
                        generated.push((id.user(), password.clone()));
                        password
                    }
                };
                users.push(PartnerUser {
                    id,
                    password: hash(password, cost).await?,
                });
            }
            let rendered = nats_auth::render_accounts(&services, &users)?;
            if !generated.is_empty() {
                eprintln!(
                    "Mots de passe générés, affichés une seule fois / generated passwords, shown once:"
                );
                for (user, password) in &generated {
                    eprintln!("{user} {password}");
                }
            }
            print!("{rendered}");
            Ok(())
        }
    }
}
