//! flash-api binary: `flash-api` serves; `flash-api migrate` creates the database if needed,
//! applies the migrations and exits (the deploy's PreSync hook).

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
}

/// mimalloc: glibc's malloc took a fifth of the suite's CPU under a drill (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    flash_kit::telemetry::init(cli.config.common.log_format);
    match cli.command {
        Some(Command::Migrate) => {
            flash_api::db::create_if_missing(&cli.config.database_url).await?;
            let pool = flash_kit::stores::connect_postgres(&cli.config.database_url, 1).await?;
            flash_api::db::migrate(&pool).await?;
            tracing::info!("migrations applied");
        }
        None => {
            let shutdown = flash_kit::shutdown::on_signals();
            let app = flash_api::Application::build(cli.config).await?;
            app.run_until(shutdown).await?;
        }
    }
    Ok(())
}
