//! flash-gateway binary: configuration from the environment, then run until SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = flash_gateway::Config::parse();
    flash_kit::telemetry::init(config.common.log_format);
    let shutdown = flash_kit::shutdown::on_signals();
    let service = flash_gateway::Application::build(config).await?;
    service.run_until(shutdown).await?;
    Ok(())
}
