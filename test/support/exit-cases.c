/*
 * exit-cases: processes whose end is known exactly, for the tests of exit events.
 *
 *   exit-cases exit CODE            exits with CODE.
 *   exit-cases wait                 prints "ready" and sleeps until killed.
 *   exit-cases segv DIR             allows core dumps (RLIMIT_CORE), moves into DIR, dereferences NULL.
 *   exit-cases threads N BURN_US    N threads in all (the main one included) each burn BURN_US of
 *                                   CPU; the main thread joins the others and exits 0.
 *   exit-cases burn BURN_US         burns BURN_US of CPU time and exits 0.
 *   exit-cases read FILE            reads FILE to its end (64 KiB reads) and exits 0.
 *   exit-cases move PROCS_FILE CODE writes its own pid into PROCS_FILE (a cgroup's cgroup.procs),
 *                                   then execs itself as "exit CODE" (what container runtimes do
 *                                   for `kubectl exec`).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long long thread_cpu_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void burn(long long us) {
  long long end = thread_cpu_us() + us;
  volatile unsigned long x = 0;
  while (thread_cpu_us() < end)
    for (int i = 0; i < 1000; i++) x += i;
}

static long long burn_us;
static void *burner(void *arg) {
  (void)arg;
  burn(burn_us);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) return 64;
  const char *mode = argv[1];
  if (!strcmp(mode, "exit") && argc > 2) return atoi(argv[2]);
  if (!strcmp(mode, "wait")) {
    printf("ready\n");
    fflush(stdout);
    for (;;) pause();
  }
  if (!strcmp(mode, "segv") && argc > 2) {
    struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
    setrlimit(RLIMIT_CORE, &rl);
    if (chdir(argv[2]) != 0) { perror(argv[2]); return 3; }
    volatile int *p = NULL;
    *p = 1;
    return 0;
  }
  if (!strcmp(mode, "threads") && argc > 3) {
    int n = atoi(argv[2]);
    burn_us = atoll(argv[3]);
    pthread_t t[64];
    for (int i = 0; i < n - 1 && i < 64; i++) pthread_create(&t[i], NULL, burner, NULL);
    burn(burn_us);
    for (int i = 0; i < n - 1 && i < 64; i++) pthread_join(t[i], NULL);
    return 0;
  }
  if (!strcmp(mode, "burn") && argc > 2) {
    burn(atoll(argv[2]));
    return 0;
  }
  if (!strcmp(mode, "read") && argc > 2) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) { perror(argv[2]); return 3; }
    static char buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {}
    close(fd);
    return 0;
  }
  if (!strcmp(mode, "move") && argc > 3) {
    int fd = open(argv[2], O_WRONLY);
    if (fd < 0) { perror(argv[2]); return 3; }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%d\n", getpid());
    if (write(fd, pid, len) != len) { perror(argv[2]); return 3; }
    close(fd);
    execl("/proc/self/exe", argv[0], "exit", argv[3], (char *)NULL);
    perror("exec");
    return 3;
  }
  return 64;
}
