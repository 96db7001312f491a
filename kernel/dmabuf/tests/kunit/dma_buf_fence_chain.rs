//! Port of the KUnit suite `dma-buf-fence-chain` (`drivers/dma-buf/st-dma-fence-chain.c`,
//! the v7.x KUnit text, which enables signalling on every node in
//! `fence_chains_init`).
//!
//! Differences from the kernel version:
//! - jiffies become `Duration`s and there are no signals: `dma_fence_wait` is the
//!   model's non-interruptible [`DmaFence::wait`].
//! - `find_race`: the kernel runs one thread per CPU for up to 5 s on random
//!   seqnos. Here two threads each run a fixed number of iterations with a seeded
//!   xorshift, so a loaded 2-core machine finishes quickly and every run replays the
//!   same choices per thread.
//! - `wait_random`: the Fisher–Yates shuffle uses a seeded xorshift.
//! - `wait_*`: `yield_to(tsk)` becomes a barrier that lets the waiter start before the
//!   signalling begins (a hint in both cases: the wait may begin later).

use std::sync::Barrier;
use std::thread;

use sagrada_kernel_dmabuf::DmaFence;
use sagrada_kernel_dmabuf::fence_chain::find_seqno as chain_find_seqno;

use crate::common::{
    FenceChains, XorShift, fence_chains_init, mock_chain, mock_fence, seqno_inc, seqno_inc2,
};

/// `CHAIN_SZ`.
const CHAIN_SZ: u64 = 4 << 10;

/// Threads of `find_race` (the kernel uses one per online CPU).
const FIND_RACE_THREADS: u64 = 2;

/// Iterations per `find_race` thread (the kernel runs until stopped, up to 5 s).
const FIND_RACE_ITERATIONS: u64 = 2048;

fn same(a: &Option<DmaFence>, b: &DmaFence) -> bool {
    a.as_ref().is_some_and(|a| DmaFence::ptr_eq(a, b))
}

fn seqno_of(f: &Option<DmaFence>) -> u64 {
    f.as_ref().map_or(0, |f| f.seqno())
}

#[test]
fn sanitycheck() {
    let f = mock_fence();
    let chain = mock_chain(None, f.clone(), 1);
    chain.enable_sw_signaling();
    f.signal();
    drop(f);
    drop(chain);
}

#[test]
fn find_seqno() {
    let fc = fence_chains_init(64, seqno_inc);

    let fence = chain_find_seqno(&fc.tail, 0).expect("Reported error for find_seqno(0)!");
    assert!(same(&fence, &fc.tail), "find_seqno(0) moved the fence");

    let len = fc.chains.len() as u64;
    for (i, chain) in fc.chains.iter().enumerate() {
        let i = i as u64;
        let fence = chain_find_seqno(&fc.tail, i + 1)
            .unwrap_or_else(|e| panic!("Reported {e:?} for find_seqno({}:{})!", len + 1, i + 1));
        assert!(
            same(&fence, chain),
            "Incorrect fence reported by find_seqno({}:{})",
            len + 1,
            i + 1
        );
        let fence = fence.expect("checked above");

        let found = chain_find_seqno(&fence, i + 1).expect("Error reported for finding self");
        assert!(same(&found, chain), "Incorrect fence reported by find self");

        assert!(
            chain_find_seqno(&fence, i + 2).is_err(),
            "Error not reported for future fence: find_seqno({}:{})!",
            i + 1,
            i + 2
        );

        let found = chain_find_seqno(&fence, i).expect("Error reported for previous fence!");
        if i > 0 {
            assert!(
                same(&found, &fc.chains[i as usize - 1]),
                "Incorrect fence reported by find_seqno({}:{})",
                i + 1,
                i
            );
        }
    }
}

#[test]
fn find_signaled() {
    let fc = fence_chains_init(2, seqno_inc);

    fc.fences[0].signal();

    let fence = chain_find_seqno(&fc.tail, 1).expect("Reported error for find_seqno()!");
    if let Some(f) = &fence {
        assert!(
            DmaFence::ptr_eq(f, &fc.chains[0]),
            "Incorrect chain-fence.seqno:{} reported for completed seqno:1 \
             (finding self: {:?})",
            f.seqno(),
            chain_find_seqno(f, 1).err()
        );
    }
}

#[test]
fn find_out_of_order() {
    let fc = fence_chains_init(3, seqno_inc);

    fc.fences[1].signal();

    let fence = chain_find_seqno(&fc.tail, 2).expect("Reported error for find_seqno()!");
    // We signalled the middle fence (2) of the 1-2-3 chain. A chain makes us wait for
    // every fence up to the point we want; fence 1 is still pending, so its node is
    // what we must wait on (node 2 is collected during the walk).
    assert!(
        same(&fence, &fc.chains[0]),
        "Incorrect chain-fence.seqno:{} reported for completed seqno:2",
        seqno_of(&fence)
    );
}

