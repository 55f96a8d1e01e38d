# Boot sector of the libvirt lane's "dirtying" guest: it switches to flat
# 32-bit protected mode and then rewrites one word in every 4 KiB page of a
# fixed region above 1 MiB, forever, so pre-copy always has pages to resend.
#
# Build-time knobs (as --defsym NAME=VALUE):
#   DIRTY_KIB  size of the rewritten region (the guest's working set), KiB
#   DELAY      busy-loop iterations after each page write; larger = lower
#              dirty rate (under TCG roughly proportional, see setup.sh)
#
# Assembled with `as --32` and linked at 0x7c00 as a flat binary.

.code16
.globl _start
_start:
    cli
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    %ax, %ss
    movw    $0x7c00, %sp

    # Fast A20 gate: without it every odd MiB aliases the even one below.
    inb     $0x92, %al
    orb     $0x02, %al
    andb    $0xfe, %al
    outb    %al, $0x92

    lgdt    gdt_descriptor
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmp    $0x08, $protected

.code32
protected:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movl    $0x7c00, %esp

    movl    $1, %ebx                    # value written this pass
pass:
    movl    $0x100000, %edi             # region starts at 1 MiB
page:
    movl    %ebx, (%edi)
.if DELAY > 0
    movl    $DELAY, %ecx
spin:
    decl    %ecx
    jnz     spin
.endif
    addl    $4096, %edi
    cmpl    $(0x100000 + DIRTY_KIB * 1024), %edi
    jb      page
    incl    %ebx
    # Flip CR0.WP (meaningless without paging) because any change to it makes
    # QEMU's TCG drop its software TLB: a page whose TLB entry stays cached is
    # written without being marked dirty again, so without this a small working
    # set looks clean to migration and converges at any bandwidth.
    movl    %cr0, %eax
    xorl    $0x10000, %eax
    movl    %eax, %cr0
    jmp     pass

# Flat 4 GiB code (0x08) and data (0x10) segments.
.p2align 3
gdt:
    .quad   0
    .quad   0x00cf9a000000ffff
    .quad   0x00cf92000000ffff
gdt_descriptor:
    .word   gdt_descriptor - gdt - 1
    .long   gdt

.org 510
    .word   0xaa55
