//! A [`minimqtt::time::Clock`] on SysTick: a 1 kHz tick counted by the
//! SysTick exception. No embassy-time driver is needed: the client reads
//! time only through its `Clock`, and the firmware has no other timer user.

use core::cell::Cell;

use cortex_m::interrupt::{Mutex, free};
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use embassy_futures::yield_now;
use minimqtt::time::{Clock, Instant};

/// The processor clock of the MPS2 images (and of QEMU's model of them).
const CPU_HZ: u32 = 25_000_000;

/// Milliseconds since `SysTickClock::start`. A u64 (no 64-bit atomics on
/// ARMv7-M), so it is read and written in a critical section.
static MILLIS: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

#[exception]
fn SysTick() {
    free(|cs| {
        let millis = MILLIS.borrow(cs);
        millis.set(millis.get() + 1);
    });
}

/// Milliseconds from SysTick. Zero-sized: every copy reads the same count.
#[derive(Debug, Clone, Copy)]
pub struct SysTickClock;

impl SysTickClock {
    /// Starts SysTick at 1 kHz from the processor clock. Takes `SYST`, so
    /// nothing else reprograms it.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(CPU_HZ / 1_000 - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self
    }
}

impl Clock for SysTickClock {
    fn now(&self) -> Instant {
        Instant::from_millis(free(|cs| MILLIS.borrow(cs).get()))
    }

    /// Polls the tick, yielding in between (like the UART driver): the
    /// executor has no timer queue to wake it. Cancel-safe: it holds no
    /// state.
    async fn sleep_until(&self, deadline: Instant) {
        while self.now() < deadline {
            yield_now().await;
        }
    }
}