#[test]
fn find_gap() {
    let fc = fence_chains_init(64, seqno_inc2);

    let len = fc.chains.len() as u64;
    for (i, chain) in fc.chains.iter().enumerate() {
        let i = i as u64;
        let fence = chain_find_seqno(&fc.tail, 2 * i + 1).unwrap_or_else(|e| {
            panic!("Reported {e:?} for find_seqno({}:{})!", len + 1, 2 * i + 1)
        });
        assert!(
            same(&fence, chain),
            "Incorrect fence.seqno:{} reported by find_seqno({}:{})",
            seqno_of(&fence),
            len + 1,
            2 * i + 1
        );
        let fence = fence.expect("checked above");

        let found = chain_find_seqno(&fence, 2 * i + 2).expect("Error reported for finding self");
        assert!(same(&found, chain), "Incorrect fence reported by find self");
    }
}

/// `__find_race`: look up random points while signalling random fences.
fn find_race_thread(fc: &FenceChains, seed: u64) -> Result<(), String> {
    let mut rng = XorShift::new(seed);
    let len = fc.chains.len() as u64;
    for _ in 0..FIND_RACE_ITERATIONS {
        let seqno = rng.inclusive(1, len);
        let fence = chain_find_seqno(&fc.tail, seqno)
            .map_err(|e| format!("Failed to find fence seqno:{seqno} ({e:?})"))?;

        // We can only find ourselves if we are on the fence we were looking for.
        if let Some(fence) = fence
            && fence.seqno() == seqno
        {
            chain_find_seqno(&fence, seqno)
                .map_err(|e| format!("Reported an invalid fence for find-self:{seqno} ({e:?})"))?;
        }

        let victim = rng.below(len - 1);
        fc.fences[victim as usize].signal();
    }
    Ok(())
}

#[test]
fn find_race() {
    let fc = fence_chains_init(CHAIN_SZ, seqno_inc);

    let results: Vec<Result<(), String>> = thread::scope(|s| {
        let handles: Vec<_> = (0..FIND_RACE_THREADS)
            .map(|i| {
                let fc = &fc;
                s.spawn(move || find_race_thread(fc, 0x5eed_0000 + i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("find_race thread panicked"))
            .collect()
    });

    let count = fc.fences.iter().filter(|f| f.is_signaled()).count();
    eprintln!("find_race: Completed {count} cycles");

    for r in results {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn signal_forward() {
    let fc = fence_chains_init(64, seqno_inc);

    let len = fc.chains.len();
    for i in 0..len {
        fc.fences[i].signal();
        assert!(fc.chains[i].is_signaled(), "chain[{i}] not signaled!");
        if i + 1 < len {
            assert!(!fc.chains[i + 1].is_signaled(), "chain[{i}] is signaled!");
        }
    }
}

#[test]
fn signal_backward() {
    let fc = fence_chains_init(64, seqno_inc);

    for i in (0..fc.chains.len()).rev() {
        fc.fences[i].signal();
        if i > 0 {
            assert!(!fc.chains[i].is_signaled(), "chain[{i}] is signaled!");
        }
    }
    for (i, chain) in fc.chains.iter().enumerate() {
        assert!(chain.is_signaled(), "chain[{i}] was not signaled!");
    }
}

/// `__wait_fence_chains` on its own thread, while `signal` signals every fence; the
/// thread must come back with the tail signalled.
fn wait_fence_chains(fc: &FenceChains, signal: impl FnOnce(&FenceChains)) {
    let started = Barrier::new(2);
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            started.wait();
            fc.tail.wait();
            fc.tail.test_signaled_flag()
        });
        // `yield_to(tsk, true)`.
        started.wait();
        signal(fc);
        assert!(
            waiter.join().expect("waiter panicked"),
            "dma_fence_wait returned before the tail signalled"
        );
    });
}

#[test]
fn wait_forward() {
    let fc = fence_chains_init(CHAIN_SZ, seqno_inc);
    wait_fence_chains(&fc, |fc| {
        for f in &fc.fences {
            f.signal();
        }
    });
}

#[test]
fn wait_backward() {
    let fc = fence_chains_init(CHAIN_SZ, seqno_inc);
    wait_fence_chains(&fc, |fc| {
        for f in fc.fences.iter().rev() {
            f.signal();
        }
    });
}

/// `randomise_fences`: Fisher–Yates, courtesy of Knuth, with a seeded generator.
fn randomise_fences(fc: &mut FenceChains, rng: &mut XorShift) {
    let mut count = fc.fences.len() as u64;
    while count > 1 {
        count -= 1;
        let swp = rng.below(count + 1);
        if swp != count {
            fc.fences.swap(count as usize, swp as usize);
        }
    }
}

#[test]
fn wait_random() {
    let mut fc = fence_chains_init(CHAIN_SZ, seqno_inc);
    randomise_fences(&mut fc, &mut XorShift::new(0x5eed_7a17));
    wait_fence_chains(&fc, |fc| {
        for f in &fc.fences {
            f.signal();
        }
    });
}
