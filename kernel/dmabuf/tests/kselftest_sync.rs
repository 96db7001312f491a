//! Port of the kselftest `tools/testing/selftests/sync` suite: user-space tests of
//! sw_sync timelines and sync_file through the uAPI, with helpers that mirror the
//! suite's `sync.h`/`sync.c` (a C program's libsync).
//!
//! Differences from the kernel suite:
//! - The three stress tests are scaled down (iteration counts below) so the whole suite
//!   stays fast on a loaded 2-core machine; their structure is unchanged.
//! - `test_merge_stress_random_merge` uses a seeded generator instead of
//!   `srand(time(NULL))`, so a failure can be replayed.
//! - The busy-wait loops of the multi-producer test yield the CPU between polls of
//!   `FILE_INFO`, as the kernel's scheduler would preempt them.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use sagrada_hw_fabric::Fabric;
use sagrada_kernel_core::{Errno, Kernel, OpenFlags, PollFd, PollMask};
use sagrada_kernel_dmabuf::uapi::*;
use sagrada_sys::Process;

const FENCE_STATUS_ERROR: i32 = -1;
const FENCE_STATUS_ACTIVE: i32 = 0;
const FENCE_STATUS_SIGNALED: i32 = 1;

/// Iterations of `test_stress_two_threads_shared_timeline` (kernel: 1 << 16).
const TWO_THREADS_ITERATIONS: i32 = 1 << 12;
/// Iterations of `test_consumer_stress_multi_producer_single_consumer` (kernel: 1 << 12).
const MPSC_ITERATIONS: i32 = 1 << 9;
/// Merges of `test_merge_stress_random_merge` (kernel: 1024 * 32).
const RANDOM_MERGES: usize = 1024 * 4;

/// One process on a fresh machine, like each forked kselftest.
fn process() -> Arc<Process> {
    let kernel = Kernel::new(Fabric::default_machine().expect("default machine"));
    sagrada_kernel_dmabuf::install(&kernel).expect("install dma-buf");
    Arc::new(Process::spawn(&kernel, "sync_test"))
}

fn sw_sync_timeline_create(p: &Process) -> i32 {
    p.open(SW_SYNC_PATH, OpenFlags::RDWR).unwrap_or(-1)
}

fn sw_sync_timeline_inc(p: &Process, timeline: i32, count: u32) -> Result<i64, Errno> {
    let mut inc = count;
    p.ioctl_with(timeline, SW_SYNC_IOC_INC, &mut inc)
}

fn sw_sync_fence_create(p: &Process, timeline: i32, name: &str, value: u32) -> i32 {
    let mut data = SwSyncCreateFenceData {
        value,
        name: name_field(name),
        fence: 0,
    };
    match p.ioctl_with(timeline, SW_SYNC_IOC_CREATE_FENCE, &mut data) {
        Ok(_) => data.fence,
        Err(e) => -e.raw(),
    }
}

fn sync_merge(p: &Process, name: &str, fd1: i32, fd2: i32) -> i32 {
    let mut data = SyncMergeData {
        name: name_field(name),
        fd2,
        ..Default::default()
    };
    match p.ioctl_with(fd1, SYNC_IOC_MERGE, &mut data) {
        Ok(_) => data.fence,
        Err(e) => -e.raw(),
    }
}

fn valid_fd(fd: i32) -> bool {
    fd >= 0
}

/// `sync_wait`: `poll(POLLIN | POLLERR)`; >0 ready, 0 timeout.
fn sync_wait(p: &Process, fd: i32, timeout_ms: i32) -> usize {
    let mut fds = [PollFd::new(fd, PollMask::IN | PollMask::ERR)];
    p.poll(&mut fds, timeout_ms).expect("poll")
}

/// `sync_file_info`: the count query, then the array.
fn sync_file_info(p: &Process, fd: i32) -> Option<(SyncFileInfo, Vec<SyncFenceInfo>)> {
    let mut info = SyncFileInfo::default();
    p.ioctl_with(fd, SYNC_IOC_FILE_INFO, &mut info).ok()?;
    let n = info.num_fences as usize;
    if n == 0 {
        return Some((info, Vec::new()));
    }
    let bytes = n * size_of::<SyncFenceInfo>();
    let array = p.mmap_anon(bytes as u64).ok()?;
    info.flags = 0;
    info.sync_fence_info = array.0;
    let result = p
        .ioctl_with(fd, SYNC_IOC_FILE_INFO, &mut info)
        .ok()
        .and_then(|_| {
            let mut raw = vec![0u8; bytes];
            p.read_mem(array, &mut raw).ok()?;
            let fences = raw
                .chunks_exact(size_of::<SyncFenceInfo>())
                .map(|c| zerocopy::FromBytes::read_from_bytes(c).expect("sized chunk"))
                .collect();
            Some((info, fences))
        });
    p.munmap(array, bytes as u64).ok()?;
    result
}

