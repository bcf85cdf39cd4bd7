//! Action-estimate benchmark: the action dimension's estimates (both rates'
//! priors fitted, every account's posterior summaries and the value's
//! interval) for `accounts` accounts, a `share` of them with clicks, under the
//! one-Beta prior (`lift-4`'s rule) and under the model's mixture prior, side
//! by side in the same run.
//!
//! ```text
//! cargo run --release -p lift-scoring --example action_bench -- 1000000 0.3
//! ```

use lift_scoring::engine::action_bench::action_bench;

fn main() {
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let accounts = args.first().map_or(1_000_000, |&a| a.max(1.0) as usize);
    let share = args.get(1).copied().unwrap_or(0.3).clamp(0.0, 1.0);
    println!(
        "| population | accounts | with clicks | (clicks, conversions) cells ≥ 20 clicks | one Beta (lift-4 rule, ms) | mixture prior (lift-5, ms) | of which fitting both priors (ms) | prior components (conversion, engaged) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in action_bench(accounts, share, 2010) {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {}, {} |",
            r.population,
            r.accounts,
            r.with_clicks,
            r.cells,
            r.one_beta_ms,
            r.mixture_ms,
            r.fit_ms,
            r.components.0,
            r.components.1
        );
    }
}
