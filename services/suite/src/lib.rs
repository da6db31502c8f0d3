//! flash-suite: gateway, api, pay and the web assets in one process, on one origin:
//! `/` web, `/api/…` api, `/queue/…` gateway. Each service also listens on its own port as it
//! does in production (ops endpoints there). For `make up` and end-to-end tests; production
//! runs the separate binaries.
//!
//! # Layout
//! - [`config`]: the origin's settings; each service reads its own.
//! - [`suite`]: [`suite::Suite`] (build, ports, run until shutdown), the web assets' headers.
//! - [`demo`]: the demo event ensured at start-up (`FLASH_DEMO_EVENT`).
//! - `testing` (feature `testing`): a suite against stores of its own, for end-to-end tests.

pub mod config;
pub mod demo;
pub mod suite;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::SuiteConfig;
pub use suite::Suite;
