package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// quietMethods are polled by kubelet every few seconds; they log at debug.
var quietMethods = map[string]bool{
	"/runtime.v1.RuntimeService/Version":             true,
	"/runtime.v1.RuntimeService/Status":              true,
	"/runtime.v1.RuntimeService/ListPodSandbox":      true,
	"/runtime.v1.RuntimeService/ListContainers":      true,
	"/runtime.v1.RuntimeService/ContainerStatus":     true,
	"/runtime.v1.RuntimeService/PodSandboxStatus":    true,
	"/runtime.v1.RuntimeService/ListContainerStats":  true,
	"/runtime.v1.RuntimeService/ListPodSandboxStats": true,
	"/runtime.v1.ImageService/ImageStatus":           true,
	"/runtime.v1.ImageService/ListImages":            true,
	"/runtime.v1.ImageService/ImageFsInfo":           true,
}

// Observer records each served call (metrics); nil records nothing.
type Observer func(method, code string, d time.Duration)

// UnaryInterceptor logs each call, converts domain errors to gRPC status
// codes and turns a panic into an Internal error instead of a dead daemon.
func UnaryInterceptor(log *slog.Logger, observe Observer) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		level := slog.LevelInfo
		if quietMethods[info.FullMethod] {
			level = slog.LevelDebug
		}
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in RPC", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", info.FullMethod, r)
			}
			err = toStatus(err)
			if observe != nil {
				observe(info.FullMethod, status.Code(err).String(), time.Since(start))
			}
			attrs := []any{"method", info.FullMethod, "duration", time.Since(start)}
			if err != nil {
				log.Log(ctx, max(level, slog.LevelWarn), "RPC failed", append(attrs, "error", err)...)
				return
			}
			log.Log(ctx, level, "RPC done", attrs...)
		}()
		return handler(ctx, req)
	}
}

// StreamInterceptor is UnaryInterceptor for streaming RPCs.
func StreamInterceptor(log *slog.Logger, observe Observer) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in streaming RPC", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "%s: internal error: %v", info.FullMethod, r)
			}
			err = toStatus(err)
			if observe != nil {
				observe(info.FullMethod, status.Code(err).String(), time.Since(start))
			}
		}()
		return handler(srv, ss)
	}
}
