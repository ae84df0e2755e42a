// Package errdefs defines the kinds of error crid's domain packages return.
// Wrap one of these sentinels with context (fmt.Errorf("...: %w", errdefs.ErrNotFound));
// pkg/server maps the kind to a gRPC code once, at the boundary.
package errdefs

import "errors"

var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
	ErrUnimplemented      = errors.New("not implemented")
	ErrResourceExhausted  = errors.New("resource exhausted")
)

// IsNotFound reports whether err is, or wraps, ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
