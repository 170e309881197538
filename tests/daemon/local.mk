# tests/daemon/: suites register here
