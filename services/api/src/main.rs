//! flash-api binary: `flash-api` serves; `flash-api migrate` creates the database if needed,
//! applies the migrations and exits (the deploy's PreSync hook); `flash-api admin grant EMAIL`
//! gives an existing account the admin role.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "flash-api",
    version,
    about = "Flash Tickets api: users, events, orders"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: flash_api::Config,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create the database if it does not exist, apply pending migrations, exit.
    Migrate,
    /// Operators' account chores.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Give the account with this e-mail the admin role (logged with who ran it).
    Grant {
        /// The account's e-mail (any letter case).
        email: String,
    },
}

/// mimalloc: glibc's malloc took a fifth of the suite's CPU under a drill (BENCHMARKS.md); its huge
/// pages are turned off first thing in `main` ([`flash_kit::memory::without_huge_pages`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let huge_pages = flash_kit::memory::without_huge_pages();
    let cli = Cli::parse();
    flash_kit::telemetry::init(cli.config.common.log_format);
    flash_kit::memory::log_outcome(&huge_pages);
    match cli.command {
        Some(Command::Migrate) => {
            flash_api::db::create_if_missing(&cli.config.database_url).await?;
            let pool = flash_kit::stores::connect_postgres(&cli.config.database_url, 1).await?;
            flash_api::db::migrate(&pool).await?;
            tracing::info!("migrations applied");
        }
        Some(Command::Admin(AdminCommand::Grant { email })) => {
            let pool = flash_kit::stores::connect_postgres(&cli.config.database_url, 1).await?;
            let by = std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown operator".to_owned());
            match flash_api::bootstrap::grant_admin(&pool, &email, &by).await? {
                flash_api::bootstrap::Grant::Granted(_) => {
                    tracing::info!(%email, "done: the account is now an admin");
                }
                flash_api::bootstrap::Grant::AlreadyAdmin(_) => {
                    tracing::info!(%email, "nothing to do: the account is an admin already");
                }
                flash_api::bootstrap::Grant::NoSuchAccount => {
                    anyhow::bail!("no account with the e-mail {email}");
                }
            }
        }
        None => {
            let shutdown = flash_kit::shutdown::on_signals();
            let app = flash_api::Application::build(cli.config).await?;
            app.run_until(shutdown).await?;
        }
    }
    Ok(())
}
