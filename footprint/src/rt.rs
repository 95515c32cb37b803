//! The smallest runtime that makes a bare-metal program of the footprint
//! bins: the reset code (zero `.bss`, copy `.data`, on Cortex-M enable the
//! FPU, then call `footprint_main`), the Cortex-M vector table, and a panic
//! handler that loops. About 100 bytes, so the table measures minimqtt and
//! not a runtime crate. Symbols come from `link/thumb.x` / `link/riscv.x`.

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
    "2:  ldr r0, =_sdata",
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
    "    bl footprint_main",
    "5:  b 5b",
    ".ltorg",
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
    "2:  la t0, _sdata",
    "    la t1, _edata",
    "    la t2, _sidata",
    "3:  bgeu t0, t1, 4f",
    "    lw t3, 0(t2)",
    "    sw t3, 0(t0)",
    "    addi t0, t0, 4",
    "    addi t2, t2, 4",
    "    j 3b",
    "4:  call footprint_main",
    "5:  j 5b",
);

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
