/* How dear the first touch of memory is on this machine: maps 1 GiB of anonymous memory
 * three times in one process, touches it a page at a time, then memsets it, with 4 KiB pages
 * (argument 0) or advised MADV_HUGEPAGE (argument 1). BENCHMARKS.md, "Build time: the block
 * pass in place".
 *
 *     gcc -O2 scripts/bench/page_touch.c -o /tmp/page_touch && /tmp/page_touch 0 && /tmp/page_touch 1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t n = 1UL << 30;
    int huge = argc > 1 ? atoi(argv[1]) : 0;
    for (int r = 0; r < 3; r++) {
        char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        if (huge && madvise(p, n, MADV_HUGEPAGE) != 0)
            perror("madvise (huge pages off?)");
        double t0 = now();
        for (size_t i = 0; i < n; i += 4096)
            p[i] = 1;
        double t1 = now();
        memset(p, 2, n);
        double t2 = now();
        printf("huge pages %d, round %d: first touch %.3f s/GiB, memset after %.3f s\n", huge, r,
               t1 - t0, t2 - t1);
        munmap(p, n);
    }
    return 0;
}
