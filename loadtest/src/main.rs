//! `flash-drill`: drills and benchmarks against a running suite.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "flash-drill",
    version,
    about = "Flash Tickets drills and benchmarks"
)]
enum Cli {
    /// Benchmarks of one part of the suite.
    #[command(subcommand)]
    Bench(flash_drill::bench::Bench),
    /// Audits one event's sale in the api's database (no oversell, stock adds up, one order
    /// per idempotency key and gate token, final states); exits non-zero on a violation.
    Audit(flash_drill::audit::AuditArgs),
    /// Signs up and logs in a crowd through the public auth endpoints and reports the rate.
    Crowd(flash_drill::crowd::CrowdArgs),
    /// Deletes the queues and exchanges under `--amqp-name-prefix` (benchmark clean-up).
    CleanBroker(flash_drill::bench::BrokerTarget),
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match Cli::parse() {
        Cli::Bench(bench) => runtime.block_on(flash_drill::bench::run(bench)),
        Cli::Audit(args) => runtime.block_on(flash_drill::audit::run(args)),
        Cli::Crowd(args) => runtime.block_on(flash_drill::crowd::run(args)),
        Cli::CleanBroker(target) => runtime.block_on(target.remove_topology()),
    }
}
