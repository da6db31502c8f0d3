//! `flash`: the whole suite on one origin (http://127.0.0.1:8080 by default) until Ctrl-C.

/// mimalloc: glibc's malloc took a fifth of the suite's CPU under a drill (BENCHMARKS.md); its huge
/// pages are turned off first thing in `main` ([`flash_kit::memory::without_huge_pages`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let huge_pages = flash_kit::memory::without_huge_pages();
    // `--help`, `--version` and bad settings: clap prints them and exits (0 for help).
    let (config, start) =
        flash_suite::SuiteConfig::with_start_from_env_and_args().unwrap_or_else(|e| e.exit());
    flash_kit::telemetry::init(config.origin.common.log_format);
    flash_kit::memory::log_outcome(&huge_pages);
    let shutdown = flash_kit::shutdown::on_signals();
    let mut suite = flash_suite::Suite::build(config).await?;
    if start.demo_event {
        suite.ensure_demo_event().await?;
    }
    suite.run_until(shutdown).await?;
    Ok(())
}
