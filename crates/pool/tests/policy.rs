//! Property tests of the return policy: for any sequence of gets, returns and
//! reconfigurations on one thread, the caps hold and every buffer is accounted for.

use heapscape_pool::config::OverMaxPolicy;
use heapscape_pool::{Pool, PoolConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Get {
        hint: usize,
    },
    Return {
        index: usize,
        len: usize,
    },
    Reconfigure {
        max_buffer_size: usize,
        max_idle_buffers: usize,
        max_idle_bytes: usize,
        drop_over_max: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..100_000).prop_map(|hint| Op::Get { hint }),
        4 => (any::<usize>(), 0usize..200_000).prop_map(|(index, len)| Op::Return { index, len }),
        1 => (1usize..=128, 1usize..=16, 1usize..=2048, any::<bool>()).prop_map(|(max_kib, bufs, idle_kib, drop_over_max)| {
            Op::Reconfigure {
                max_buffer_size: max_kib << 10,
                max_idle_buffers: bufs,
                max_idle_bytes: (idle_kib << 10).max(max_kib << 10),
                drop_over_max,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn caps_hold_and_buffers_are_accounted_for(ops in prop::collection::vec(op(), 1..60)) {
        let pool = Pool::builder("prop")
            .initial_capacity(1024)
            .max_buffer_size(64 << 10)
            .max_idle_buffers(4)
            .max_idle_bytes(256 << 10)
            .build()
            .unwrap();
        let mut held = Vec::new();
        let mut gets = 0u64;
        for op in ops {
            match op {
                Op::Get { hint } => {
                    let buf = pool.get_with_capacity(hint);
                    prop_assert!(buf.is_empty());
                    prop_assert!(buf.capacity() >= hint.min(pool.config().max_buffer_size));
                    gets += 1;
                    held.push(buf);
                }
                Op::Return { index, len } => {
                    if !held.is_empty() {
                        let mut buf = held.swap_remove(index % held.len());
                        buf.resize(len, 3);
                        drop(buf);
                    }
                }
                Op::Reconfigure { max_buffer_size, max_idle_buffers, max_idle_bytes, drop_over_max } => {
                    let mut config = PoolConfig::default();
                    config.initial_capacity = 1024;
                    config.max_buffer_size = max_buffer_size;
                    config.max_idle_buffers = max_idle_buffers;
                    config.max_idle_bytes = max_idle_bytes;
                    config.over_max = if drop_over_max { OverMaxPolicy::Drop } else { OverMaxPolicy::Shrink };
                    pool.reconfigure(config).unwrap();
                    // Let this thread's private buffer see the change, as any get would.
                    drop(pool.get());
                    gets += 1;
                }
            }
            let stats = pool.stats();
            let config = pool.config();
            prop_assert!(stats.idle_buffers <= config.max_idle_buffers as u64, "{:?}", stats);
            prop_assert!(stats.idle_bytes <= config.max_idle_bytes as u64, "{:?}", stats);
            prop_assert!(stats.idle_bytes <= stats.idle_buffers * config.max_buffer_size as u64, "{:?}", stats);
            prop_assert_eq!(stats.gets(), gets);
            let discarded = stats.discards.total();
            prop_assert_eq!(stats.idle_buffers + stats.hits + discarded, stats.returns, "{:?}", stats);
        }
    }
}
