package redisserver

import "syscall"

// sysProcAttr makes the kernel send SIGTERM to redis-server when the thread that
// started it dies, so a crashed parent leaves no orphan holding the port and data dir.
// Its own process group keeps a terminal's Ctrl-C away from it: the parent stops Redis
// last, after the parts that still write to it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
}
