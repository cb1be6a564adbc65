// Package btrfs is the only place in butterd that issues BTRFS ioctls.
//
// Subvolumes are created and snapshotted with github.com/containerd/btrfs/v2;
// everything on a hot path (info, nested subvolumes, delete, flags) uses
// direct ioctls on one file descriptor, never a scan of the whole
// filesystem. Every error is an *Error; each ioctl is logged with its
// duration at debug level.
package btrfs
