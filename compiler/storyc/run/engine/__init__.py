"""The warm build engine: builds stop paying Prefect's start-up each time.

The first `storyc build` that needs Prefect starts the engine; later builds reuse it; it
stops itself after some idle minutes (`storyc server status|stop`). The engine is one
process per user and installation (home.py says where it lives) that

- owns a Prefect server on 127.0.0.1 (its child, stopped with it, even when the engine
  is killed: the kernel's parent-death signal);
- keeps storyc and Prefect imported, and no thread running, so that it can fork: each
  build request (`storyc build ...` sent over a Unix socket with the client's argv,
  environment, working folder and its stdin/stdout/stderr) runs in a fresh fork of it.
  The fork runs the client's own program as it would have run in the client, in a warm
  interpreter: the same code path, its own process (build lock, signals, ffmpeg children
  and their watchdog, exit code), printing straight to the client's terminal.

The client (client.py) forwards Ctrl-C, SIGTERM and SIGHUP to its fork, so they stop the
build exactly as they stop an in-process one; a client killed outright makes the engine
kill its fork, as the killed build would have died. Design and figures: bench/creator_loop.py.
"""
