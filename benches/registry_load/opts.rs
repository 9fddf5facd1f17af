//! The command line: `--quick`, `--lanes`, `--stages`, `--memory N`, `--concurrency N`, `--rounds N`,
//! `--round-ms N`.

use std::time::Duration;

/// What the run does, and how long.
#[derive(Clone)]
pub struct Opts {
    /// `--quick`: a short run.
    pub quick: bool,
    /// Client connections of the registry phase.
    pub concurrency: usize,
    /// Registry rounds per variant.
    pub rounds: usize,
    /// Length of a registry round.
    pub round: Duration,
    /// Requests of the memory phase.
    pub mem_events: usize,
    /// Rounds of the delivery phase.
    pub delivery_rounds: usize,
    /// One-event POSTs per delivery round (raw loop, unbatched endpoint).
    pub unbatched_events: usize,
    /// Events per delivery round of the batched endpoint.
    pub batched_events: usize,
    /// Seconds of each latency measurement.
    pub latency_secs: u64,
    /// `--lanes`: only the lanes phase.
    pub lanes_only: bool,
    /// `--stages`: two more registry variants, the batched endpoint's queue to a counting
    /// sink and to an encoding sink, which say what its delivery costs stage by stage.
    pub stages: bool,
    /// `--memory N`: only the memory phase, the endpoint with `maxevents: N` (1 otherwise).
    pub memory_only: Option<usize>,
}

/// The options of this run, from the command line.
pub fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |name: &str| -> Option<u64> {
        let i = args.iter().position(|a| a == name)?;
        match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(v) => Some(v),
            None => {
                eprintln!("{name} needs a number");
                std::process::exit(2)
            }
        }
    };
    for a in &args {
        // `cargo bench` passes `--bench` to every bench binary.
        if a.starts_with("--")
            && !matches!(
                a.as_str(),
                "--quick"
                    | "--lanes"
                    | "--stages"
                    | "--memory"
                    | "--concurrency"
                    | "--rounds"
                    | "--round-ms"
                    | "--bench"
            )
        {
            eprintln!(
                "usage: cargo bench --bench registry_load -- [--quick] [--lanes] [--stages] [--memory N] [--concurrency N] [--rounds N] [--round-ms N]"
            );
            std::process::exit(2)
        }
    }
    Opts {
        quick,
        concurrency: value("--concurrency").unwrap_or(32) as usize,
        // A multiple of the 5 variants, so that each runs as often in each position (not of
        // the 7 with `--stages`: the order still rotates every round).
        rounds: value("--rounds").unwrap_or(if quick { 5 } else { 10 }) as usize,
        round: Duration::from_millis(value("--round-ms").unwrap_or(if quick { 500 } else { 1000 })),
        mem_events: 100_000,
        delivery_rounds: if quick { 4 } else { 15 },
        unbatched_events: if quick { 2_000 } else { 5_000 },
        batched_events: if quick { 30_000 } else { 100_000 },
        latency_secs: if quick { 2 } else { 8 },
        lanes_only: args.iter().any(|a| a == "--lanes"),
        stages: args.iter().any(|a| a == "--stages"),
        memory_only: value("--memory").map(|n| n.max(1) as usize),
    }
}
