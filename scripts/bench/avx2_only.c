/*
 * avx2_only.so: makes this process (and every process it starts) see an AVX2/FMA CPU with no
 * AVX-512, AVX-VNNI, AVX10 or AMX, so that every library's run-time dispatch (onnxruntime's
 * MLAS, PyTorch's ATen/oneDNN/MKL, numpy, the gemm crate, splade-rs' own kernels) picks the
 * kernels it would pick on an AVX2-only machine. Used by scripts/bench/avx2_only.sh; see there.
 *
 * How: Linux's CPUID faulting (arch_prctl(ARCH_SET_CPUID, 0), the mechanism rr uses) makes every
 * CPUID instruction of the process raise SIGSEGV. The handler runs the real CPUID with faulting
 * briefly turned off for the thread, clears the feature bits named below, writes the result
 * into the interrupted registers and steps over the instruction. Faulting is inherited by
 * threads and cleared by execve, which is why the library is preloaded (LD_PRELOAD) into each
 * process. Other SIGSEGV handlers the program installs are kept and called for every fault
 * that is not a CPUID.
 *
 * AVX2_ONLY_PASSTHROUGH=1 traps every CPUID the same way but clears nothing (a control run for
 * the cost of the trapping itself); AVX2_ONLY_COUNT=1 prints how many CPUIDs were answered.
 *
 * Limits: libraries the executable itself links are initialised before this one, so a CPUID
 * in their constructors sees the real CPU (the runs in BENCHMARKS.md are python, which loads
 * torch and onnxruntime later with dlopen, and splade, whose detection is lazy). glibc's own dispatch (memcpy and friends) runs its CPUID before any constructor; the
 * wrapper script turns those AVX-512 variants off through GLIBC_TUNABLES. XGETBV cannot be
 * trapped, so XCR0 still shows the AVX-512 state enabled; every library checks the CPUID bit
 * as well, so none uses AVX-512 without it. The hardware is the same, so clock speeds and
 * caches are this CPU's, not an older AVX2 part's.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

static struct sigaction chained; /* the program's own SIGSEGV action */
static int passthrough;          /* AVX2_ONLY_PASSTHROUGH: trap CPUID, clear nothing (a control) */
static int cpuid_count_enabled;  /* AVX2_ONLY_COUNT: print the counts at exit */
static unsigned long trapped_cpuid, trapped_other;
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static void masked_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    real_cpuid(leaf, sub, r);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    if (cpuid_count_enabled)
        __atomic_fetch_add(&trapped_cpuid, 1, __ATOMIC_RELAXED);
    if (passthrough)
        return;
    if (leaf == 7 && sub == 0) {
        /* EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31 */
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                  (1u << 30) | (1u << 31));
        /* ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14 */
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        /* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX-BF16 22, FP16 23, AMX-TILE 24, AMX-INT8 25 */
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) |
                  (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        /* EAX: AVX-VNNI 4, AVX512_BF16 5, AMX-FP16 21, AVX-IFMA 23 */
        r[0] &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
        /* EDX: AVX-VNNI-INT8 4, AVX-NE-CONVERT 5, AMX-COMPLEX 8, AVX-VNNI-INT16 10, AVX10 19 */
        r[3] &= ~((1u << 4) | (1u << 5) | (1u << 8) | (1u << 10) | (1u << 19));
    } else if (leaf == 0xd && sub == 0) {
        /* XCR0 bits the CPU supports: opmask 5, ZMM_Hi256 6, Hi16_ZMM 7, XTILECFG 17, XTILEDATA 18 */
        r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));
    } else if (leaf == 0x1d || leaf == 0x1e || leaf == 0x24) {
        r[0] = r[1] = r[2] = r[3] = 0; /* AMX tile and TMUL info, AVX10 info */
    }
}

static void set_default(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &dfl, NULL);
}

static void on_segv(int sig, siginfo_t *info, void *ctx_) {
    ucontext_t *ctx = ctx_;
    greg_t *g = ctx->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    int saved_errno = errno;
    if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) {
        uint32_t r[4];
        masked_cpuid((uint32_t)g[REG_RAX], (uint32_t)g[REG_RCX], r);
        g[REG_RAX] = r[0]; /* CPUID zero-extends into the 64-bit registers */
        g[REG_RBX] = r[1];
        g[REG_RCX] = r[2];
        g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
        errno = saved_errno;
        return;
    }
    if (cpuid_count_enabled)
        __atomic_fetch_add(&trapped_other, 1, __ATOMIC_RELAXED);
    /* Not a CPUID: what the program's own action would have done. */
    struct sigaction act = chained;
    if (act.sa_handler == SIG_IGN) {
        if (info->si_code <= 0)
            return; /* sent by kill(): ignored, as the program asked */
        set_default(); /* a real fault cannot be ignored: it repeats and kills */
        return;
    }
    if (act.sa_handler == SIG_DFL) {
        set_default();
        if (info->si_code <= 0)
            raise(SIGSEGV); /* sent by kill(): delivered again, now to the default action */
        return;           /* a real fault repeats on return and kills */
    }
    if (act.sa_flags & SA_RESETHAND) {
        memset(&chained, 0, sizeof chained);
        chained.sa_handler = SIG_DFL;
    }
    /* The program's mask for its handler, and SIGSEGV itself unless it asked otherwise; the
       kernel restores the interrupted mask when this handler returns. */
    sigset_t mask = act.sa_mask;
    if (!(act.sa_flags & (SA_NODEFER | SA_RESETHAND)))
        sigaddset(&mask, SIGSEGV);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    errno = saved_errno;
    if (act.sa_flags & SA_SIGINFO)
        act.sa_sigaction(sig, info, ctx_);
    else
        act.sa_handler(sig);
}

/* The program's sigaction for SIGSEGV is recorded and chained, never installed over ours. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction)
        real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV)
        return real_sigaction(sig, act, old);
    if (old)
        *old = chained;
    if (act)
        chained = *act;
    return 0;
}

/* signal() too: glibc's goes to its internal sigaction, past the one above. */
sighandler_t signal(int sig, sighandler_t handler) {
    if (sig != SIGSEGV) {
        static sighandler_t (*real_signal)(int, sighandler_t);
        if (!real_signal)
            real_signal = (sighandler_t(*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
        return real_signal(sig, handler);
    }
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

static void report_count(void) {
    fprintf(stderr, "avx2_only: %lu CPUID instructions answered, %lu other SIGSEGVs\n",
            trapped_cpuid, trapped_other);
}

__attribute__((constructor)) static void avx2_only_init(void) {
    if (!real_sigaction)
        real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    passthrough = getenv("AVX2_ONLY_PASSTHROUGH") != NULL;
    cpuid_count_enabled = getenv("AVX2_ONLY_COUNT") != NULL;
    if (cpuid_count_enabled)
        atexit(report_count);
    struct sigaction sa, before;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    /* A library initialised before this one may have set its action through the
       interposer above already: keep that one rather than the kernel's record. */
    int recorded = chained.sa_handler != NULL || chained.sa_flags != 0;
    if (real_sigaction(SIGSEGV, &sa, &before) != 0 ||
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "avx2_only: this kernel or CPU has no CPUID faulting; refusing to run "
                        "with AVX-512 visible\n");
        _exit(97);
    }
    if (!recorded)
        chained = before;
}
