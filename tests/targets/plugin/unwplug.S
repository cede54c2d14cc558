/*
 * unwplug.S - built twice, as libunwplug_a.so (FRAME=24) and
 * libunwplug_b.so (FRAME=56), for t181: the same instructions at the same
 * offsets (both frame sizes fit an 8-bit immediate), so every return
 * address in one is a return address in the other, but the frames differ.
 * unw_target loads one, calls it, unloads it and loads the other, most
 * often at the same address: an unwinder that kept the first one's rules
 * would read the second one's frames wrong.
 *
 * void unwplug_run(unsigned i): rec(3 + i % 5, 48)
 * rec(depth, size): recursion; malloc(size) and free at the bottom.
 */
	.text
	.globl	unwplug_run
	.type	unwplug_run, @function
unwplug_run:
	.cfi_startproc
	subq	$FRAME, %rsp
	.cfi_def_cfa_offset FRAME+8
	movl	%edi, %eax
	xorl	%edx, %edx
	movl	$5, %ecx
	divl	%ecx
	leaq	3(%rdx), %rdi
	movl	$48, %esi
	call	rec
	addq	$FRAME, %rsp
	.cfi_def_cfa_offset 8
	ret
	.cfi_endproc
	.size	unwplug_run, .-unwplug_run

	.type	rec, @function
rec:
	.cfi_startproc
	subq	$FRAME, %rsp
	.cfi_def_cfa_offset FRAME+8
	testq	%rdi, %rdi
	jz	1f
	decq	%rdi
	call	rec
	jmp	2f
1:	movq	%rsi, %rdi
	call	malloc@PLT
	movq	%rax, %rdi
	call	free@PLT
2:	addq	$FRAME, %rsp
	.cfi_def_cfa_offset 8
	ret
	.cfi_endproc
	.size	rec, .-rec

	.section .note.GNU-stack,"",@progbits
