/*
 * Exec spawner for the exec watcher soak (plugins/taskstats/exec-watcher-soak.test.ts): the truth
 * is this program's own fork() results, not anything the agent reports.
 *
 *   exec-spawner            reads commands on stdin, one per line:
 *     "spawn N BASE TAG"      forks N children; child i execs this binary as
 *                             `SELF child TAG-(BASE+i)` (a distinct command line per exec) and
 *                             blocks on a pipe until released; prints "pid INDEX PID" per
 *                             child, then "spawned"
 *     "release"               closes the pipe (the children exit), reaps them, prints
 *                             "reaped OK" or "reaped FAILED n" (children that did not exit 0)
 *     "quit"                  exits
 *   exec-spawner child TAG  reads stdin until EOF, exits 0
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHILDREN 4096

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "child") == 0) {
    char b[64];
    while (read(0, b, sizeof b) > 0) {
    }
    return 0;
  }
  char self[4096];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0) {
    perror("readlink");
    return 2;
  }
  self[sl] = 0;
  static pid_t pids[MAX_CHILDREN];
  int nchildren = 0;
  int release_fd = -1;
  char line[256];
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  while (fgets(line, sizeof line, stdin)) {
    int n, base;
    char tag[64];
    if (sscanf(line, "spawn %d %d %63s", &n, &base, tag) == 3) {
      if (n < 1 || n > MAX_CHILDREN || release_fd >= 0) {
        fprintf(stderr, "bad spawn request\n");
        return 2;
      }
      int p[2];
      if (pipe2(p, O_CLOEXEC) != 0) {
        perror("pipe2");
        return 2;
      }
      int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
      for (int i = 0; i < n; i++) {
        char arg[96];
        snprintf(arg, sizeof arg, "%s-%d", tag, base + i);
        fflush(stdout);
        pid_t c = fork();
        if (c < 0) {
          perror("fork");
          return 2;
        }
        if (c == 0) {
          /* dup2 clears FD_CLOEXEC on the copies: the child keeps only stdin (the pipe) and stdout/stderr (/dev/null). */
          dup2(p[0], 0);
          dup2(devnull, 1);
          dup2(devnull, 2);
          execl(self, self, "child", arg, (char *)NULL);
          _exit(127);
        }
        pids[i] = c;
        printf("pid %d %d\n", base + i, (int)c);
      }
      close(devnull);
      close(p[0]);
      release_fd = p[1];
      nchildren = n;
      printf("spawned\n");
      fflush(stdout);
    } else if (strncmp(line, "release", 7) == 0) {
      if (release_fd >= 0) close(release_fd);
      release_fd = -1;
      int failed = 0;
      for (int i = 0; i < nchildren; i++) {
        int st;
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
      }
      nchildren = 0;
      if (failed) printf("reaped FAILED %d\n", failed);
      else printf("reaped OK\n");
      fflush(stdout);
    } else if (strncmp(line, "quit", 4) == 0) {
      break;
    }
  }
  return 0;
}
