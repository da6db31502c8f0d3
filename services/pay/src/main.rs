//! flash-pay binary: configuration from the environment, then run until SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = flash_pay::Config::parse();
    flash_kit::telemetry::init(config.common.log_format);
    let shutdown = flash_kit::shutdown::on_signals();
    let app = flash_pay::Application::build(config).await?;
    app.run_until(shutdown).await?;
    Ok(())
}
