//! flash-gateway binary: configuration from the environment, then run until SIGTERM.

use clap::Parser;

/// mimalloc: glibc's malloc took a fifth of the suite's CPU under a drill (BENCHMARKS.md); its huge
/// pages are turned off first thing in `main` ([`flash_kit::memory::without_huge_pages`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let huge_pages = flash_kit::memory::without_huge_pages();
    let config = flash_gateway::Config::parse();
    flash_kit::telemetry::init(config.common.log_format);
    flash_kit::memory::log_outcome(&huge_pages);
    let shutdown = flash_kit::shutdown::on_signals();
    let service = flash_gateway::Application::build(config).await?;
    service.run_until(shutdown).await?;
    Ok(())
}
