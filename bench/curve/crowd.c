/*
 * crowd PROCS THREADS NAMES PREFIX
 *
 * Forks PROCS children that sleep in pause() until crowd's stdin closes (or crowd dies:
 * PDEATHSIG). Each child runs THREADS threads in all (THREADS - 1 extra ones, 16 KiB stacks, also
 * in pause()), and is named PREFIX (NAMES <= 1) or PREFIXk with k = i % NAMES, so the agent sees
 * NAMES workloads. Prints "ready PROCS THREADS" once every child and thread exists.
 * Cheap on purpose: a child costs its kernel stack, page tables and a few dirtied pages
 * (~100 KB), a thread ~30 KB, so 50,000 of them fit on a small VM.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void *sleeper(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: crowd PROCS THREADS NAMES PREFIX\n");
    return 64;
  }
  long procs = atol(argv[1]), threads = atol(argv[2]), names = atol(argv[3]);
  const char *prefix = argv[4];
  pid_t parent = getpid();
  pid_t *kids = calloc(procs, sizeof(pid_t));
  int ready[2];
  if (!kids || pipe(ready) != 0) {
    perror("crowd");
    return 1;
  }
  for (long i = 0; i < procs; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("crowd: fork");
      for (long j = 0; j < i; j++) kill(kids[j], SIGKILL);
      return 1;
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      if (getppid() != parent) _exit(0);
      char name[16];
      if (names > 1)
        snprintf(name, sizeof name, "%s%ld", prefix, i % names);
      else
        snprintf(name, sizeof name, "%s", prefix);
      prctl(PR_SET_NAME, name, 0, 0, 0);
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN > 16384 ? PTHREAD_STACK_MIN : 16384);
      for (long t = 1; t < threads; t++) {
        pthread_t th;
        if (pthread_create(&th, &attr, sleeper, NULL) != 0) {
          perror("crowd: pthread_create");
          break;
        }
      }
      char one = 1;
      if (write(ready[1], &one, 1) != 1) _exit(1);
      close(ready[0]);
      close(ready[1]);
      for (;;) pause();
    }
    kids[i] = pid;
  }
  close(ready[1]);
  char buf[4096];
  long got = 0;
  while (got < procs) {
    ssize_t r = read(ready[0], buf, sizeof buf);
    if (r <= 0) break;
    got += r;
  }
  printf("ready %ld %ld\n", got, threads);
  fflush(stdout);
  while (read(0, buf, sizeof buf) > 0) {
  }
  for (long i = 0; i < procs; i++) kill(kids[i], SIGKILL);
  for (long i = 0; i < procs; i++) waitpid(kids[i], NULL, 0);
  return 0;
}
