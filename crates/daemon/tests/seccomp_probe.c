/* The seccomp probe of tests/seccomp_profile.rs: makes each syscall of its table in a child of
 * its own (so that what a call changes, a persona, a namespace, dies with the child) and prints
 * "NAME ERRNO" per call, 0 when the call succeeded. The arguments are chosen so that the kernel,
 * when the filter lets the call through, answers something else than EPERM and ENOSYS where it
 * can (a bad flag, a missing path, a bad descriptor): the filter's answers stand out. Nothing
 * here changes the host even with the capability (bad magic, bad flags, no such path).
 *
 * Built static by the test (cc -static). Syscall numbers of the calls newer than the libc's
 * headers are the unified ones (424 and up, the same on x86-64 and arm64). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NR_set_mempolicy_home_node 450
#define NR_cachestat 451
#define NR_statmount 457
#define NR_listmount 458
#define NR_lsm_list_modules 461
#define NR_mseal 462
#define NR_getxattrat 464
#define NR_open_tree_attr 467
#define NR_file_getattr 468
#define NR_MADE_UP 1000
#define NO_SUCH_PID 0x3fffffff
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static long r(long ret) { return ret == -1 ? errno : 0; }

static long do_clone(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return errno;
    waitpid(pid, NULL, 0);
    return 0;
}

static long probe(int i) {
    struct timeval bad_tv = {0, 2000000};
    struct timespec ts = {0, 0};
    switch (i) {
    case 0: return r(syscall(SYS_getpid));
    case 1: return r(syscall(SYS_mount, "none", "/no-such-dir", "tmpfs", 0, 0));
    case 2: return r(syscall(SYS_umount2, "/", 0xffff));
    case 3: return r(syscall(SYS_unshare, CLONE_NEWUSER));
    case 4: return r(syscall(SYS_setns, -1, 0));
    case 5: return r(syscall(SYS_keyctl, 9999, 0, 0, 0, 0));
    case 6: return r(syscall(SYS_add_key, 0, 0, 0, 0, 0));
    case 7: return r(syscall(SYS_bpf, 9999, 0, 0));
    case 8: return r(syscall(SYS_perf_event_open, 0, 0, -1, -1, 0));
    case 9: return r(syscall(SYS_ptrace, 2 /* PTRACE_PEEKDATA */, NO_SUCH_PID, 0, 0));
    case 10: return r(syscall(SYS_process_vm_readv, getpid(), 0, 0, 0, 0, 1));
    case 11: return r(syscall(SYS_kexec_load, 0, 1000, 0, 0x100));
    case 12: return r(syscall(SYS_init_module, 0, 0, ""));
    case 13: return r(syscall(SYS_reboot, 0, 0, 0, 0));
    case 14: return r(syscall(SYS_swapon, 0, 0xffffffff));
    case 15: return r(syscall(SYS_settimeofday, &bad_tv, 0));
    case 16: return r(syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts));
    case 17: return r(syscall(SYS_acct, 0));
    case 18: return r(syscall(SYS_personality, 0x0040000 | 0x0400000 | 0x0020000));
    case 19: return r(syscall(SYS_personality, 0));
    case 20: return r(syscall(SYS_personality, 0xffffffffUL));
    case 21: return do_clone(CLONE_NEWUSER);
    case 22: return do_clone(0);
    case 23: return r(syscall(SYS_clone3, 0, 0));
    case 24: return r(syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0));
    case 25: return r(syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0));
    case 26: return r(syscall(SYS_userfaultfd, 1 | 2));
    case 27: return r(syscall(SYS_pidfd_getfd, -1, 0, 0));
    case 28: return r(syscall(SYS_migrate_pages, NO_SUCH_PID, 0, 0, 0));
    case 29: return r(syscall(SYS_move_pages, NO_SUCH_PID, 0, 0, 0, 0, 0xff));
    case 30: return r(syscall(SYS_process_madvise, -1, 0, 0, 0, 1));
    case 31: return r(syscall(NR_listmount, 0, 0, 0, 0xff));
    case 32: return r(syscall(NR_statmount, 0, 0, 0, 0xff));
    case 33: return r(syscall(NR_open_tree_attr, -1, 0, 0xffffffff, 0, 0));
    case 34: return r(syscall(NR_lsm_list_modules, 0, 0, 1));
    case 35: return r(syscall(NR_mseal, 0, 0, 1));
    case 36: return r(syscall(NR_cachestat, -1, 0, 0, 1));
    case 37: return r(syscall(NR_getxattrat, -1, 0, 0xffffffff, 0, 0));
    case 38: return r(syscall(NR_file_getattr, -1, 0, 0, 0, 0xffffffff));
    case 39: return r(syscall(NR_set_mempolicy_home_node, 0, 0, 0, 1));
    case 40: return r(syscall(NR_MADE_UP, 0, 0, 0, 0, 0));
    case 41: return r(syscall(SYS_kcmp, NO_SUCH_PID, NO_SUCH_PID, 0, 0, 0));
    case 42: return r(syscall(SYS_mbind, 0, 0, 0xff, 0, 0, 0));
    case 43: return r(syscall(SYS_finit_module, -1, "", 0));
    case 44: return r(syscall(SYS_request_key, 0, 0, 0, 0));
    case 45: return r(syscall(SYS_fsopen, 0, 0xffffffff));
    default: return -1;
    }
}

static const char *names[] = {
    "getpid", "mount", "umount2", "unshare", "setns", "keyctl", "add_key", "bpf",
    "perf_event_open", "ptrace", "process_vm_readv", "kexec_load", "init_module", "reboot",
    "swapon", "settimeofday", "clock_settime", "acct", "personality_bad", "personality_linux",
    "personality_query", "clone_newuser", "clone", "clone3", "socket_vsock", "socket_inet",
    "userfaultfd", "pidfd_getfd", "migrate_pages", "move_pages", "process_madvise",
    "listmount", "statmount", "open_tree_attr", "lsm_list_modules", "mseal", "cachestat",
    "getxattrat", "file_getattr", "set_mempolicy_home_node", "made_up_1000", "kcmp", "mbind",
    "finit_module", "request_key", "fsopen",
};

int main(void) {
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            _exit((int)probe(i));
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0) {
            printf("%s fork-failed\n", names[i]);
            continue;
        }
        if (WIFEXITED(status))
            printf("%s %d\n", names[i], WEXITSTATUS(status));
        else
            printf("%s signal-%d\n", names[i], WTERMSIG(status));
    }
    return 0;
}
