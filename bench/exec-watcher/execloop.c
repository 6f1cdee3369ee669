// Runs /bin/true N times, one after another (fork, exec, wait): a steady stream of short-lived
// exec'd processes (~0.5 ms each), the case the exec watcher races.
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  for (int i = 0; i < n; i++) {
    pid_t p = fork();
    if (p == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
    if (p > 0) waitpid(p, 0, 0);
  }
  return 0;
}