fn sync_fence_size(p: &Process, fd: i32) -> i32 {
    sync_file_info(p, fd).map_or(-1, |(info, _)| info.num_fences as i32)
}

fn sync_fence_count_with_status(p: &Process, fd: i32, status: i32) -> i32 {
    sync_file_info(p, fd).map_or(-1, |(_, fences)| {
        fences.iter().filter(|f| f.status == status).count() as i32
    })
}

fn destroy(p: &Process, fd: i32) {
    let _ = p.close(fd);
}

#[test]
fn test_alloc_timeline() {
    let p = process();
    let timeline = sw_sync_timeline_create(&p);
    assert!(valid_fd(timeline), "Failure allocating timeline");
    destroy(&p, timeline);
}

#[test]
fn test_alloc_fence() {
    let p = process();
    let timeline = sw_sync_timeline_create(&p);
    assert!(valid_fd(timeline), "Failure allocating timeline");
    let fence = sw_sync_fence_create(&p, timeline, "allocFence", 1);
    assert!(valid_fd(fence), "Failure allocating fence");
    destroy(&p, fence);
    destroy(&p, timeline);
}

#[test]
fn test_alloc_fence_negative() {
    let p = process();
    let timeline = sw_sync_timeline_create(&p);
    assert!(valid_fd(timeline), "Failure allocating timeline");
    let fence = sw_sync_fence_create(&p, -1, "fence", 1);
    assert!(!valid_fd(fence), "Success allocating negative fence");
    assert_eq!(fence, -Errno::EBADF.raw());
    destroy(&p, timeline);
}

#[test]
fn test_fence_one_timeline_wait() {
    let p = process();
    let timeline = sw_sync_timeline_create(&p);
    let fence = sw_sync_fence_create(&p, timeline, "allocFence", 5);
    assert!(valid_fd(fence), "Failure allocating fence");
    assert_eq!(
        sync_wait(&p, fence, 0),
        0,
        "Failure waiting on fence until timeout"
    );
    sw_sync_timeline_inc(&p, timeline, 1).expect("Failure advancing timeline");
    assert_eq!(
        sync_wait(&p, fence, 0),
        0,
        "Failure waiting on fence until timeout"
    );
    sw_sync_timeline_inc(&p, timeline, 4).expect("Failure signaling the fence");
    assert!(sync_wait(&p, fence, 0) > 0, "Failure waiting on fence");
    sw_sync_timeline_inc(&p, timeline, 10).expect("Failure going further");
    assert!(sync_wait(&p, fence, 0) > 0, "Failure waiting ahead");
    destroy(&p, fence);
    destroy(&p, timeline);
}

#[test]
fn test_fence_one_timeline_merge() {
    let p = process();
    let timeline = sw_sync_timeline_create(&p);
    let a = sw_sync_fence_create(&p, timeline, "allocFence", 1);
    let b = sw_sync_fence_create(&p, timeline, "allocFence", 2);
    let c = sw_sync_fence_create(&p, timeline, "allocFence", 3);
    assert!(
        valid_fd(a) && valid_fd(b) && valid_fd(c),
        "Failure allocating fences"
    );
    let d = sync_merge(&p, "mergeFence", b, a);
    assert!(valid_fd(d), "Failure merging fences");
    let d = sync_merge(&p, "mergeFence", c, d);
    assert!(valid_fd(d), "Failure merging fences");

    // The kernel test checks `a` four times here (a typo for a, b, c, d); check all.
    for fd in [a, b, c, d] {
        assert_eq!(
            sync_fence_count_with_status(&p, fd, FENCE_STATUS_ACTIVE),
            1,
            "too many active fences"
        );
    }

    sw_sync_timeline_inc(&p, timeline, 1).unwrap();
    assert_eq!(
        sync_fence_count_with_status(&p, a, FENCE_STATUS_SIGNALED),
        1,
        "a did not signal!"
    );
    assert_eq!(
        sync_fence_count_with_status(&p, d, FENCE_STATUS_ACTIVE),
        1,
        "d signaled too early!"
    );

    sw_sync_timeline_inc(&p, timeline, 1).unwrap();
    assert_eq!(
        sync_fence_count_with_status(&p, b, FENCE_STATUS_SIGNALED),
        1,
        "b did not signal!"
    );
    assert_eq!(
        sync_fence_count_with_status(&p, d, FENCE_STATUS_ACTIVE),
        1,
        "d signaled too early!"
    );

    sw_sync_timeline_inc(&p, timeline, 1).unwrap();
    assert_eq!(
        sync_fence_count_with_status(&p, c, FENCE_STATUS_SIGNALED),
        1,
        "c did not signal!"
    );
    assert!(
        sync_fence_count_with_status(&p, d, FENCE_STATUS_ACTIVE) == 0
            && sync_fence_count_with_status(&p, d, FENCE_STATUS_SIGNALED) == 1,
        "d did not signal!"
    );
}

