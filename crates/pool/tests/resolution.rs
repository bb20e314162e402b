//! The recommended max buffer size sits at most 20 % above the exact percentile of the
//! returned lengths, for distributions of several shapes and percentiles across octaves.

use heapscape_pool::Pool;

/// A small deterministic generator (xorshift64*), so each run sees the same lengths.
struct Lengths(u64);

impl Lengths {
    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The exact `q` percentile as the pool defines it: the smallest length with at least a
/// fraction `q` of the lengths at or below it.
fn exact_percentile(sorted: &[usize], q: f64) -> usize {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn check(name: &str, lengths: &[usize]) {
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    let pool = Pool::builder("resolution")
        .max_buffer_size(16 << 20)
        .max_idle_bytes(16 << 20)
        .max_idle_buffers(1)
        // The resolution of the rule, not its confidence: p99 of 1,000 returns is asked for.
        .recommendation_min_returns(1)
        .build()
        .unwrap();
    for &len in lengths {
        // A zeroed allocation costs no page touches: the pool counts its length on return.
        pool.donate(vec![0; len]);
    }
    for q in [0.5, 0.9, 0.95, 0.99] {
        let mut config = pool.config();
        config.recommend_percentile = q;
        pool.reconfigure(config).unwrap();
        let exact = exact_percentile(&sorted, q) as f64;
        let recommended = pool.stats().recommended_max_buffer_size().unwrap() as f64;
        assert!(
            recommended >= exact && recommended <= 1.2 * exact,
            "{name} p{q}: recommended {recommended}, exact {exact}"
        );
    }
}

#[test]
fn recommendation_is_within_a_fifth_above_the_exact_percentile() {
    let mut rng = Lengths(0x9e37_79b9_7f4a_7c15);
    let mut draw = |f: &dyn Fn(f64) -> f64| -> Vec<usize> {
        (0..1000)
            .map(|_| f(rng.next_unit()).round() as usize)
            .collect()
    };
    // Uniform, log-uniform over four octaves, exponential, and a mix of two modes.
    check("uniform 1 KB..1 MB", &draw(&|u| 1e3 + u * 999e3));
    check("log-uniform 10 KB..160 KB", &draw(&|u| 1e4 * 16f64.powf(u)));
    check(
        "exponential mean 200 KB",
        &draw(&|u| 65.0 - 2e5 * (1.0 - u).ln()),
    );
    check(
        "bimodal 3 KB / 300 KB",
        &draw(&|u| if u < 0.9 { 3e3 } else { 3e5 }),
    );
    // The worst place for a power of two: just above one, where it would say twice as much.
    check("just above 64 KiB", &draw(&|u| 65_537.0 + u * 100.0));
    for shift in 7..24 {
        let p = f64::from(1u32 << shift);
        check(
            &format!("around 2^{shift}"),
            &draw(&|u| p * (0.9 + 0.3 * u)),
        );
    }
}
