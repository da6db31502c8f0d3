//! `flash-drill`: drills and benchmarks against a running suite.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "flash-drill",
    version,
    about = "Flash Tickets drills and benchmarks"
)]
enum Cli {
    /// A flash-sale burst: a crowd joins, waits, buys and pays; the invariants and SLOs are
    /// checked and reported. Exits non-zero when one fails.
    Burst(flash_drill::drill::BurstArgs),
    /// A burst with a hostile mix beside it (login and sign-up floods, leave-and-keep and
    /// leave-and-rejoin buyers, made-up methods, half-sent requests): what each attacker got is
    /// reported next to what the rules allow; the crowd's invariants and SLOs must hold.
    Abuse(flash_drill::drill::AbuseArgs),
    /// A steady stream of buyers for a long time, with the same checks.
    Soak(flash_drill::drill::SoakArgs),
    /// Shows a saved drill report again (table, and HTML with `--html`).
    Report(flash_drill::drill::ReportArgs),
    /// Internal: one process's share of a drill's crowd (started by `burst` and `soak`).
    #[command(hide = true)]
    Shard,
    /// Benchmarks of one part of the suite.
    #[command(subcommand)]
    Bench(flash_drill::bench::Bench),
    /// Audits one event's sale in the api's database (no oversell, stock adds up, one order
    /// per idempotency key and gate token, final states); exits non-zero on a violation.
    Audit(flash_drill::audit::AuditArgs),
    /// Checks an event's published pre-queue draw: the seed against its commitment, the
    /// participants file against its hash, and every line in the rule's order.
    VerifyDraw(flash_drill::draw::VerifyDrawArgs),
    /// Signs up and logs in a crowd through the public auth endpoints and reports the rate.
    Crowd(flash_drill::crowd::CrowdArgs),
    /// Deletes the queues and exchanges under `--amqp-name-prefix` (benchmark clean-up).
    CleanBroker(flash_drill::bench::BrokerTarget),
}

/// mimalloc: glibc's malloc took a fifth of the suite's CPU under a drill (BENCHMARKS.md); its huge
/// pages are turned off first thing in `main` ([`flash_kit::memory::without_huge_pages`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status: 0 passed, 1 a drill missed only SLOs, 2 a drill broke an invariant or
/// anything else went wrong (said in one line on stderr, never as a backtrace).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let code = match error.downcast_ref::<flash_drill::drill::Failed>() {
                Some(failed) => {
                    eprintln!("{failed}");
                    failed.exit_code()
                }
                None => {
                    eprintln!("flash-drill: {error:#}");
                    2
                }
            };
            std::process::ExitCode::from(code)
        }
    }
}

fn run() -> anyhow::Result<()> {
    // The crowd's sockets come and go by the thousand: huge-page faults would tax the drill's
    // own CPU, which the suite shares (a failure leaves them on, as before).
    drop(flash_kit::memory::without_huge_pages());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match Cli::parse() {
        Cli::Burst(args) => {
            let (json, html) = (args.drill.json.clone(), args.drill.html.clone());
            let report = runtime.block_on(flash_drill::drill::burst(args))?;
            flash_drill::drill::conclude(&report, json.as_ref(), html.as_ref())
        }
        Cli::Abuse(args) => {
            let (json, html) = (args.burst.drill.json.clone(), args.burst.drill.html.clone());
            let report = runtime.block_on(flash_drill::drill::abuse(args))?;
            flash_drill::drill::conclude(&report, json.as_ref(), html.as_ref())
        }
        Cli::Soak(args) => {
            let (json, html) = (args.drill.json.clone(), args.drill.html.clone());
            let report = runtime.block_on(flash_drill::drill::soak(args))?;
            flash_drill::drill::conclude(&report, json.as_ref(), html.as_ref())
        }
        Cli::Report(args) => flash_drill::drill::show(&args),
        Cli::Shard => {
            // Exit at once: a blocking read of stdin would hold the runtime's shutdown.
            let outcome = runtime.block_on(flash_drill::drill::shard::child_main());
            if let Err(error) = &outcome {
                eprintln!("drill process: {error:#}");
            }
            std::process::exit(i32::from(outcome.is_err()));
        }
        Cli::Bench(bench) => runtime.block_on(flash_drill::bench::run(bench)),
        Cli::Audit(args) => runtime.block_on(flash_drill::audit::run(args)),
        Cli::VerifyDraw(args) => runtime.block_on(flash_drill::draw::run(args)),
        Cli::Crowd(args) => runtime.block_on(flash_drill::crowd::run(args)),
        Cli::CleanBroker(target) => runtime.block_on(target.remove_topology()),
    }
}
