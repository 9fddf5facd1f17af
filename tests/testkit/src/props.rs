//! Property-test settings shared by every property test: seeded and bounded, so that
//! `cargo test` stays fast and reproducible.

use proptest::test_runner::{Config, RngSeed};

/// `cases` cases from the fixed `seed`, unless `PROPTEST_CASES` / `PROPTEST_RNG_SEED` say
/// otherwise (a long run: `PROPTEST_CASES=100000 cargo test …`); no regression files (the
/// seed reproduces a failure).
pub fn config(cases: u32, seed: u64) -> Config {
    let env = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            env.cases
        } else {
            cases
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            env.rng_seed
        } else {
            RngSeed::Fixed(seed)
        },
        failure_persistence: None,
        ..env
    }
}
