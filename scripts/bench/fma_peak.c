/*
 * fma_peak: the f32 FMA peak this machine sustains, per thread count, with 256-bit (AVX2/FMA)
 * and, where the CPU has it, 512-bit (AVX-512F) vectors: 12 independent FMA chains a thread,
 * no memory traffic (-O3 -funroll-loops keeps the chains in registers; at -O2 they go through
 * the stack and the result is a third of the peak). Issue #17 asks for the encoder's GFLOP/s
 * to be read next to this number.
 *
 *   gcc -O3 -funroll-loops -mfma -mavx2 -pthread scripts/bench/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak 2
 *
 * (Under scripts/bench/avx2_only.sh the zmm lines are skipped: the masked CPUID has no AVX-512.)
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS 1600000000L /* FMAs a chain group runs: about 0.3 s a thread at 2 a cycle */
#define CHAINS 12

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *ymm(void *out) {
    __m256 a[CHAINS], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < ITERS / 8; it++)
        for (int i = 0; i < CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += a[i][0];
    *(float *)out = s;
    return NULL;
}

__attribute__((target("avx512f"))) static void *zmm(void *out) {
    __m512 a[CHAINS], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < ITERS / 16; it++)
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += a[i][0];
    *(float *)out = s;
    return NULL;
}

/* The best of three runs of `threads` threads (thread start-up included, over ~0.3 s). */
static void measure(const char *name, void *(*f)(void *), int lanes, int threads) {
    pthread_t t[64];
    float out[64];
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, f, &out[i]);
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
        double s = now() - t0;
        double flops = 2.0 * CHAINS * (double)(ITERS / lanes) * lanes * threads;
        if (flops / s > best) best = flops / s;
    }
    printf("%s %d thread(s): %.1f GFLOP/s (check %g)\n", name, threads, best / 1e9, out[0]);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (threads < 1 || threads > 64) return 2;
    __builtin_cpu_init();
    /* 1, 2, 4, ... threads, and `threads` itself. */
    for (int n = 1;; n = (n * 2 < threads) ? n * 2 : threads) {
        measure("ymm (AVX2/FMA)", ymm, 8, n);
        if (__builtin_cpu_supports("avx512f")) measure("zmm (AVX-512F)", zmm, 16, n);
        if (n == threads) break;
    }
    return 0;
}