#[test]
fn test_fence_merge_same_fence() {
    let p = process();
    let timeline = sw_sync_timeline_create(&p);
    let fence = sw_sync_fence_create(&p, timeline, "allocFence", 5);
    assert!(valid_fd(fence), "Failure allocating fence");
    let self_merge = sync_merge(&p, "selfMerge", fence, fence);
    assert!(valid_fd(self_merge), "Failure merging fence with itself");
    assert_eq!(
        sync_fence_count_with_status(&p, self_merge, FENCE_STATUS_SIGNALED),
        0,
        "fence signaled too early!"
    );
    sw_sync_timeline_inc(&p, timeline, 5).unwrap();
    assert_eq!(
        sync_fence_count_with_status(&p, self_merge, FENCE_STATUS_SIGNALED),
        1,
        "fence did not signal!"
    );
}

#[test]
fn test_fence_multi_timeline_wait() {
    let p = process();
    let (ta, tb, tc) = (
        sw_sync_timeline_create(&p),
        sw_sync_timeline_create(&p),
        sw_sync_timeline_create(&p),
    );
    let fa = sw_sync_fence_create(&p, ta, "fenceA", 5);
    let fb = sw_sync_fence_create(&p, tb, "fenceB", 5);
    let fc = sw_sync_fence_create(&p, tc, "fenceC", 5);
    let merged = sync_merge(&p, "mergeFence", fb, fa);
    let merged = sync_merge(&p, "mergeFence", fc, merged);
    assert!(
        valid_fd(merged),
        "Failure merging fence from various timelines"
    );

    assert_eq!(
        sync_fence_count_with_status(&p, merged, FENCE_STATUS_ACTIVE),
        3,
        "Fence signaled too early!"
    );
    assert_eq!(
        sync_wait(&p, merged, 0),
        0,
        "Failure waiting on fence until timeout"
    );

    let counts = |p: &Process| {
        (
            sync_fence_count_with_status(p, merged, FENCE_STATUS_ACTIVE),
            sync_fence_count_with_status(p, merged, FENCE_STATUS_SIGNALED),
        )
    };
    sw_sync_timeline_inc(&p, ta, 5).unwrap();
    assert_eq!(counts(&p), (2, 1), "Fence did not signal properly!");
    sw_sync_timeline_inc(&p, tb, 5).unwrap();
    assert_eq!(counts(&p), (1, 2), "Fence did not signal properly!");
    sw_sync_timeline_inc(&p, tc, 5).unwrap();
    assert_eq!(counts(&p), (0, 3), "Fence did not signal properly!");
    assert!(
        sync_wait(&p, merged, 100) > 0,
        "Failure waiting on signaled fence"
    );
}

