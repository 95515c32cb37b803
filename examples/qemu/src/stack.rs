//! The stack's high-water mark. cortex-m-rt (feature `paint-stack`) fills
//! the whole stack with `STACK_PAINT_VALUE` before `main`; the deepest
//! word that no longer holds it is as far as the stack ever grew.

use core::ptr::read_volatile;

use cortex_m_rt::STACK_PAINT_VALUE;

unsafe extern "C" {
    /// The stack's top (initial SP), from cortex-m-rt's `link.x`.
    static _stack_start: u32;
    /// Its lowest address: the end of `.bss` and `.uninit`.
    static _stack_end: u32;
}

/// `(used, size)` of the stack, in bytes.
pub fn high_water_mark() -> (usize, usize) {
    let top = &raw const _stack_start as usize;
    let bottom = &raw const _stack_end as usize;
    let mut addr = bottom;
    // SAFETY: [bottom, top) is RAM reserved for the stack, 4-byte aligned
    // (link.x asserts it); the words below SP are only read, never written.
    while addr < top && unsafe { read_volatile(addr as *const u32) } == STACK_PAINT_VALUE {
        addr += 4;
    }
    (top - addr, top - bottom)
}
