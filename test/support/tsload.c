/*
 * tsload: workloads whose truth is known exactly, for fault tests and benchmarks.
 * Compiled by test/support/workload.ts with cc into a temporary folder.
 *
 *   tsload fork N BURN_US [PROCS_FILE] [NAME]
 *       (optionally moves itself into the cgroup whose cgroup.procs is PROCS_FILE), then forks N
 *       children one after another; each sets its comm to NAME (default "tsburn"), burns BURN_US
 *       of CPU and exits 0. Prints N.
 *   tsload exec N BURN_US PROCS_FILE BURNER
 *       stays where it is and forks N children; each writes its own pid into PROCS_FILE and then
 *       execs BURNER ("burn BURN_US"), as container runtimes do for `kubectl exec`. Prints N.
 *   tsload burn BURN_US         burns BURN_US of CPU time and exits 0.
 *   tsload loop SECONDS         forks children that exit at once, as fast as it can, for SECONDS.
 *                               Prints the number of children.
 *   tsload count N              forks exactly N children that exit at once. Prints N.
 *   tsload names N PREFIX [FIRST]  forks N children one after another; child i sets its comm to
 *                               PREFIX<FIRST+i> with prctl and exits. Prints N.
 *   tsload sleepers N           forks N children that sleep until tsload dies (PDEATHSIG) and
 *                               prints "ready" once all exist; exits when stdin closes.
 *   tsload exitcode CODE        exits with CODE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
  while (cpu_us() < end) {
    for (int i = 0; i < 1000; i++) x += i;
  }
}

static void write_pid(const char *procs_file) {
  int fd = open(procs_file, O_WRONLY);
  if (fd < 0) { perror(procs_file); _exit(3); }
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d\n", getpid());
  if (write(fd, buf, n) != n) { perror(procs_file); _exit(3); }
  close(fd);
}

static void reap(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) { perror("waitpid"); exit(2); }
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "tsload: child %d ended with status 0x%x\n", pid, st);
    exit(2);
  }
}

static pid_t must_fork(void) {
  for (;;) {
    pid_t pid = fork();
    if (pid >= 0) return pid;
    if (errno != EAGAIN) { perror("fork"); exit(2); }
    usleep(1000);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: see tsload.c\n"); return 64; }
  const char *cmd = argv[1];
  setvbuf(stdout, NULL, _IOLBF, 0);

  if (!strcmp(cmd, "burn") && argc >= 3) {
    burn(atoll(argv[2]));
    return 0;
  }
  if (!strcmp(cmd, "exitcode") && argc >= 3) return atoi(argv[2]);

  if (!strcmp(cmd, "fork") && argc >= 4) {
    long n = atol(argv[2]);
    long long us = atoll(argv[3]);
    const char *name = argc >= 6 ? argv[5] : "tsburn";
    if (argc >= 5 && argv[4][0]) write_pid(argv[4]);
    for (long i = 0; i < n; i++) {
      pid_t pid = must_fork();
      if (pid == 0) {
        prctl(PR_SET_NAME, name, 0, 0, 0);
        burn(us);
        _exit(0);
      }
      reap(pid);
    }
    printf("%ld\n", n);
    return 0;
  }
  if (!strcmp(cmd, "exec") && argc >= 6) {
    long n = atol(argv[2]);
    const char *procs = argv[4], *burner = argv[5];
    for (long i = 0; i < n; i++) {
      pid_t pid = must_fork();
      if (pid == 0) {
        write_pid(procs);
        execl(burner, burner, "burn", argv[3], (char *)NULL);
        perror(burner);
        _exit(127);
      }
      reap(pid);
    }
    printf("%ld\n", n);
    return 0;
  }
  if (!strcmp(cmd, "loop") && argc >= 3) {
    double secs = atof(argv[2]);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long n = 0;
    for (;;) {
      pid_t pid = must_fork();
      if (pid == 0) _exit(0);
      reap(pid);
      n++;
      if ((n & 63) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 >= secs) break;
      }
    }
    printf("%ld\n", n);
    return 0;
  }
  if (!strcmp(cmd, "count") && argc >= 3) {
    long n = atol(argv[2]);
    for (long i = 0; i < n; i++) {
      pid_t pid = must_fork();
      if (pid == 0) _exit(0);
      reap(pid);
    }
    printf("%ld\n", n);
    return 0;
  }
  if (!strcmp(cmd, "names") && argc >= 4) {
    long n = atol(argv[2]);
    long first = argc >= 5 ? atol(argv[4]) : 0;
    char name[16];
    for (long i = 0; i < n; i++) {
      pid_t pid = must_fork();
      if (pid == 0) {
        snprintf(name, sizeof name, "%s%ld", argv[3], first + i);
        prctl(PR_SET_NAME, name, 0, 0, 0);
        _exit(0);
      }
      reap(pid);
    }
    printf("%ld\n", n);
    return 0;
  }
  if (!strcmp(cmd, "sleepers") && argc >= 3) {
    long n = atol(argv[2]);
    pid_t parent = getpid();
    pid_t *kids = calloc(n, sizeof(pid_t));
    for (long i = 0; i < n; i++) {
      pid_t pid = must_fork();
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent) _exit(0);
        prctl(PR_SET_NAME, "tssleeper", 0, 0, 0);
        for (;;) pause();
      }
      kids[i] = pid;
    }
    printf("ready\n");
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {}
    for (long i = 0; i < n; i++) kill(kids[i], SIGKILL);
    for (long i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
    return 0;
  }
  fprintf(stderr, "tsload: unknown command or missing arguments: %s\n", cmd);
  return 64;
}
