/*
 * A fork loop: forks children that exit at once, one at a time, for SECONDS, then prints how
 * many children it reaped (the exact number of exits it caused, besides its own).
 * usage: forkloop SECONDS
 * It waits for one byte (or EOF) on stdin before it starts, so that listeners can be told its pid first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3;
  char go;
  if (read(0, &go, 1) < 0) return 1;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double end = ts.tv_sec + ts.tv_nsec / 1e9 + seconds;
  long n = 0;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_sec + ts.tv_nsec / 1e9 >= end) break;
    pid_t p = fork();
    if (p == 0) _exit(0);
    if (p < 0) continue;
    waitpid(p, NULL, 0);
    n++;
  }
  printf("%ld\n", n);
  return 0;
}
