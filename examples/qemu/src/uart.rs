//! The CMSDK APB UART of the MPS2 boards as the client's transport: an
//! `embedded-io-async` byte stream over its registers, and the
//! [`Connector`] that hands it to the client.
//!
//! The UART has a one-byte transmit and a one-byte receive register and no
//! FIFO. The driver polls its status register and yields to the executor
//! (`yield_now`) while there is nothing to do, instead of waiting for its
//! interrupts: simple, and fine in the emulator, where QEMU holds incoming
//! bytes back (flow control on the socket) until the guest has read the
//! previous one, so nothing is lost. On real hardware at speed, an
//! interrupt-driven driver with a receive ring would be needed, or bytes
//! arriving while the client computes would overrun the one-byte register
//! (reported here as [`UartError::Overrun`]).

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

use embassy_futures::yield_now;
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use minimqtt::Connector;

/// UART0 of the MPS2 AN385/AN386 images; QEMU connects it to the first
/// `-serial`.
pub const UART0_BASE: usize = 0x4000_4000;

/// The peripheral clock of the MPS2 FPGA images (and of QEMU's model).
const PCLK_HZ: u32 = 25_000_000;
const BAUD: u32 = 115_200;

// Register offsets in bytes (CMSDK TRM, DDI0479C, "APB UART").
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;

// STATE bits.
const TX_FULL: u32 = 1 << 0;
const RX_FULL: u32 = 1 << 1;
const RX_OVERRUN: u32 = 1 << 3;
// CTRL bits.
const TX_EN: u32 = 1 << 0;
const RX_EN: u32 = 1 << 1;

/// A received byte was lost: a second one arrived before the first was
/// read. The connection's byte stream is broken, so the client closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartError {
    Overrun,
}

impl core::fmt::Display for UartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("UART receive overrun")
    }
}

impl core::error::Error for UartError {}

impl embedded_io_async::Error for UartError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// One CMSDK APB UART, 8N1 at 115200 baud.
#[derive(Debug)]
pub struct Uart {
    base: usize,
}

impl Uart {
    /// Enables the UART at `base` for transmit and receive.
    ///
    /// # Safety
    ///
    /// `base` must be the address of a CMSDK APB UART, and nothing else
    /// (no other `Uart`) may use it while this one and the handles made
    /// from it exist.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Self { base };
        uart.write_reg(BAUDDIV, PCLK_HZ / BAUD);
        uart.write_reg(CTRL, TX_EN | RX_EN);
        uart
    }

    /// Another handle on the same UART, for the connector to hand out.
    /// Only one is in use at a time: the client drops its transport
    /// before it asks the connector for the next.
    fn handle(&self) -> Self {
        Self { base: self.base }
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract: `base + offset` is a register of a
        // UART that only this driver uses; registers are 4-byte aligned.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    /// Drops a byte left in the receive register (from a previous
    /// connection) and clears the overrun flag.
    fn discard_input(&self) {
        while self.read_reg(STATE) & RX_FULL != 0 {
            let _ = self.read_reg(DATA);
        }
        self.write_reg(STATE, RX_OVERRUN);
    }
}

impl ErrorType for Uart {
    type Error = UartError;
}

impl Read for Uart {
    /// Waits for at least one byte, then takes every byte that is already
    /// there. Cancel-safe: a byte leaves the register only when it is
    /// copied into `buf`, and no `.await` comes after that.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let state = self.read_reg(STATE);
            if state & RX_OVERRUN != 0 {
                // Write 1 to clear.
                self.write_reg(STATE, RX_OVERRUN);
                return Err(UartError::Overrun);
            }
            if state & RX_FULL != 0 {
                break;
            }
            yield_now().await;
        }
        let mut n = 0;
        while n < buf.len() && self.read_reg(STATE) & RX_FULL != 0 {
            // The received byte is the low 8 bits of DATA.
            buf[n] = self.read_reg(DATA) as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl Write for Uart {
    /// Waits until the transmit register is free, then writes as many
    /// bytes as it takes without waiting. Cancel-safe: the count returned
    /// is what was written, and nothing is written after the last `.await`.
    async fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.read_reg(STATE) & TX_FULL != 0 {
            yield_now().await;
        }
        let mut n = 0;
        while n < buf.len() && self.read_reg(STATE) & TX_FULL == 0 {
            self.write_reg(DATA, u32::from(buf[n]));
            n += 1;
        }
        Ok(n)
    }

    /// Waits until the last byte has left the transmit register.
    async fn flush(&mut self) -> Result<(), UartError> {
        while self.read_reg(STATE) & TX_FULL != 0 {
            yield_now().await;
        }
        Ok(())
    }
}

/// A UART has no connection to open: the connector hands out the one
/// UART, after dropping whatever a previous connection left in its
/// receive register. Reconnecting then works only if the far end starts a
/// new MQTT connection too (QEMU's `-serial tcp:` does not reconnect by
/// default; see README.md).
#[derive(Debug)]
pub struct UartConnector {
    uart: Uart,
}

impl UartConnector {
    pub fn new(uart: Uart) -> Self {
        Self { uart }
    }
}

impl Connector for UartConnector {
    type Transport = Uart;
    type Error = Infallible;

    async fn connect(&mut self) -> Result<Uart, Infallible> {
        self.uart.discard_input();
        Ok(self.uart.handle())
    }
}
