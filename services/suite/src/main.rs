//! `flash`: the whole suite on one origin (http://127.0.0.1:8080 by default) until Ctrl-C.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = flash_suite::SuiteConfig::from_env_and_args()?;
    flash_kit::telemetry::init(config.origin.common.log_format);
    let shutdown = flash_kit::shutdown::on_signals();
    let suite = flash_suite::Suite::build(config).await?;
    suite.run_until(shutdown).await?;
    Ok(())
}
