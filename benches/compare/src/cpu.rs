//! CPU time of the calling thread: only the work of the client under test
//! (each run has its own thread and current-thread runtime), not the
//! broker's, not the flood publisher's, not other processes' on a shared
//! machine. Waiting (epoll, futex) costs nothing here, so the numbers do
//! not depend on how long the broker takes to answer.

use std::time::Duration;

#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// `CLOCK_THREAD_CPUTIME_ID`: user + system, in nanoseconds.
    pub total: Duration,
    /// `getrusage(RUSAGE_THREAD)`: the user and system split.
    pub user: Duration,
    pub sys: Duration,
}

impl Cpu {
    pub fn now() -> Cpu {
        // SAFETY: plain syscalls writing into the structs we pass.
        unsafe {
            let mut ts: libc::timespec = std::mem::zeroed();
            let rc = libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
            assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
            let mut ru: libc::rusage = std::mem::zeroed();
            let rc = libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
            assert_eq!(rc, 0, "getrusage(RUSAGE_THREAD)");
            Cpu {
                total: Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                user: timeval(ru.ru_utime),
                sys: timeval(ru.ru_stime),
            }
        }
    }

    pub fn since(self, start: Cpu) -> Cpu {
        Cpu {
            total: self.total.saturating_sub(start.total),
            user: self.user.saturating_sub(start.user),
            sys: self.sys.saturating_sub(start.sys),
        }
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000)
}
