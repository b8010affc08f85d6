/* How dear the first touch of memory is on this machine: maps 1 GiB of anonymous memory
 * three times in one process and makes every page of it resident, then memsets it:
 *   mode 0: touched a page at a time, 4 KiB pages;
 *   mode 1: touched a page at a time, advised MADV_HUGEPAGE;
 *   mode 2: faulted in by the kernel ahead of use, MADV_POPULATE_WRITE (Linux 5.14+), 4 KiB
 *           pages (tried for the build's output arrays and left out: BENCHMARKS.md,
 *           "Session 32").
 * THREADS threads (default 1) each take an equal part. BENCHMARKS.md, "Build time: the block
 * pass in place", "Session 31" and "Session 32".
 *
 *     gcc -O2 -pthread scripts/bench/page_touch.c -o /tmp/page_touch
 *     /tmp/page_touch 0 && /tmp/page_touch 1 && /tmp/page_touch 2 && /tmp/page_touch 2 2
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

struct part {
    char *p;
    size_t n;
    int mode;
};

static void *fault_in(void *arg) {
    struct part *a = arg;
    if (a->mode == 2) {
        if (madvise(a->p, a->n, MADV_POPULATE_WRITE) != 0)
            perror("madvise MADV_POPULATE_WRITE (Linux 5.14+)");
    } else {
        for (size_t i = 0; i < a->n; i += 4096)
            a->p[i] = 1;
    }
    return NULL;
}

int main(int argc, char **argv) {
    size_t n = 1UL << 30;
    int mode = argc > 1 ? atoi(argv[1]) : 0;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    if (mode < 0 || mode > 2 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: page_touch [0|1|2 [THREADS]]\n");
        return 2;
    }
    for (int r = 0; r < 3; r++) {
        char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        if (mode == 1 && madvise(p, n, MADV_HUGEPAGE) != 0)
            perror("madvise (huge pages off?)");
        pthread_t th[64];
        struct part parts[64];
        double t0 = now();
        for (int i = 0; i < threads; i++) {
            /* Whole pages a part (madvise wants a page-aligned start). */
            size_t pages = n / 4096, a = pages * i / threads * 4096,
                   b = pages * (i + 1) / threads * 4096;
            parts[i] = (struct part){p + a, b - a, mode};
            if (pthread_create(&th[i], NULL, fault_in, &parts[i]) != 0) {
                perror("pthread_create");
                return 1;
            }
        }
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        double t1 = now();
        memset(p, 2, n);
        double t2 = now();
        printf("mode %d (%s), %d thread(s), round %d: first touch %.3f s/GiB, memset after %.3f s\n",
               mode, mode == 0 ? "4 KiB touched" : mode == 1 ? "huge pages touched" : "populated",
               threads, r, t1 - t0, t2 - t1);
        munmap(p, n);
    }
    return 0;
}