#[test]
fn test_stress_two_threads_shared_timeline() {
    let p = process();
    let timeline = sw_sync_timeline_create(&p);
    let counter = Arc::new(AtomicI32::new(0));
    let threads: Vec<_> = (0..2)
        .map(|thread_id| {
            let (p, counter) = (p.clone(), counter.clone());
            std::thread::spawn(move || {
                for i in 0..TWO_THREADS_ITERATIONS {
                    let fence =
                        sw_sync_fence_create(&p, timeline, "fence", (i * 2 + thread_id) as u32);
                    assert!(valid_fd(fence), "Failure allocating fence");
                    // Wait on the prior thread to complete.
                    assert!(
                        sync_wait(&p, fence, -1) > 0,
                        "Problem occurred on prior thread"
                    );
                    // Confirm the previous thread's writes are visible, then increment.
                    assert_eq!(
                        counter.load(Ordering::SeqCst),
                        i * 2 + thread_id,
                        "Counter got damaged!"
                    );
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Kick off the other thread.
                    sw_sync_timeline_inc(&p, timeline, 1).expect("Advancing timeline failed");
                    destroy(&p, fence);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(
        counter.load(Ordering::SeqCst),
        TWO_THREADS_ITERATIONS * 2,
        "Counter has unexpected value"
    );
}

fn busy_wait_on_fence(p: &Process, fence: i32) {
    loop {
        assert_eq!(
            sync_fence_count_with_status(p, fence, FENCE_STATUS_ERROR),
            0,
            "Error occurred on fence"
        );
        if sync_fence_count_with_status(p, fence, FENCE_STATUS_ACTIVE) == 0 {
            return;
        }
        std::thread::yield_now();
    }
}

#[test]
fn test_consumer_stress_multi_producer_single_consumer() {
    let p = process();
    let iterations = MPSC_ITERATIONS;
    let n = 5;
    let consumer_timeline = sw_sync_timeline_create(&p);
    let producer_timelines: Vec<i32> = (0..n).map(|_| sw_sync_timeline_create(&p)).collect();
    let counter = Arc::new(Mutex::new(0));

    let producers: Vec<_> = (0..n)
        .map(|id| {
            let (p, counter, timelines) = (p.clone(), counter.clone(), producer_timelines.clone());
            std::thread::spawn(move || {
                for i in 0..iterations {
                    let fence = sw_sync_fence_create(&p, consumer_timeline, "fence", i as u32);
                    assert!(valid_fd(fence), "Failure creating fence");
                    // Wait for the consumer to finish, by alternate means.
                    if (iterations + id as i32) % 8 != 0 {
                        assert!(sync_wait(&p, fence, -1) > 0, "Failure waiting on fence");
                    } else {
                        busy_wait_on_fence(&p, fence);
                    }
                    // Every producer increments the counter; the consumer checks it.
                    *counter.lock().unwrap() += 1;
                    sw_sync_timeline_inc(&p, timelines[id], 1)
                        .expect("Error advancing producer timeline");
                    destroy(&p, fence);
                }
            })
        })
        .collect();

    // The consumer runs here.
    for it in 1..=iterations {
        let mut fence = sw_sync_fence_create(&p, producer_timelines[0], "name", it as u32);
        for &timeline in &producer_timelines[1..] {
            let tmp = sw_sync_fence_create(&p, timeline, "name", it as u32);
            let merged = sync_merge(&p, "name", tmp, fence);
            destroy(&p, tmp);
            destroy(&p, fence);
            fence = merged;
        }
        assert!(valid_fd(fence), "Failure merging fences");
        // Make sure we see an increment from every producer; vary the way we wait.
        if iterations % 8 != 0 {
            assert!(
                sync_wait(&p, fence, -1) > 0,
                "Producers did not increment as expected"
            );
        } else {
            busy_wait_on_fence(&p, fence);
        }
        assert_eq!(
            *counter.lock().unwrap(),
            n as i32 * it,
            "Counter value mismatch!"
        );
        // Release the producer threads.
        sw_sync_timeline_inc(&p, consumer_timeline, 1).expect("Failure releasing producer threads");
        destroy(&p, fence);
    }
    for t in producers {
        t.join().expect("producer");
    }
}

/// The C library's `rand()` replaced by a seeded xorshift giving values in 0..2^31.
struct Rand(u64);

impl Rand {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 33) as u32
    }
}

#[test]
fn test_merge_stress_random_merge() {
    let p = process();
    let timeline_count = 32;
    let mut rand = Rand(0x5eed_2026_1124);
    let timelines: Vec<i32> = (0..timeline_count)
        .map(|_| sw_sync_timeline_create(&p))
        .collect();
    let mut fence = sw_sync_fence_create(&p, timelines[0], "fence", 0);
    assert!(valid_fd(fence), "Failure creating fence");
    let mut fence_map = vec![-1i64; timeline_count];
    fence_map[0] = 0;

    // Randomly create sync points on a fixed set of timelines and merge them together.
    for _ in 0..RANDOM_MERGES {
        let offset = rand.next() as usize % timeline_count;
        let sync_point = rand.next();
        fence_map[offset] = fence_map[offset].max(i64::from(sync_point));
        let tmp = sw_sync_fence_create(&p, timelines[offset], "fence", sync_point);
        let merged = sync_merge(&p, "merge", tmp, fence);
        destroy(&p, tmp);
        destroy(&p, fence);
        fence = merged;
        assert!(valid_fd(merged), "Failure creating fence i");
    }

    let size = fence_map.iter().filter(|&&v| v != -1).count() as i32;
    assert_eq!(
        sync_fence_size(&p, fence),
        size,
        "Quantity of elements not matching"
    );

    // Trigger the merged fence.
    for (i, &point) in fence_map.iter().enumerate() {
        if point != -1 {
            assert_eq!(
                sync_wait(&p, fence, 0),
                0,
                "Failure waiting on fence until timeout"
            );
            sw_sync_timeline_inc(&p, timelines[i], point as u32).unwrap();
        }
    }
    assert!(sync_wait(&p, fence, 0) > 0, "Failure triggering fence");
}
