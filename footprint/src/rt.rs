//! The smallest runtime that makes a bare-metal program of the footprint
//! bins: the reset code (zero `.bss`, paint the stack, copy `.data`, on
//! Cortex-M enable the FPU, then call `footprint_main`), `footprint_done`
//! (where the program ends), the Cortex-M vector table, and a panic handler
//! that loops. About 110 bytes, so the table measures minimqtt and not a
//! runtime crate. Symbols come from `link/thumb.x` / `link/riscv.x`.
//!
//! Stack measurement (`size.sh`, in QEMU): the reset code fills the RAM
//! from `_ebss` up to `_stack_top` with 0xAAAA_AAAA before the program runs
//! (a 4-instruction loop, in every build: the ELF whose flash is reported
//! is the one whose stack is measured). `footprint_main` ends by calling
//! `footprint_done` with 1 if its path did what the host tests check
//! (`codec_passed`, `client_passed`), 0 if not: that spins with the status
//! in the first argument register (r0, a0). `size.sh` stops QEMU there,
//! checks the PC and the status, dumps the RAM, and counts from
//! `_stack_top` down to the lowest word that is no longer the paint.

#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    ".syntax unified",
    // Initial stack pointer, reset, and the 14 other Cortex-M exceptions.
    ".section .vector_table, \"a\"",
    ".p2align 2",
    ".global VECTOR_TABLE",
    "VECTOR_TABLE:",
    ".word _stack_top",
    ".word Reset",
    ".rept 14",
    ".word DefaultHandler",
    ".endr",
    //
    ".section .text.Reset, \"ax\"",
    ".global Reset",
    ".type Reset, %function",
    ".thumb_func",
    "Reset:",
    "    ldr r0, =_sbss",
    "    ldr r1, =_ebss",
    "    movs r2, #0",
    "1:  cmp r0, r1",
    "    bhs 2f",
    "    str r2, [r0], #4",
    "    b 1b",
    // Paint the stack: r0 = _ebss, up to sp = _stack_top (the vector
    // table's initial stack pointer; nothing is on the stack yet). The
    // linker script asserts that the stack is not empty.
    "2:  mov r1, sp",
    "    mov r2, #0xAAAAAAAA",
    "6:  str r2, [r0], #4",
    "    cmp r0, r1",
    "    blo 6b",
    "    ldr r0, =_sdata",
    "    ldr r1, =_edata",
    "    ldr r2, =_sidata",
    "3:  cmp r0, r1",
    "    bhs 4f",
    "    ldr r3, [r2], #4",
    "    str r3, [r0], #4",
    "    b 3b",
    // CPACR: full access to CP10 and CP11 (the FPU: the target is eabihf).
    "4:  ldr r0, =0xE000ED88",
    "    ldr r1, [r0]",
    "    orr r1, r1, #0xF00000",
    "    str r1, [r0]",
    "    dsb",
    "    isb",
    // It does not return: it ends in footprint_done.
    "    bl footprint_main",
    ".ltorg",
    //
    ".section .text.footprint_done, \"ax\"",
    ".global footprint_done",
    ".type footprint_done, %function",
    ".thumb_func",
    "footprint_done:",
    "1:  b 1b",
    //
    ".section .text.DefaultHandler, \"ax\"",
    ".type DefaultHandler, %function",
    ".thumb_func",
    "DefaultHandler:",
    "    b DefaultHandler",
);

#[cfg(target_arch = "riscv32")]
core::arch::global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    "_start:",
    ".option push",
    ".option norelax",
    "    la sp, _stack_top",
    ".option pop",
    "    la t0, _sbss",
    "    la t1, _ebss",
    "1:  bgeu t0, t1, 2f",
    "    sw zero, 0(t0)",
    "    addi t0, t0, 4",
    "    j 1b",
    // Paint the stack: t0 = _ebss, up to sp = _stack_top. The linker
    // script asserts that the stack is not empty.
    "2:  li t1, 0xAAAAAAAA",
    "6:  sw t1, 0(t0)",
    "    addi t0, t0, 4",
    "    bltu t0, sp, 6b",
    "    la t0, _sdata",
    "    la t1, _edata",
    "    la t2, _sidata",
    "3:  bgeu t0, t1, 4f",
    "    lw t3, 0(t2)",
    "    sw t3, 0(t0)",
    "    addi t0, t0, 4",
    "    addi t2, t2, 4",
    "    j 3b",
    // It does not return: it ends in footprint_done.
    "4:  call footprint_main",
    //
    ".section .text.footprint_done, \"ax\"",
    ".global footprint_done",
    "footprint_done:",
    "1:  j 1b",
);

unsafe extern "C" {
    /// Spins forever with `status` in r0 / a0, where `size.sh` reads it:
    /// 1 if the program's path passed, 0 if not.
    ///
    /// Declared as returning (callers loop around it): a call that never returns would make LLVM
    /// treat the program's path before it as cold, and not inline it, which
    /// would change the flash measured (by about 120 bytes).
    pub safe fn footprint_done(status: u32);
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
