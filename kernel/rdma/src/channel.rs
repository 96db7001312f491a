//! Event delivery to user space: the queue behind the uverbs file's asynchronous
//! events and behind completion channels (`ib_uverbs_event_queue`), and the
//! completion-channel file itself.
//!
//! As in Linux, `read` returns one event per call (`EINVAL` if the buffer cannot hold
//! one), blocks until one is queued unless the file is `O_NONBLOCK` (then `EAGAIN`), and
//! `poll` reports `POLLIN | POLLRDNORM` while an event is queued.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use sagrada_kernel_core::{
    Errno, File, FileOps, KResult, OpenFlags, PollMask, PollTable, Task, WaitQueue, lock,
};
use zerocopy::{Immutable, IntoBytes};

use crate::uapi::CqEvent;

/// Queued events of one kind, each with the id of the object it concerns, and the
/// sleepers waiting for them.
#[derive(Debug)]
pub(crate) struct EventQueue<T> {
    events: Mutex<VecDeque<(u64, T)>>,
    wait: WaitQueue,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        Self {
            events: Mutex::new(VecDeque::new()),
            wait: WaitQueue::new(),
        }
    }
}

impl<T: IntoBytes + Immutable + Copy> EventQueue<T> {
    /// Queues an event about object `id` and wakes readers and pollers (safe in the
    /// interrupt handler).
    pub fn push(&self, id: u64, event: T) {
        lock(&self.events).push_back((id, event));
        self.wait.wake_up_all();
    }

    /// Drops the queued events about object `id` (it is destroyed).
    pub fn forget(&self, id: u64) {
        lock(&self.events).retain(|(of, _)| *of != id);
    }

    /// Events queued.
    pub fn len(&self) -> usize {
        lock(&self.events).len()
    }

    /// `read`: the oldest event, as bytes.
    pub fn read(&self, file: &File, len: usize) -> KResult<Vec<u8>> {
        if len < size_of::<T>() {
            return Err(Errno::EINVAL);
        }
        loop {
            if let Some((_, event)) = lock(&self.events).pop_front() {
                return Ok(event.as_bytes().to_vec());
            }
            if file.flags().contains(OpenFlags::NONBLOCK) {
                return Err(Errno::EAGAIN);
            }
            self.wait.wait_until(None, || self.len() > 0);
        }
    }

    /// `poll`.
    pub fn poll(&self, table: Option<&PollTable<'_>>) -> PollMask {
        if let Some(table) = table {
            table.wait(&self.wait);
        }
        if self.len() > 0 {
            PollMask::IN | PollMask::RDNORM
        } else {
            PollMask::empty()
        }
    }
}

/// A completion channel (`ibv_comp_channel`): the file `CREATE_COMP_CHANNEL` returns.
/// CQs created with it queue a [`CqEvent`] here when the NIC raises a completion event
/// for them; a CQ keeps the channel alive.
#[derive(Debug, Default)]
pub(crate) struct CompChannel {
    events: EventQueue<CqEvent>,
}

impl CompChannel {
    /// A new channel file (read only, as Linux creates it).
    pub fn create() -> Arc<File> {
        File::new(Arc::new(CompChannel::default()), OpenFlags::RDONLY)
    }

    /// Queues a completion event of the CQ with unique id `cq_id`.
    pub fn push(&self, cq_id: u64, event: CqEvent) {
        self.events.push(cq_id, event);
    }

    /// Drops the pending events of a destroyed CQ.
    pub fn forget(&self, cq_id: u64) {
        self.events.forget(cq_id);
    }
}

impl FileOps for CompChannel {
    fn name(&self, _file: &File) -> String {
        "anon_inode:[infinibandevent]".to_owned()
    }

    fn read(
        &self,
        _task: &Task<'_>,
        file: &Arc<File>,
        len: usize,
        _pos: &mut u64,
    ) -> KResult<Vec<u8>> {
        self.events.read(file, len)
    }

    fn poll(
        &self,
        _file: &Arc<File>,
        table: Option<&PollTable<'_>>,
        _events: PollMask,
    ) -> PollMask {
        self.events.poll(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uapi::AsyncEvent;

    #[test]
    fn one_event_per_read_and_eagain_when_empty_and_nonblocking() {
        let queue = EventQueue::<AsyncEvent>::default();
        let file = File::new(Arc::new(CompChannel::default()), OpenFlags::NONBLOCK);
        assert_eq!(queue.read(&file, 64), Err(Errno::EAGAIN));
        assert_eq!(queue.poll(None), PollMask::empty());
        let a = AsyncEvent {
            element: 3,
            event_type: crate::uapi::EVENT_QP_FATAL,
        };
        queue.push(1, a);
        queue.push(
            2,
            AsyncEvent {
                element: 4,
                event_type: crate::uapi::EVENT_CQ_ERR,
            },
        );
        assert_eq!(queue.poll(None), PollMask::IN | PollMask::RDNORM);
        assert_eq!(queue.read(&file, 4), Err(Errno::EINVAL));
        assert_eq!(queue.read(&file, 64).unwrap(), a.as_bytes());
        queue.forget(2);
        assert_eq!(queue.read(&file, 64), Err(Errno::EAGAIN));
    }

    #[test]
    fn a_blocking_read_waits_for_the_event() {
        let channel = Arc::new(CompChannel::default());
        let file = File::new(channel.clone(), OpenFlags::RDONLY);
        let pusher = {
            let channel = channel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                channel.push(
                    9,
                    CqEvent {
                        cq_context: 7,
                        cq_handle: 1,
                        pad: 0,
                    },
                );
            })
        };
        let got = channel.events.read(&file, 16).unwrap();
        pusher.join().unwrap();
        let expect = CqEvent {
            cq_context: 7,
            cq_handle: 1,
            pad: 0,
        };
        assert_eq!(got, expect.as_bytes());
    }
}
