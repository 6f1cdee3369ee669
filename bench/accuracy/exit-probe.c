/*
 * exit-probe N BURN_US NAME PROCS_FILE [MB]
 * Moves itself into the cgroup of PROCS_FILE, then forks N children one after another; each sets
 * its comm to NAME, touches MB megabytes of fresh memory (default 0), burns BURN_US of CPU and
 * exits. The parent waits for each child with WNOWAIT
 * (the child is then a zombie: it has run its whole exit path, and its task still exists), reads
 * the zombie's /proc/PID/schedstat (sum_exec_runtime over its whole life, exit path included),
 * prints "PID NS", and only then reaps it. Compared with the child's taskstats exit record (taken
 * in do_exit before exit_mm, exit_files, exit_notify...), this measures the CPU a process spends
 * after its record, which no taskstats consumer can see.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long cpu_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void burn(long long us) {
  long long end = cpu_us() + us;
  volatile unsigned long x = 0;
  while (cpu_us() < end)
    for (int i = 0; i < 1000; i++) x += i;
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: exit-probe N BURN_US NAME PROCS_FILE\n"); return 64; }
  long n = atol(argv[1]);
  long long us = atoll(argv[2]);
  long mb = argc > 5 ? atol(argv[5]) : 0;
  int fd = open(argv[4], O_WRONLY);
  if (fd < 0) { perror(argv[4]); return 3; }
  char buf[256];
  int len = snprintf(buf, sizeof buf, "%d\n", getpid());
  if (write(fd, buf, len) != len) { perror(argv[4]); return 3; }
  close(fd);
  for (long i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
      prctl(PR_SET_NAME, argv[3], 0, 0, 0);
      if (mb > 0) {
        /* A bigger address space to tear down at exit (one write per page). */
        volatile char *m = malloc((size_t)mb << 20);
        if (m == NULL) _exit(4);
        for (size_t j = 0; j < ((size_t)mb << 20); j += 4096) m[j] = 1;
      }
      burn(us);
      _exit(0);
    }
    siginfo_t si;
    if (waitid(P_PID, pid, &si, WEXITED | WNOWAIT) < 0) { perror("waitid"); return 2; }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    fd = open(path, O_RDONLY);
    long k = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0) close(fd);
    buf[k > 0 ? k : 0] = 0;
    printf("%d %lld\n", pid, atoll(buf));
    if (waitpid(pid, NULL, 0) < 0) { perror("waitpid"); return 2; }
  }
  return 0;
}
