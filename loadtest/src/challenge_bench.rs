//! `flash-drill bench challenge`: what the join challenge costs. The gateway's side: issuing
//! and verifying a challenge (one HMAC, and for a solution one SHA-256), per operation on one
//! core. The buyer's side: the native solve time at each difficulty (the median and the 90th
//! percentile over several challenges, as the drill's buyers and a bot farm would solve), and
//! the attempts it took. Prints a table and one `RESULT` line.

use std::time::Instant;

use flash_gateway::challenge::{Challenges, Proof};
use flash_protocol::challenge::{JoinProof, solve};
use flash_protocol::{EventId, UserId};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Clone, Debug, clap::Args)]
pub struct ChallengeArgs {
    /// Highest difficulty whose native solve time is measured.
    #[arg(long, default_value_t = 22)]
    pub max_difficulty: u8,
    /// Challenges solved per difficulty.
    #[arg(long, default_value_t = 9)]
    pub samples: usize,
    /// Verifications timed.
    #[arg(long, default_value_t = 200_000)]
    pub verifications: usize,
}

#[derive(Debug, Serialize)]
struct Solving {
    difficulty: u8,
    median_ms: f64,
    p90_ms: f64,
    median_attempts: u64,
}

#[derive(Debug, Serialize)]
struct ChallengeResult {
    bench: &'static str,
    issue_us: f64,
    verify_us: f64,
    solve: Vec<Solving>,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

pub fn run(args: &ChallengeArgs) -> anyhow::Result<()> {
    let challenges = Challenges::new(&[7; 32]);
    let (event, user) = (EventId::new_v7(), UserId::new_v7());
    let now = OffsetDateTime::now_utc();

    let began = Instant::now();
    let issued: Vec<_> = (0..args.verifications.max(1))
        .map(|_| challenges.issue(event, user, 1, now))
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let issue_us = began.elapsed().as_secs_f64() * 1e6 / issued.len() as f64;
    let proofs: Vec<JoinProof> = issued
        .iter()
        .map(|c| JoinProof {
            challenge: c.challenge.clone(),
            nonce: solve(&c.challenge, c.difficulty, 0)
                .map(|(n, _)| n.to_string())
                .unwrap_or_default(),
        })
        .collect();
    let began = Instant::now();
    let mut solved = 0usize;
    for proof in &proofs {
        solved += usize::from(matches!(
            challenges.verify(Some(proof), event, user, now),
            Proof::Solved(_)
        ));
    }
    let verify_us = began.elapsed().as_secs_f64() * 1e6 / proofs.len() as f64;
    anyhow::ensure!(solved == proofs.len(), "a right solution was refused");
    eprintln!("issue {issue_us:.2} µs, verify {verify_us:.2} µs per challenge (one core)");

    let mut solve_rows = Vec::new();
    eprintln!("difficulty  median ms  p90 ms  median attempts");
    for difficulty in 0..=args.max_difficulty {
        let mut times = Vec::new();
        let mut attempts = Vec::new();
        for _ in 0..args.samples.max(1) {
            let challenge = challenges
                .issue(event, user, difficulty, now)
                .map_err(|_| anyhow::anyhow!("no system randomness"))?;
            let began = Instant::now();
            let (_, tried) = solve(&challenge.challenge, difficulty, 0)
                .ok_or_else(|| anyhow::anyhow!("unsolved"))?;
            times.push(began.elapsed().as_secs_f64() * 1000.0);
            attempts.push(tried);
        }
        times.sort_by(f64::total_cmp);
        attempts.sort_unstable();
        let row = Solving {
            difficulty,
            median_ms: (quantile(&times, 0.5) * 1000.0).round() / 1000.0,
            p90_ms: (quantile(&times, 0.9) * 1000.0).round() / 1000.0,
            median_attempts: attempts[attempts.len() / 2],
        };
        eprintln!(
            "{:>10}  {:>9.3}  {:>6.3}  {:>15}",
            row.difficulty, row.median_ms, row.p90_ms, row.median_attempts
        );
        solve_rows.push(row);
    }
    crate::bench::print_result(&ChallengeResult {
        bench: "challenge",
        issue_us: (issue_us * 100.0).round() / 100.0,
        verify_us: (verify_us * 100.0).round() / 100.0,
        solve: solve_rows,
    })
}
