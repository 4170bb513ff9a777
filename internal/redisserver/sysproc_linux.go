package redisserver

import "syscall"

// sysProcAttr makes the kernel send SIGTERM to redis-server when the thread that
// started it dies, so a crashed parent leaves no orphan holding the port and data dir.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
